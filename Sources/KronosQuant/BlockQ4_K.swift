// Q4_K: 4-bit super-blocks of 256 values (8 sub-blocks of 32), 4.5 bits per weight.
//
// Byte layout of one super-block (144 bytes, no padding):
//   offset 0   u16      d      IEEE binary16: scale of the sub-block scales
//   offset 2   u16      dmin   IEEE binary16: scale of the sub-block minimums
//   offset 4   u8[12]   sm     16 unsigned 6-bit fields as one little-endian bit stream: field k
//                              occupies bits 6k ... 6k+5; fields 0-7 are the sub-block scales
//                              sc[0..7], fields 8-15 the sub-block minimums mn[0..7]
//   offset 16  u8[128]  qs     codes: sub-block j uses bytes 16 + 16j ..< 32 + 16j, byte i holding
//                              element i of the sub-block in its low nibble and element i + 16 in
//                              its high nibble (as in Q4_1)
// Value of element i of sub-block j = d * sc[j] * q - dmin * mn[j], q in 0...15.
//
// Reference quantizer: each sub-block's affine (scale, offset) is searched in f32 (the Q4_1 search
// without f16 rounding, offset clamped to ≤ 0), the 8 scales and 8 offsets are quantized to 6 bits
// against their maxima (d = max scale / 63, dmin = max |offset| / 63, rounded to f16), and the codes
// are recomputed against the final 6-bit scales.

public enum BlockQ4_K {
    @inlinable public static var count: Int { 256 }
    @inlinable public static var byteCount: Int { 144 }
    static let subBlocks = 8

    @discardableResult
    public static func quantize(
        _ x: UnsafePointer<Float>, into block: UnsafeMutableRawPointer,
        searchSteps: Int = BlockQ4_1.defaultSearchSteps
    ) -> Bool {
        // (Vectors on the stack, not arrays: the converter runs this for every 256 weights.)
        var scales = SIMD8<Float>(), offsets = SIMD8<Float>()
        for j in 0..<subBlocks {
            guard let (s, m) = BlockQ4_1.searchAffine(x + 32 * j, searchSteps: searchSteps) else { return false }
            // Offsets are stored as non-negative minimums: x = s q - mn, so a positive m is clipped to 0.
            if m > 0 {
                var hi: Float = 0
                for i in 0..<32 { hi = max(hi, x[32 * j + i]) }
                scales[j] = hi / 15; offsets[j] = 0
            } else {
                scales[j] = s; offsets[j] = 0 - m  // 0 - m: never a negative zero
            }
        }
        return finish(x, scales: scales, offsets: offsets, radius: 1, into: block) { j, s, mn in
            subBlockError(x + 32 * j, scale: s, minimum: mn)
        }
    }

    /// The rest of a super-block from its 8 sub-blocks' f32 scales and minimums: d and dmin (the
    /// largest over 63, as f16), each sub-block's 6-bit scale and minimum chosen among ±radius of
    /// the nearest by `error(sub-block, scale, minimum)`, then the codes. False when d or dmin
    /// overflows f16.
    static func finish(
        _ x: UnsafePointer<Float>, scales: SIMD8<Float>, offsets: SIMD8<Float>, radius: Int,
        into block: UnsafeMutableRawPointer, error: (Int, Float, Float) -> Float
    ) -> Bool {
        let maxScale = scales.max(), maxOffset = offsets.max()
        guard maxScale / 63 <= float16Max, maxOffset / 63 <= float16Max else { return false }
        let d16 = Float16(maxScale / 63), dmin16 = Float16(maxOffset / 63)
        let d = Float(d16), dmin = Float(dmin16)
        var fields = SIMD16<UInt8>()
        for j in 0..<subBlocks {
            let sc0 = d > 0 ? Int(min(63, max(0, (scales[j] / d + 0.5).rounded(.down)))) : 0
            let mn0 = dmin > 0 ? Int(min(63, max(0, (offsets[j] / dmin + 0.5).rounded(.down)))) : 0
            var best = (sc0, mn0), bestError = Float.infinity
            for sc in max(0, sc0 - radius)...min(63, sc0 + radius) {
                for mn in max(0, mn0 - radius)...min(63, mn0 + radius) {
                    let e = error(j, d * Float(sc), dmin * Float(mn))
                    if e < bestError { bestError = e; best = (sc, mn) }
                }
            }
            fields[j] = UInt8(best.0); fields[8 + j] = UInt8(best.1)
        }
        store(x, d16: d16, dmin16: dmin16, fields: fields, into: block)
        return true
    }

    /// Writes the super-block: d, dmin, the 16 six-bit fields, and x's codes against the final scales.
    static func store(
        _ x: UnsafePointer<Float>, d16: Float16, dmin16: Float16, fields: SIMD16<UInt8>,
        into block: UnsafeMutableRawPointer
    ) {
        let d = Float(d16), dmin = Float(dmin16)
        block.storeBytes(of: d16.bitPattern.littleEndian, toByteOffset: 0, as: UInt16.self)
        block.storeBytes(of: dmin16.bitPattern.littleEndian, toByteOffset: 2, as: UInt16.self)
        let sm = block.advanced(by: 4).assumingMemoryBound(to: UInt8.self)
        for b in 0..<12 { sm[b] = 0 }
        for k in 0..<16 {
            let bit = 6 * k
            let v = UInt16(fields[k]) << UInt16(bit % 8)
            sm[bit / 8] |= UInt8(truncatingIfNeeded: v)
            if bit / 8 + 1 < 12 { sm[bit / 8 + 1] |= UInt8(truncatingIfNeeded: v >> 8) }
        }
        let qs = block.advanced(by: 16).assumingMemoryBound(to: UInt8.self)
        for j in 0..<subBlocks {
            let s = d * Float(fields[j]), m = -dmin * Float(fields[8 + j])
            let id: Float = s > 0 ? 1 / s : 0
            for i in 0..<16 {
                let lo = UInt8(BlockQ4_1.quantCode(x[32 * j + i], m, id))
                let hi = UInt8(BlockQ4_1.quantCode(x[32 * j + i + 16], m, id))
                qs[16 * j + i] = lo | (hi << 4)
            }
        }
    }

    /// Squared error of 32 values coded against scale s and minimum mn (x ≈ s q − mn).
    static func subBlockError(_ x: UnsafePointer<Float>, scale s: Float, minimum mn: Float) -> Float {
        let id: Float = s > 0 ? 1 / s : 0
        var e: Float = 0
        for i in 0..<32 {
            let r = x[i] - (s * BlockQ4_1.quantCode(x[i], -mn, id) - mn)
            e += r * r
        }
        return e
    }

    /// d, dmin and the 16 six-bit fields (8 scales, then 8 minimums) of the super-block, read one
    /// field at a time from the bit stream.
    @inline(__always)
    public static func fields(_ block: UnsafeRawPointer) -> (d: Float, dmin: Float, sm: SIMD16<UInt8>) {
        let d = loadF16(block)
        let dmin = loadF16(block, at: 2)
        let sm = block.advanced(by: 4).assumingMemoryBound(to: UInt8.self)
        var f = SIMD16<UInt8>()
        for k in 0..<16 {
            let bit = 6 * k
            var v = UInt16(sm[bit / 8])
            if bit / 8 + 1 < 12 { v |= UInt16(sm[bit / 8 + 1]) << 8 }
            f[k] = UInt8((v >> UInt16(bit % 8)) & 0x3F)
        }
        return (d, dmin, f)
    }

    public static func dequantize(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let (d, dmin, f) = fields(block)
        let qs = block.advanced(by: 16).assumingMemoryBound(to: UInt8.self)
        for j in 0..<subBlocks {
            let s = d * Float(f[j]), m = dmin * Float(f[8 + j])
            for i in 0..<16 {  // fused s·q − m
                y[32 * j + i] = (-m).addingProduct(s, Float(qs[16 * j + i] & 0x0F))
                y[32 * j + i + 16] = (-m).addingProduct(s, Float(qs[16 * j + i] >> 4))
            }
        }
    }

    public static func dot(_ block: UnsafeRawPointer, _ x: UnsafePointer<Float>) -> Float {
        let (d, dmin, f) = fields(block)
        let qs = block.advanced(by: 16).assumingMemoryBound(to: UInt8.self)
        var total: Float = 0
        for j in 0..<subBlocks {
            var sqx: Float = 0, sx: Float = 0
            for i in 0..<16 {
                sqx += Float(qs[16 * j + i] & 0x0F) * x[32 * j + i] + Float(qs[16 * j + i] >> 4) * x[32 * j + i + 16]
                sx += x[32 * j + i] + x[32 * j + i + 16]
            }
            total += d * Float(f[j]) * sqx - dmin * Float(f[8 + j]) * sx
        }
        return total
    }
}
