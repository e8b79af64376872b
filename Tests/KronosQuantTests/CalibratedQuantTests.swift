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
    /// Largest |M[i, j]| / sqrt(M[i, i] M[j, j]), i ≠ j, of M = V⁻¹ (H + λI) V⁻ᵀ: the compensation
    /// factor V must make the damped moments diagonal (f32 V from an f64 factorization).
    static let factorOffDiagonal = 1e-4
    /// Share of decoded weights on which the sweep and the textbook GPTQ twin (inverse, Cholesky of
    /// the inverse, updates by e / U[i, i]) agree: the same quantization up to rounding order, where
    /// a near-tie that flips one block's scale moves the rest of its row. Measured 1.0 for q8_0, q4_1
    /// and q4_k, 0.96 for q6_0; blocks fitted to the sweep's per-column targets instead of GPTQ's
    /// agreed on 0.48-0.79.
    static let twinAgreement = 0.9
    /// Output error (w − q)ᵀ H (w − q) of the sweep / the twin's, at most (measured 1.00 and 0.999;
    /// the mis-fitted blocks 1.26 for q4_1, 1.40 for q6_0).
    static let twinErrorRatio = 1.05
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

    /// n = 202: several Cholesky panels, a last one of 10 columns, bands with a ragged end.
    @Test(arguments: [48, 202])
    func compensationFactorDiagonalizesTheDampedMoments(n: Int) throws {
        let (_, h) = Self.correlatedInputs(rows: 400, columns: n, seed: 3)
        let v = try #require(h.withUnsafeBufferPointer { TensorType.compensationFactor($0.baseAddress!, n: n) })
        var mean = 0.0
        for i in 0..<n { mean += Double(h[i * n + i]) }
        let damp = 0.01 * mean / Double(n)
        for i in 0..<n {
            #expect(v[i * n + i] == 1, "unit diagonal")
            for j in 0..<i { #expect(v[i * n + j] == 0, "V is upper triangular") }
        }
        // M = V⁻¹ (H + λI) V⁻ᵀ, by back substitution (V unit upper triangular)
        func solve(_ b: [Double]) -> [Double] {  // V y = b
            var y = b
            for i in stride(from: n - 1, through: 0, by: -1) {
                for k in (i + 1)..<n { y[i] -= Double(v[i * n + k]) * y[k] }
            }
            return y
        }
        var left = [[Double]](repeating: [], count: n)  // columns of V⁻¹ (H + λI)
        for j in 0..<n { left[j] = solve((0..<n).map { Double(h[$0 * n + j]) + ($0 == j ? damp : 0) }) }
        var m = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
        for i in 0..<n {  // row i of M: V⁻¹ applied to row i of V⁻¹ (H + λI), which is symmetric in use
            m[i] = solve((0..<n).map { left[$0][i] })
        }
        var worst = 0.0
        for i in 0..<n {
            #expect(m[i][i] > 0)
            for j in 0..<n where j != i { worst = max(worst, abs(m[i][j]) / (m[i][i] * m[j][j]).squareRoot()) }
        }
        #expect(worst < CalibratedThreshold.factorOffDiagonal, "V⁻¹(H+λI)V⁻ᵀ off-diagonal \(worst)")
    }

    /// GPTQ as published: U the upper Cholesky factor of (H + λI)⁻¹ (explicit inverse, f64), each
    /// column's error e = (t − q) / U[i, i] moving every later column by −e U[i, j], one row at a time,
    /// blocks fitted and recoded as the sweep reaches and leaves them. The production sweep (the
    /// factor V, original errors, 16-row tiles, lazy batch updates) must quantize the same.
    static func textbookCompensation(
        _ type: TensorType, _ w: [Float], rows: Int, n: Int, h: [Float], importance: [Float]
    )
        throws -> [UInt8]
    {
        var mean = 0.0
        for i in 0..<n { mean += Double(h[i * n + i]) }
        mean /= Double(n)
        var a = (0..<(n * n)).map { Double(h[$0]) }
        for i in 0..<n {
            if a[i * n + i] <= 0 { a[i * n + i] = mean }
            a[i * n + i] += 0.01 * mean
        }
        // inverse by Gauss-Jordan
        var inv = (0..<(n * n)).map { $0 / n == $0 % n ? 1.0 : 0.0 }
        for c in 0..<n {
            let p = a[c * n + c]
            for j in 0..<n { a[c * n + j] /= p; inv[c * n + j] /= p }
            for r in 0..<n where r != c {
                let f = a[r * n + c]
                if f == 0 { continue }
                for j in 0..<n { a[r * n + j] -= f * a[c * n + j]; inv[r * n + j] -= f * inv[c * n + j] }
            }
        }
        // lower Cholesky L of the inverse; U = Lᵀ
        var l = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0...i {
                var s = inv[i * n + j]
                for k in 0..<j { s -= l[i * n + k] * l[j * n + k] }
                l[i * n + j] = i == j ? s.squareRoot() : s / l[j * n + j]
            }
        }
        let block = type.traits.blockSize, rowBytes = type.rowBytes(columns: n)!
        var out = [UInt8](repeating: 0, count: rows * rowBytes)
        try out.withUnsafeMutableBytes { o in
            try importance.withUnsafeBufferPointer { imp in
                for r in 0..<rows {
                    var t = Array(w[(r * n)..<((r + 1) * n)])
                    try t.withUnsafeMutableBufferPointer { tp in
                        let row = o.baseAddress! + r * rowBytes
                        for i in 0..<n {
                            let g = i - i % block, dst = row + g / block * type.traits.bytesPerBlock
                            if i == g {
                                try type.encodeRow(
                                    tp.baseAddress! + g, columns: block, into: dst, weights: imp.baseAddress! + g)
                            }
                            let q = type.roundTrip(tp[i], element: i - g, block: dst)
                            let e = (Double(tp[i]) - Double(q)) / l[i * n + i]
                            for j in (i + 1)..<n { tp[j] -= Float(e * l[j * n + i]) }
                            if (i + 1) % block == 0 { type.recode(tp.baseAddress! + g, block: dst) }
                        }
                    }
                }
            }
        }
        return out
    }

    /// W [rows, n] through encodeCompensated with factor v -> the stored bytes.
    static func compensated(_ type: TensorType, _ w: [Float], rows: Int, n: Int, factor v: [Float], importance: [Float])
        throws -> [UInt8]
    {
        var bytes = [UInt8](repeating: 0, count: rows * type.rowBytes(columns: n)!)
        var work = w
        try work.withUnsafeMutableBufferPointer { wp in
            try bytes.withUnsafeMutableBytes { b in
                try type.encodeCompensated(
                    wp.baseAddress!, rows: rows, columns: n, factor: v, importance: importance, into: b.baseAddress!)
            }
        }
        return bytes
    }

    /// Stored rows [rows] of `type` with n columns -> their values.
    static func decoded(_ type: TensorType, _ bytes: [UInt8], rows: Int, n: Int) -> [Float] {
        let rowBytes = type.rowBytes(columns: n)!
        var d = [Float](repeating: .nan, count: rows * n)
        bytes.withUnsafeBytes { p in
            d.withUnsafeMutableBufferPointer { dp in
                for r in 0..<rows {
                    type.decodeRow(p.baseAddress! + r * rowBytes, columns: n, into: dp.baseAddress! + r * n)
                }
            }
        }
        return d
    }

    @Test(arguments: [TensorType.q8_0, .q4_1, .q4_k, .q6_0])
    func sweepQuantizesAsTheTextbookForm(type: TensorType) throws {
        let n = 512, out = 12  // two q4_k blocks: the second is fitted after compensation
        let (_, h) = Self.correlatedInputs(rows: 500, columns: n, seed: 31)
        var g = TestRows(seed: 32)
        let w = g.rows(out, n)
        let importance = (0..<n).map { h[$0 * n + $0] }
        let v = try #require(h.withUnsafeBufferPointer { TensorType.compensationFactor($0.baseAddress!, n: n) })
        let bytes = try Self.compensated(type, w, rows: out, n: n, factor: v, importance: importance)
        let twin = try Self.textbookCompensation(type, w, rows: out, n: n, h: h, importance: importance)
        let a = Self.decoded(type, bytes, rows: out, n: n), b = Self.decoded(type, twin, rows: out, n: n)
        let same = Double(zip(a, b).filter { $0 == $1 }.count) / Double(a.count)
        func outputError(_ q: [Float]) -> Double {
            var e = 0.0
            for r in 0..<out {
                let d = (0..<n).map { Double(w[r * n + $0] - q[r * n + $0]) }
                for i in 0..<n { for j in 0..<n { e += d[i] * Double(h[i * n + j]) * d[j] } }
            }
            return e
        }
        let ratio = outputError(a) / outputError(b)
        #expect(same >= CalibratedThreshold.twinAgreement, "\(type.rawValue): \(same) of the weights agree")
        #expect(ratio <= CalibratedThreshold.twinErrorRatio, "\(type.rawValue): output error / the twin's \(ratio)")
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
        let u = try #require(h.withUnsafeBufferPointer { TensorType.compensationFactor($0.baseAddress!, n: n) })
        let compensated = Self.decoded(
            type, try Self.compensated(type, w, rows: out, n: n, factor: u, importance: importance), rows: out, n: n)
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
