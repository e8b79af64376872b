// Q8_0: symmetric 8-bit blocks of 32 values.
//
// Byte layout of one block (34 bytes, no padding):
//   offset 0  u16   d      scale as IEEE binary16, little-endian; d = absmax / 127 rounded to f16
//   offset 2  i8[32] qs    codes, element i of the block at offset 2 + i
// Value i = d * qs[i]. Codes are computed against the f16-rounded d and clamped to [-127, 127],
// so -128 never occurs.

public enum BlockQ8_0 {
    /// Elements per block.
    @inlinable public static var count: Int { 32 }
    /// Bytes per block.
    @inlinable public static var byteCount: Int { 34 }

    /// Reference quantizer for one block: x [32] -> block [34 bytes].
    /// Returns false (writing nothing meaningful) when absmax / 127 overflows f16.
    @discardableResult
    public static func quantize(_ x: UnsafePointer<Float>, into block: UnsafeMutableRawPointer) -> Bool {
        var amax: Float = 0
        for i in 0..<count { amax = max(amax, abs(x[i])) }
        let scale = amax / 127
        guard scale <= float16Max else { return false }
        let d16 = Float16(scale)
        let d = Float(d16)
        let id: Float = d > 0 ? 1 / d : 0
        block.storeBytes(of: d16.bitPattern.littleEndian, toByteOffset: 0, as: UInt16.self)
        let qs = block.advanced(by: 2).assumingMemoryBound(to: Int8.self)
        for i in 0..<count { qs[i] = Int8(code(x[i], id)) }
        return true
    }

    /// The code of v for inverse scale id: round half away from zero, clamped to -127...127.
    @inline(__always)
    static func code(_ v: Float, _ id: Float) -> Float {
        min(127, max(-127, (v * id).rounded(.toNearestOrAwayFromZero)))
    }

    /// Reference dequantizer: block [34 bytes] -> y [32].
    public static func dequantize(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = loadF16(block)
        let qs = block.advanced(by: 2).assumingMemoryBound(to: Int8.self)
        for i in 0..<count { y[i] = d * Float(qs[i]) }
    }

    /// Reference dot product of one block with x [32].
    @inline(__always)
    public static func dot(_ block: UnsafeRawPointer, _ x: UnsafePointer<Float>) -> Float {
        let d = loadF16(block)
        let qs = block.advanced(by: 2).assumingMemoryBound(to: Int8.self)
        var s: Float = 0
        for i in 0..<count { s += Float(qs[i]) * x[i] }
        return d * s
    }
}
