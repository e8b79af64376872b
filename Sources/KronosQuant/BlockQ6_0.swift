// Q5_0 and Q6_0: symmetric 5- and 6-bit blocks of 32 values, for the tensors a mixed recipe keeps
// above 4 bits (5.5 and 6.5 bits per weight, between q4_k's 4.5 and q8_0's 8.5).
//
// Byte layout of one Q5_0 block (22 bytes, no padding):
//   offset 0  u16     d    scale as IEEE binary16, little-endian
//   offset 2  u8[16]  ql   low 4 bits of the stored codes: byte j holds element j in its low nibble
//                          and element j + 16 in its high nibble (as in Q4_1)
//   offset 18 u32     qh   bit i (little-endian) is bit 4 of element i's stored code
// Stored code u in 0...31; value i = d * (u_i - 16), so q = u - 16 in -16...15.
//
// Byte layout of one Q6_0 block (26 bytes, no padding):
//   offset 0  u16     d    scale as IEEE binary16, little-endian
//   offset 2  u8[16]  ql   low 4 bits of the stored codes, as Q5_0
//   offset 18 u8[8]   qh   bits 4-5 of element i's stored code at bits 2(i % 4) ... 2(i % 4) + 1 of
//                          byte i / 4
// Stored code u in 0...63; value i = d * (u_i - 32), so q = u - 32 in -32...31.
//
// Both are q8_0 with narrower codes: a reader may expand them, exactly, into q8_0 blocks (the same
// d, codes q), which is how the engine runs them (its q8_0 kernels, float and integer).
//
// Reference quantizer: among the scales amax / (levels) for levels around the code range's
// half-width, and the least-squares refit of each, the one with the smallest squared error (or
// importance-weighted error, Weighted.swift) after rounding d to f16.

/// A symmetric block of 32 codes in lowest...highest, d as f16: Q5_0 (5 bits) and Q6_0 (6 bits).
public protocol SymmetricNarrowBlock {
    /// Bytes of one block.
    static var byteCount: Int { get }
    /// Code range: q in lowest...highest (stored as q - lowest).
    static var lowest: Int { get }
    static var highest: Int { get }
    /// The high bits of stored code u (u >> 4) of element i into / out of the block.
    static func storeHigh(_ high: UInt8, element i: Int, into block: UnsafeMutableRawPointer)
    static func loadHigh(element i: Int, from block: UnsafeRawPointer) -> UInt8
}

public enum BlockQ5_0: SymmetricNarrowBlock {
    @inlinable public static var count: Int { 32 }
    public static var byteCount: Int { 22 }
    public static var lowest: Int { -16 }
    public static var highest: Int { 15 }
    public static func storeHigh(_ high: UInt8, element i: Int, into block: UnsafeMutableRawPointer) {
        let p = block.advanced(by: 18 + i / 8).assumingMemoryBound(to: UInt8.self)
        p.pointee |= (high & 1) << UInt8(i % 8)
    }
    public static func loadHigh(element i: Int, from block: UnsafeRawPointer) -> UInt8 {
        (block.load(fromByteOffset: 18 + i / 8, as: UInt8.self) >> UInt8(i % 8)) & 1
    }
}

public enum BlockQ6_0: SymmetricNarrowBlock {
    @inlinable public static var count: Int { 32 }
    public static var byteCount: Int { 26 }
    public static var lowest: Int { -32 }
    public static var highest: Int { 31 }
    public static func storeHigh(_ high: UInt8, element i: Int, into block: UnsafeMutableRawPointer) {
        let p = block.advanced(by: 18 + i / 4).assumingMemoryBound(to: UInt8.self)
        p.pointee |= (high & 3) << UInt8(2 * (i % 4))
    }
    public static func loadHigh(element i: Int, from block: UnsafeRawPointer) -> UInt8 {
        (block.load(fromByteOffset: 18 + i / 4, as: UInt8.self) >> UInt8(2 * (i % 4))) & 3
    }
}

extension SymmetricNarrowBlock {
    /// The code of v for inverse scale id: round half away from zero, clamped to the code range.
    @inline(__always)
    static func code(_ v: Float, _ id: Float) -> Float {
        min(Float(highest), max(Float(lowest), (v * id).rounded(.toNearestOrAwayFromZero)))
    }

    /// Reference quantizer for one block: x [32] (weights w [32], or nil for the plain squared
    /// error) -> block. Returns false when the block's scale would overflow f16.
    @discardableResult
    public static func quantize(
        _ x: UnsafePointer<Float>, weights w: UnsafePointer<Float>? = nil, into block: UnsafeMutableRawPointer
    ) -> Bool {
        var amax: Float = 0
        for i in 0..<32 { amax = max(amax, abs(x[i])) }
        let half = Float(highest)  // the positive half-width (the negative side has one level more)
        guard amax / half <= float16Max else { return false }
        var best: Float = 0, bestError = Float.infinity
        func consider(_ d: Float) {
            guard d > 0, d <= float16Max else { return }
            let d16 = Float(Float16(d))
            guard d16 > 0 else { return }
            let id = 1 / d16
            var e: Float = 0
            for i in 0..<32 {
                let r = x[i] - d16 * code(x[i], id)
                e += (w?[i] ?? 1) * r * r
            }
            if e < bestError { best = d16; bestError = e }
        }
        if amax > 0 {
            // levels from half - 1 to half + 1 (the top one uses the extra negative level for the
            // largest negative values), each with its least-squares refit.
            for step in 0...8 {
                let d = amax / (half - 1 + Float(step) / 4)
                consider(d)
                var sxq: Float = 0, sqq: Float = 0
                for i in 0..<32 {
                    let q = code(x[i], 1 / d), wi = w?[i] ?? 1
                    sxq += wi * x[i] * q; sqq += wi * q * q
                }
                if sqq > 0 { consider(sxq / sqq) }
            }
        }
        block.storeBytes(of: Float16(best).bitPattern.littleEndian, toByteOffset: 0, as: UInt16.self)
        recode(x, block: block)
        return true
    }

    /// Rewrites the codes of a block for values x [32], keeping its d.
    static func recode(_ x: UnsafePointer<Float>, block: UnsafeMutableRawPointer) {
        let d = loadF16(block), id: Float = d > 0 ? 1 / d : 0
        for b in 2..<byteCount { block.storeBytes(of: 0, toByteOffset: b, as: UInt8.self) }
        let ql = block.advanced(by: 2).assumingMemoryBound(to: UInt8.self)
        for i in 0..<32 {
            let u = UInt8(Int(code(x[i], id)) - lowest)
            ql[i % 16] |= (u & 0x0F) << (i < 16 ? 0 : 4)
            storeHigh(u >> 4, element: i, into: block)
        }
    }

    /// Code q (stored code less the offset) of element i.
    @inline(__always)
    public static func codeAt(_ i: Int, _ block: UnsafeRawPointer) -> Int {
        let byte = block.load(fromByteOffset: 2 + i % 16, as: UInt8.self)
        let low = i < 16 ? byte & 0x0F : byte >> 4
        return Int(low | (loadHigh(element: i, from: block) << 4)) + lowest
    }

    /// Reference dequantizer: block -> y [32].
    public static func dequantize(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = loadF16(block)
        for i in 0..<32 { y[i] = d * Float(codeAt(i, block)) }
    }

    /// Reference dot product of one block with x [32].
    public static func dot(_ block: UnsafeRawPointer, _ x: UnsafePointer<Float>) -> Float {
        let d = loadF16(block)
        var s: Float = 0
        for i in 0..<32 { s += Float(codeAt(i, block)) * x[i] }
        return d * s
    }

    /// The same values as one q8_0 block [34 bytes]: the same d bits, codes q as int8 (exact).
    public static func expand(_ block: UnsafeRawPointer, into q8: UnsafeMutableRawPointer) {
        q8.storeBytes(of: block.load(as: UInt16.self), toByteOffset: 0, as: UInt16.self)
        for i in 0..<32 { q8.storeBytes(of: Int8(codeAt(i, block)), toByteOffset: 2 + i, as: Int8.self) }
    }
}
