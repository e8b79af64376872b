// Incremental decoding: a session keeps each layer's keys / values (and the dependency layer's keys
// / values of the context rows) for a batch of sequences in lockstep.
import Foundation
import KronosBundle

package final class PredictorSession {
    let model: PredictorModel
    let batch: Int
    /// Sequences per group: the sequences b of group b / perGroup have the same tokens before
    /// `sharedTokens` (the samples of one series share its context), so those rows are computed
    /// and cached once per group.
    let perGroup: Int
    let sharedTokens: Int
    let capacity: Int
    private let caches: [KVCache]
    private let depCache: KVCache  // dep_layer k/v projections of the context rows
    // Scratch, sized once: no allocation per step. Long runs of rows go through in chunks of
    // `scratch.rows` rows (all sequences of a pass together), which changes no result: every row's
    // arithmetic is independent of how rows are grouped (Kernels.swift, attend).
    private let scratch: BlockScratch
    private let x: UnsafeMutablePointer<Float>  // [scratch.rows, D] hidden states
    private let pair: UnsafeMutablePointer<Float>  // [2D] scaled (emb_s1, emb_s2) of one token
    private let time: UnsafeMutablePointer<Float>  // [D] time embedding of one token
    private let emb: UnsafeMutablePointer<Float>  // [batch, D] dependency-layer queries before projection
    private let query: UnsafeMutablePointer<Float>  // [batch, D]
    private let attended: UnsafeMutablePointer<Float>  // [batch, D]
    private let mixed: UnsafeMutablePointer<Float>  // [batch, D] out_proj + residual, then normed
    /// Final normed context of each sequence's last row [batch, D].
    private(set) var lastContext: [Float]
    /// s1 logits of each sequence's last row [batch, V1].
    private(set) var s1Logits: [Float]
    /// s2 logits of the last `computeS2Logits` [batch, V2].
    private(set) var s2Logits: [Float]

    /// Rows of a forward pass at most (a longer run is chunked): enough for the GEMMs to reuse each
    /// weight row over many input rows, small enough to keep the scratch a few MB.
    static let passRows = 128

    /// Rows cached per sequence.
    var length: Int { depCache.length }
    /// Tokens of the sequences consumed so far: the cached rows are tokens consumed - length ..< consumed.
    var consumed = 0

    /// `batch` sequences with windows of up to `capacity` rows; with perGroup > 1, groups of perGroup
    /// sequences share tokens 0 ..< sharedTokens and have at most `privateRows` rows beyond them.
    /// activations: the arithmetic of q8_0 / q4_1 / q4_k matmuls; kvCache: precision of the cached
    /// keys / values (nil: the model's defaults, PredictorModel.activations / kvCache).
    package init(
        model: PredictorModel, batch: Int, perGroup: Int = 1, sharedTokens: Int = 0, capacity: Int,
        privateRows: Int = 0,
        activations: ActivationPrecision? = nil, kvCache requestedCache: KVCachePrecision? = nil
    ) {
        precondition(perGroup >= 1 && batch % perGroup == 0)
        self.model = model; self.batch = batch; self.capacity = capacity
        self.perGroup = perGroup; self.sharedTokens = perGroup > 1 ? sharedTokens : 0
        let D = model.config.modelDimension
        let own = perGroup > 1 ? min(privateRows, capacity) : 0
        let kvCache = model.kvCache(requestedCache)
        caches = (0..<model.blocks.count).map { _ in
            KVCache(
                batch: batch, perGroup: perGroup, capacity: capacity, privateCapacity: own, width: D, precision: kvCache
            )
        }
        depCache = KVCache(
            batch: batch, perGroup: perGroup, capacity: capacity, privateCapacity: own, width: D, precision: kvCache)
        let rows = max(batch, min(model.blockedSums ? blockedPassRows : Self.passRows, batch * capacity))
        scratch = BlockScratch(
            rows: rows, D: D, F: model.config.feedForwardDimension, columns: 2 * D, positions: capacity,
            headDimension: D / model.config.headCount, threads: model.threads)
        scratch.workspace.integerActivations = model.activations(activations) == .int8
        scratch.workspace.observer = model.observer
        scratch.workspace.blockedSums = model.blockedSums
        scratch.workspace.weightPanels = model.blockedSums ? model.panels : nil
        let arena = scratch.arena  // the session's buffers live as long as its block scratch
        x = arena.buffer(count: rows * D)
        pair = arena.buffer(count: 2 * D); time = arena.buffer(count: D)
        emb = arena.buffer(count: batch * D); query = arena.buffer(count: batch * D)
        attended = arena.buffer(count: batch * D); mixed = arena.buffer(count: batch * D)
        lastContext = [Float](repeating: 0, count: batch * D)
        s1Logits = [Float](repeating: 0, count: batch * model.config.s1Vocabulary)
        s2Logits = [Float](repeating: 0, count: batch * model.config.s2Vocabulary)
    }

    /// Forgets every position (the next row starts at position 0).
    package func reset() {
        for c in caches { c.clear() }
        depCache.clear()
    }

    /// Forgets the oldest row of every sequence, keeping the keys / values the remaining rows got
    /// while it was in the window (CacheMode.approxSlide).
    func evictOldest() {
        for c in caches { c.evictOldest() }
        depCache.evictOldest()
    }

    /// Appends tokens lo ..< hi of every sequence (s1 / s2 / stamps [batch][tokens]) at the next
    /// positions and computes the s1 logits of the last row. Tokens below sharedTokens are run once
    /// per group (they are the same for every sequence of a group), the others per sequence.
    func append(s1: [[Int]], s2: [[Int]], stamps: [[TimeStamp]], tokens lo: Int, _ hi: Int) {
        precondition(lo < hi && length + hi - lo <= capacity)
        let shared = min(hi, max(lo, sharedTokens))
        if lo < shared {
            run(sequences: batch / perGroup, stride: perGroup, s1: s1, s2: s2, stamps: stamps, tokens: lo, shared)
        }
        if shared < hi {
            if perGroup > 1 && caches[0].split == Int.max {
                for c in caches { c.seal() }
                depCache.seal()
            }
            run(sequences: batch, stride: 1, s1: s1, s2: s2, stamps: stamps, tokens: shared, hi)
        }
        let ws = scratch.workspace
        lastContext.withUnsafeBufferPointer { c in
            s1Logits.withUnsafeMutableBufferPointer {
                model.projS1(c.baseAddress!, rows: batch, into: $0.baseAddress!, ws)
            }
        }
    }

    // Tokens lo ..< hi of sequences 0, stride, 2·stride, ... (count of them) through the blocks, in
    // chunks of scratch.rows rows; their dependency-layer keys / values are cached and the last row's
    // normed context goes to lastContext of the run sequence and the stride - 1 that follow it.
    private func run(
        sequences count: Int, stride: Int, s1: [[Int]], s2: [[Int]], stamps: [[TimeStamp]], tokens lo: Int, _ hi: Int
    ) {
        let D = model.config.modelDimension, ws = scratch.workspace
        let chunk = max(1, scratch.rows / count)
        var c0 = lo
        while c0 < hi {
            let c1 = min(hi, c0 + chunk), rows = c1 - c0, n = count * rows
            if n > 1 && model.config.feedForwardDimension >= 2 * D {
                // The fusion of all the chunk's rows as one matmul (their pairs in the FFN's scratch):
                // each row the same values as one at a time, every weight row read once.
                for i in 0..<count {
                    let b = i * stride
                    for t in 0..<rows {
                        model.embedPair(s1: s1[b][c0 + t], s2: s2[b][c0 + t], into: scratch.f1 + (i * rows + t) * 2 * D)
                    }
                }
                model.fusion(scratch.f1, rows: n, into: x, ws)
                for i in 0..<count {
                    let b = i * stride
                    for t in 0..<rows {
                        model.addTime(stamps[b][c0 + t], time: time, scratch: pair, to: x + (i * rows + t) * D)
                    }
                }
            } else {
                for i in 0..<count {
                    let b = i * stride
                    for t in 0..<rows {
                        model.embed(
                            s1: s1[b][c0 + t], s2: s2[b][c0 + t], stamp: stamps[b][c0 + t], pair: pair, time: time,
                            out: x + (i * rows + t) * D, workspace: ws)
                    }
                }
            }
            for (l, block) in model.blocks.enumerated() {
                block.forward(
                    x, batch: count, sequenceStride: stride, newRows: rows, cache: caches[l], scratch: scratch)
            }
            // context = norm(x); the dependency layer's keys / values of every context row are cached.
            model.norm.withUnsafeBufferPointer { rmsNorm(x, weight: $0.baseAddress!, rows: n, n: D, x) }
            let start = depCache.end
            model.depK(x, rows: n, into: scratch.k, ws)
            model.depV(x, rows: n, into: scratch.v, ws)
            for i in 0..<count {
                for t in 0..<rows {
                    depCache.store(
                        i * stride, position: start + t, key: scratch.k + (i * rows + t) * D,
                        value: scratch.v + (i * rows + t) * D)
                }
            }
            depCache.length += rows
            if c1 == hi {
                lastContext.withUnsafeMutableBufferPointer { c in
                    for i in 0..<count {
                        for j in 0..<stride {
                            (c.baseAddress! + (i * stride + j) * D).update(
                                from: x + (i * rows + rows - 1) * D, count: D)
                        }
                    }
                }
            }
            c0 = c1
        }
    }

    /// Teacher forcing without a slide, batched (one sequence): tokens 0 ..< T + P − 1 of s1 / s2 /
    /// stamps [T + P] in two passes (the context, then the P − 1 path rows with the context's last
    /// row), then the heads at those P rows at once, each along the sequence's own next token:
    /// s1 logits [P][V1] (predicting tokens T ..< T + P), s2 logits [P][V2]. The same numbers, bit
    /// for bit, as P steps of `advance` + `computeS2Logits` (a row's arithmetic does not depend on
    /// how rows are grouped, and step p's dependency layer sees the rows up to its own), with each
    /// weight read once for the P rows instead of once per step; the matmuls (and an activation
    /// observer) see the same rows.
    package func teacherForcedPass(s1: [Int], s2: [Int], stamps: [TimeStamp], steps P: Int) -> (
        s1: [[Float]], s2: [[Float]]
    ) {
        let T = s1.count - P
        precondition(batch == 1 && T >= 1 && P >= 1 && P <= scratch.rows && T + P - 1 <= capacity)
        precondition(s2.count == T + P && stamps.count == T + P)
        reset()
        let D = model.config.modelDimension, V1 = model.config.s1Vocabulary, V2 = model.config.s2Vocabulary
        let ws = scratch.workspace
        // context [P, D]: the normed context of rows T − 1 ..< T + P − 1, the end of the last pass's
        // only chunk: one pass of every row when they fit the scratch (a calibration window, every
        // weight read once), else the context rows, then the path's.
        let context: UnsafeMutablePointer<Float>
        if T + P - 1 <= scratch.rows {
            run(sequences: 1, stride: 1, s1: [s1], s2: [s2], stamps: [stamps], tokens: 0, T + P - 1)
            context = x + (T - 1) * D
        } else {
            if T > 1 { run(sequences: 1, stride: 1, s1: [s1], s2: [s2], stamps: [stamps], tokens: 0, T - 1) }
            run(sequences: 1, stride: 1, s1: [s1], s2: [s2], stamps: [stamps], tokens: T - 1, T + P - 1)
            context = x
        }
        consumed = T + P - 1
        let buffers = UnsafeMutablePointer<Float>.allocate(capacity: P * (4 * D + V1 + V2))
        defer { buffers.deallocate() }
        let l1 = buffers + 4 * P * D, l2 = l1 + P * V1
        model.projS1(context, rows: P, into: l1, ws)
        dependencyLogits(
            rows: P, pick: { s1[T + $0] }, sequence: { _ in 0 }, visible: { T + $0 }, context: context,
            scratch: (buffers, buffers + P * D, buffers + 2 * P * D, buffers + 3 * P * D), into: l2)
        return (
            (0..<P).map { Array(UnsafeBufferPointer(start: l1 + $0 * V1, count: V1)) },
            (0..<P).map { Array(UnsafeBufferPointer(start: l2 + $0 * V2, count: V2)) }
        )
    }

    /// decode_s2 for the last row: query emb_s1[pick] (unscaled), keys / values of every context row,
    /// 4 heads, no mask, no rotation (position 0) -> s2Logits [batch, V2].
    package func computeS2Logits(picks: [Int]) {
        let n = depCache.length
        lastContext.withUnsafeBufferPointer { c in
            s2Logits.withUnsafeMutableBufferPointer {
                dependencyLogits(
                    rows: batch, pick: { picks[$0] }, sequence: { $0 }, visible: { _ in n }, context: c.baseAddress!,
                    scratch: (emb, query, attended, mixed), into: $0.baseAddress!)
            }
        }
    }

    /// The dependency layer and the s2 head for `rows` queries (decode_s2): query r is emb_s1[pick(r)]
    /// (unscaled) attending to the first visible(r) cached context rows of sequence(r) (4 heads, no
    /// mask, no rotation), plus context row r [rows, D], normed -> s2 logits [rows, V2] at out;
    /// scratch: four [rows, D] buffers.
    @inline(__always)
    private func dependencyLogits(
        rows: Int, pick: (Int) -> Int, sequence: (Int) -> Int, visible: (Int) -> Int, context: UnsafePointer<Float>,
        scratch buffers: (
            emb: UnsafeMutablePointer<Float>, q: UnsafeMutablePointer<Float>, att: UnsafeMutablePointer<Float>,
            a: UnsafeMutablePointer<Float>
        ),
        into out: UnsafeMutablePointer<Float>
    ) {
        let D = model.config.modelDimension, heads = PredictorConfig.dependencyHeads, hd = D / heads
        let ws = scratch.workspace, (emb, q, att, a) = buffers
        for r in 0..<rows { model.embS1.decodeRow(pick(r), into: emb + r * D) }
        model.depQ(emb, rows: rows, into: q, ws)
        let scale = 1 / Float(hd).squareRoot()
        for r in 0..<rows {
            for h in 0..<heads {
                depCache.attend(
                    sequence: sequence(r), column: h * hd, headDimension: hd, visible: visible(r), queries: 1,
                    q: q + r * D + h * hd, qStride: D, scale: scale, scores: ws.scratch(0),
                    out: att + r * D + h * hd, outStride: D)
            }
        }
        model.depOut(att, rows: rows, into: a, ws)
        for i in 0..<(rows * D) { a[i] += context[i] }
        model.depNorm.withUnsafeBufferPointer { rmsNorm(a, weight: $0.baseAddress!, rows: rows, n: D, a) }
        model.projS2(a, rows: rows, into: out, ws)
    }
}
