// Sampling of one logits row (KRONOS.md §5) and the portable random number generator.
import Foundation

/// Sampler settings: temperature, top-k (0 = off), top-p (1 = off).
public struct SamplingSettings: Sendable, Equatable, Codable {
    public var temperature: Float = 1
    public var topK: Int = 0
    public var topP: Float = 0.9
    public init(temperature: Float = 1, topK: Int = 0, topP: Float = 0.9) {
        self.temperature = temperature; self.topK = topK; self.topP = topP
    }
    enum CodingKeys: String, CodingKey {
        case temperature
        case topK = "top_k"
        case topP = "top_p"
    }
}

public enum Sampling {
    /// logits [n] -> filtered logits (removed entries = -inf), after dividing by the temperature.
    /// top_k > 0: keep every logit ≥ the k-th largest (ties kept), top_p ignored.
    /// else top_p < 1: sort descending, cumulative softmax, drop entries whose cumulative
    /// probability exceeds top_p, the drop mask shifted right by one (the first entry always kept).
    public static func filter(_ logits: [Float], _ s: SamplingSettings) -> [Float] {
        var l = logits.map { $0 / s.temperature }
        let n = l.count
        if s.topK > 0 {
            let k = min(s.topK, n)
            let threshold = l.sorted(by: >)[k - 1]
            for i in 0..<n where l[i] < threshold { l[i] = -.infinity }
        } else if s.topP < 1 {
            // Descending order; ties keep index order (stable).
            let order = (0..<n).sorted { l[$0] != l[$1] ? l[$0] > l[$1] : $0 < $1 }
            let sorted = order.map { l[$0] }
            let m = sorted[0]
            var probs = sorted.map { expf32($0 - m) }
            var total: Float = 0
            for p in probs { total += p }
            for i in 0..<n { probs[i] /= total }
            var cumulative: Float = 0
            var remove = [Bool](repeating: false, count: n)
            for i in 0..<n {
                cumulative += probs[i]
                remove[i] = cumulative > s.topP
            }
            // shift right by one: entry i is dropped when the cumulative before it already exceeded top_p
            for i in stride(from: n - 1, to: 0, by: -1) { remove[i] = remove[i - 1] }
            remove[0] = false
            for i in 0..<n where remove[i] { l[order[i]] = -.infinity }
        }
        return l
    }

    /// Softmax of filtered logits (probabilities in Double).
    public static func probabilities(_ filtered: [Float]) -> [Double] {
        let m = filtered.max() ?? 0
        var p = filtered.map { $0 == -.infinity ? 0 : Double(expf32($0 - m)) }
        let s = p.reduce(0, +)
        for i in p.indices { p[i] /= s }
        return p
    }

    /// Draws an index from the filtered logits with one uniform number of `rng`.
    public static func draw(_ filtered: [Float], rng: inout KronosRNG) -> Int {
        let p = probabilities(filtered)
        let u = rng.nextDouble()
        var c = 0.0
        var last = 0
        for i in p.indices where p[i] > 0 {
            c += p[i]
            last = i
            if u < c { return i }
        }
        return last
    }

    /// Full sampling of one logits row.
    public static func sample(_ logits: [Float], _ s: SamplingSettings, rng: inout KronosRNG) -> Int {
        draw(filter(logits, s), rng: &rng)
    }
}

/// e^x of a Float, computed in Double and rounded once.
@inline(__always) func expf32(_ x: Float) -> Float { Float(Foundation.exp(Double(x))) }

/// The portable generator of `--seed`: xoshiro256** (Blackman & Vigna) seeded by SplitMix64 from
/// the 64-bit seed. Integer arithmetic only, so the same seed gives the same stream on any machine.
/// nextDouble() = (next() >> 11) × 2^-53, uniform in [0, 1).
public struct KronosRNG: Sendable {
    private var s0, s1, s2, s3: UInt64

    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitmix(); s1 = splitmix(); s2 = splitmix(); s3 = splitmix()
    }

    @inline(__always) private static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    public mutating func next() -> UInt64 {
        let result = Self.rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = Self.rotl(s3, 45)
        return result
    }

    public mutating func nextDouble() -> Double { Double(next() >> 11) * 0x1p-53 }
}

/// The forecast loop's sampler: Sampling.filter + draw on one logits row at a time, the same
/// arithmetic in the same order (tested against them), with every buffer allocated once for up to
/// `capacity` logits, so a decode step allocates nothing.
public final class Sampler {
    public let capacity: Int
    private let l: UnsafeMutablePointer<Float>        // filtered logits [n]
    private let order: UnsafeMutablePointer<Int>      // indices, best first [n]
    private let probs: UnsafeMutablePointer<Float>    // top-p: softmax in `order` [n]
    private let remove: UnsafeMutablePointer<Bool>    // top-p: drop mask in `order` [n]
    private let p: UnsafeMutablePointer<Double>       // draw: probabilities [n]

    public init(capacity: Int) {
        self.capacity = capacity
        l = .allocate(capacity: capacity); order = .allocate(capacity: capacity); probs = .allocate(capacity: capacity)
        remove = .allocate(capacity: capacity); p = .allocate(capacity: capacity)
    }
    deinit { l.deallocate(); order.deallocate(); probs.deallocate(); remove.deallocate(); p.deallocate() }

    /// Draws an index from logits [n] with settings `s` and one uniform number of `rng`.
    public func sample(_ logits: UnsafePointer<Float>, _ n: Int, _ s: SamplingSettings, rng: inout KronosRNG) -> Int {
        precondition(n >= 1 && n <= capacity)
        for i in 0..<n { l[i] = logits[i] / s.temperature }
        if s.topK > 0 {
            let k = min(s.topK, n)
            sortOrder(n)
            let threshold = l[order[k - 1]]   // the k-th largest value
            for i in 0..<n where l[i] < threshold { l[i] = -.infinity }
        } else if s.topP < 1 {
            sortOrder(n)
            let m = l[order[0]]
            var total: Float = 0
            for i in 0..<n { probs[i] = expf32(l[order[i]] - m); total += probs[i] }
            var cumulative: Float = 0
            for i in 0..<n {
                probs[i] /= total
                cumulative += probs[i]
                remove[i] = cumulative > s.topP
            }
            for i in stride(from: n - 1, to: 0, by: -1) { remove[i] = remove[i - 1] }
            remove[0] = false
            for i in 0..<n where remove[i] { l[order[i]] = -.infinity }
        }
        // Softmax in Double (index order), then the cumulative walk.
        var m = l[0]
        for i in 1..<max(n, 1) where m < l[i] { m = l[i] }
        var sum = 0.0
        for i in 0..<n { p[i] = l[i] == -.infinity ? 0 : Double(expf32(l[i] - m)); sum += p[i] }
        for i in 0..<n { p[i] /= sum }
        let u = rng.nextDouble()
        var c = 0.0, last = 0
        for i in 0..<n where p[i] > 0 {
            c += p[i]
            last = i
            if u < c { return i }
        }
        return last
    }

    // order [n] = 0 ..< n sorted by descending l, ties by index (a strict total order, so any
    // correct sort gives the stable order Sampling.filter uses); in place (heapsort), no allocation.
    private func sortOrder(_ n: Int) {
        let l = self.l, order = self.order
        for i in 0..<n { order[i] = i }
        // Max-heap on "comes later": the last-to-come is on top and is swapped to the end.
        @inline(__always) func after(_ a: Int, _ b: Int) -> Bool { l[a] != l[b] ? l[a] < l[b] : a > b }
        func siftDown(_ start: Int, _ end: Int) {
            var root = start
            while true {
                var child = 2 * root + 1
                if child >= end { return }
                if child + 1 < end && after(order[child + 1], order[child]) { child += 1 }
                if after(order[child], order[root]) { order.swapAt(root, child); root = child } else { return }
            }
        }
        for start in stride(from: n / 2 - 1, through: 0, by: -1) { siftDown(start, n) }
        for end in stride(from: n - 1, to: 0, by: -1) {
            order.swapAt(0, end)
            siftDown(0, end)
        }
    }
}

private extension UnsafeMutablePointer {
    @inline(__always) func swapAt(_ i: Int, _ j: Int) { let t = self[i]; self[i] = self[j]; self[j] = t }
}
