import Foundation

/// The portable generator of `--seed`: xoshiro256** (Blackman & Vigna) seeded by SplitMix64 from
/// the 64-bit seed. Integer arithmetic only, so the same seed gives the same stream on any machine.
/// nextDouble() = (next() >> 11) × 2^-53, uniform in [0, 1).
public struct KronosRNG: Sendable {
    @usableFromInline var s0, s1, s2, s3: UInt64

    public init(seed: UInt64) {
        var x = seed
        s0 = Self.splitMix64(&x); s1 = Self.splitMix64(&x); s2 = Self.splitMix64(&x); s3 = Self.splitMix64(&x)
    }

    /// SplitMix64 (Steele, Lea, Flood): advances `state` by the golden gamma and returns its mix.
    /// Also the hash of seeds derived from others (a backtest origin's seed).
    public static func splitMix64(_ state: inout UInt64) -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inlinable @inline(__always) static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    @inlinable public mutating func next() -> UInt64 {
        let result = Self.rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = Self.rotl(s3, 45)
        return result
    }

    @inlinable public mutating func nextDouble() -> Double { Double(next() >> 11) * 0x1p-53 }
}
