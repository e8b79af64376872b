// The weight formats of the integer path (int8-quantized activations, KronosWideEngine's
// IntegerActivations.swift) as its kernels read them: 32-value blocks, each with its codes and the
// block's scale d_w (and, for the 4-bit formats, its minimum m_w), so that
//   value k of block u = d_w[u] · code_k                      (q8_0, codes -128...127)
//   value k of block u = fma(d_w[u], code_k, m_w[u])          (q4_1, q4_k; codes 0...15)
// The scales are exactly the floats the decoders use (q4_k: d · sc[j] and −(dmin · mn[j]) of
// sub-block j), so the integer path and the float path start from the same weights.
// Inlinable: the KronosWideVNNI kernels (compiled for AVX-512) and the portable kernels specialize them.
import CKronosHints

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
    /// The same floats for one unit of 8 rows, lanes are rows: h[k] = d_w of block k and, with
    /// minimums, h[8 + k] = m_w of block k, given window(b) = the 8 rows' little-endian 32-bit words
    /// at byte b of the unit.
    static func laneScales(_ window: (Int) -> SIMD8<UInt32>, into h: UnsafeMutablePointer<SIMD8<Float>>)
}

/// Int8 activations of a matmul's input rows, as the integer kernels read them (KronosWideEngine
/// quantizes them).
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

/// Weight rows per repacked group (`repackGroup`), the unit both int8 GEMMs split across cores.
public let repackedGroupRows = 16

/// Bytes of one repacked 32-column block of a 16-row group (`repackGroup`): 8 quads of the 16 rows'
/// codes, their 16 scales, their 16 minimums.
public let repackedBlockBytes = 2 * 256 + 4 * 32

/// Scratch bytes of one repacked group of rows of `columns` values (per worker of an int8 GEMM).
@inlinable public func repackedGroupBytes(columns: Int) -> Int { columns / 32 * repackedBlockBytes }

/// Weight rows 0 ..< count (<= 16) of a group, rows `rowBytes` apart -> s, per 32-column block, the
/// layout both int8 GEMMs read (kronos_vnni512_tile, kronos_avx2_tile):
///   [quads j = 0 ..< 8, 64 bytes each: byte 4r + i = row r's code 4j + i: q4 codes as they are; q8_0
///    codes + 128 (unsigned) when `biased`, else as they are (signed)]  [scales d_w of rows 0-15 as
///    f32]  [minimums m_w of rows 0-15].
/// Rows past count: codes 0 (biased q8_0: bytes 128), scale and minimum 0, so their lanes come out 0.
@inlinable @inline(__always)
public func repackGroup<C: IntegerCodes>(
    _: C.Type, _ w: UnsafeRawPointer, rowBytes: Int, count: Int, blocks: Int, biased: Bool,
    into s: UnsafeMutableRawPointer
) {
    let bias: UInt32 = C.hasMinimum || !biased ? 0 : 0x8080_8080
    for v in 0..<(blocks / C.blocksPerUnit) {
        for r in 0..<repackedGroupRows {
            let unit = w + r * rowBytes + v * C.unitBytes
            let (d, m) = r < count ? C.scales(unit) : (SIMD8<Float>(), SIMD8<Float>())
            for k in 0..<C.blocksPerUnit {
                let b = s + (v * C.blocksPerUnit + k) * repackedBlockBytes
                let quads =
                    r < count
                    ? unsafeBitCast(C.codes(unit, block: k), to: SIMD8<UInt32>.self) ^ bias
                    : SIMD8<UInt32>(repeating: bias)
                for j in 0..<8 { b.storeBytes(of: quads[j], toByteOffset: 64 * j + 4 * r, as: UInt32.self) }
                b.storeBytes(of: d[k], toByteOffset: 512 + 4 * r, as: Float.self)
                b.storeBytes(of: m[k], toByteOffset: 576 + 4 * r, as: Float.self)
            }
        }
    }
}

/// The low (high) 16 bits of each lane as an f16, widened to f32 (exact).
// Swift's own f16 conversion: through a vcvtph2ps shim in C the q4_1+i8 matvec ran 107 instead of
// 160-173 GFLOP/s (hot, 1 row; q8_0+i8 at 5 rows 173-181 instead of 164-171). The lane loop: the
// generic truncating initializer stayed a call into the standard library.
@inlinable @inline(__always)
public func halves(_ bits: SIMD8<UInt32>, high: Bool) -> SIMD8<Float> {
    var h = SIMD8<UInt16>()
    for i in 0..<8 { h[i] = UInt16(truncatingIfNeeded: high ? bits[i] >> 16 : bits[i]) }
    return kronos_f32_from_f16x8(h)  // (CKronosHints: inlined into each build, see there)
}

extension TensorType {
    /// Whether the integer path takes weights of this type (q8_0, q4_1, q4_k).
    public var hasIntegerCodes: Bool { self == .q8_0 || self == .q4_1 || self == .q4_k }
}

/// q8_0 (BlockQ8_0): one block per unit, signed codes at byte 2.
public enum Q8_0Codes: IntegerCodes {
    @inlinable public static var blocksPerUnit: Int { 1 }
    @inlinable public static var unitBytes: Int { BlockQ8_0.byteCount }
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
    @inlinable @inline(__always)
    public static func laneScales(_ window: (Int) -> SIMD8<UInt32>, into h: UnsafeMutablePointer<SIMD8<Float>>) {
        h[0] = halves(window(0), high: false)
    }
}

/// q4_1 (BlockQ4_1): one block per unit, d and m as f16 at bytes 0 and 2, nibbles at byte 4.
public enum Q4_1Codes: IntegerCodes {
    @inlinable public static var blocksPerUnit: Int { 1 }
    @inlinable public static var unitBytes: Int { BlockQ4_1.byteCount }
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
    @inlinable @inline(__always)
    public static func laneScales(_ window: (Int) -> SIMD8<UInt32>, into h: UnsafeMutablePointer<SIMD8<Float>>) {
        let dm = window(0)
        h[0] = halves(dm, high: false); h[8] = halves(dm, high: true)
    }
}

/// q4_k (BlockQ4_K): 8 blocks (sub-blocks) per unit, their 6-bit scales and minimums in the header,
/// block j's nibbles at byte 16 + 16j.
public enum Q4_KCodes: IntegerCodes {
    @inlinable public static var blocksPerUnit: Int { BlockQ4_K.count / 32 }
    @inlinable public static var unitBytes: Int { BlockQ4_K.byteCount }
    @inlinable public static var hasMinimum: Bool { true }
    @inlinable @inline(__always)
    public static func codes(_ p: UnsafeRawPointer, block k: Int) -> SIMD32<UInt8> { nibbleCodes(p + 16 + 16 * k) }
    @inlinable @inline(__always)
    public static func packedCodes(_ p: UnsafeRawPointer, block k: Int) -> UnsafeRawPointer { p + 16 + 16 * k }
    @inlinable @inline(__always)
    public static func scales(_ p: UnsafeRawPointer) -> (d: SIMD8<Float>, m: SIMD8<Float>) { BlockQ4_K.scaleVectors(p) }
    /// Each field straight from the rows' windows that hold it (BlockQ4_K.fieldWindow), instead of 8
    /// rows' scaleVectors and two 8x8 transposes (hot q4_k+i8 matvec, 1 / 5 rows: 87 / 164 -> 122-137
    /// / 211-222 GFLOP/s).
    @inlinable @inline(__always)
    public static func laneScales(_ window: (Int) -> SIMD8<UInt32>, into h: UnsafeMutablePointer<SIMD8<Float>>) {
        let dm = window(0)
        let d = halves(dm, high: false), dmin = halves(dm, high: true)
        let w4 = window(4), w7 = window(7), w10 = window(10), w12 = window(12)
        @inline(__always) func field(_ k: Int) -> SIMD8<Float> {
            let (byte, shift) = BlockQ4_K.fieldWindow(k)
            let w = byte == 4 ? w4 : byte == 7 ? w7 : byte == 10 ? w10 : w12
            return kronos_f32_from_i32x8(unsafeBitCast((w &>> shift) & 63, to: SIMD8<Int32>.self))
        }
        for j in 0..<8 {
            h[j] = d * field(j)
            h[8 + j] = -(dmin * field(8 + j))
        }
    }
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
    /// Field k (0-15) of the 6-bit stream: bits shift ..< shift + 6 of the little-endian 32-bit
    /// window at byte `byte` of the super-block (the windows at bytes 4, 7, 10 and 12 hold all 16).
    @inlinable @inline(__always)
    public static func fieldWindow(_ k: Int) -> (byte: Int, shift: UInt32) {
        switch k {
        case 0..<5: return (4, UInt32(6 * k))  // bits 0-31
        case 5..<8: return (7, UInt32(6 * (k - 4)))  // bits 24-55
        case 8..<13: return (10, UInt32(6 * (k - 8)))  // bits 48-79
        default: return (12, UInt32(14 + 6 * (k - 13)))  // bits 64-95
        }
    }

    /// The super-block's 8 sub-block scales d · sc[j] and 8 negated minimums −(dmin · mn[j]), as
    /// `dequantize` computes them (value = fma(scale, q, minimum)).
    // The fields 8 at a time in 32-bit lanes: each lane holds the window that contains its field
    // whole (fieldWindow), shifted down by the field's offset in it (one variable shift, vpsrlvd).
    // Scalar extraction cost ~5 operations per field (hot q4_k matvec, 1 row: 49.7 -> 52.7 GFLOP/s).
    @inlinable @inline(__always)
    public static func scaleVectors(_ block: UnsafeRawPointer) -> (d: SIMD8<Float>, m: SIMD8<Float>) {
        let (d, dmin) = loadF16Pair(block)
        // Fields k0 ..< k0 + 8 as floats (constant windows and shifts once inlined).
        @inline(__always) func fields(_ k0: Int) -> SIMD8<Float> {
            var words = SIMD8<UInt32>(), shifts = SIMD8<UInt32>()
            for j in 0..<8 {
                let (byte, shift) = fieldWindow(k0 + j)
                words[j] = UInt32(littleEndian: block.loadUnaligned(fromByteOffset: byte, as: UInt32.self))
                shifts[j] = shift
            }
            return kronos_f32_from_i32x8(unsafeBitCast((words &>> shifts) & 63, to: SIMD8<Int32>.self))
        }
        return (SIMD8<Float>(repeating: d) * fields(0), -(SIMD8<Float>(repeating: dmin) * fields(8)))
    }
}

/// Work that depends on the integer codes of a weight type, run by `TensorType.withIntegerCodes`:
/// `run` is generic over the codes, so each kernel is specialized for every type.
public protocol IntegerCodesTask {
    associatedtype Output
    func run<C: IntegerCodes>(_ codes: C.Type) -> Output
}

extension TensorType {
    /// The one dispatch point from a tensor type to its IntegerCodes (q8_0, q4_1, q4_k): every
    /// integer kernel, portable or VNNI, reaches its specialization through here. Nil for the
    /// types without integer codes (f32, f16, i64).
    @inlinable @inline(__always)
    public func withIntegerCodes<T: IntegerCodesTask>(_ task: T) -> T.Output? {
        switch self {
        case .q8_0: task.run(Q8_0Codes.self)
        case .q4_1: task.run(Q4_1Codes.self)
        case .q4_k: task.run(Q4_KCodes.self)
        // q5_0 / q6_0 run as the q8_0 blocks they expand into (TensorType.runType).
        case .f32, .f16, .i64, .q5_0, .q6_0: nil
        }
    }
}
