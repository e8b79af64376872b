// Exact conversions between f32 and the 16-bit float formats, on raw little-endian bytes.

/// bf16 bits -> f32 (exact: bf16 is the top half of an f32).
@inline(__always)
public func floatFromBF16(_ bits: UInt16) -> Float {
    Float(bitPattern: UInt32(bits) << 16)
}

/// f16 bits -> f32 (exact).
@inlinable @inline(__always)
public func floatFromF16(_ bits: UInt16) -> Float {
    Float(Float16(bitPattern: bits))
}

/// The little-endian f16 at `p + offset` as f32 (exact; any alignment).
@inlinable @inline(__always)
public func loadF16(_ p: UnsafeRawPointer, at offset: Int = 0) -> Float {
    floatFromF16(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
}

/// f32 -> f16 bits, round to nearest even (overflow becomes ±inf, as IEEE requires).
@inline(__always)
public func f16Bits(_ value: Float) -> UInt16 {
    Float16(value).bitPattern
}

/// Largest finite f16.
public let float16Max: Float = 65504
