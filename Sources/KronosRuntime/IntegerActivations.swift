// The integer path of q8_0 weights (as ggml's q8_0 x q8_0 dot): the activations of a matmul are
// quantized once per 32-value block to int8 values with an f32 scale, and each block's products are
// summed exactly in 16-bit integers (vpmullw, two products per lane), then scaled by d_w · d_x.
// One kernel serves every row count, so a decode step and a prefill compute the same numbers.
import Foundation
import KronosQuant

/// Values per activation block (= the q8_0 weight block).
let activationBlock = BlockQ8_0.count

// x [n] -> q [n] (int8 values held as Int16, -127...127) and d [n / 32]: per block
// d = max|x| / 127, q = x · (1/d) rounded to nearest, ties to even (d = 0, q = 0 for a zero block).
// Contract: n is a multiple of 32.
@inline(__always)
func quantizeActivations(_ x: UnsafePointer<Float>, _ n: Int, q: UnsafeMutablePointer<Int16>, d: UnsafeMutablePointer<Float>) {
    for b in 0..<(n / activationBlock) {
        let xb = x + b * activationBlock
        var m = SIMD8<Float>()
        for c in 0..<(activationBlock / 8) {
            let v = UnsafeRawPointer(xb).loadUnaligned(fromByteOffset: 32 * c, as: SIMD8<Float>.self)
            for i in 0..<8 { let a = abs(v[i]); m[i] = a > m[i] ? a : m[i] }
        }
        var amax: Float = 0
        for i in 0..<8 { amax = m[i] > amax ? m[i] : amax }
        let scale = amax / 127
        let inverse = scale > 0 ? 1 / scale : 0
        d[b] = scale
        let qb = q + b * activationBlock
        for i in 0..<activationBlock {
            // |x · inverse| <= 127 (+ rounding): adding 1.5·2^23 leaves the rounded integer in the low
            // mantissa bits (branch-free, vectorizes; the default rounding mode is ties-to-even).
            let r = xb[i] * inverse + 12_582_912
            qb[i] = Int16(truncatingIfNeeded: Int32(bitPattern: r.bitPattern) &- 0x4B40_0000)
        }
    }
}

// Sign extension and conversion written as lane loops: LLVM turns them into vpmovsxbw /
// vpmovsxwd + vcvtdq2ps, where the generic SIMD initializers were left as calls to the standard
// library's prespecialized entry points inside this kernel (5x slower, measured).
@inline(__always) func widen(_ v: SIMD16<Int8>) -> SIMD16<Int16> {
    var r = SIMD16<Int16>()
    for i in 0..<16 { r[i] = Int16(v[i]) }
    return r
}
@inline(__always) func floats(_ s: SIMD16<Int16>, half h: Int) -> SIMD8<Float> {
    var r = SIMD8<Float>()
    for i in 0..<8 { r[i] = Float(Int32(s[8 * h + i])) }
    return r
}

// One q8_0 weight block (34 bytes at `block`) against one activation block (q [32] as x0, x1;
// scale dx). Lane i of the 16-bit sum is w_i·x_i + w_{16+i}·x_{16+i}, exact (|.| <= 2·127² < 2^15);
// then acc (8 lanes) += Float(lanes 0-7)·(d_w·dx), then += Float(lanes 8-15)·(d_w·dx), fused.
@inline(__always)
func accumulateBlock(_ acc: inout SIMD8<Float>, _ block: UnsafeRawPointer, _ x0: SIMD16<Int16>, _ x1: SIMD16<Int16>, _ dx: Float) {
    let w0 = widen(block.loadUnaligned(fromByteOffset: 2, as: SIMD16<Int8>.self))
    let w1 = widen(block.loadUnaligned(fromByteOffset: 18, as: SIMD16<Int8>.self))
    let s = w0 &* x0 &+ w1 &* x1
    let scale = SIMD8<Float>(repeating: loadF16(block) * dx)
    acc.addProduct(floats(s, half: 0), scale)
    acc.addProduct(floats(s, half: 1), scale)
}

// s [8] = q8_0 rows j0 ..< j0+8 of W . (q, d) quantized activations of one input row [n].
// Per (weight row, input row) pair: lanes accumulate block after block, then lanes summed (sum()).
@inline(__always)
func integerMatvec8(_ w: WeightMatrix, _ j0: Int, _ q: UnsafePointer<Int16>, _ d: UnsafePointer<Float>) -> SIMD8<Float> {
    let blocks = w.columns / activationBlock, rb = w.rowBytes, bb = BlockQ8_0.byteCount
    let p = w.row(j0)
    var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
    var a4 = SIMD8<Float>(), a5 = SIMD8<Float>(), a6 = SIMD8<Float>(), a7 = SIMD8<Float>()
    let qr = UnsafeRawPointer(q)
    let next = p + 8 * rb, slice = 8 * bb   // the next group's rows, prefetched as in matvec8
    for u in 0..<blocks {
        prefetchSlice(next, u, slice)
        let x0 = qr.loadUnaligned(fromByteOffset: 64 * u, as: SIMD16<Int16>.self)
        let x1 = qr.loadUnaligned(fromByteOffset: 64 * u + 32, as: SIMD16<Int16>.self)
        let dx = d[u], o = u * bb
        accumulateBlock(&a0, p + o, x0, x1, dx)
        accumulateBlock(&a1, p + rb + o, x0, x1, dx)
        accumulateBlock(&a2, p + 2 * rb + o, x0, x1, dx)
        accumulateBlock(&a3, p + 3 * rb + o, x0, x1, dx)
        accumulateBlock(&a4, p + 4 * rb + o, x0, x1, dx)
        accumulateBlock(&a5, p + 5 * rb + o, x0, x1, dx)
        accumulateBlock(&a6, p + 6 * rb + o, x0, x1, dx)
        accumulateBlock(&a7, p + 7 * rb + o, x0, x1, dx)
    }
    return SIMD8<Float>(a0.sum(), a1.sum(), a2.sum(), a3.sum(), a4.sum(), a5.sum(), a6.sum(), a7.sum())
}

// q8_0 row . (q, d) of one input row, the same arithmetic as one lane of integerMatvec8.
@inline(__always)
func integerDot(_ row: UnsafeRawPointer, _ q: UnsafePointer<Int16>, _ d: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD8<Float>()
    let qr = UnsafeRawPointer(q)
    for u in 0..<(n / activationBlock) {
        accumulateBlock(&acc, row + u * BlockQ8_0.byteCount, qr.loadUnaligned(fromByteOffset: 64 * u, as: SIMD16<Int16>.self),
                        qr.loadUnaligned(fromByteOffset: 64 * u + 32, as: SIMD16<Int16>.self), d[u])
    }
    return acc.sum()
}

// Y [rows, W.rows] = X [rows, W.columns] @ W^T (+ bias), W q8_0, through quantized activations:
// X quantized once into the workspace, then 8 weight rows at a time against every input row (the
// 8 rows' blocks stay in L1 across the input rows); weight-row groups split across the cores.
@inline(never)   // kept out of matmul(): inlined there, it tipped the float paths out of inlining (f16 / q8_0 matvec 6x slower, measured)
func integerMatmul(_ w: WeightMatrix, bias: UnsafePointer<Float>?, _ x: UnsafePointer<Float>, rows: Int,
                   _ y: UnsafeMutablePointer<Float>, workspace: Workspace) {
    let n = w.columns, out = w.rows, nb = n / activationBlock
    let (q, d) = workspace.activations(rows: rows, columns: n)
    for t in 0..<rows { quantizeActivations(x + t * n, n, q: q + t * n, d: d + t * nb) }
    let big = out * rows * n >= 1 << 16
    let groups = (out + 7) / 8
    parallelChunks(groups, minimumPerChunk: big ? 1 : groups, arguments: (MatmulArguments(w, bias, x, rows, y, workspace), q, d)) { raw, _, range in
        let (arguments, q, d) = raw.load(as: (MatmulArguments, UnsafeMutablePointer<Int16>, UnsafeMutablePointer<Float>).self)
        let (w, bias, _, rows, y) = arguments.values
        let n = w.columns, out = w.rows, nb = n / activationBlock
        for g in range {
            let j0 = 8 * g
            for t in 0..<rows {
                let qt = q + t * n, dt = d + t * nb, yt = y + t * out
                if j0 + 8 <= out {
                    let s = integerMatvec8(w, j0, qt, dt)
                    for r in 0..<8 { yt[j0 + r] = s[r] + (bias?[j0 + r] ?? 0) }
                } else {
                    for j in j0..<out { yt[j] = integerDot(w.row(j), qt, dt, n) + (bias?[j] ?? 0) }
                }
            }
        }
    }
}
