// The int8 GEMM for x86-64-v3 processors without AVX-512 VNNI: q8_0, q4_1 and q4_k weights times
// int8-quantized activations with vpmaddubsw + vpmaddwd (kronos_avx2_tile), the integer path's
// arithmetic bit for bit (KronosWideVNNI's header states it), so a forecast with int8 activations is
// the same on processors with and without VNNI. From 8 input rows (integerGemmMinRows in the engine) the
// GEMM repacks 16-row groups of weights; fewer rows (a decode step's) go straight through the stored
// rows in the matvec that this module shares with KronosWideVNNI (Matvec.swift, with `dotBytes` below):
// a repack per call made a 1-row decode step 2.3x slower than the float path on Zen 3 (measured).
import CKronosHints
import KronosQuant

extension AVX2 {
    /// Y [inputs, ldy]: y[t·ldy + j] = row j of W . input t (+ bias[j]) for the weight rows j of
    /// 16-row groups `groups` (the last may be partial: rows < `rows` only). W: rows of x.columns
    /// values of `type` (q8_0, q4_1, q4_k), `rowBytes` apart. Each group is repacked once into
    /// `scratch` (repackedGroupBytes), then multiplied with each input row.
    @inline(never)
    public static func gemm(
        _ type: TensorType, weights w: UnsafeRawPointer, rowBytes: Int, rows: Int, groups: Range<Int>,
        x: Int8Activations, inputs: Int, y: UnsafeMutablePointer<Float>, ldy: Int, bias: UnsafePointer<Float>?,
        scratch: UnsafeMutableRawPointer
    ) {
        struct Gemm: IntegerCodesTask {
            let w: UnsafeRawPointer, rowBytes: Int, rows: Int, groups: Range<Int>, x: Int8Activations
            let inputs: Int, y: UnsafeMutablePointer<Float>, ldy: Int, bias: UnsafePointer<Float>?
            let scratch: UnsafeMutableRawPointer
            @inline(__always) func run<C: IntegerCodes>(_: C.Type) {
                let blocks = x.columns / 32, minimum: Int32 = C.hasMinimum ? 1 : 0
                let group = UnsafePointer<UInt8>(scratch.assumingMemoryBound(to: UInt8.self))
                for g in groups {
                    let j0 = g * repackedGroupRows, count = min(repackedGroupRows, rows - j0)
                    AVX2.repackGroupAVX2(
                        C.self, w + j0 * rowBytes, rowBytes: rowBytes, count: count, blocks: blocks, into: scratch)
                    // Each half of the group (8 rows, one ymm) times 4 input rows at a time. Each tile asks
                    // for a slice of the next group's stored rows, so they come from memory while this group
                    // computes (as KronosWideVNNI's GEMM; without it the repack waited on them: 15 % of an
                    // exact forecast's GEMM time on Zen 3, measured).
                    let next = w + (j0 + repackedGroupRows) * rowBytes  // (past the last row: never faults)
                    let tiles = 2 * ((inputs + 3) / 4)
                    let slice = (repackedGroupRows * rowBytes / tiles + 63) / 64 * 64
                    var k = 0
                    for h in 0..<2 where count > 8 * h {
                        let rowsOfHalf = min(8, count - 8 * h), j = j0 + 8 * h
                        var t = 0
                        func tile(_ r: Int32) {
                            if g + 1 < groups.upperBound { kronos_prefetch_slice(next, k, slice); k += 1 }
                            kronos_avx2_tile(
                                r, group, Int32(h), blocks, x.codes + t * x.columns, x.columns,
                                x.scales + t * blocks, x.sums + t * blocks, minimum, y + t * ldy + j, ldy, rowsOfHalf,
                                bias.map { $0 + j })
                            t += Int(r)
                        }
                        while inputs - t >= 4 { tile(4) }
                        switch inputs - t {
                        case 3: tile(3)
                        case 2: tile(2)
                        case 1: tile(1)
                        default: break
                        }
                    }
                }
            }
        }
        let task = Gemm(
            w: w, rowBytes: rowBytes, rows: rows, groups: groups, x: x, inputs: inputs, y: y, ldy: ldy, bias: bias,
            scratch: scratch)
        guard type.withIntegerCodes(task) != nil else {
            preconditionFailure("the integer path takes q8_0, q4_1 and q4_k weights, not \(type)")
        }
    }

    /// repackGroup(biased: false)'s bytes, by vectors: each unit's scales for 8 rows at once
    /// (IntegerCodes.laneScales), each block's codes transposed in registers (kronos_quads16).
    @inline(__always)
    static func repackGroupAVX2<C: IntegerCodes>(
        _: C.Type, _ w: UnsafeRawPointer, rowBytes: Int, count: Int, blocks: Int, into s: UnsafeMutableRawPointer
    ) {
        // Rows past count read row 0; their scales, minimums and codes are stored as 0.
        @inline(__always) func row(_ r: Int) -> UnsafeRawPointer { r < count ? w + r * rowBytes : w }
        @inline(__always) func word(_ p: UnsafeRawPointer, _ b: Int) -> UInt32 {
            UInt32(littleEndian: p.loadUnaligned(fromByteOffset: b, as: UInt32.self))
        }
        // Per half, all ones in the lanes of rows < count (built once: Swift's SIMD comparisons became
        // a lane loop through memory).
        @inline(__always) func lane(_ r: Int) -> UInt32 { r < count ? ~0 : 0 }
        let keeps = (
            SIMD8<UInt32>(lane(0), lane(1), lane(2), lane(3), lane(4), lane(5), lane(6), lane(7)),
            SIMD8<UInt32>(lane(8), lane(9), lane(10), lane(11), lane(12), lane(13), lane(14), lane(15))
        )
        withUnsafeTemporaryAllocation(byteCount: 16 * 32 + 16 * 32, alignment: 32) { raw in
            let codes = raw.baseAddress!, h = (codes + 16 * 32).assumingMemoryBound(to: SIMD8<Float>.self)
            for v in 0..<(blocks / C.blocksPerUnit) {
                let o = v * C.unitBytes
                for half in 0..<2 {
                    let r0 = 8 * half
                    C.laneScales(
                        { b in
                            SIMD8<UInt32>(
                                word(row(r0) + o, b), word(row(r0 + 1) + o, b), word(row(r0 + 2) + o, b),
                                word(row(r0 + 3) + o, b), word(row(r0 + 4) + o, b), word(row(r0 + 5) + o, b),
                                word(row(r0 + 6) + o, b), word(row(r0 + 7) + o, b))
                        }, into: h)
                    let keep = half == 0 ? keeps.0 : keeps.1
                    @inline(__always) func kept(_ x: SIMD8<Float>) -> SIMD8<Float> {
                        unsafeBitCast(unsafeBitCast(x, to: SIMD8<UInt32>.self) & keep, to: SIMD8<Float>.self)
                    }
                    for k in 0..<C.blocksPerUnit {
                        let b = s + (v * C.blocksPerUnit + k) * repackedBlockBytes + 32 * half
                        b.storeBytes(of: kept(h[k]), toByteOffset: 512, as: SIMD8<Float>.self)
                        b.storeBytes(
                            of: C.hasMinimum ? kept(h[8 + k]) : SIMD8<Float>(), toByteOffset: 576, as: SIMD8<Float>.self
                        )
                    }
                }
                for k in 0..<C.blocksPerUnit {
                    for r in 0..<repackedGroupRows {
                        codes.storeBytes(
                            of: r < count ? C.codes(row(r) + o, block: k) : SIMD32<UInt8>(), toByteOffset: 32 * r,
                            as: SIMD32<UInt8>.self)
                    }
                    kronos_quads16(
                        codes.assumingMemoryBound(to: UInt8.self),
                        (s + (v * C.blocksPerUnit + k) * repackedBlockBytes).assumingMemoryBound(to: UInt8.self))
                }
            }
        }
    }
}

/// The enum the shared integer matvec (Matvec.swift) extends in this module.
typealias MatvecKernels = AVX2

// Lane i: acc[i] + Σ of the 4 products a[4i + k] · b[4i + k] (unsigned x signed bytes), as vpmaddubsw +
// vpmaddwd: exact where no pair of products leaves 16 bits, as with every operand the integer path
// gives it (|q8_0 code| <= 128 against inputs with the code's sign: 2 · 128 · 127 < 2^15; 4-bit codes
// <= 15).
@inline(__always)
func dotBytes(_ acc: SIMD8<Int32>, _ a: SIMD32<UInt8>, _ b: SIMD32<Int8>) -> SIMD8<Int32> {
    kronos_maddubs_dot(acc, a, b)
}
