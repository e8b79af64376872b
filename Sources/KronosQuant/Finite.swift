// Finiteness of stored tensors, checked when a bundle is loaded: a crafted bundle carries whatever
// checksums it likes, so a NaN weight or scale would otherwise flow into every forecast as `nan`.
// Only the numbers that can be non-finite are read: f32 / f16 values, and the f16 scales and
// minimums of the block types (their integer codes times finite scales are finite).

extension TensorType {
    /// The index of the first non-finite element (f32 / f16) or block (the block types) among
    /// `byteCount` bytes of this type, or nil when all are finite.
    public func firstNonFinite(_ bytes: UnsafeRawPointer, byteCount: Int) -> Int? {
        switch self {
        case .f32:
            return Self.firstWithExponentAllOnes(
                bytes.bindMemory(to: UInt32.self, capacity: byteCount / 4), byteCount / 4, mask: 0x7F80_0000)
        case .f16:
            return Self.firstWithExponentAllOnes(
                bytes.bindMemory(to: UInt16.self, capacity: byteCount / 2), byteCount / 2, mask: 0x7C00)
        case .q8_0, .q4_1, .q4_k, .q5_0, .q6_0:
            // d (q8_0, q5_0, q6_0), or d and its neighbour m / dmin (q4_1, q4_k): the block's first 16
            // or 32 bits.
            return Self.firstBlockWithNonFiniteHalves(
                bytes, blocks: byteCount / traits.bytesPerBlock, stride: traits.bytesPerBlock,
                mask: self == .q4_1 || self == .q4_k ? 0x7C00_7C00 : 0x0000_7C00)
        case .i64:
            return nil
        }
    }

    /// The first of `n` IEEE values (as bits) whose exponent field `mask` is all ones (Inf or NaN):
    /// 64 values at a time without a branch, then the one that was.
    static func firstWithExponentAllOnes<T: FixedWidthInteger>(_ p: UnsafePointer<T>, _ n: Int, mask: T) -> Int? {
        var i = 0
        while i + 64 <= n {
            var any: T = 0
            for k in 0..<64 { any |= (p[i + k] & mask) == mask ? 1 : 0 }
            if any != 0 { break }
            i += 64
        }
        while i < n { if p[i] & mask == mask { return i }; i += 1 }
        return nil
    }

    /// The first of `blocks` blocks (`stride` bytes apart) whose leading f16 field(s) selected by
    /// `mask` (0x7C00 for the first, 0x7C007C00 for the first two) have an all-ones exponent.
    /// 256 blocks at a time without a branch (as one pass over the codes would cost a memory
    /// stream: only these 4 bytes per block are read).
    static func firstBlockWithNonFiniteHalves(_ bytes: UnsafeRawPointer, blocks: Int, stride: Int, mask: UInt32) -> Int?
    {
        func bad(_ b: Int) -> Bool {
            let w = bytes.loadUnaligned(fromByteOffset: b * stride, as: UInt32.self)
            return (w & mask & 0xFFFF) == (mask & 0xFFFF) || (mask > 0xFFFF && (w & mask) >> 16 == mask >> 16)
        }
        var b = 0
        while b < blocks {
            let end = min(blocks, b + 256)
            var any: UInt32 = 0
            for k in b..<end {
                let w = bytes.loadUnaligned(fromByteOffset: k * stride, as: UInt32.self)
                any |= ((w & 0x7C00) == 0x7C00 ? 1 : 0) | ((w & mask & 0x7C00_0000) == 0x7C00_0000 ? 1 : 0)
            }
            if any != 0 { for k in b..<end where bad(k) { return k } }
            b = end
        }
        return nil
    }
}
