import Foundation
import KronosQuant
import Testing

/// Deterministic source of test rows (SplitMix64 + Box-Muller), independent of the code under test.
struct TestRows {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
    mutating func gaussian() -> Float {
        let u1 = max(uniform(), 1e-300), u2 = uniform()
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }
    /// Gaussian rows with a per-row scale between 0.01 and 1 (like trained weights).
    mutating func rows(_ rows: Int, _ cols: Int) -> [Float] {
        var out = [Float]()
        out.reserveCapacity(rows * cols)
        for _ in 0..<rows {
            let s = Float(0.01 + uniform())
            for _ in 0..<cols { out.append(gaussian() * s) }
        }
        return out
    }
}

/// Named thresholds per type: relative round-trip RMSE on Gaussian rows, and relative error of a
/// quantized-row dot product against the float dot (normalised by |w| |x|).
enum Threshold {
    static let f16RelRMSE = 4e-4
    static let q8RelRMSE = 0.008
    static let q4RelRMSE = 0.085
    static let q4kRelRMSE = 0.095
    static let q5RelRMSE = 0.05
    static let q6RelRMSE = 0.025
    static let f16DotRel = 1e-4
    static let q8DotRel = 2e-3
    static let q4DotRel = 3e-2
    static let q4kDotRel = 3.5e-2
    static let q5DotRel = 1.5e-2
    static let q6DotRel = 7.5e-3
}

func roundTrip(_ type: TensorType, _ src: [Float], cols: Int, q4SearchSteps: Int = BlockQ4_1.defaultSearchSteps) throws
    -> (bytes: [UInt8], decoded: [Float])
{
    let rows = src.count / cols
    let rowBytes = type.rowBytes(columns: cols)!
    var bytes = [UInt8](repeating: 0xAA, count: rows * rowBytes)
    var out = [Float](repeating: .nan, count: src.count)
    try src.withUnsafeBufferPointer { s in
        try bytes.withUnsafeMutableBytes { b in
            for r in 0..<rows {
                try type.encodeRow(
                    s.baseAddress! + r * cols, columns: cols, into: b.baseAddress! + r * rowBytes,
                    q4SearchSteps: q4SearchSteps)
            }
        }
    }
    bytes.withUnsafeBytes { b in
        out.withUnsafeMutableBufferPointer { o in
            for r in 0..<rows {
                type.decodeRow(b.baseAddress! + r * rowBytes, columns: cols, into: o.baseAddress! + r * cols)
            }
        }
    }
    return (bytes, out)
}

func stats(_ a: [Float], _ b: [Float]) -> QuantErrorStats {
    a.withUnsafeBufferPointer { x in
        b.withUnsafeBufferPointer { y in
            QuantErrorStats.measure(source: x.baseAddress!, decoded: y.baseAddress!, count: a.count)
        }
    }
}

@Suite struct TraitsTests {
    @Test func traitsTable() {
        #expect(TensorType.q8_0.traits.blockSize == 32 && TensorType.q8_0.traits.bytesPerBlock == 34)
        #expect(TensorType.q4_1.traits.blockSize == 32 && TensorType.q4_1.traits.bytesPerBlock == 20)
        #expect(TensorType.q8_0.bitsPerWeight == 8.5)
        #expect(TensorType.q4_1.bitsPerWeight == 5.0)
        #expect(TensorType.f16.rowBytes(columns: 7) == 14)
        #expect(TensorType.q8_0.rowBytes(columns: 48) == nil)
        #expect(TensorType.q4_1.byteCount(shape: [3, 64]) == 120)
        #expect(TensorType.f32.byteCount(shape: [Int.max / 2, 4]) == nil)
        #expect(elementCount([Int.max, 2]) == nil)
        #expect(elementCount([3, 0, 5]) == 0)
    }
}

@Suite struct RoundTripTests {
    @Test(arguments: [TensorType.f16, .q8_0, .q4_1, .q4_k, .q5_0, .q6_0])
    func gaussianRowsUnderThreshold(type: TensorType) throws {
        var g = TestRows(seed: 42)
        let cols = 256
        let src = g.rows(64, cols)
        let (_, dec) = try roundTrip(type, src, cols: cols)
        let s = stats(src, dec)
        let limit = [
            TensorType.f16: Threshold.f16RelRMSE, .q8_0: Threshold.q8RelRMSE, .q4_1: Threshold.q4RelRMSE,
            .q4_k: Threshold.q4kRelRMSE, .q5_0: Threshold.q5RelRMSE, .q6_0: Threshold.q6RelRMSE,
        ][type]!
        #expect(s.relativeRMSE < limit, "\(type) relative RMSE \(s.relativeRMSE) >= \(limit)")
        #expect(s.relativeRMSE > 0, "a lossy type that reproduces Gaussian rows exactly is suspicious")
    }

    @Test func q8MaxErrorIsHalfAStepPerBlock() throws {
        var g = TestRows(seed: 7)
        let src = g.rows(32, 128)
        let (bytes, dec) = try roundTrip(.q8_0, src, cols: 128)
        for b in 0..<(src.count / 32) {
            let d = floatFromF16(UInt16(bytes[b * 34]) | UInt16(bytes[b * 34 + 1]) << 8)
            let amax = src[(b * 32)..<(b * 32 + 32)].map { abs($0) }.max()!
            for i in (b * 32)..<(b * 32 + 32) {
                #expect(abs(src[i] - dec[i]) <= d / 2 + amax * 0x1p-11 + 1e-12, "block \(b) element \(i)")
            }
        }
    }

    @Test func q4SearchBeatsPlainMinMax() throws {
        var g = TestRows(seed: 9)
        let src = g.rows(64, 256)
        let plain = stats(src, try roundTrip(.q4_1, src, cols: 256, q4SearchSteps: 0).decoded)
        let searched = stats(src, try roundTrip(.q4_1, src, cols: 256).decoded)
        #expect(searched.rmse < plain.rmse * 0.97, "search \(searched.rmse) vs plain \(plain.rmse)")
        // The plain scheme is within half a step of every value: step = range / 15.
        let decPlain = try roundTrip(.q4_1, src, cols: 256, q4SearchSteps: 0).decoded
        for b in 0..<(src.count / 32) {
            let blk = src[(b * 32)..<(b * 32 + 32)]
            let step = (blk.max()! - blk.min()!) / 15
            for i in blk.indices { #expect(abs(src[i] - decPlain[i]) <= step / 2 * 1.01 + abs(blk.min()!) * 0x1p-11) }
        }
    }
}

@Suite struct EdgeCaseTests {
    @Test(arguments: [TensorType.q8_0, .q4_1, .q4_k, .f16, .q5_0, .q6_0])
    func allZeroBlockIsExact(type: TensorType) throws {
        let n = type.traits.blockSize * 2
        let src = [Float](repeating: 0, count: n)
        let (_, dec) = try roundTrip(type, src, cols: n)
        #expect(dec.allSatisfy { $0 == 0 })
    }

    @Test(arguments: [TensorType.q8_0, .q4_1, .q4_k, .f16, .q5_0, .q6_0])
    func signedZerosDecodeToZero(type: TensorType) throws {
        let n = max(32, type.traits.blockSize)
        let src = (0..<n).map { $0 % 2 == 0 ? Float(0) : -Float(0) }
        let (_, dec) = try roundTrip(type, src, cols: n)
        #expect(dec.allSatisfy { $0 == 0 })
    }

    @Test(arguments: [TensorType.q8_0, .q4_1, .q5_0, .q6_0])
    func oneHugeOutlier(type: TensorType) throws {
        var src = (0..<32).map { Float($0) * 1e-3 - 0.016 }
        src[5] = 1000
        let (_, dec) = try roundTrip(type, src, cols: 32)
        #expect(abs(dec[5] - 1000) / 1000 < 2e-3, "outlier \(dec[5])")
        let step: Float = [TensorType.q8_0: 1000 / 127, .q4_1: 1000.016 / 15, .q5_0: 1000 / 15, .q6_0: 1000 / 31][type]!
        for i in 0..<32 where i != 5 { #expect(abs(dec[i] - src[i]) <= step / 2 * 1.01) }
    }

    @Test(arguments: [TensorType.q8_0, .q4_1, .q4_k, .f16, .q5_0, .q6_0])
    func denormalsStayFiniteAndSmall(type: TensorType) throws {
        let n = max(32, type.traits.blockSize)
        let src = (0..<n).map { Float($0 % 32 - 16) * (Float.leastNormalMagnitude / 16) }
        let (_, dec) = try roundTrip(type, src, cols: n)
        #expect(dec.allSatisfy { $0.isFinite && abs($0) <= Float.leastNormalMagnitude })
    }

    @Test func unrepresentableScaleIsRefused() {
        let src = [Float](repeating: 1e7, count: 32)
        #expect(throws: QuantError.unrepresentable(block: 0)) { _ = try roundTrip(.q8_0, src, cols: 32) }
        #expect(throws: QuantError.rowNotBlockAligned(columns: 48, blockSize: 32)) {
            var b = [UInt8](repeating: 0, count: 100)
            try [Float](repeating: 0, count: 48).withUnsafeBufferPointer { s in
                try b.withUnsafeMutableBytes {
                    try TensorType.q8_0.encodeRow(s.baseAddress!, columns: 48, into: $0.baseAddress!)
                }
            }
        }
    }
}

@Suite struct ByteLayoutTests {
    @Test func q8Layout() throws {
        // absmax 127 -> d = 1.0 exactly (f16 0x3C00), codes equal the values.
        var src = [Float]()
        for i in 0..<32 { src.append(Float(i * 8 - 127)) }  // -127 ... 121
        src[31] = 127
        let (bytes, dec) = try roundTrip(.q8_0, src, cols: 32)
        #expect(bytes.count == 34)
        #expect(bytes[0] == 0x00 && bytes[1] == 0x3C)
        for i in 0..<32 { #expect(Int8(bitPattern: bytes[2 + i]) == Int8(src[i])) }
        #expect(dec == src)
    }

    @Test func q4Layout() throws {
        // values 0...15 then 15...0: d = 1.0 (0x3C00), m = 0 (0x0000), byte j = j | (15 - j) << 4.
        let up: [Float] = (0..<16).map { Float($0) }
        let src: [Float] = up + up.reversed()
        let (bytes, dec) = try roundTrip(.q4_1, src, cols: 32)
        let expected: [UInt8] = [
            0x00, 0x3C, 0x00, 0x00,
            0xF0, 0xE1, 0xD2, 0xC3, 0xB4, 0xA5, 0x96, 0x87,
            0x78, 0x69, 0x5A, 0x4B, 0x3C, 0x2D, 0x1E, 0x0F,
        ]
        #expect(bytes == expected)
        #expect(dec == src)
    }

    @Test func q4NegativeMinimum() throws {
        // values -8 ... 7 (twice): d = 1, m = -8 (f16 0xC800), codes 0...15.
        let src = (0..<32).map { Float($0 % 16 - 8) }
        let (bytes, dec) = try roundTrip(.q4_1, src, cols: 32)
        #expect(Array(bytes[0..<4]) == [0x00, 0x3C, 0x00, 0xC8])
        #expect(bytes[4] == 0x00 && bytes[19] == 0xFF)
        #expect(dec == src)
    }

    @Test func f16AndBF16Exact() {
        #expect(f16Bits(1.0) == 0x3C00)
        #expect(f16Bits(-2.0) == 0xC000)
        #expect(f16Bits(65520) == 0x7C00)  // rounds to +inf
        #expect(floatFromF16(0x0001) == 0x1p-24)
        #expect(floatFromBF16(0x3F80) == 1.0)
        #expect(floatFromBF16(0xC0A0) == -5.0)
        #expect(floatFromBF16(0x0001) == Float(bitPattern: 0x0001_0000))
    }
}

@Suite struct Q4KTests {
    @Test func layout() throws {
        // Sub-block j holds (i mod 16) * (j + 1) for i < 16 and the same again: scale j + 1, minimum 0.
        // Max scale 8 -> d = 8/63 (f16), 6-bit scales round(s / d); dmin = 0.
        var src = [Float]()
        for j in 0..<8 { for i in 0..<32 { src.append(Float((i % 16) * (j + 1))) } }
        let (bytes, dec) = try roundTrip(.q4_k, src, cols: 256)
        #expect(bytes.count == 144)
        let d = floatFromF16(UInt16(bytes[0]) | UInt16(bytes[1]) << 8)
        #expect(d == Float(Float16(Float(8) / 63)))
        #expect(bytes[2] == 0 && bytes[3] == 0)  // dmin = 0
        // 6-bit fields as a little-endian bit stream: field k at bits 6k ..< 6k + 6.
        var bits = [Int]()
        for b in bytes[4..<16] { for k in 0..<8 { bits.append(Int(b >> UInt8(k)) & 1) } }
        let fields = (0..<16).map { k in (0..<6).reduce(0) { $0 | bits[6 * k + $1] << $1 } }
        // Exact data: the nearest 6-bit scale or a neighbour (the quantizer keeps the best by error).
        for j in 0..<8 { #expect(abs(fields[j] - Int((Float(j + 1) / d).rounded())) <= 1, "scale field \(j)") }
        #expect(fields[8..<16].allSatisfy { $0 == 0 })
        // Codes: sub-block 0, byte i = code(i) | code(i + 16) << 4 = i | i << 4.
        let s0 = d * Float(fields[0])
        for i in 0..<16 {
            let q = Int((Float(i) / s0).rounded())
            #expect(Int(bytes[16 + i] & 0x0F) == q && Int(bytes[16 + i] >> 4) == q)
        }
        // Round trip within half a (6-bit quantized) step of each sub-block.
        for j in 0..<8 {
            let step = d * Float(fields[j])
            for i in 0..<32 { #expect(abs(dec[32 * j + i] - src[32 * j + i]) <= step / 2 + 1e-4) }
        }
    }

    @Test func negativeOffsetsAndOutlier() throws {
        var g = TestRows(seed: 5)
        var src = g.rows(1, 256).map { $0 - 0.5 }
        src[77] = 40
        let (bytes, dec) = try roundTrip(.q4_k, src, cols: 256)
        #expect(abs(dec[77] - 40) / 40 < 0.05, "outlier \(dec[77])")
        // Sub-blocks without the outlier: half a 4-bit step of their own range, plus what the 6-bit
        // granularity of scale (d, over 15 codes) and minimum (dmin) can add, although their 6-bit
        // scales are quantized against the outlier's.
        let d = floatFromF16(UInt16(bytes[0]) | UInt16(bytes[1]) << 8)
        let dmin = floatFromF16(UInt16(bytes[2]) | UInt16(bytes[3]) << 8)
        for j in 0..<8 where j != 77 / 32 {
            let blk = src[(32 * j)..<(32 * j + 32)]
            let bound = (blk.max()! - blk.min()!) / 15 / 2 + 7.5 * d + dmin
            let err = (32 * j..<32 * j + 32).map { abs(dec[$0] - src[$0]) }.max()!
            #expect(err <= bound, "sub-block \(j): max error \(err), bound \(bound)")
        }
    }
}

@Suite struct DotTests {
    @Test(arguments: [TensorType.f32, .f16, .q8_0, .q4_1, .q4_k, .q5_0, .q6_0])
    func quantizedDotMatchesFloatDot(type: TensorType) throws {
        var g = TestRows(seed: 1234)
        let cols = 512
        let w = g.rows(16, cols)
        let x = g.rows(1, cols)
        let rowBytes = type.rowBytes(columns: cols)!
        let (bytes, _) = try roundTrip(type, w, cols: cols)
        let limit = [
            TensorType.f32: 1e-6, .f16: Threshold.f16DotRel, .q8_0: Threshold.q8DotRel, .q4_1: Threshold.q4DotRel,
            .q4_k: Threshold.q4kDotRel, .q5_0: Threshold.q5DotRel, .q6_0: Threshold.q6DotRel,
        ][type]!
        for r in 0..<16 {
            var exact = 0.0, nw = 0.0, nx = 0.0
            for i in 0..<cols {
                exact += Double(w[r * cols + i]) * Double(x[i])
                nw += Double(w[r * cols + i] * w[r * cols + i]); nx += Double(x[i] * x[i])
            }
            let got = bytes.withUnsafeBytes { b in
                x.withUnsafeBufferPointer { xp in
                    type.dotRow(b.baseAddress! + r * rowBytes, xp.baseAddress!, columns: cols)
                }
            }
            let rel = abs(Double(got) - exact) / (nw * nx).squareRoot()
            #expect(rel < limit, "\(type) row \(r): relative dot error \(rel)")
        }
    }
}

/// The load-time finiteness check finds a non-finite value or scale wherever it is: in every f16
/// field a block type stores (d, and m / dmin), past the first 64 / 256 values or blocks, and
/// nowhere in finite data.
@Suite struct FinitenessCheckTests {
    @Test(arguments: [TensorType.q8_0, .q4_1, .q4_k, .q5_0, .q6_0])
    func blockScales(type: TensorType) {
        let size = type.traits.bytesPerBlock, blocks = 700
        var bytes = [UInt8](repeating: 0, count: size * blocks)
        for b in 0..<blocks { bytes[b * size] = 0x00; bytes[b * size + 1] = 0x3C }  // d = 1.0
        #expect(bytes.withUnsafeBytes { type.firstNonFinite($0.baseAddress!, byteCount: $0.count) } == nil)
        let fields = type == .q4_1 || type == .q4_k ? [0, 2] : [0]
        for field in fields {
            for (bits, block) in [(UInt16(0x7C00), 3), (0xFE00, 513), (0x7E01, 699)] {  // +Inf, NaN, NaN
                var crafted = bytes
                crafted[block * size + field] = UInt8(bits & 0xFF); crafted[block * size + field + 1] = UInt8(bits >> 8)
                #expect(
                    crafted.withUnsafeBytes { type.firstNonFinite($0.baseAddress!, byteCount: $0.count) } == block,
                    "field \(field) block \(block)")
            }
        }
        // q8_0's codes after d are not scales: 0x7C in a code byte is a finite weight.
        if type == .q8_0 {
            var codes = bytes
            codes[5 * size + 2] = 0x00; codes[5 * size + 3] = 0x7C
            #expect(codes.withUnsafeBytes { type.firstNonFinite($0.baseAddress!, byteCount: $0.count) } == nil)
        }
    }

    @Test func floatValues() {
        var f32 = [Float](repeating: 1, count: 1000)
        #expect(f32.withUnsafeBytes { TensorType.f32.firstNonFinite($0.baseAddress!, byteCount: $0.count) } == nil)
        f32[777] = -.infinity
        #expect(f32.withUnsafeBytes { TensorType.f32.firstNonFinite($0.baseAddress!, byteCount: $0.count) } == 777)
        var f16 = [UInt16](repeating: 0x3C00, count: 1000)
        #expect(f16.withUnsafeBytes { TensorType.f16.firstNonFinite($0.baseAddress!, byteCount: $0.count) } == nil)
        f16[130] = 0x7D00  // NaN
        #expect(f16.withUnsafeBytes { TensorType.f16.firstNonFinite($0.baseAddress!, byteCount: $0.count) } == 130)
    }
}
