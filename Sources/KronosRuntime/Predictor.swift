// Incremental decoding: a session keeps each layer's keys / values (and the dependency layer's keys
// / values of the context rows) for a batch of sequences in lockstep.
import Foundation
import KronosBundle

final class PredictorSession {
    let model: PredictorModel
    let batch: Int
    let capacity: Int
    private let caches: [KVCache]
    private let depCache: KVCache          // dep_layer k/v projections of the context rows
    // Scratch, sized once for a full window of every sequence: no allocation per step.
    private let scratch: BlockScratch      // [batch * capacity] rows
    private let x: UnsafeMutablePointer<Float>       // [batch * capacity, D] hidden states
    private let pair: UnsafeMutablePointer<Float>    // [2D] scaled (emb_s1, emb_s2) of one token
    private let time: UnsafeMutablePointer<Float>    // [D] time embedding of one token
    private let emb: UnsafeMutablePointer<Float>     // [batch, D] dependency-layer queries before projection
    private let query: UnsafeMutablePointer<Float>   // [batch, D]
    private let attended: UnsafeMutablePointer<Float> // [batch, D]
    private let mixed: UnsafeMutablePointer<Float>   // [batch, D] out_proj + residual, then normed
    /// Final normed context of each sequence's last row [batch, D].
    private(set) var lastContext: [Float]
    /// s1 logits of each sequence's last row [batch, V1].
    private(set) var s1Logits: [Float]
    /// s2 logits of the last `computeS2Logits` [batch, V2].
    private(set) var s2Logits: [Float]

    /// Rows cached per sequence.
    var length: Int { depCache.length }
    /// Tokens of the sequences consumed so far: the cached rows are tokens consumed - length ..< consumed.
    var consumed = 0

    init(model: PredictorModel, batch: Int, capacity: Int) {
        self.model = model; self.batch = batch; self.capacity = capacity
        let D = model.config.modelDimension
        caches = (0..<model.blocks.count).map { _ in KVCache(batch: batch, capacity: capacity, width: D) }
        depCache = KVCache(batch: batch, capacity: capacity, width: D)
        scratch = BlockScratch(rows: batch * capacity, D: D, F: model.config.feedForwardDimension, columns: 2 * D,
                               positions: capacity)
        x = .allocate(capacity: batch * capacity * D)
        pair = .allocate(capacity: 2 * D); time = .allocate(capacity: D)
        emb = .allocate(capacity: batch * D); query = .allocate(capacity: batch * D)
        attended = .allocate(capacity: batch * D); mixed = .allocate(capacity: batch * D)
        lastContext = [Float](repeating: 0, count: batch * D)
        s1Logits = [Float](repeating: 0, count: batch * model.config.s1Vocabulary)
        s2Logits = [Float](repeating: 0, count: batch * model.config.s2Vocabulary)
    }

    deinit {
        for p in [x, pair, time, emb, query, attended, mixed] { p.deallocate() }
    }

    /// Forgets every position (the next `append` starts at position 0).
    func reset() {
        for c in caches { c.clear() }
        depCache.clear()
    }

    /// Forgets the oldest row of every sequence, keeping the keys / values the remaining rows got
    /// while it was in the window (CacheMode.approxSlide).
    func evictOldest() {
        for c in caches { c.evictOldest() }
        depCache.evictOldest()
    }

    /// Appends `rows` tokens to every sequence (s1 / s2 / stamps [batch][rows]) at the next
    /// positions, and computes the s1 logits of the last row.
    func append(s1: [ArraySlice<Int>], s2: [ArraySlice<Int>], stamps: [ArraySlice<TimeStamp>]) {
        let rows = stamps[0].count
        let D = model.config.modelDimension, n = batch * rows, ws = scratch.workspace
        precondition(length + rows <= capacity)
        for b in 0..<batch {
            for t in 0..<rows {
                model.embed(s1: s1[b][s1[b].startIndex + t], s2: s2[b][s2[b].startIndex + t],
                            stamp: stamps[b][stamps[b].startIndex + t], pair: pair, time: time, out: x + (b * rows + t) * D,
                            workspace: ws)
            }
        }
        for (i, block) in model.blocks.enumerated() {
            block.forward(x, batch: batch, newRows: rows, cache: caches[i], scratch: scratch)
        }
        // context = norm(x); the dependency layer's keys / values of every context row are cached.
        model.norm.withUnsafeBufferPointer { rmsNorm(x, weight: $0.baseAddress!, rows: n, n: D, x) }
        let start = depCache.end
        model.depK(x, rows: n, into: scratch.k, ws)
        model.depV(x, rows: n, into: scratch.v, ws)
        for b in 0..<batch {
            for t in 0..<rows {
                depCache.key(b, position: start + t).update(from: scratch.k + (b * rows + t) * D, count: D)
                depCache.value(b, position: start + t).update(from: scratch.v + (b * rows + t) * D, count: D)
            }
            lastContext.withUnsafeMutableBufferPointer { $0.baseAddress!.advanced(by: b * D).update(from: x + (b * rows + rows - 1) * D, count: D) }
        }
        depCache.length += rows
        lastContext.withUnsafeBufferPointer { c in
            s1Logits.withUnsafeMutableBufferPointer { model.projS1(c.baseAddress!, rows: batch, into: $0.baseAddress!, ws) }
        }
    }

    /// decode_s2 for the last row: query emb_s1[pick] (unscaled), keys / values of every context row,
    /// 4 heads, no mask, no rotation (position 0) -> s2Logits [batch, V2].
    func computeS2Logits(picks: [Int]) {
        let D = model.config.modelDimension, heads = PredictorConfig.dependencyHeads, hd = D / heads
        let n = depCache.length, ws = scratch.workspace
        let q = query, att = attended, a = mixed
        for b in 0..<batch { model.embS1.decodeRow(picks[b], into: emb + b * D) }
        model.depQ(emb, rows: batch, into: q, ws)
        let scale = 1 / Float(hd).squareRoot()
        for b in 0..<batch {
            for h in 0..<heads {
                depCache.attend(sequence: b, column: h * hd, headDimension: hd, visible: n, queries: 1,
                                q: q + b * D + h * hd, qStride: D, scale: scale, scores: ws.scratch(0),
                                out: att + b * D + h * hd, outStride: D)
            }
        }
        model.depOut(att, rows: batch, into: a, ws)
        lastContext.withUnsafeBufferPointer { c in for i in 0..<(batch * D) { a[i] += c[i] } }
        model.depNorm.withUnsafeBufferPointer { rmsNorm(a, weight: $0.baseAddress!, rows: batch, n: D, a) }
        s2Logits.withUnsafeMutableBufferPointer { model.projS2(a, rows: batch, into: $0.baseAddress!, ws) }
    }
}
