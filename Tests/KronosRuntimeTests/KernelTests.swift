// The fast kernels against their scalar reference twins (KronosQuant's decodeRow / dotRow, a
// double-precision attention) on odd shapes: rows not a multiple of the tile, one row, one column.
import Foundation
import KronosQuant
import KronosRuntime
import Testing

/// Unit roundoff of f32.
let unitRoundoff = Double(Float.ulpOfOne) / 2

/// Two f32 sums of the same n products in different orders differ by at most about 2·n·u·Σ|w x|
/// (the classical worst-case bound of recursive summation, once per order); dequantized weights that
/// round differently from the reference's factored dot add n·u·Σ|w x| more.
func summationBound(columns n: Int, absoluteSum: Double) -> Double { 3 * Double(n) * unitRoundoff * absoluteSum + 1e-30 }

struct Lcg {
    var state: UInt64
    mutating func next() -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: state >> 11) % 2_000_001 - 1_000_000) / 1e6
    }
    mutating func array(_ n: Int) -> [Float] { (0..<n).map { _ in next() } }
}

/// The bytes of W [out, n] stored as `type`, from random floats.
func weights(_ type: TensorType, out: Int, columns n: Int, seed: UInt64) throws -> [UInt8] {
    var rng = Lcg(state: seed)
    let rowBytes = type.rowBytes(columns: n)!
    var storage = [UInt8](repeating: 0, count: out * rowBytes)
    try storage.withUnsafeMutableBytes { raw in
        for j in 0..<out {
            let row = rng.array(n)
            try row.withUnsafeBufferPointer { try type.encodeRow($0.baseAddress!, columns: n, into: raw.baseAddress! + j * rowBytes) }
        }
    }
    return storage
}

/// Column counts each type can store: odd ones for f32 / f16 (tails), whole blocks for the others.
let columnsPerType: [(TensorType, [Int])] = [
    (.f32, [1, 5, 37, 64]), (.f16, [3, 9, 40]), (.q8_0, [32, 96]), (.q4_1, [32, 96]), (.q4_k, [256, 512]),
]

/// f32 attention against the double reference, relative to Σ_p w_p |v_p| (the scores' dot rounding
/// of ~hd·u·|score| passes through exp as a relative error of each weight: ~1e-6 for these inputs).
let attentionRelativeTolerance = 1e-5

@Suite struct KernelTests {
    @Test(arguments: columnsPerType)
    func inRegisterDecodeIsTheReferenceDecodeBitwise(type: TensorType, columnCounts: [Int]) throws {
        for n in columnCounts {
            let storage = try weights(type, out: 3, columns: n, seed: UInt64(n))
            try storage.withUnsafeBytes { raw in
                let w = WeightMatrix(type: type, rows: 3, columns: n, data: raw.baseAddress!)
                for r in 0..<3 {
                    var reference = [Float](repeating: 0, count: n)
                    reference.withUnsafeMutableBufferPointer { w.decodeRow(r, into: $0.baseAddress!) }
                    let fast = Kernels.decodeRow(w, r)
                    #expect(fast.map(\.bitPattern) == reference.map(\.bitPattern), "\(type.rawValue) n=\(n) row \(r)")
                }
            }
        }
    }

    @Test(arguments: columnsPerType)
    func matmulMatchesScalarDotOnOddShapes(type: TensorType, columnCounts: [Int]) throws {
        for n in columnCounts {
            for out in [1, 3, 7, 9, 13] {
                let storage = try weights(type, out: out, columns: n, seed: UInt64(out * 1000 + n))
                var rng = Lcg(state: 99)
                let bias = rng.array(out)
                try storage.withUnsafeBytes { raw in
                    let w = WeightMatrix(type: type, rows: out, columns: n, data: raw.baseAddress!)
                    for rows in [1, 2, 3, 4, 5, 7] {
                        let x = rng.array(rows * n)
                        let y = Kernels.matmul(w, bias: bias, x, rows: rows)
                        var decoded = [Float](repeating: 0, count: n)
                        for j in 0..<out {
                            decoded.withUnsafeMutableBufferPointer { w.decodeRow(j, into: $0.baseAddress!) }
                            for t in 0..<rows {
                                let reference = x.withUnsafeBufferPointer { xp in
                                    type.dotRow(w.row(j), xp.baseAddress! + t * n, columns: n)
                                } + bias[j]
                                var absoluteSum = Double(abs(bias[j]))
                                for k in 0..<n { absoluteSum += Double(abs(decoded[k] * x[t * n + k])) }
                                let error = Double(abs(y[t * out + j] - reference))
                                try #require(error <= summationBound(columns: n + 1, absoluteSum: absoluteSum),
                                             "\(type.rawValue) [\(out),\(n)] rows \(rows): y[\(t),\(j)] = \(y[t * out + j]), scalar \(reference)")
                            }
                        }
                    }
                }
            }
        }
    }

    /// The decode path (matvec, dequantized in registers) and the batched path (tiles over decoded
    /// rows) give every (row, column) pair the same bits: the KV cache relies on it.
    @Test(arguments: columnsPerType)
    func matvecAndBatchedPathsAgreeBitwise(type: TensorType, columnCounts: [Int]) throws {
        for n in columnCounts {
            let out = 13
            let storage = try weights(type, out: out, columns: n, seed: 5)
            var rng = Lcg(state: 7)
            let x = rng.array(9 * n)
            try storage.withUnsafeBytes { raw in
                let w = WeightMatrix(type: type, rows: out, columns: n, data: raw.baseAddress!)
                let batched = Kernels.matmul(w, x, rows: 9)
                for t in 0..<9 {
                    let single = Kernels.matmul(w, Array(x[(t * n)..<((t + 1) * n)]), rows: 1)
                    try #require(single.map(\.bitPattern) == batched[(t * out)..<((t + 1) * out)].map(\.bitPattern),
                                 "\(type.rawValue) n=\(n) row \(t)")
                }
            }
        }
    }

    /// Blocked causal attention (prefill) equals one query at a time (decode) bitwise, and a
    /// double-precision reference within the summation bound.
    @Test(arguments: [(1, 8, 1), (5, 8, 2), (13, 52, 2), (70, 64, 3)])
    func causalAttentionBlockedEqualsSingleAndReference(rows: Int, headDimension hd: Int, heads: Int) throws {
        var rng = Lcg(state: UInt64(rows * 31 + hd))
        let D = heads * hd
        let q = rng.array(rows * D), k = rng.array(rows * D), v = rng.array(rows * D)
        let blocked = Kernels.causalAttention(q: q, k: k, v: v, rows: rows, heads: heads, headDimension: hd, blocked: true)
        let single = Kernels.causalAttention(q: q, k: k, v: v, rows: rows, heads: heads, headDimension: hd, blocked: false)
        #expect(blocked.map(\.bitPattern) == single.map(\.bitPattern))
        let scale = 1 / Double(hd).squareRoot()
        for h in 0..<heads {
            for t in 0..<rows {
                var s = (0...t).map { p in (0..<hd).reduce(0.0) { $0 + Double(q[t * D + h * hd + $1]) * Double(k[p * D + h * hd + $1]) } * scale }
                let m = s.max()!
                s = s.map { Foundation.exp($0 - m) }
                let total = s.reduce(0, +)
                for e in 0..<hd {
                    var value = 0.0, magnitude = 0.0
                    for p in 0...t { value += s[p] / total * Double(v[p * D + h * hd + e]); magnitude += s[p] / total * Double(abs(v[p * D + h * hd + e])) }
                    let bound = attentionRelativeTolerance * magnitude
                    try #require(abs(Double(blocked[t * D + h * hd + e]) - value) <= bound,
                                 "rows \(rows) hd \(hd) head \(h) row \(t) col \(e): \(blocked[t * D + h * hd + e]) vs \(value)")
                }
            }
        }
    }
}
