// Int8 kernels for processors with AVX-512 VNNI: q8_0 weights times int8-quantized activations,
// 32 byte products per instruction (vpdpbusd). This module is compiled for AVX-512 VL / BW / VNNI
// (Package.swift), so nothing in it may run before the runtime has checked the processor
// (KronosRuntime's `Kernels.IntegerKernels.native`, by cpuid): its kernels are never inlined into callers compiled
// for other processors, and its constants are inlinable (they compile in the caller).
//
// The arithmetic of every (weight row r, input row t) pair, whichever kernel computes it:
//   acc = 0; for each 32-column block u in order:
//     I = Σ_k w[r, 32u + k] · q[t, 32u + k]        (exact in 32 bits)
//     acc = fma(Float(I), d_w[r, u] · d_x[t, u], acc)   (d_w · d_x rounded to f32 first)
//   y[t, r] = acc + bias[r]
// The scalar reference (KronosRuntime, int8ReferenceDot) and the portable path compute the same,
// bit for bit.
import CKronosHints
import KronosQuant

/// Int8 activations of a matmul's input rows (KronosRuntime quantizes them).
public struct Int8Activations {
    /// Codes [rows, columns], -127...127.
    public let codes: UnsafePointer<Int8>
    /// Scales [rows, columns / 32]: value = code · scale.
    public let scales: UnsafePointer<Float>
    /// Sums of each block's codes [rows, columns / 32].
    public let sums: UnsafePointer<Int32>
    /// Values per row (a multiple of 32).
    public let columns: Int

    @inlinable
    public init(codes: UnsafePointer<Int8>, scales: UnsafePointer<Float>, sums: UnsafePointer<Int32>, columns: Int) {
        self.codes = codes; self.scales = scales; self.sums = sums; self.columns = columns
    }
}

public enum VNNI {
    /// Weight rows per group of the batched kernel (`gemm`).
    @inlinable public static var groupRows: Int { 16 }
    /// Weight rows per group of the few-rows kernel (`matvec`).
    @inlinable public static var matvecRows: Int { 8 }
    /// Bytes of one repacked 32-column block of a 16-row group: codes of rows 0-7, codes of rows
    /// 8-15, scales of rows 0-7, scales of rows 8-15.
    @inlinable public static var repackedBlockBytes: Int { 2 * 256 + 2 * 32 }
    /// Scratch bytes `gemm` needs per worker for rows of `columns` values.
    @inlinable public static func scratchBytes(columns: Int) -> Int { columns / 32 * repackedBlockBytes }

    /// Y [inputs, ldy]: y[t·ldy + j] = row j of W . input t (+ bias[j]) for the weight rows j of
    /// 16-row groups `groups` (the last may be partial: rows < `rows` only).
    /// W: q8_0 rows of x.columns values, `rowBytes` apart. Each group is repacked once into
    /// `scratch` (scratchBytes), then multiplied with 4 input rows at a time.
    @inline(never)
    public static func gemm(weights w: UnsafeRawPointer, rowBytes: Int, rows: Int, groups: Range<Int>, x: Int8Activations,
                            inputs: Int, y: UnsafeMutablePointer<Float>, ldy: Int, bias: UnsafePointer<Float>?,
                            scratch: UnsafeMutableRawPointer) {
        #if arch(x86_64)
        let blocks = x.columns / BlockQ8_0.count
        for g in groups {
            let j0 = g * groupRows, count = min(groupRows, rows - j0)
            repack(w + j0 * rowBytes, rowBytes: rowBytes, count: count, blocks: blocks, into: scratch)
            var t = 0
            while t + 4 <= inputs {
                tile4(scratch, blocks: blocks, x, t, y + t * ldy + j0, ldy, count: count, bias: bias.map { $0 + j0 })
                t += 4
            }
            while t < inputs {
                tile1(scratch, blocks: blocks, x, t, y + t * ldy + j0, count: count, bias: bias.map { $0 + j0 })
                t += 1
            }
        }
        #else
        preconditionFailure("the VNNI kernels exist on x86-64 only")
        #endif
    }

    /// The same products for few input rows (decode steps), straight from the stored q8_0 rows:
    /// weight rows of 8-row groups `groups`, each input row in turn.
    @inline(never)
    public static func matvec(weights w: UnsafeRawPointer, rowBytes: Int, rows: Int, groups: Range<Int>, x: Int8Activations,
                              inputs: Int, y: UnsafeMutablePointer<Float>, ldy: Int, bias: UnsafePointer<Float>?) {
        #if arch(x86_64)
        let blocks = x.columns / BlockQ8_0.count, bb = BlockQ8_0.byteCount
        for g in groups {
            let j0 = g * matvecRows, count = min(matvecRows, rows - j0)
            // Missing rows of a partial group read the group's first row; their lanes are dropped.
            let r0 = w + j0 * rowBytes
            @inline(__always) func row(_ r: Int) -> UnsafeRawPointer { r < count ? r0 + r * rowBytes : r0 }
            let p0 = row(0), p1 = row(1), p2 = row(2), p3 = row(3), p4 = row(4), p5 = row(5), p6 = row(6), p7 = row(7)
            let next = r0 + matvecRows * rowBytes, slice = matvecRows * bb
            for t in 0..<inputs {
                let q = UnsafeRawPointer(x.codes + t * x.columns), d = x.scales + t * blocks
                var acc = SIMD8<Float>()
                for u in 0..<blocks {
                    if t == 0 { kronos_prefetch_slice(next, u, slice) }
                    let o = bb * u
                    let xq = q.loadUnaligned(fromByteOffset: 32 * u, as: SIMD32<Int8>.self)
                    @inline(__always) func part(_ p: UnsafeRawPointer) -> SIMD8<Int32> {
                        let wq = p.loadUnaligned(fromByteOffset: o + 2, as: SIMD32<Int8>.self)
                        // |w| · (x signed as w): the exact products w·x, -128 included.
                        return kronos_dpbusd(SIMD8<Int32>(), kronos_abs8(wq), kronos_sign8(xq, wq))
                    }
                    let i = kronos_sum8x8(part(p0), part(p1), part(p2), part(p3), part(p4), part(p5), part(p6), part(p7))
                    @inline(__always) func h(_ p: UnsafeRawPointer) -> UInt16 { p.loadUnaligned(fromByteOffset: o, as: UInt16.self) }
                    let dw = kronos_halves8(SIMD8<UInt16>(h(p0), h(p1), h(p2), h(p3), h(p4), h(p5), h(p6), h(p7)))
                    acc.addProduct(kronos_float8(i), dw * SIMD8<Float>(repeating: d[u]))
                }
                finish(acc, y + t * ldy + j0, count, bias.map { $0 + j0 })
            }
        }
        #else
        preconditionFailure("the VNNI kernels exist on x86-64 only")
        #endif
    }
}

#if arch(x86_64)

let repackedBlockBytes = VNNI.repackedBlockBytes

// Weight rows 0 ..< count (<= 16) of a group, q8_0 rows `rowBytes` apart -> s, per 32-column block:
//   [codes of rows 0-7: quad j (j < 8) is 32 bytes = row 0's codes 4j ..< 4j+4, row 1's, ..., row 7's,
//    each code + 128 as an unsigned byte]  [rows 8-15 likewise]  [scales of rows 0-7 as f32]  [8-15].
// Rows past count: codes 0 (bytes 128) and scale 0, so their lanes come out 0.
@inline(__always)
func repack(_ w: UnsafeRawPointer, rowBytes: Int, count: Int, blocks: Int, into s: UnsafeMutableRawPointer) {
    let bb = BlockQ8_0.byteCount
    for u in 0..<blocks {
        let b = s + u * repackedBlockBytes
        for r in 0..<VNNI.groupRows {
            let codes = b + (r / 8) * 256 + (r % 8) * 4
            let scale = b + 512 + (r / 8) * 32 + (r % 8) * 4
            if r < count {
                let block = w + r * rowBytes + bb * u
                let quads = block.loadUnaligned(fromByteOffset: 2, as: SIMD8<UInt32>.self) ^ 0x8080_8080
                for j in 0..<8 { codes.storeBytes(of: quads[j], toByteOffset: 32 * j, as: UInt32.self) }
                scale.storeBytes(of: loadF16(block), as: Float.self)
            } else {
                for j in 0..<8 { codes.storeBytes(of: UInt32(0x8080_8080), toByteOffset: 32 * j, as: UInt32.self) }
                scale.storeBytes(of: Float(0), as: Float.self)
            }
        }
    }
}

// Input row t's codes 4j ..< 4j+4 of block u in every 4-byte group of a vector.
@inline(__always)
func broadcastQuad(_ x: Int8Activations, _ t: Int, _ u: Int, _ j: Int) -> SIMD32<Int8> {
    let v = UnsafeRawPointer(x.codes).loadUnaligned(fromByteOffset: t * x.columns + 32 * u + 4 * j, as: Int32.self)
    return unsafeBitCast(SIMD8<Int32>(repeating: v), to: SIMD32<Int8>.self)
}

// The block's (w + 128) · x sums start at -128 · Σx, so they come out Σ w·x.
@inline(__always)
func correction(_ x: Int8Activations, _ t: Int, _ u: Int) -> SIMD8<Int32> {
    SIMD8<Int32>(repeating: -128 &* x.sums[t * (x.columns / BlockQ8_0.count) + u])
}

@inline(__always)
func finish(_ acc: SIMD8<Float>, _ y: UnsafeMutablePointer<Float>, _ lanes: Int, _ bias: UnsafePointer<Float>?) {
    for r in 0..<lanes { y[r] = acc[r] + (bias?[r] ?? 0) }
}

// Y rows t ..< t+4, columns 0 ..< count (<= 16) of the repacked group s: lanes are weight rows,
// 16 integer and 8 float accumulators (rows 0-7 / 8-15 x 4 input rows).
@inline(__always)
func tile4(_ s: UnsafeMutableRawPointer, blocks: Int, _ x: Int8Activations, _ t: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int,
           count: Int, bias: UnsafePointer<Float>?) {
    var f00 = SIMD8<Float>(), f10 = SIMD8<Float>(), f01 = SIMD8<Float>(), f11 = SIMD8<Float>()
    var f02 = SIMD8<Float>(), f12 = SIMD8<Float>(), f03 = SIMD8<Float>(), f13 = SIMD8<Float>()
    let nb = x.columns / BlockQ8_0.count
    for u in 0..<blocks {
        let b = UnsafeRawPointer(s + u * repackedBlockBytes)
        var i00 = correction(x, t, u), i01 = correction(x, t + 1, u), i02 = correction(x, t + 2, u), i03 = correction(x, t + 3, u)
        var i10 = i00, i11 = i01, i12 = i02, i13 = i03
        for j in 0..<8 {
            let w0 = b.load(fromByteOffset: 32 * j, as: SIMD32<UInt8>.self)
            let w1 = b.load(fromByteOffset: 256 + 32 * j, as: SIMD32<UInt8>.self)
            let x0 = broadcastQuad(x, t, u, j), x1 = broadcastQuad(x, t + 1, u, j)
            i00 = kronos_dpbusd(i00, w0, x0); i10 = kronos_dpbusd(i10, w1, x0)
            i01 = kronos_dpbusd(i01, w0, x1); i11 = kronos_dpbusd(i11, w1, x1)
            let x2 = broadcastQuad(x, t + 2, u, j), x3 = broadcastQuad(x, t + 3, u, j)
            i02 = kronos_dpbusd(i02, w0, x2); i12 = kronos_dpbusd(i12, w1, x2)
            i03 = kronos_dpbusd(i03, w0, x3); i13 = kronos_dpbusd(i13, w1, x3)
        }
        let s0 = b.load(fromByteOffset: 512, as: SIMD8<Float>.self), s1 = b.load(fromByteOffset: 544, as: SIMD8<Float>.self)
        let d = x.scales + t * nb + u
        let d0 = SIMD8<Float>(repeating: d[0]), d1 = SIMD8<Float>(repeating: d[nb])
        let d2 = SIMD8<Float>(repeating: d[2 * nb]), d3 = SIMD8<Float>(repeating: d[3 * nb])
        f00.addProduct(kronos_float8(i00), s0 * d0); f10.addProduct(kronos_float8(i10), s1 * d0)
        f01.addProduct(kronos_float8(i01), s0 * d1); f11.addProduct(kronos_float8(i11), s1 * d1)
        f02.addProduct(kronos_float8(i02), s0 * d2); f12.addProduct(kronos_float8(i12), s1 * d2)
        f03.addProduct(kronos_float8(i03), s0 * d3); f13.addProduct(kronos_float8(i13), s1 * d3)
    }
    let low = min(8, count), high = max(0, count - 8)
    finish(f00, y, low, bias); finish(f10, y + 8, high, bias.map { $0 + 8 })
    finish(f01, y + ldy, low, bias); finish(f11, y + ldy + 8, high, bias.map { $0 + 8 })
    finish(f02, y + 2 * ldy, low, bias); finish(f12, y + 2 * ldy + 8, high, bias.map { $0 + 8 })
    finish(f03, y + 3 * ldy, low, bias); finish(f13, y + 3 * ldy + 8, high, bias.map { $0 + 8 })
}

// tile4 for one input row t.
@inline(__always)
func tile1(_ s: UnsafeMutableRawPointer, blocks: Int, _ x: Int8Activations, _ t: Int, _ y: UnsafeMutablePointer<Float>,
           count: Int, bias: UnsafePointer<Float>?) {
    var f0 = SIMD8<Float>(), f1 = SIMD8<Float>()
    let nb = x.columns / BlockQ8_0.count
    for u in 0..<blocks {
        let b = UnsafeRawPointer(s + u * repackedBlockBytes)
        var i0 = correction(x, t, u)
        var i1 = i0
        for j in 0..<8 {
            let x0 = broadcastQuad(x, t, u, j)
            i0 = kronos_dpbusd(i0, b.load(fromByteOffset: 32 * j, as: SIMD32<UInt8>.self), x0)
            i1 = kronos_dpbusd(i1, b.load(fromByteOffset: 256 + 32 * j, as: SIMD32<UInt8>.self), x0)
        }
        let d0 = SIMD8<Float>(repeating: x.scales[t * nb + u])
        f0.addProduct(kronos_float8(i0), b.load(fromByteOffset: 512, as: SIMD8<Float>.self) * d0)
        f1.addProduct(kronos_float8(i1), b.load(fromByteOffset: 544, as: SIMD8<Float>.self) * d0)
    }
    finish(f0, y, min(8, count), bias); finish(f1, y + 8, max(0, count - 8), bias.map { $0 + 8 })
}

#endif
