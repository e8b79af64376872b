// XXH64 (seed 0 by default), written from the public xxHash specification.
// Used for the bundle's header, manifest and frame checksums.

public enum XXH64 {
    private static let p1: UInt64 = 11_400_714_785_074_694_791
    private static let p2: UInt64 = 14_029_467_366_897_019_727
    private static let p3: UInt64 = 1_609_587_929_392_839_161
    private static let p4: UInt64 = 9_650_029_242_287_828_579
    private static let p5: UInt64 = 2_870_177_450_012_600_261

    @inline(__always) private static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }
    @inline(__always) private static func round(_ acc: UInt64, _ lane: UInt64) -> UInt64 {
        rotl(acc &+ lane &* p2, 31) &* p1
    }
    @inline(__always) private static func merge(_ acc: UInt64, _ v: UInt64) -> UInt64 {
        (acc ^ round(0, v)) &* p1 &+ p4
    }

    /// Hash of `bytes` with `seed`.
    public static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        let n = bytes.count
        guard let base = bytes.baseAddress else { return finish(seed &+ p5, base: nil, from: 0, to: 0) }
        var i = 0
        var acc: UInt64
        if n >= 32 {
            var v1 = seed &+ p1 &+ p2, v2 = seed &+ p2, v3 = seed, v4 = seed &- p1
            while i + 32 <= n {
                v1 = round(v1, UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
                v2 = round(v2, UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self)))
                v3 = round(v3, UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i + 16, as: UInt64.self)))
                v4 = round(v4, UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i + 24, as: UInt64.self)))
                i += 32
            }
            acc = rotl(v1, 1) &+ rotl(v2, 7) &+ rotl(v3, 12) &+ rotl(v4, 18)
            acc = merge(acc, v1); acc = merge(acc, v2); acc = merge(acc, v3); acc = merge(acc, v4)
        } else {
            acc = seed &+ p5
        }
        acc &+= UInt64(n)
        return finish(acc, base: base, from: i, to: n)
    }

    private static func finish(_ start: UInt64, base: UnsafeRawPointer?, from: Int, to n: Int) -> UInt64 {
        var acc = start
        var i = from
        if let base {
            while i + 8 <= n {
                acc ^= round(0, UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
                acc = rotl(acc, 27) &* p1 &+ p4
                i += 8
            }
            if i + 4 <= n {
                acc ^= UInt64(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt32.self))) &* p1
                acc = rotl(acc, 23) &* p2 &+ p3
                i += 4
            }
            while i < n {
                acc ^= UInt64(base.load(fromByteOffset: i, as: UInt8.self)) &* p5
                acc = rotl(acc, 11) &* p1
                i += 1
            }
        }
        acc ^= acc >> 33; acc &*= p2
        acc ^= acc >> 29; acc &*= p3
        acc ^= acc >> 32
        return acc
    }

    public static func hash(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 {
        bytes.withUnsafeBytes { hash($0, seed: seed) }
    }

    /// 16 lowercase hex digits.
    public static func hex(_ h: UInt64) -> String {
        let s = String(h, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}
