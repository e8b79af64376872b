// The integer path of q8_0, q4_1 and q4_k weights (as ggml's q8_0 / q4_1 x q8_0 dots): the
// activations of a matmul are quantized once per 32-value block to int8 codes q with an f32 scale
// d_x (and the block's code sum S), each block's products with the weight codes c are summed exactly
// in integers, and the block sums are accumulated in f32:
//   per (weight row r, input row t): acc = 0; for each block u in order:
//     acc = fma(Float(Σ_k c_rk · q_tk), d_w[r,u] · d_x[t,u], acc)
//     q4_1, q4_k: acc = fma(m_w[r,u], d_x[t,u] · Float(S[t,u]), acc)     (value = fma(d_w, c, m_w))
//   y = acc + bias[r]
// Three kernels compute exactly that, bit for bit (tested): the scalar reference
// (integerReferenceDot, read from the block layouts), the portable SIMD path (any x86-64-v3 / other
// processor), and on AVX-512 VNNI processors the KronosWideVNNI kernels (vpdpbusd: 32 byte products per
// instruction). So a decode step and a prefill compute the same numbers on one machine, and every
// machine computes the same forecast.
import CKronosHints
import Foundation
import KronosQuant
import KronosWideAVX2
import KronosWideVNNI

/// Values per activation block (= the q8_0 weight block).
let activationBlock = BlockQ8_0.count

/// Input rows from which the VNNI and AVX2 paths repack 16 weight rows and multiply them with
/// several input rows at a time (VNNI.gemm, AVX2.gemm); fewer go straight through the stored rows
/// (the shared matvec).
let integerGemmMinRows = 8

// x [n] -> codes [n] (-127...127), d [n / 32] and sums [n / 32] (each block's codes summed): per
// block d = max|x| / 127, code = x · (1/d) rounded to nearest, ties to even (d = 0, codes 0 for a
// zero block). Contract: n is a multiple of 32. One C function per block (kronos_quantize32): the
// Swift loop it replaced took 9 % of an exact small q8 forecast (lane loops that did not vectorize).
@inline(__always)
func quantizeActivations(
    _ x: UnsafePointer<Float>, _ n: Int, codes q: UnsafeMutablePointer<Int8>, d: UnsafeMutablePointer<Float>,
    sums: UnsafeMutablePointer<Int32>
) {
    for b in 0..<(n / activationBlock) {
        kronos_quantize32(x + b * activationBlock, q + b * activationBlock, d + b, sums + b)
    }
}

// The scalar reference: row [n] of `type` . input row t of x, the integer path's arithmetic written
// out from the block layouts (BlockQ8_0, BlockQ4_1, BlockQ4_K), S recomputed from the codes.
func integerReferenceDot(_ type: TensorType, _ row: UnsafeRawPointer, _ x: Int8Activations, _ t: Int) -> Float {
    let blocks = x.columns / activationBlock
    var acc: Float = 0
    for u in 0..<blocks {
        // Block u's scale d_w, minimum m_w (nil for q8_0) and code k.
        let dw: Float, mw: Float?, code: (Int) -> Int32
        switch type {
        case .q8_0:
            let block = row + u * BlockQ8_0.byteCount
            dw = loadF16(block); mw = nil
            code = { Int32(block.load(fromByteOffset: 2 + $0, as: Int8.self)) }
        case .q4_1:
            let block = row + u * BlockQ4_1.byteCount
            dw = loadF16(block); mw = loadF16(block, at: 2)
            code = { k in Int32(nibble(block.load(fromByteOffset: 4 + k % 16, as: UInt8.self), high: k >= 16)) }
        case .q4_k:
            let block = row + u / 8 * BlockQ4_K.byteCount, j = u % 8
            let (d, dmin, fields) = BlockQ4_K.fields(block)
            dw = d * Float(fields[j]); mw = -(dmin * Float(fields[8 + j]))
            code = { k in Int32(nibble(block.load(fromByteOffset: 16 + 16 * j + k % 16, as: UInt8.self), high: k >= 16))
            }
        default: preconditionFailure("the integer path takes q8_0, q4_1 and q4_k weights, not \(type)")
        }
        var sum: Int32 = 0, codeSum: Int32 = 0
        for k in 0..<activationBlock {
            let q = Int32(x.codes[t * x.columns + u * activationBlock + k])
            sum += code(k) * q
            codeSum += q
        }
        let dx = x.scales[t * blocks + u]
        acc = acc.addingProduct(Float(sum), dw * dx)
        if let mw { acc = acc.addingProduct(mw, dx * Float(codeSum)) }
    }
    return acc
}

@inline(__always) private func nibble(_ byte: UInt8, high: Bool) -> UInt8 { high ? byte >> 4 : byte & 0x0F }

// The portable kernel: row [n] . input row t, each block's 32 products summed in integers (pairs in
// 16 bits, |2·128·127| < 2^15, then 32-bit lanes), then the reference's fused multiply-adds.
@inline(__always)
func integerPortableDot<C: IntegerCodes>(_: C.Type, _ row: UnsafeRawPointer, _ x: Int8Activations, _ t: Int) -> Float {
    let blocks = x.columns / activationBlock
    let q = UnsafeRawPointer(x.codes + t * x.columns), d = x.scales + t * blocks, sums = x.sums + t * blocks
    var acc: Float = 0
    for v in 0..<(blocks / C.blocksPerUnit) {
        let unit = row + v * C.unitBytes
        let (dw, mw) = C.scales(unit)
        for k in 0..<C.blocksPerUnit {
            let u = v * C.blocksPerUnit + k
            let c = C.codes(unit, block: k)
            let w0 = C.hasMinimum ? widen(c.lowHalf) : widen(unsafeBitCast(c.lowHalf, to: SIMD16<Int8>.self))
            let w1 = C.hasMinimum ? widen(c.highHalf) : widen(unsafeBitCast(c.highHalf, to: SIMD16<Int8>.self))
            let x0 = widen(q.loadUnaligned(fromByteOffset: 32 * u, as: SIMD16<Int8>.self))
            let x1 = widen(q.loadUnaligned(fromByteOffset: 32 * u + 16, as: SIMD16<Int8>.self))
            let pairs = w0 &* x0 &+ w1 &* x1
            var sum = SIMD8<Int32>()
            for i in 0..<8 { sum[i] = Int32(pairs[i]) &+ Int32(pairs[8 + i]) }
            acc = acc.addingProduct(Float(sum.wrappedSum()), dw[k] * d[u])
            if C.hasMinimum { acc = acc.addingProduct(mw[k], d[u] * Float(sums[u])) }
        }
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
@inline(__always) func widen(_ v: SIMD16<UInt8>) -> SIMD16<Int16> {
    var r = SIMD16<Int16>()
    for i in 0..<16 { r[i] = Int16(v[i]) }
    return r
}

// Y [rows, W.rows] = X [rows, W.columns] @ W^T (+ bias), W q8_0 / q4_1 / q4_k, through quantized activations:
// X quantized once into the workspace; weight-row groups split across the cores. The workspace
// says which kernels (integerKernels: the fastest this processor has, unless a test chose others).
// Kept out of matmul(): inlined there, it tipped the float paths out of inlining (f16 / q8_0 matvec
// 6x slower, measured).
@inline(never)
func integerMatmul(
    _ w: WeightMatrix, bias: UnsafePointer<Float>?, _ x: UnsafePointer<Float>, rows: Int,
    _ y: UnsafeMutablePointer<Float>, workspace: Workspace
) {
    let n = w.columns, out = w.rows, nb = n / activationBlock
    let buffers = workspace.activations(rows: rows, columns: n)
    // (a prefill's rows on every core; a decode step's few on this one)
    if workspace.needsQuantizing(x, rows: rows, columns: n) {
        parallelChunks(rows, minimumPerChunk: rowwiseMinimumRows, threads: workspace.workers) { _, range in
            for t in range {
                quantizeActivations(
                    x + t * n, n, codes: buffers.codes + t * n, d: buffers.scales + t * nb,
                    sums: buffers.sums + t * nb)
            }
        }
    }
    let a = Int8Activations(codes: buffers.codes, scales: buffers.scales, sums: buffers.sums, columns: n)
    let big = out * rows * n >= 1 << 16
    let arguments = (MatmulArguments(w, bias, x, rows, y, workspace), a)
    switch workspace.integerKernels {
    case .reference:
        for t in 0..<rows {
            for j in 0..<out { y[t * out + j] = integerReferenceDot(w.type, w.row(j), a, t) + (bias?[j] ?? 0) }
        }
    case .vnni where rows >= integerGemmMinRows, .avx2 where rows >= integerGemmMinRows:
        // The batched kernels: 16-row groups of weights repacked into each worker's scratch, the groups
        // split across the cores.
        precondition(
            workspace.floatsPerWorker * 4 >= repackedGroupBytes(columns: n), "workspace too small for \(n) columns")
        let groups = (out + repackedGroupRows - 1) / repackedGroupRows
        parallelChunks(groups, minimumPerChunk: big ? 1 : groups, threads: workspace.workers, arguments: arguments) {
            raw, worker, range in
            let (arguments, a) = raw.load(as: (MatmulArguments, Int8Activations).self)
            let (w, bias, _, rows, y) = arguments.values
            let gemm = arguments.workspace.integerKernels == .vnni ? VNNI.gemm : AVX2.gemm
            gemm(
                w.type, w.data, w.rowBytes, w.rows, range, a, rows, y, w.rows, bias,
                UnsafeMutableRawPointer(arguments.workspace.scratch(worker)))
        }
    case .vnni, .avx2:
        // Few rows: straight through the stored rows, 8-row groups split across the cores (the same
        // source in both modules, Matvec.swift).
        let groups = (out + VNNI.matvecRows - 1) / VNNI.matvecRows
        parallelChunks(groups, minimumPerChunk: big ? 1 : groups, threads: workspace.workers, arguments: arguments) {
            raw, _, range in
            let (arguments, a) = raw.load(as: (MatmulArguments, Int8Activations).self)
            let (w, bias, _, rows, y) = arguments.values
            let matvec = arguments.workspace.integerKernels == .vnni ? VNNI.matvec : AVX2.matvec
            matvec(
                w.type, w.data, w.rowBytes, w.rows, range, a, rows, y, w.rows, bias)
        }
    case .portable:
        struct Portable: IntegerCodesTask {
            let arguments: (MatmulArguments, Int8Activations), big: Bool
            @inline(__always) func run<C: IntegerCodes>(_: C.Type) { portableMatmul(C.self, arguments, big: big) }
        }
        guard w.type.withIntegerCodes(Portable(arguments: arguments, big: big)) != nil else {
            preconditionFailure("the integer path takes q8_0, q4_1 and q4_k weights, not \(w.type)")
        }
    }
}

// The portable kernel over every (input row, weight row) pair, 8-row groups split across the cores.
@inline(__always)
private func portableMatmul<C: IntegerCodes>(_: C.Type, _ arguments: (MatmulArguments, Int8Activations), big: Bool) {
    let groups = (arguments.0.w.rows + 7) / 8
    parallelChunks(
        groups, minimumPerChunk: big ? 1 : groups, threads: arguments.0.workspace.workers, arguments: arguments
    ) { raw, _, range in
        let (arguments, a) = raw.load(as: (MatmulArguments, Int8Activations).self)
        let (w, bias, _, rows, y) = arguments.values
        let out = w.rows
        for g in range {
            let rowsOfGroup = (8 * g)..<min(out, 8 * g + 8)
            for t in 0..<rows {
                for j in rowsOfGroup { y[t * out + j] = integerPortableDot(C.self, w.row(j), a, t) + (bias?[j] ?? 0) }
            }
        }
    }
}
