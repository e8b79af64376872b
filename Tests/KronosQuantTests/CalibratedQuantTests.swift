// The 5- and 6-bit types, the importance-weighted block fits and error-compensating quantization.
import KronosQuant
import Testing

/// Named bounds of these tests.
enum CalibratedThreshold {
    /// Weighted error of an importance-weighted encoding / the plain encoding's, when half the
    /// columns carry 100x the weight (the fit must trade the light columns for the heavy ones).
    static let weightedGain = 0.8
    /// The same for the symmetric types (q5_0, q6_0), whose blocks have one parameter to trade with.
    static let weightedGainSymmetric = 0.95
    /// Output error ‖(W − Q) X‖ of the compensated encoding / the weighted encoding's, on strongly
    /// correlated inputs.
    static let compensatedGain = 0.75
    /// ‖Uᵀ U (H + λI) − I‖_max of the inverse Cholesky factor.
    static let inverseResidual = 1e-3
}

/// x [rows, cols] through `type` with per-column weights -> decoded values.
func weightedRoundTrip(_ type: TensorType, _ src: [Float], cols: Int, weights: [Float]) throws -> [Float] {
    let rows = src.count / cols, rowBytes = type.rowBytes(columns: cols)!
    var bytes = [UInt8](repeating: 0, count: rows * rowBytes)
    var out = [Float](repeating: .nan, count: src.count)
    try src.withUnsafeBufferPointer { s in
        try weights.withUnsafeBufferPointer { w in
            try bytes.withUnsafeMutableBytes { b in
                for r in 0..<rows {
                    try type.encodeRow(
                        s.baseAddress! + r * cols, columns: cols, into: b.baseAddress! + r * rowBytes,
                        weights: w.baseAddress!)
                }
            }
        }
    }
    bytes.withUnsafeBytes { b in
        for r in 0..<rows {
            out.withUnsafeMutableBufferPointer {
                type.decodeRow(b.baseAddress! + r * rowBytes, columns: cols, into: $0.baseAddress! + r * cols)
            }
        }
    }
    return out
}

@Suite struct NarrowTypeTests {
    /// Hand-made blocks decode to the values the layout in BlockQ6_0.swift says.
    @Test func q5Layout() {
        var block = [UInt8](repeating: 0, count: 22)
        block[0] = 0x00; block[1] = 0x40  // d = 2.0
        // element 0: stored 31 (q 15): low nibble 15, high bit 1; element 16: stored 0 (q -16);
        // element 1: stored 16 (q 0): low 0, high 1; element 17: stored 17 (q 1): low 1, high 1.
        block[2] = 0x0F; block[3] = 0x10
        block[18] = 0b0000_0011; block[20] = 0b0000_0010  // bits 0, 1 (elements 0, 1), bit 17
        var y = [Float](repeating: .nan, count: 32)
        block.withUnsafeBytes { BlockQ5_0.dequantize($0.baseAddress!, into: &y) }
        #expect(y[0] == 30 && y[16] == -32 && y[1] == 0 && y[17] == 2)
        #expect(y[2] == -32)  // stored 0
    }

    @Test func q6Layout() {
        var block = [UInt8](repeating: 0, count: 26)
        block[0] = 0x00; block[1] = 0x3C  // d = 1.0
        // element 0: stored 63 (q 31): low 15, high 3; element 5: stored 32 (q 0): low 0, high 2;
        // element 21: stored 1 (q -31): low 1, high 0.
        block[2] = 0x0F; block[7] = 0x10
        block[18] = 0b0000_0011; block[19] = 0b0000_1000  // element 0 bits 0-1; element 5 bits 2-3 of byte 1
        var y = [Float](repeating: .nan, count: 32)
        block.withUnsafeBytes { BlockQ6_0.dequantize($0.baseAddress!, into: &y) }
        #expect(y[0] == 31 && y[5] == 0 && y[21] == -31 && y[1] == -32)
    }

    /// Expanding into q8_0 keeps every value bit for bit (the engine runs them so).
    @Test(arguments: [TensorType.q5_0, .q6_0])
    func expandsExactlyIntoQ8(type: TensorType) throws {
        var g = TestRows(seed: 77)
        let cols = 256
        var src = g.rows(8, cols)
        src[17] = 40; src[300] = -1e-3
        let (bytes, dec) = try roundTrip(type, src, cols: cols)
        #expect(type.runType == .q8_0 && TensorType.q4_k.runType == .q4_k)
        let rowBytes = type.rowBytes(columns: cols)!, q8Bytes = TensorType.q8_0.rowBytes(columns: cols)!
        var q8 = [UInt8](repeating: 0, count: 8 * q8Bytes)
        var viaQ8 = [Float](repeating: .nan, count: src.count)
        bytes.withUnsafeBytes { b in
            q8.withUnsafeMutableBytes { o in
                for r in 0..<8 {
                    type.expandRow(b.baseAddress! + r * rowBytes, columns: cols, into: o.baseAddress! + r * q8Bytes)
                }
            }
        }
        q8.withUnsafeBytes { b in
            for r in 0..<8 {
                viaQ8.withUnsafeMutableBufferPointer {
                    TensorType.q8_0.decodeRow(
                        b.baseAddress! + r * q8Bytes, columns: cols, into: $0.baseAddress! + r * cols)
                }
            }
        }
        #expect(viaQ8.map(\.bitPattern) == dec.map(\.bitPattern))
    }
}

@Suite struct WeightedFitTests {
    /// With half the columns 100x as important, the weighted fit has a clearly smaller weighted
    /// error than the plain one, for every block type.
    @Test(arguments: [TensorType.q8_0, .q4_1, .q4_k, .q5_0, .q6_0])
    func weightedFitLowersWeightedError(type: TensorType) throws {
        var g = TestRows(seed: 5)
        let cols = 512
        let src = g.rows(32, cols)
        let weights = (0..<cols).map { $0 % 4 < 2 ? Float(100) : 1 }
        let plain = try roundTrip(type, src, cols: cols).decoded
        let weighted = try weightedRoundTrip(type, src, cols: cols, weights: weights)
        func error(_ d: [Float]) -> Double {
            var e = 0.0
            for i in src.indices { let r = Double(src[i] - d[i]); e += Double(weights[i % cols]) * r * r }
            return e
        }
        let ratio = error(weighted) / error(plain)
        let bound =
            type == .q5_0 || type == .q6_0
            ? CalibratedThreshold.weightedGainSymmetric : CalibratedThreshold.weightedGain
        #expect(ratio < bound, "\(type): weighted / plain error \(ratio)")
    }

    /// Equal weights fit no worse than the plain quantizer (the same candidates and more).
    @Test(arguments: [TensorType.q4_1, .q4_k])
    func equalWeightsFitNoWorse(type: TensorType) throws {
        var g = TestRows(seed: 9)
        let cols = 256
        let src = g.rows(32, cols)
        let plain = try roundTrip(type, src, cols: cols).decoded
        let weighted = try weightedRoundTrip(type, src, cols: cols, weights: [Float](repeating: 1, count: cols))
        #expect(stats(src, weighted).rmse <= stats(src, plain).rmse * 1.001)
    }
}

@Suite struct CompensationTests {
    /// Inputs with strongly correlated columns (a few latent factors plus noise) and the second
    /// moments they give.
    static func correlatedInputs(rows m: Int, columns n: Int, seed: UInt64) -> (x: [Float], h: [Float]) {
        var g = TestRows(seed: seed)
        let factors = 4
        let loadings = g.rows(factors, n)
        var x = [Float](repeating: 0, count: m * n)
        for r in 0..<m {
            let z = (0..<factors).map { _ in g.gaussian() }
            for c in 0..<n {
                var v = 0.1 * g.gaussian()
                for k in 0..<factors { v += z[k] * loadings[k * n + c] * 20 }
                x[r * n + c] = v
            }
        }
        var h = [Float](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0..<n {
                var s = 0.0
                for r in 0..<m { s += Double(x[r * n + i]) * Double(x[r * n + j]) }
                h[i * n + j] = Float(s / Double(m))
            }
        }
        return (x, h)
    }

    @Test func inverseCholeskyFactorsTheDampedInverse() throws {
        let n = 48
        let (_, h) = Self.correlatedInputs(rows: 400, columns: n, seed: 3)
        let u = try #require(h.withUnsafeBufferPointer { TensorType.inverseCholesky($0.baseAddress!, n: n) })
        var mean = 0.0
        for i in 0..<n { mean += Double(h[i * n + i]) }
        let damp = 0.01 * mean / Double(n)
        var worst = 0.0
        for i in 0..<n {
            for j in 0..<n {
                // (Uᵀ U (H + λI))[i, j]
                var s = 0.0
                for k in 0..<n {
                    var utu = 0.0
                    for l in 0...min(i, k) { utu += Double(u[l * n + i]) * Double(u[l * n + k]) }
                    s += utu * (Double(h[k * n + j]) + (k == j ? damp : 0))
                }
                worst = max(worst, abs(s - (i == j ? 1 : 0)))
            }
            for j in 0..<i { #expect(u[i * n + j] == 0, "U is upper triangular") }
        }
        #expect(worst < CalibratedThreshold.inverseResidual, "‖UᵀU(H+λI) − I‖max \(worst)")
    }

    /// On correlated inputs, compensation cuts the output error of every block type well below the
    /// weighted fit's, and what it stores decodes as any block does.
    @Test(arguments: [TensorType.q8_0, .q4_1, .q4_k, .q5_0, .q6_0])
    func compensationLowersOutputError(type: TensorType) throws {
        let n = 256, out = 24, m = 600
        let (x, h) = Self.correlatedInputs(rows: m, columns: n, seed: 11)
        var g = TestRows(seed: 12)
        let w = g.rows(out, n)
        let importance = (0..<n).map { h[$0 * n + $0] }
        let u = try #require(h.withUnsafeBufferPointer { TensorType.inverseCholesky($0.baseAddress!, n: n) })
        let rowBytes = type.rowBytes(columns: n)!
        var bytes = [UInt8](repeating: 0, count: out * rowBytes)
        var work = w
        try work.withUnsafeMutableBufferPointer { wp in
            try u.withUnsafeBufferPointer { up in
                try importance.withUnsafeBufferPointer { ip in
                    try bytes.withUnsafeMutableBytes { b in
                        try type.encodeCompensated(
                            wp.baseAddress!, rows: out, columns: n, u: up.baseAddress!, importance: ip.baseAddress!,
                            into: b.baseAddress!)
                    }
                }
            }
        }
        var compensated = [Float](repeating: .nan, count: w.count)
        bytes.withUnsafeBytes { b in
            for r in 0..<out {
                compensated.withUnsafeMutableBufferPointer {
                    type.decodeRow(b.baseAddress! + r * rowBytes, columns: n, into: $0.baseAddress! + r * n)
                }
            }
        }
        let weighted = try weightedRoundTrip(type, w, cols: n, weights: importance)
        func outputError(_ q: [Float]) -> Double {
            var e = 0.0
            for r in 0..<m {
                for o in 0..<out {
                    var d = 0.0
                    for c in 0..<n { d += Double(w[o * n + c] - q[o * n + c]) * Double(x[r * n + c]) }
                    e += d * d
                }
            }
            return e
        }
        let ratio = outputError(compensated) / outputError(weighted)
        if !(ratio < CalibratedThreshold.compensatedGain) {
            Issue.record("\(type.rawValue): compensated / weighted output error \(ratio)")
        }
        #expect(compensated.allSatisfy { $0.isFinite })
    }
}
