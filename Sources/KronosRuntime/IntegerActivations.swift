// The integer path of q8_0 weights (as ggml's q8_0 x q8_0 dot): the activations of a matmul are
// quantized once per 32-value block to int8 codes with an f32 scale, each block's products are
// summed exactly in integers, and the block sums are accumulated in f32:
//   per (weight row r, input row t): acc = 0; for each block u in order:
//     acc = fma(Float(Σ_k w_rk · q_tk), d_w[r,u] · d_x[t,u], acc);   y = acc + bias[r]
// Three kernels compute exactly that, bit for bit (tested): the scalar reference (int8ReferenceDot),
// the portable SIMD path (any x86-64-v3 / other processor), and on AVX-512 VNNI processors the
// KronosVNNI kernels (vpdpbusd: 32 byte products per instruction). So a decode step and a prefill
// compute the same numbers on one machine, and every machine computes the same forecast.
import Foundation
import KronosQuant
import KronosVNNI

/// Values per activation block (= the q8_0 weight block).
let activationBlock = BlockQ8_0.count

/// Input rows from which the VNNI path repacks 16 weight rows and multiplies them with 4 input
/// rows at a time (VNNI.gemm); fewer go straight through the stored rows (VNNI.matvec).
let vnniGemmMinRows = 8

// x [n] -> codes [n] (-127...127), d [n / 32] and sums [n / 32] (each block's codes summed): per
// block d = max|x| / 127, code = x · (1/d) rounded to nearest, ties to even (d = 0, codes 0 for a
// zero block). Contract: n is a multiple of 32.
@inline(__always)
func quantizeActivations(_ x: UnsafePointer<Float>, _ n: Int, codes q: UnsafeMutablePointer<Int8>, d: UnsafeMutablePointer<Float>,
                         sums: UnsafeMutablePointer<Int32>) {
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
        var sum: Int32 = 0
        for i in 0..<activationBlock {
            // |x · inverse| <= 127 (+ rounding): adding 1.5·2^23 leaves the rounded integer in the low
            // mantissa bits (branch-free, vectorizes; the default rounding mode is ties-to-even).
            let r = xb[i] * inverse + 12_582_912
            let code = Int32(bitPattern: r.bitPattern) &- 0x4B40_0000
            qb[i] = Int8(truncatingIfNeeded: code)
            sum &+= code
        }
        sums[b] = sum
    }
}

// The scalar reference: q8_0 row [n] . input row t of x, the integer path's arithmetic written out.
func int8ReferenceDot(_ row: UnsafeRawPointer, _ x: Int8Activations, _ t: Int) -> Float {
    let blocks = x.columns / activationBlock
    var acc: Float = 0
    for u in 0..<blocks {
        let block = row + u * BlockQ8_0.byteCount
        var sum: Int32 = 0
        for k in 0..<activationBlock {
            sum += Int32(block.load(fromByteOffset: 2 + k, as: Int8.self)) * Int32(x.codes[t * x.columns + u * activationBlock + k])
        }
        acc = acc.addingProduct(Float(sum), loadF16(block) * x.scales[t * blocks + u])
    }
    return acc
}

// The portable kernel: q8_0 row [n] . input row t, each block's 32 products summed in integers
// (pairs in 16 bits, |2·128·127| < 2^15, then 32-bit lanes), then the reference's fma.
@inline(__always)
func int8PortableDot(_ row: UnsafeRawPointer, _ x: Int8Activations, _ t: Int) -> Float {
    let blocks = x.columns / activationBlock
    let q = UnsafeRawPointer(x.codes + t * x.columns), d = x.scales + t * blocks
    var acc: Float = 0
    for u in 0..<blocks {
        let block = row + u * BlockQ8_0.byteCount
        let w0 = widen(block.loadUnaligned(fromByteOffset: 2, as: SIMD16<Int8>.self))
        let w1 = widen(block.loadUnaligned(fromByteOffset: 18, as: SIMD16<Int8>.self))
        let x0 = widen(q.loadUnaligned(fromByteOffset: 32 * u, as: SIMD16<Int8>.self))
        let x1 = widen(q.loadUnaligned(fromByteOffset: 32 * u + 16, as: SIMD16<Int8>.self))
        let pairs = w0 &* x0 &+ w1 &* x1
        var sum = SIMD8<Int32>()
        for i in 0..<8 { sum[i] = Int32(pairs[i]) &+ Int32(pairs[8 + i]) }
        acc = acc.addingProduct(Float(sum.wrappedSum()), loadF16(block) * d[u])
    }
    return acc
}

// Sign extension written as a lane loop: LLVM turns it into vpmovsxbw, where the generic SIMD
// initializer was left as a call to the standard library's prespecialized entry point (5x slower).
@inline(__always) func widen(_ v: SIMD16<Int8>) -> SIMD16<Int16> {
    var r = SIMD16<Int16>()
    for i in 0..<16 { r[i] = Int16(v[i]) }
    return r
}

// Y [rows, W.rows] = X [rows, W.columns] @ W^T (+ bias), W q8_0, through quantized activations:
// X quantized once into the workspace; weight-row groups split across the cores. The workspace
// says which kernels (integerKernels: the fastest this processor has, unless a test chose others).
@inline(never)   // kept out of matmul(): inlined there, it tipped the float paths out of inlining (f16 / q8_0 matvec 6x slower, measured)
func integerMatmul(_ w: WeightMatrix, bias: UnsafePointer<Float>?, _ x: UnsafePointer<Float>, rows: Int,
                   _ y: UnsafeMutablePointer<Float>, workspace: Workspace) {
    let n = w.columns, out = w.rows, nb = n / activationBlock
    let buffers = workspace.activations(rows: rows, columns: n)
    // (a prefill's rows on every core; a decode step's few on this one)
    parallelChunks(rows, minimumPerChunk: rowwiseMinimumRows) { _, range in
        for t in range {
            quantizeActivations(x + t * n, n, codes: buffers.codes + t * n, d: buffers.scales + t * nb, sums: buffers.sums + t * nb)
        }
    }
    let a = Int8Activations(codes: buffers.codes, scales: buffers.scales, sums: buffers.sums, columns: n)
    let big = out * rows * n >= 1 << 16
    let arguments = (MatmulArguments(w, bias, x, rows, y, workspace), a)
    switch workspace.integerKernels {
    case .reference:
        for t in 0..<rows {
            for j in 0..<out { y[t * out + j] = int8ReferenceDot(w.row(j), a, t) + (bias?[j] ?? 0) }
        }
    case .vnni where rows >= vnniGemmMinRows:
        precondition(workspace.floatsPerWorker * 4 >= VNNI.scratchBytes(columns: n), "workspace too small for \(n) columns")
        let groups = (out + VNNI.groupRows - 1) / VNNI.groupRows
        parallelChunks(groups, minimumPerChunk: big ? 1 : groups, arguments: arguments) { raw, worker, range in
            let (arguments, a) = raw.load(as: (MatmulArguments, Int8Activations).self)
            let (w, bias, _, rows, y) = arguments.values
            VNNI.gemm(weights: w.data, rowBytes: w.rowBytes, rows: w.rows, groups: range, x: a, inputs: rows, y: y, ldy: w.rows,
                      bias: bias, scratch: UnsafeMutableRawPointer(arguments.workspace.scratch(worker)))
        }
    case .vnni:
        let groups = (out + VNNI.matvecRows - 1) / VNNI.matvecRows
        parallelChunks(groups, minimumPerChunk: big ? 1 : groups, arguments: arguments) { raw, _, range in
            let (arguments, a) = raw.load(as: (MatmulArguments, Int8Activations).self)
            let (w, bias, _, rows, y) = arguments.values
            VNNI.matvec(weights: w.data, rowBytes: w.rowBytes, rows: w.rows, groups: range, x: a, inputs: rows, y: y, ldy: w.rows, bias: bias)
        }
    case .portable:
        let groups = (out + 7) / 8
        parallelChunks(groups, minimumPerChunk: big ? 1 : groups, arguments: arguments) { raw, _, range in
            let (arguments, a) = raw.load(as: (MatmulArguments, Int8Activations).self)
            let (w, bias, _, rows, y) = arguments.values
            let out = w.rows
            for g in range {
                let rowsOfGroup = (8 * g)..<min(out, 8 * g + 8)
                for t in 0..<rows {
                    for j in rowsOfGroup { y[t * out + j] = int8PortableDot(w.row(j), a, t) + (bias?[j] ?? 0) }
                }
            }
        }
    }
}
