// Finiteness of stored tensors, checked when a bundle is loaded: a crafted bundle carries whatever
// checksums it likes, so a NaN weight or scale would otherwise flow into every forecast as `nan`.
// Only the numbers that can be non-finite are read: f32 / f16 values, and the f16 scales and
// minimums of the block types (their integer codes times finite scales are finite).

extension TensorType {
    /// Byte offsets, inside one block, of the f16 fields that scale or shift it.
    var halfFieldOffsets: [Int] {
        switch self {
        case .q8_0: return [0]          // d
        case .q4_1: return [0, 2]       // d, m
        case .q4_k: return [0, 2]       // d, dmin
        default: return []
        }
    }

    /// The index of the first non-finite element (f32 / f16) or block (q8_0, q4_1, q4_k) among
    /// `byteCount` bytes of this type, or nil when all are finite.
    public func firstNonFinite(_ bytes: UnsafeRawPointer, byteCount: Int) -> Int? {
        switch self {
        case .f32:
            return Self.firstWithExponentAllOnes(bytes.bindMemory(to: UInt32.self, capacity: byteCount / 4), byteCount / 4, mask: 0x7F80_0000)
        case .f16:
            return Self.firstWithExponentAllOnes(bytes.bindMemory(to: UInt16.self, capacity: byteCount / 2), byteCount / 2, mask: 0x7C00)
        case .q8_0, .q4_1, .q4_k:
            let size = traits.bytesPerBlock, offsets = halfFieldOffsets
            for b in 0..<(byteCount / size) {
                for o in offsets where bytes.loadUnaligned(fromByteOffset: b * size + o, as: UInt16.self) & 0x7C00 == 0x7C00 { return b }
            }
            return nil
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
}
