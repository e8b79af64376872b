// The weight formats of the integer path (int8-quantized activations, KronosRuntime's
// IntegerActivations.swift) as its kernels read them: 32-value blocks, each with its codes and the
// block's scale d_w (and, for the 4-bit formats, its minimum m_w), so that
//   value k of block u = d_w[u] · code_k                      (q8_0, codes -128...127)
//   value k of block u = fma(d_w[u], code_k, m_w[u])          (q4_1, q4_k; codes 0...15)
// The scales are exactly the floats the decoders use (q4_k: d · sc[j] and −(dmin · mn[j]) of
// sub-block j), so the integer path and the float path start from the same weights.
// Inlinable: the KronosVNNI kernels (compiled for AVX-512) and the portable kernels specialize them.

/// A weight format of the integer path. A unit is what carries one header: a q8_0 or q4_1 block,
/// a q4_k super-block (8 blocks of 32).
public protocol IntegerCodes {
    /// 32-value blocks per unit.
    static var blocksPerUnit: Int { get }
    /// Bytes of one unit.
    static var unitBytes: Int { get }
    /// Unsigned codes with a minimum per block (q4_1, q4_k), or signed codes without (q8_0).
    static var hasMinimum: Bool { get }
    /// The 32 codes of block k (0 ..< blocksPerUnit) of the unit at p, value order: unsigned codes
    /// as they are, signed codes as their two's-complement bytes.
    static func codes(_ p: UnsafeRawPointer, block k: Int) -> SIMD32<UInt8>
    /// 4-bit formats: the 16 bytes of block k's packed codes (byte i: code i in the low nibble,
    /// code i + 16 in the high nibble).
    static func packedCodes(_ p: UnsafeRawPointer, block k: Int) -> UnsafeRawPointer
    /// The unit's block scales d_w (lanes 0 ..< blocksPerUnit) and minimums m_w (0 where none).
    static func scales(_ p: UnsafeRawPointer) -> (d: SIMD8<Float>, m: SIMD8<Float>)
}

extension TensorType {
    /// Whether the integer path takes weights of this type (q8_0, q4_1, q4_k).
    public var hasIntegerCodes: Bool { self == .q8_0 || self == .q4_1 || self == .q4_k }
}

/// q8_0 (BlockQ8_0): one block per unit, signed codes at byte 2.
public enum Q8_0Codes: IntegerCodes {
    @inlinable public static var blocksPerUnit: Int { 1 }
    @inlinable public static var unitBytes: Int { 34 }
    @inlinable public static var hasMinimum: Bool { false }
    @inlinable @inline(__always)
    public static func codes(_ p: UnsafeRawPointer, block k: Int) -> SIMD32<UInt8> {
        p.loadUnaligned(fromByteOffset: 2, as: SIMD32<UInt8>.self)
    }
    @inlinable public static func packedCodes(_ p: UnsafeRawPointer, block k: Int) -> UnsafeRawPointer {
        preconditionFailure("q8_0 codes are bytes, not nibbles")
    }
    @inlinable @inline(__always)
    public static func scales(_ p: UnsafeRawPointer) -> (d: SIMD8<Float>, m: SIMD8<Float>) {
        (SIMD8<Float>(loadF16(p), 0, 0, 0, 0, 0, 0, 0), SIMD8<Float>())
    }
}

/// q4_1 (BlockQ4_1): one block per unit, d and m as f16 at bytes 0 and 2, nibbles at byte 4.
public enum Q4_1Codes: IntegerCodes {
    @inlinable public static var blocksPerUnit: Int { 1 }
    @inlinable public static var unitBytes: Int { 20 }
    @inlinable public static var hasMinimum: Bool { true }
    @inlinable @inline(__always)
    public static func codes(_ p: UnsafeRawPointer, block k: Int) -> SIMD32<UInt8> { nibbleCodes(p + 4) }
    @inlinable @inline(__always)
    public static func packedCodes(_ p: UnsafeRawPointer, block k: Int) -> UnsafeRawPointer { p + 4 }
    @inlinable @inline(__always)
    public static func scales(_ p: UnsafeRawPointer) -> (d: SIMD8<Float>, m: SIMD8<Float>) {
        let (d, m) = loadF16Pair(p)
        return (SIMD8<Float>(d, 0, 0, 0, 0, 0, 0, 0), SIMD8<Float>(m, 0, 0, 0, 0, 0, 0, 0))
    }
}

/// q4_k (BlockQ4_K): 8 blocks (sub-blocks) per unit, their 6-bit scales and minimums in the header,
/// block j's nibbles at byte 16 + 16j.
public enum Q4_KCodes: IntegerCodes {
    @inlinable public static var blocksPerUnit: Int { 8 }
    @inlinable public static var unitBytes: Int { 144 }
    @inlinable public static var hasMinimum: Bool { true }
    @inlinable @inline(__always)
    public static func codes(_ p: UnsafeRawPointer, block k: Int) -> SIMD32<UInt8> { nibbleCodes(p + 16 + 16 * k) }
    @inlinable @inline(__always)
    public static func packedCodes(_ p: UnsafeRawPointer, block k: Int) -> UnsafeRawPointer { p + 16 + 16 * k }
    @inlinable @inline(__always)
    public static func scales(_ p: UnsafeRawPointer) -> (d: SIMD8<Float>, m: SIMD8<Float>) { BlockQ4_K.scaleVectors(p) }
}

/// 16 bytes of packed 4-bit codes (byte i: code i low, code i + 16 high) -> the 32 codes in order.
@inlinable @inline(__always)
public func nibbleCodes(_ p: UnsafeRawPointer) -> SIMD32<UInt8> {
    let b = p.loadUnaligned(as: SIMD16<UInt8>.self)
    return SIMD32<UInt8>(lowHalf: b & 0x0F, highHalf: b &>> 4)
}

/// The two little-endian f16 at p and p + 2 as f32 (exact), widened together: one 4-byte load and
/// one vcvtph2ps instead of two scalar conversions (hot q4_1 matvec, 1 / 5 rows: 47 -> 54 / 92 ->
/// 121 GFLOP/s).
@inlinable @inline(__always)
public func loadF16Pair(_ p: UnsafeRawPointer) -> (Float, Float) {
    let bits = SIMD2<UInt32>(UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)), 0)
    let v = SIMD4<Float>(unsafeBitCast(bits, to: SIMD4<Float16>.self))
    return (v[0], v[1])
}

extension BlockQ4_K {
    /// The super-block's 8 sub-block scales d · sc[j] and 8 negated minimums −(dmin · mn[j]), as
    /// `dequantize` computes them (value = fma(scale, q, minimum)).
    // The 16 six-bit fields (bits 6k ..< 6k+6 of bytes 4-15; scales 0-7, minimums 8-15), 8 at a
    // time in 32-bit lanes: each lane holds a 32-bit window of the bit stream that contains its
    // field whole, shifted down by the field's own offset in it (one variable shift, vpsrlvd).
    // Scalar extraction cost ~5 operations per field (hot q4_k matvec, 1 row: 49.7 -> 52.7 GFLOP/s).
    @inlinable @inline(__always)
    public static func scaleVectors(_ block: UnsafeRawPointer) -> (d: SIMD8<Float>, m: SIMD8<Float>) {
        let (d, dmin) = loadF16Pair(block)
        @inline(__always) func window(_ byte: Int) -> UInt32 {
            UInt32(littleEndian: block.loadUnaligned(fromByteOffset: byte, as: UInt32.self))
        }
        let w0 = window(4)    // bits 0-31: fields 0-4 at 0, 6, 12, 18, 24
        let w1 = window(7)    // bits 24-55: fields 5-7 at 6, 12, 18
        let w2 = window(10)   // bits 48-79: fields 8-12 at 0, 6, 12, 18, 24
        let w3 = window(12)   // bits 64-95: fields 13-15 at 14, 20, 26
        let sc = (SIMD8<UInt32>(w0, w0, w0, w0, w0, w1, w1, w1) &>> SIMD8<UInt32>(0, 6, 12, 18, 24, 6, 12, 18)) & 63
        let mn = (SIMD8<UInt32>(w2, w2, w2, w2, w2, w3, w3, w3) &>> SIMD8<UInt32>(0, 6, 12, 18, 24, 14, 20, 26)) & 63
        return (SIMD8<Float>(repeating: d) * SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: sc)),
                -(SIMD8<Float>(repeating: dmin) * SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: mn))))
    }
}
