// Q4_1: affine 4-bit blocks of 32 values.
//
// Byte layout of one block (20 bytes, no padding):
//   offset 0  u16     d    scale as IEEE binary16, little-endian
//   offset 2  u16     m    minimum (offset) as IEEE binary16, little-endian
//   offset 4  u8[16]  qs   codes: byte j holds element j in its low nibble (bits 0-3)
//                          and element j + 16 in its high nibble (bits 4-7)
// Value i = d * q_i + m, q_i in 0...15.
//
// The reference quantizer searches the (d, m) pair: starting from the plain min/max grid it tries
// `searchSteps` scales around 15 / (max - min), for each fixes the codes, refits d and m by least
// squares, rounds both to f16, recomputes the codes against the rounded pair, and keeps the pair
// with the smallest squared error (searchSteps = 0 gives the plain min/max scheme).

public enum BlockQ4_1 {
    /// Elements per block.
    @inlinable public static var count: Int { 32 }
    /// Bytes per block.
    @inlinable public static var byteCount: Int { 20 }
    /// Default number of extra scales the quantizer tries per block.
    public static let defaultSearchSteps = 2

    /// Reference quantizer for one block: x [32] -> block [20 bytes].
    /// Returns false when the block's range cannot be represented with f16 d and m.
    @discardableResult
    public static func quantize(
        _ x: UnsafePointer<Float>, into block: UnsafeMutableRawPointer,
        searchSteps: Int = defaultSearchSteps
    ) -> Bool {
        var lo = x[0], hi = x[0]
        for i in 1..<count { lo = min(lo, x[i]); hi = max(hi, x[i]) }
        guard abs(lo) <= float16Max, abs(hi) <= float16Max, (hi - lo) / 15 <= float16Max else { return false }

        var best = Candidate(d16: 0, m16: Float16(lo))
        var bestError = best.error(x)
        if hi > lo {
            forEachAffineCandidate(x, lo: lo, hi: hi, searchSteps: searchSteps) { d, m in
                guard d <= float16Max && abs(m) <= float16Max else { return }
                let c = Candidate(d16: Float16(d), m16: Float16(m))
                let e = c.error(x)
                if e < bestError { best = c; bestError = e }
            }
        }
        block.storeBytes(of: best.d16.bitPattern.littleEndian, toByteOffset: 0, as: UInt16.self)
        block.storeBytes(of: best.m16.bitPattern.littleEndian, toByteOffset: 2, as: UInt16.self)
        let qs = block.advanced(by: 4).assumingMemoryBound(to: UInt8.self)
        // m and 1 / d once per block, not per code (each f16 widening is a call without F16C).
        let m = best.m, id = best.inverse
        for j in 0..<16 {
            qs[j] = UInt8(quantCode(x[j], m, id)) | (UInt8(quantCode(x[j + 16], m, id)) << 4)
        }
        return true
    }

    /// Candidate affine pairs (d, m), x ≈ d q + m, for a block with range lo < hi: the plain min/max
    /// grid, then for `searchSteps` trial scales around 15 / (hi - lo) the codes they give and the
    /// least-squares refit of (d, m) to those codes (pairs with d ≤ 0 are dropped), each passed to
    /// `body` in that order (no array per block: the converter runs this for every block).
    @inline(__always)
    static func forEachAffineCandidate(
        _ x: UnsafePointer<Float>, lo: Float, hi: Float, searchSteps: Int,
        _ body: (Float, Float) -> Void
    ) {
        body((hi - lo) / 15, lo)
        for step in 0..<searchSteps {
            let levels = 15 + (Float(step) - Float(searchSteps - 1) / 2) * (2 / Float(max(searchSteps - 1, 1)))
            let iscale = levels / (hi - lo)
            var sq: Float = 0, sqq: Float = 0, sx: Float = 0, sxq: Float = 0
            for i in 0..<count {
                let q = quantCode(x[i], lo, iscale)
                sq += q; sqq += q * q; sx += x[i]; sxq += x[i] * q
            }
            let n = Float(count)
            let det = n * sqq - sq * sq
            guard det > 0 else { continue }
            let d = (n * sxq - sq * sx) / det
            let m = (sx - d * sq) / n
            if d > 0 { body(d, m) }
        }
    }

    /// The affine pair (s, m) with x ≈ s q + m minimizing the squared error over the same candidates
    /// as `quantize`, in f32 (no f16 rounding); nil when the range is not finite.
    static func searchAffine(_ x: UnsafePointer<Float>, searchSteps: Int) -> (Float, Float)? {
        var lo = x[0], hi = x[0]
        for i in 1..<count { lo = min(lo, x[i]); hi = max(hi, x[i]) }
        guard lo.isFinite, hi.isFinite, (hi - lo).isFinite else { return nil }
        guard hi > lo else { return (0, lo) }
        var best = (Float(0), lo), bestError = Float.infinity
        forEachAffineCandidate(x, lo: lo, hi: hi, searchSteps: searchSteps) { d, m in
            let id: Float = 1 / d
            var e: Float = 0
            for i in 0..<count { let r = x[i] - (d * quantCode(x[i], m, id) + m); e += r * r }
            if e < bestError { best = (d, m); bestError = e }
        }
        return best
    }

    /// Reference dequantizer: block [20 bytes] -> y [32].
    public static func dequantize(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = loadF16(block)
        let m = loadF16(block, at: 2)
        let qs = block.advanced(by: 4).assumingMemoryBound(to: UInt8.self)
        for j in 0..<16 {
            y[j] = m.addingProduct(d, Float(qs[j] & 0x0F))  // fused d·q + m
            y[j + 16] = m.addingProduct(d, Float(qs[j] >> 4))
        }
    }

    /// Reference dot product of one block with x [32].
    @inline(__always)
    public static func dot(_ block: UnsafeRawPointer, _ x: UnsafePointer<Float>) -> Float {
        let d = loadF16(block)
        let m = loadF16(block, at: 2)
        let qs = block.advanced(by: 4).assumingMemoryBound(to: UInt8.self)
        var sqx: Float = 0, sx: Float = 0
        for j in 0..<16 {
            sqx += Float(qs[j] & 0x0F) * x[j] + Float(qs[j] >> 4) * x[j + 16]
            sx += x[j] + x[j + 16]
        }
        return d * sqx + m * sx
    }

    /// The code of v for minimum m and inverse scale id: round half up of (v - m) * id, clamped to
    /// 0...15 (computed as truncation of the clamped value + 0.5, which vectorizes).
    @inline(__always)
    static func quantCode(_ v: Float, _ m: Float, _ id: Float) -> Float {
        Float(Int32(min(15, max(0, (v - m) * id + 0.5))))
    }

    /// A (d, m) pair already rounded to f16.
    private struct Candidate {
        let d16: Float16
        let m16: Float16
        var d: Float { Float(d16) }
        var m: Float { Float(m16) }

        /// 1 / d, or 0 for an all-equal block (every code 0).
        var inverse: Float { d > 0 ? 1 / d : 0 }

        func error(_ x: UnsafePointer<Float>) -> Float {
            let id = inverse, d = self.d, m = self.m
            var e: Float = 0
            for i in 0..<BlockQ4_1.count {
                let r = x[i] - (d * quantCode(x[i], m, id) + m)
                e += r * r
            }
            return e
        }
    }
}
