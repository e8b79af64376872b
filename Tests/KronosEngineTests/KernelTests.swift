// The fast kernels against their scalar reference twins (KronosQuant's decodeRow / dotRow, a
// double-precision attention) on odd shapes: rows not a multiple of the tile, one row, one column.
import Foundation
import KronosQuant
#if KRONOS_ENGINE_BASELINE
    import KronosEngineBaseline
#else
    import KronosWideEngine
#endif
import Testing

/// Unit roundoff of f32.
let unitRoundoff = Double(Float.ulpOfOne) / 2

/// Two f32 sums of the same n products in different orders differ by at most about 2·n·u·Σ|w x|
/// (the classical worst-case bound of recursive summation, once per order); dequantized weights that
/// round differently from the reference's factored dot add n·u·Σ|w x| more.
func summationBound(columns n: Int, absoluteSum: Double) -> Double {
    3 * Double(n) * unitRoundoff * absoluteSum + 1e-30
}

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
            try row.withUnsafeBufferPointer {
                try type.encodeRow($0.baseAddress!, columns: n, into: raw.baseAddress! + j * rowBytes)
            }
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
                                let reference =
                                    x.withUnsafeBufferPointer { xp in
                                        type.dotRow(w.row(j), xp.baseAddress! + t * n, columns: n)
                                    } + bias[j]
                                var absoluteSum = Double(abs(bias[j]))
                                for k in 0..<n { absoluteSum += Double(abs(decoded[k] * x[t * n + k])) }
                                let error = Double(abs(y[t * out + j] - reference))
                                try #require(
                                    error <= summationBound(columns: n + 1, absoluteSum: absoluteSum),
                                    Comment(
                                        rawValue: "\(type.rawValue) [\(out),\(n)] rows \(rows): "
                                            + "y[\(t),\(j)] = \(y[t * out + j]), scalar \(reference)")
                                )
                            }
                        }
                    }
                }
            }
        }
    }

    /// The decode paths (matvec of 1 row and of 2 ... 6 rows, dequantized in registers) and the batched
    /// path (tiles over decoded rows) give every (row, column) pair the same bits: the KV cache relies on it.
    @Test(arguments: columnsPerType)
    func matvecAndBatchedPathsAgreeBitwise(type: TensorType, columnCounts: [Int]) throws {
        for n in columnCounts {
            let out = 13
            let storage = try weights(type, out: out, columns: n, seed: 5)
            var rng = Lcg(state: 7)
            let x = rng.array(9 * n)
            try storage.withUnsafeBytes { raw in
                let w = WeightMatrix(type: type, rows: out, columns: n, data: raw.baseAddress!)
                let singles = (0..<9).map { t in Kernels.matmul(w, Array(x[(t * n)..<((t + 1) * n)]), rows: 1) }
                // 9, 7, 8 rows: batched tiles; 2 ... 6: the multi-row matvec for block types (one
                // specialization each), matvec8 per row (2, 3) or tiles (4 ... 6) for f32 / f16.
                for rows in [9, 2, 3, 4, 5, 6, 7, 8] {
                    let together = Kernels.matmul(w, Array(x[0..<(rows * n)]), rows: rows)
                    for t in 0..<rows {
                        try #require(
                            singles[t].map(\.bitPattern) == together[(t * out)..<((t + 1) * out)].map(\.bitPattern),
                            "\(type.rawValue) n=\(n) rows \(rows): row \(t)")
                    }
                }
            }
        }
    }

    /// f32 weights multiply many input rows in L2-sized blocks of rows (9 rows at 4099 columns, 3 at
    /// 16 387): each row still equals its single-row matvec bitwise, across block edges, in the 3- and
    /// 2-row tiles and the single rows at a block's end, and in the last, partial weight group.
    @Test func f32RowBlocksAgreeWithSingleRowsBitwise() throws {
        for (n, rows) in [(4099, 40), (16387, 8)] {
            let out = 9
            let storage = try weights(.f32, out: out, columns: n, seed: 11)
            var rng = Lcg(state: 3)
            let x = rng.array(rows * n)
            try storage.withUnsafeBytes { raw in
                let w = WeightMatrix(type: .f32, rows: out, columns: n, data: raw.baseAddress!)
                let together = Kernels.matmul(w, x, rows: rows)
                for t in 0..<rows {
                    let single = Kernels.matmul(w, Array(x[(t * n)..<((t + 1) * n)]), rows: 1)
                    try #require(
                        single.map(\.bitPattern) == together[(t * out)..<((t + 1) * out)].map(\.bitPattern),
                        "n=\(n) rows \(rows): row \(t)")
                }
            }
        }
    }

    /// f32 matmuls with blocked sums (calibration's passes: the packed GEMM where it runs) equal a
    /// double-precision reference within the summation bound k·ε·Σ|x w| (one product left out or
    /// counted twice is 190-560x that here), bias included; and the same bits on 1 and 2 threads, and
    /// with the weights packed once beforehand.
    /// Shapes cross the GEMM's edges: rows past a 6-row tile, columns past a 16-column panel and past
    /// a 2048-column block, depths past the 256-deep block.
    @Test(arguments: [(48, 1, 1), (50, 17, 255), (150, 100, 257), (301, 2100, 600)])
    func blockedSumsMatchTheReference(shape: (rows: Int, out: Int, depth: Int)) throws {
        let (rows, out, n) = shape
        let storage = try weights(.f32, out: out, columns: n, seed: UInt64(out * 7 + n))
        var rng = Lcg(state: UInt64(rows))
        let x = rng.array(rows * n), bias = rng.array(out)
        try storage.withUnsafeBytes { raw in
            let w = WeightMatrix(type: .f32, rows: out, columns: n, data: raw.baseAddress!)
            let wf = raw.bindMemory(to: Float.self)
            let two = Kernels.matmul(w, bias: bias, x, rows: rows, blockedSums: true, threads: 2)
            let one = Kernels.matmul(w, bias: bias, x, rows: rows, blockedSums: true, threads: 1)
            // (the first differing element, not the arrays: a failed == of 600k elements takes minutes to print)
            func firstDifference(_ a: [Float], _ b: [Float]) -> Int? {
                a.indices.first { a[$0].bitPattern != b[$0].bitPattern }
            }
            #expect(firstDifference(two, one) == nil, "\(shape): 1 and 2 threads differ")
            // the weights packed beforehand (calibration's model): the same sums, read from the panels
            let packed = Kernels.matmul(
                w, bias: bias, x, rows: rows, blockedSums: true, packedWeights: true, threads: 2)
            #expect(firstDifference(packed, two) == nil, "\(shape): packed weights differ")
            var worst = 0.0
            for t in 0..<rows {
                for j in 0..<out {
                    var e = Double(bias[j]), magnitude = abs(Double(bias[j]))
                    for i in 0..<n {
                        let p = Double(x[t * n + i]) * Double(wf[j * n + i])
                        e += p; magnitude += abs(p)
                    }
                    let bound = Double(n + 1) * Double(Float.ulpOfOne) * magnitude
                    worst = max(worst, abs(Double(two[t * out + j]) - e) / bound)
                }
            }
            try #require(worst <= 1, "\(shape): off by \(worst) of the bound")
        }
    }

    /// The Gram matrix calibration takes (gramMatrix: the packed GEMM's upper triangle where it
    /// runs) equals a double-precision XᵀX within k·ε·Σ|x x| on and above the diagonal, on 1 and 2
    /// threads alike, and with the rows in two calls, the second accumulating; 2100 columns cross a
    /// 2048-column block and the triangle's split between cores.
    @Test(arguments: [(7, 33), (300, 70), (512, 2100)])
    func gramIsXTXWithinTheBound(shape: (rows: Int, columns: Int)) throws {
        let (rows, n) = shape
        var rng = Lcg(state: UInt64(rows * 3 + n))
        let x = rng.array(rows * n)
        var grams = [[Float]]()
        for threads in [2, 1] {
            var g = [Float](repeating: .nan, count: n * n)
            let workspace = Workspace(columns: n, positions: 0, threads: Runtime.startThreads(threads))
            x.withUnsafeBufferPointer { xp in
                g.withUnsafeMutableBufferPointer {
                    gramMatrix(xp.baseAddress!, rows: rows, columns: n, into: $0.baseAddress!, workspace: workspace)
                }
            }
            grams.append(g)
        }
        // The rows in two calls, the second accumulating (calibration's batches across passes): the
        // packed GEMM continues each sum in row order, so the same bits as one call; elsewhere the
        // two Grams' sum, within the same bound (checked below).
        var split = [Float](repeating: .nan, count: n * n)
        let workspace = Workspace(columns: n, positions: 0, threads: Runtime.startThreads(2))
        let first = rows / 3
        x.withUnsafeBufferPointer { xp in
            split.withUnsafeMutableBufferPointer {
                gramMatrix(xp.baseAddress!, rows: first, columns: n, into: $0.baseAddress!, workspace: workspace)
                gramMatrix(
                    xp.baseAddress! + first * n, rows: rows - first, columns: n, into: $0.baseAddress!,
                    accumulate: true,
                    workspace: workspace)
            }
        }
        if Kernels.packedGemm {
            for i in 0..<n {
                for j in i..<n where split[i * n + j].bitPattern != grams[0][i * n + j].bitPattern {
                    Issue.record(
                        "[\(i), \(j)]: accumulated in two calls \(split[i * n + j]), in one \(grams[0][i * n + j])")
                    return
                }
            }
        }
        grams.append(split)
        var worst = 0.0
        for i in 0..<n {
            for j in i..<n {
                #expect(grams[0][i * n + j].bitPattern == grams[1][i * n + j].bitPattern, "[\(i), \(j)] by threads")
                var e = 0.0, magnitude = 0.0
                for r in 0..<rows {
                    let p = Double(x[r * n + i]) * Double(x[r * n + j])
                    e += p; magnitude += abs(p)
                }
                for g in [grams[0], grams[2]] {
                    let d = abs(Double(g[i * n + j]) - e)
                    worst = d.isNaN ? .infinity : max(worst, d / (Double(rows) * Double(Float.ulpOfOne) * magnitude))
                }
            }
        }
        #expect(worst <= 1, "\(shape): off by \(worst) of the bound")
    }

    /// Blocked causal attention (prefill) equals one query at a time (decode) bitwise, and a
    /// double-precision reference within the summation bound, with keys / values cached in f32 and
    /// in f16 (the reference then takes the f16-rounded keys / values: the cache's only rounding).
    @Test(arguments: [(1, 8, 1), (5, 8, 2), (13, 52, 2), (70, 64, 3)], KVCachePrecision.allCases)
    func causalAttentionBlockedEqualsSingleAndReference(
        shape: (rows: Int, headDimension: Int, heads: Int),
        precision: KVCachePrecision
    ) throws {
        let (rows, hd, heads) = shape
        var rng = Lcg(state: UInt64(rows * 31 + hd))
        let D = heads * hd
        let q = rng.array(rows * D), k = rng.array(rows * D), v = rng.array(rows * D)
        let blocked = Kernels.causalAttention(
            q: q, k: k, v: v, rows: rows, heads: heads, headDimension: hd, blocked: true, precision: precision)
        let single = Kernels.causalAttention(
            q: q, k: k, v: v, rows: rows, heads: heads, headDimension: hd, blocked: false, precision: precision)
        #expect(blocked.map(\.bitPattern) == single.map(\.bitPattern))
        let cached = { (x: [Float]) -> [Double] in x.map { precision == .f16 ? Double(Float16($0)) : Double($0) } }
        let (kc, vc) = (cached(k), cached(v))
        let scale = 1 / Double(hd).squareRoot()
        for h in 0..<heads {
            for t in 0..<rows {
                var s = (0...t).map { p in
                    (0..<hd).reduce(0.0) { $0 + Double(q[t * D + h * hd + $1]) * kc[p * D + h * hd + $1] } * scale
                }
                let m = s.max()!
                s = s.map { Foundation.exp($0 - m) }
                let total = s.reduce(0, +)
                for e in 0..<hd {
                    var value = 0.0, magnitude = 0.0
                    for p in 0...t {
                        value += s[p] / total * vc[p * D + h * hd + e];
                        magnitude += s[p] / total * abs(vc[p * D + h * hd + e])
                    }
                    let bound = attentionRelativeTolerance * magnitude
                    try #require(
                        abs(Double(blocked[t * D + h * hd + e]) - value) <= bound,
                        "rows \(rows) hd \(hd) head \(h) row \(t) col \(e): \(blocked[t * D + h * hd + e]) vs \(value)")
                }
            }
        }
    }

    // MARK: int8 activations (q8_0 weights)

    /// exp8 against Double exp over the clamped range [-87, 88] (a grid through it plus the ends):
    /// relative error within 4 ulp of f32 (measured max 6.8e-8, 0.6 ulp).
    @Test func vectorExpIsWithinFourUlp() {
        var xs: [Float] = [-87, -80.5, -20, -1, -0.5, -1e-3, 0, 1e-3, 0.34657359, 0.5, 1, 10, 50, 88]
        var x: Float = -87
        while x <= 88 { xs.append(x); x += 0.0137 }
        let e = Kernels.exp(xs)
        var worst = 0.0
        for (xi, ei) in zip(xs, e) {
            let want = Foundation.exp(Double(xi))
            worst = max(worst, abs(Double(ei) - want) / want)
        }
        #expect(worst <= 4 * Double(Float.ulpOfOne), "max relative error \(worst)")
    }

    /// softmax and the SiLU gate against their double-precision definitions (odd lengths: the
    /// partial last vector). softmax: e^(v - max) of the f32 differences (the kernel's input; the
    /// subtraction's own rounding is not the kernel's), within (n + 8) ulp relative: 4 for exp8,
    /// n for the f32 sum of n terms, the rest for the reciprocal and the product. SiLU gate: 8 ulp.
    @Test(arguments: [1, 3, 8, 13, 70])
    func softmaxAndSiluGateAreTheirDefinitions(n: Int) {
        var rng = Lcg(state: UInt64(n))
        let v = (0..<n).map { _ in 20 * rng.next() }, u = (0..<n).map { _ in rng.next() }
        let m = v.max()!
        let total = v.reduce(0.0) { $0 + Foundation.exp(Double($1 - m)) }
        for (got, x) in zip(Kernels.softmax(v), v) {
            let want = Foundation.exp(Double(x - m)) / total
            #expect(abs(Double(got) - want) <= Double(n + 8) * Double(Float.ulpOfOne) * want + 1e-30)
        }
        for (i, got) in Kernels.siluGate(v, u).enumerated() {
            let a = Double(v[i]), want = a / (1 + Foundation.exp(-a)) * Double(u[i])
            #expect(abs(Double(got) - want) <= 8 * Double(Float.ulpOfOne) * abs(want) + 1e-30)
        }
    }

    /// The activation quantizer against its scalar definition: d = max|x| / 127 per 32 values,
    /// q = x·(1/d) rounded to nearest, ties to even; an all-zero block gives d = 0, q = 0; the block
    /// sums are the codes' sums (the VNNI kernels' correction term).
    @Test func activationQuantizationIsItsScalarDefinition() {
        var rng = Lcg(state: 77)
        var x = rng.array(32 * 5)
        for i in 32..<64 { x[i] = 0 }  // a zero block
        for i in 64..<96 { x[i] = Float(i - 80) * 0.5 }  // exact halves: ties
        x[100] = -3e4; x[130] = 1e-30  // a large and a tiny block maximum
        let (q, d, sums) = Kernels.quantizeActivations(x)
        for b in 0..<5 {
            #expect(sums[b] == q[(32 * b)..<(32 * b + 32)].reduce(Int32(0)) { $0 + Int32($1) }, "block \(b) sum")
            let block = x[(32 * b)..<(32 * b + 32)]
            let amax = block.map { abs($0) }.max()!
            let scale = amax / 127
            #expect(d[b] == scale, "block \(b) scale")
            let inverse: Float = scale > 0 ? 1 / scale : 0
            for (i, v) in block.enumerated() {
                let expected = Int8((v * inverse).rounded(.toNearestOrEven))
                #expect(q[32 * b + i] == expected, "block \(b) value \(i): \(v)")
                #expect(abs(q[32 * b + i]) <= 127)
            }
        }
    }

    /// The integer path (q8_0, q4_1, q4_k weights) against (1) a double-precision reference of the
    /// same quantized sums, within the f32 accumulation bound, (2) the float dot on the dequantized
    /// weights, within the activation-quantization bound Σ_blocks (d_x / 2)·Σ|w| (plus accumulation),
    /// and (3) itself: one row at a time equals a batch of rows, bit for bit.
    @Test(arguments: [(TensorType.q8_0, [32, 96, 512]), (.q4_1, [32, 96, 512]), (.q4_k, [256, 512])])
    func integerMatmulMatchesItsReferenceAndTheFloatDot(type: TensorType, columnCounts: [Int]) throws {
        for n in columnCounts {
            for (out, rows) in [(1, 1), (7, 3), (9, 5), (13, 2), (16, 7)] {
                let storage = try weights(type, out: out, columns: n, seed: UInt64(n * 31 + out))
                var rng = Lcg(state: UInt64(n + rows))
                let x = rng.array(rows * n)
                let bias = rng.array(out)
                try storage.withUnsafeBytes { raw in
                    let w = WeightMatrix(type: type, rows: out, columns: n, data: raw.baseAddress!)
                    let fast = Kernels.matmul(w, bias: bias, x, rows: rows, integerActivations: true)
                    for t in 0..<rows {
                        let xt = Array(x[(t * n)..<((t + 1) * n)])
                        let (q, d, _) = Kernels.quantizeActivations(xt)
                        let single = Kernels.matmul(w, bias: bias, xt, rows: 1, integerActivations: true)
                        #expect(
                            single.map(\.bitPattern) == fast[(t * out)..<((t + 1) * out)].map(\.bitPattern),
                            "\(type) n=\(n) out=\(out) row \(t): one row differs from the batch")
                        for j in 0..<out {
                            var wj = [Float](repeating: 0, count: n)
                            wj.withUnsafeMutableBufferPointer { w.decodeRow(j, into: $0.baseAddress!) }
                            var exact = 0.0, terms = 0.0, float = 0.0, floatAbs = 0.0, quantBound = 0.0
                            for b in 0..<(n / 32) {
                                let (dw, mw, codes) = blockCodes(type, w.row(j), block: b)
                                var isum = 0, qsum = 0, wAbs = 0.0
                                for i in 0..<32 {
                                    isum += codes[i] * Int(q[b * 32 + i]); qsum += Int(q[b * 32 + i])
                                    wAbs += abs(Double(wj[b * 32 + i]))
                                    float += Double(wj[b * 32 + i]) * Double(xt[b * 32 + i])
                                    floatAbs += abs(Double(wj[b * 32 + i]) * Double(xt[b * 32 + i]))
                                }
                                for term in [dw * Double(d[b]) * Double(isum), mw * Double(d[b]) * Double(qsum)] {
                                    exact += term; terms += abs(term)
                                }
                                quantBound += Double(d[b]) / 2 * wAbs
                            }
                            let got = Double(fast[t * out + j]) - Double(bias[j])
                            // Two roundings per accumulated term (the scale product, the fma): one term per
                            // block for q8_0, two (codes, minimum) for the 4-bit formats.
                            let termsPerBlock = type == .q8_0 ? 1 : 2
                            let accumulation =
                                summationBound(columns: 2 * termsPerBlock * n / 32 + 8, absoluteSum: terms)
                                + 4 * unitRoundoff * abs(Double(bias[j]))
                            #expect(
                                abs(got - exact) <= accumulation,
                                "\(type) n=\(n) out=\(out) row \(t) col \(j): \(got) vs reference \(exact)")
                            #expect(
                                abs(got - float) <= quantBound + accumulation
                                    + summationBound(columns: n, absoluteSum: floatAbs),
                                "\(type) n=\(n) row \(t) col \(j): \(got) vs float dot \(float), bound \(quantBound)")
                        }
                    }
                }
            }
        }
    }

    /// Block b of a stored row read from its layout: scale d_w, minimum m_w (0 for q8_0) and the 32
    /// integer codes, so that value i = d_w · code_i + m_w (in exact arithmetic).
    private func blockCodes(_ type: TensorType, _ row: UnsafeRawPointer, block b: Int) -> (Double, Double, [Int]) {
        func f16(_ p: UnsafeRawPointer) -> Double { Double(floatFromF16(p.loadUnaligned(as: UInt16.self))) }
        func nibbles(_ p: UnsafeRawPointer) -> [Int] {
            (0..<32).map { i in Int(p.load(fromByteOffset: i % 16, as: UInt8.self) >> (i < 16 ? 0 : 4) & 15) }
        }
        switch type {
        case .q8_0:
            let p = row + 34 * b
            return (f16(p), 0, (0..<32).map { Int(p.load(fromByteOffset: 2 + $0, as: Int8.self)) })
        case .q4_1:
            let p = row + 20 * b
            return (f16(p), f16(p + 2), nibbles(p + 4))
        default:
            let p = row + 144 * (b / 8), j = b % 8
            let (d, dmin, fields) = BlockQ4_K.fields(p)
            return (Double(d * Float(fields[j])), -Double(dmin * Float(fields[8 + j])), nibbles(p + 16 + 16 * j))
        }
    }

    /// Every kernel of the integer path computes the scalar reference's numbers bit for bit, for
    /// q8_0, q4_1 and q4_k weights: the portable kernel, and (on VNNI processors) the batched VNNI
    /// kernel (8+ rows: 16-row groups, 512-bit tiles of 8 input rows, then 4, then 1) and its matvec
    /// (fewer rows: tiles of 1 to 6 inputs, 7 as 4 + 3), on odd shapes, q8_0 codes of -128 included (a
    /// stored q8_0 row may hold them even if the quantizer never writes them).
    @Test func portableIntegerKernelIsTheReferenceBitwise() throws { try checkIntegerKernels(.portable) }

    @Test(.enabled(if: Kernels.IntegerKernels.native == .vnni, "this processor has no AVX-512 VNNI"))
    func vnniIntegerKernelsAreTheReferenceBitwise() throws { try checkIntegerKernels(.vnni) }

    /// The x86-64-v3 integer kernel of processors without VNNI (vpmaddubsw + vpmaddwd, every row
    /// count through repacked groups): the same bits, -128 codes included (|c| = 128 with the input's
    /// sign flipped: no pair saturates).
    @Test(.enabled(if: Kernels.IntegerKernels.avx2.runs, "this processor has no AVX2"))
    func avx2IntegerKernelsAreTheReferenceBitwise() throws { try checkIntegerKernels(.avx2) }

    private func checkIntegerKernels(_ kernels: Kernels.IntegerKernels) throws {
        for (type, n) in [
            (TensorType.q8_0, 32), (.q8_0, 96), (.q8_0, 512), (.q4_1, 32), (.q4_1, 96), (.q4_1, 512), (.q4_k, 256),
            (.q4_k, 768),
        ] {
            for (out, rows) in [
                (1, 1), (7, 3), (9, 5), (13, 2), (16, 7), (17, 8), (33, 13), (40, 9), (8, 4), (24, 16), (11, 6),
                (20, 15), (48, 12), (31, 29),
            ] {
                var storage = try weights(type, out: out, columns: n, seed: UInt64(n * 7 + out * 3 + rows))
                if type == .q8_0 {
                    // codes -128
                    for j in stride(from: 0, to: out, by: 3) { storage[j * (n / 32) * 34 + 2 + j % 32] = 0x80 }
                }
                var rng = Lcg(state: UInt64(n + 5 * rows))
                var x = rng.array(rows * n)
                for i in stride(from: 0, to: x.count, by: 11) { x[i] *= 40 }  // uneven block scales
                let bias = rng.array(out)
                try storage.withUnsafeBytes { raw in
                    let w = WeightMatrix(type: type, rows: out, columns: n, data: raw.baseAddress!)
                    // nil when a and b are equal bit for bit, else the count and the first difference.
                    func difference(_ a: [Float], _ b: [Float]) -> String? {
                        let differ = a.indices.filter { a[$0].bitPattern != b[$0].bitPattern }
                        return differ.first.map {
                            "\(differ.count) outputs differ, first [\($0 / out), \($0 % out)]: \(a[$0]) vs \(b[$0])"
                        }
                    }
                    for b in [bias, nil] {
                        let reference = Kernels.matmul(
                            w, bias: b, x, rows: rows, integerActivations: true, integerKernels: .reference)
                        let fast = Kernels.matmul(
                            w, bias: b, x, rows: rows, integerActivations: true, integerKernels: kernels)
                        #expect(!reference.contains { $0.isNaN })
                        let d = difference(fast, reference)
                        #expect(
                            d == nil, "\(kernels) \(type) n=\(n) out=\(out) rows=\(rows) bias \(b != nil): \(d ?? "")")
                    }
                }
            }
        }
    }

    /// The prefill attention through the key-lane kernels (keys transposed in blocks of 16, scores,
    /// softmax, values), 256-bit ones and, on processors with AVX-512, 512-bit ones, computes the
    /// narrow path's numbers bit for bit: head sizes that are and are not multiples of 8 or 16, 16 to
    /// 130 new rows after 0 or 23 cached ones, f32 and f16 caches, and a ring that wrapped (rows
    /// evicted by the approx-slide approximation). The wide path is taken when the workspace has room
    /// for it (headDimension given), the other when not.
    @Test(.enabled(if: Kernels.wideAttention, "this processor has no AVX2 (or KRONOS_KERNELS=portable)"))
    func wideAttentionIsTheNarrowOneBitwise() {
        for wide512 in Processor.hasAVX512VNNI ? [false, true] : [false] {
            wideAttentionIsTheNarrowOneBitwise(wide512: wide512)
        }
    }

    func wideAttentionIsTheNarrowOneBitwise(wide512: Bool) {
        for precision in [KVCachePrecision.f32, .f16] {
            for (heads, hd) in [(2, 64), (3, 52), (2, 20), (1, 100)] {
                for (before, newRows, evicted) in [(0, 16, 0), (23, 37, 0), (0, 130, 0), (9, 40, 5)] {
                    let D = heads * hd, visible = before + newRows, capacity = visible + 3
                    let cache = KVCache(batch: 1, capacity: capacity, width: D, precision: precision)
                    var rng = Lcg(state: UInt64(hd * 1000 + visible))
                    // `evicted` extra rows first, then evicted: the ring's origin moves and the rows wrap.
                    for position in 0..<(visible + evicted) {
                        let kv = rng.array(2 * D)
                        kv.withUnsafeBufferPointer {
                            cache.store(0, position: position, key: $0.baseAddress!, value: $0.baseAddress! + D)
                        }
                        cache.length += 1
                        if cache.length > visible { cache.evictOldest() }
                    }
                    let q = rng.array(newRows * D)
                    func run(headDimension: Int) -> [Float] {
                        let workspace = Workspace(
                            columns: D, positions: capacity, headDimension: headDimension, threads: 2)
                        var out = [Float](repeating: .nan, count: newRows * D)
                        q.withUnsafeBufferPointer { qb in
                            out.withUnsafeMutableBufferPointer { ob in
                                cache.attention(
                                    heads: heads, batch: 1, sequenceStride: 1, newRows: newRows, before: before,
                                    q: UnsafeMutablePointer(mutating: qb.baseAddress!), out: ob.baseAddress!, D: D,
                                    hd: hd, workspace: workspace, wide512: wide512)
                            }
                        }
                        return out
                    }
                    let wide = run(headDimension: hd), narrow = run(headDimension: 0)
                    let differ = wide.indices.filter { wide[$0].bitPattern != narrow[$0].bitPattern }
                    let kernels = wide512 ? "512-bit" : "256-bit"
                    let what =
                        "\(kernels) \(precision) \(heads)x\(hd) before \(before) new \(newRows) evicted \(evicted)"
                    #expect(differ.isEmpty && !wide.contains { $0.isNaN }, "\(what): \(differ.count) differ")
                }
            }
        }
    }
}
