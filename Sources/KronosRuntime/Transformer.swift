// Transformer blocks over a batch of sequences, with a per-layer KV cache.
import Foundation

/// Keys and values of one layer for `batch` sequences, up to `capacity` positions each.
final class KVCache: @unchecked Sendable {
    let batch: Int, capacity: Int, width: Int
    var keys: UnsafeMutablePointer<Float>     // [batch, capacity, width]
    var values: UnsafeMutablePointer<Float>   // [batch, capacity, width]
    /// Positions filled (the same for every sequence).
    var length = 0

    init(batch: Int, capacity: Int, width: Int) {
        self.batch = batch; self.capacity = capacity; self.width = width
        keys = .allocate(capacity: batch * capacity * width)
        values = .allocate(capacity: batch * capacity * width)
    }
    deinit { keys.deallocate(); values.deallocate() }

    @inline(__always) func key(_ b: Int, _ p: Int) -> UnsafeMutablePointer<Float> { keys + (b * capacity + p) * width }
    @inline(__always) func value(_ b: Int, _ p: Int) -> UnsafeMutablePointer<Float> { values + (b * capacity + p) * width }

    // One head of attention for sequence b: query [hd] against the cached keys / values of
    // positions 0 ..< n (head slice h) -> out [hd] = softmax(q k^T * scale) v. scores: [n] scratch.
    @inline(__always)
    func attend(sequence b: Int, head h: Int, headDimension hd: Int, positions n: Int, query: UnsafePointer<Float>,
                scale: Float, scores: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>) {
        for p in 0..<n { scores[p] = dot(query, key(b, p) + h * hd, hd) * scale }
        softmaxInPlace(scores, n)
        out.initialize(repeating: 0, count: hd)
        for p in 0..<n { axpy(scores[p], value(b, p) + h * hd, out, hd) }
    }
}

/// Scratch for block forward passes over up to `rows` rows of width D and F.
final class BlockScratch {
    let h, q, k, v, att, f1, f3: UnsafeMutablePointer<Float>
    let rows: Int
    init(rows: Int, D: Int, F: Int) {
        self.rows = rows
        h = .allocate(capacity: rows * D); q = .allocate(capacity: rows * D); k = .allocate(capacity: rows * D)
        v = .allocate(capacity: rows * D); att = .allocate(capacity: rows * D)
        f1 = .allocate(capacity: rows * F); f3 = .allocate(capacity: rows * F)
    }
    deinit { for p in [h, q, k, v, att, f1, f3] { p.deallocate() } }
}

extension Block {
    var width: Int { norm1.count }
    var hidden: Int { w1.outputs }

    /// x [batch, newRows, D] (in place): one block over the new rows of every sequence, whose
    /// positions are cache.length ..< cache.length + newRows; their keys / values are appended.
    /// Attention is causal over the cached and new positions.
    func forward(_ x: UnsafeMutablePointer<Float>, batch: Int, newRows: Int, cache: KVCache, scratch s: BlockScratch) {
        let D = width, F = hidden, rows = batch * newRows
        let hd = D / heads
        let start = cache.length
        precondition(start + newRows <= cache.capacity && rows <= s.rows)
        rotary.ensure(start + newRows)

        norm1.withUnsafeBufferPointer { rmsNorm(x, weight: $0.baseAddress!, rows: rows, n: D, s.h) }
        q(s.h, rows: rows, into: s.q)
        k(s.h, rows: rows, into: s.k)
        v(s.h, rows: rows, into: s.v)
        // Rotary on queries and keys, then keys / values into the cache.
        for b in 0..<batch {
            for t in 0..<newRows {
                let r = b * newRows + t, p = start + t
                for h in 0..<heads {
                    rotary.apply(s.q + r * D + h * hd, position: p)
                    rotary.apply(s.k + r * D + h * hd, position: p)
                }
                cache.key(b, p).update(from: s.k + r * D, count: D)
                cache.value(b, p).update(from: s.v + r * D, count: D)
            }
        }
        cache.length = start + newRows
        attention(batch: batch, newRows: newRows, start: start, cache: cache, q: s.q, out: s.att, D: D, hd: hd)
        // x += out_proj(att)
        out(s.att, rows: rows, into: s.h)
        for i in 0..<(rows * D) { x[i] += s.h[i] }
        // x += w2(silu(w1 h) * w3 h), h = norm2(x)
        norm2.withUnsafeBufferPointer { rmsNorm(x, weight: $0.baseAddress!, rows: rows, n: D, s.h) }
        w1(s.h, rows: rows, into: s.f1)
        w3(s.h, rows: rows, into: s.f3)
        for i in 0..<(rows * F) { s.f1[i] = silu(s.f1[i]) * s.f3[i] }
        w2(s.f1, rows: rows, into: s.h)
        for i in 0..<(rows * D) { x[i] += s.h[i] }
    }

    // q [batch*newRows, D] against cached keys / values 0...(start+t) -> out [batch*newRows, D]
    func attention(batch: Int, newRows: Int, start: Int, cache: KVCache, q: UnsafeMutablePointer<Float>,
                   out: UnsafeMutablePointer<Float>, D: Int, hd: Int) {
        let scale = 1 / Float(hd).squareRoot()
        let tasks = batch * newRows * heads
        let total = start + newRows
        // Tasks are dealt round-robin: causal rows get longer towards the end of the window.
        let workers = tasks * total * hd > 1 << 14 ? Runtime.threads : 1
        parallelChunks(workers) { range in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: total)
            defer { scores.deallocate() }
            for task in stride(from: range.lowerBound, to: tasks, by: workers) {
                let h = task % heads, r = task / heads
                let b = r / newRows, t = r % newRows
                let n = start + t + 1
                cache.attend(sequence: b, head: h, headDimension: hd, positions: n, query: q + r * D + h * hd,
                             scale: scale, scores: scores, out: out + r * D + h * hd)
            }
        }
    }
}
