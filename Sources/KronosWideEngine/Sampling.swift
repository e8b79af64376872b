// Sampling of one logits row (ARCHITECTURE.md §5) and the portable random number generator.
import Foundation

/// Sampler settings: temperature, top-k (0 = off), top-p (1 = off).
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

/// The forecast loop's sampler: Sampling.filter + draw on one logits row at a time, the same
/// arithmetic in the same order (tested against them), with every buffer allocated once for up to
/// `capacity` logits, so a decode step allocates nothing.
public final class Sampler {
    public let capacity: Int
    private let l: UnsafeMutablePointer<Float>  // filtered logits [n]
    private let order: UnsafeMutablePointer<Int>  // indices, best first [n]
    private let probs: UnsafeMutablePointer<Float>  // top-p: softmax in `order` [n]
    private let remove: UnsafeMutablePointer<Bool>  // top-p: drop mask in `order` [n]
    private let p: UnsafeMutablePointer<Double>  // draw: probabilities [n]
    private let keys: UnsafeMutablePointer<UInt32>  // sort: keys of l, ascending = best first [n]
    private let keys2: UnsafeMutablePointer<UInt32>  // sort: the other side of each pass [n]
    private let order2: UnsafeMutablePointer<Int>  // sort: the other side of each pass [n]
    private let counts: UnsafeMutablePointer<Int>  // sort: one pass's digit counts [257]

    public init(capacity: Int) {
        self.capacity = capacity
        l = arena.buffer(count: capacity); order = arena.buffer(count: capacity); probs = arena.buffer(count: capacity)
        remove = arena.buffer(count: capacity); p = arena.buffer(count: capacity)
        keys = arena.buffer(count: capacity); keys2 = arena.buffer(count: capacity)
        order2 = arena.buffer(count: capacity)
        counts = arena.buffer(count: 257)
    }
    private let arena = ScratchArena()  // owns the buffers above

    /// Draws an index from logits [n] with settings `s` and one uniform number of `rng`.
    public func sample(_ logits: UnsafePointer<Float>, _ n: Int, _ s: SamplingSettings, rng: inout KronosRNG) -> Int {
        precondition(n >= 1 && n <= capacity)
        for i in 0..<n { l[i] = logits[i] / s.temperature }
        if s.topK > 0 {
            let k = min(s.topK, n)
            sortOrder(n)
            let threshold = l[order[k - 1]]  // the k-th largest value
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
    // correct sort gives the stable order Sampling.filter uses). A stable least-significant-digit
    // radix sort over 32-bit keys whose ascending order is l's descending order (−0 keyed as +0, its
    // equal), started from index order so that equal values stay in index order: 4 passes of 8 bits,
    // a pass skipped when all keys share its digit; no allocation. (It replaced a heapsort, whose
    // unpredictable comparisons cost ~3 % of a 5-sample forecast.)
    private func sortOrder(_ n: Int) {
        for i in 0..<n {
            let bits = (l[i] == 0 ? 0 : l[i]).bitPattern
            let ascending = bits & 0x8000_0000 != 0 ? ~bits : bits | 0x8000_0000  // unsigned order = float order
            keys[i] = ~ascending
            order[i] = i
        }
        var (key, index, nextKey, nextIndex) = (keys, order, keys2, order2)
        for shift in stride(from: UInt32(0), to: 32, by: 8) {
            for d in 0..<257 { counts[d] = 0 }
            for i in 0..<n { counts[Int((key[i] >> shift) & 0xFF) + 1] += 1 }
            if counts[Int((key[0] >> shift) & 0xFF) + 1] == n { continue }
            for d in 1..<257 { counts[d] += counts[d - 1] }  // counts[d]: first slot of digit d
            for i in 0..<n {
                let d = Int((key[i] >> shift) & 0xFF)
                let slot = counts[d]
                counts[d] = slot + 1
                nextKey[slot] = key[i]; nextIndex[slot] = index[i]
            }
            swap(&key, &nextKey); swap(&index, &nextIndex)
        }
        if index != order { order.update(from: index, count: n) }
    }
}
