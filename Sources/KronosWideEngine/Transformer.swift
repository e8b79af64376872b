// Transformer blocks over a batch of sequences, with a per-layer KV cache.
import Foundation
import CKronosHints
import KronosWideAVX2
import KronosWideVNNI

/// How one precision's cached values are read (widened to f32) and written.
protocol KVStorage {
    /// values i ..< i + 8 of the row at p.
    static func load8(_ p: UnsafeRawPointer, _ i: Int) -> SIMD8<Float>
    /// values i ..< i + 4 of the row at p.
    static func load4(_ p: UnsafeRawPointer, _ i: Int) -> SIMD4<Float>
    /// value i of the row at p.
    static func load(_ p: UnsafeRawPointer, _ i: Int) -> Float
    /// x [n] -> the row at p.
    static func store(_ x: UnsafePointer<Float>, _ n: Int, to p: UnsafeMutableRawPointer)
}

enum F32Storage: KVStorage {
    @inline(__always) static func load8(_ p: UnsafeRawPointer, _ i: Int) -> SIMD8<Float> {
        p.loadUnaligned(fromByteOffset: 4 &* i, as: SIMD8<Float>.self)
    }
    @inline(__always) static func load4(_ p: UnsafeRawPointer, _ i: Int) -> SIMD4<Float> {
        p.loadUnaligned(fromByteOffset: 4 &* i, as: SIMD4<Float>.self)
    }
    @inline(__always) static func load(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        p.loadUnaligned(fromByteOffset: 4 &* i, as: Float.self)
    }
    @inline(__always) static func store(_ x: UnsafePointer<Float>, _ n: Int, to p: UnsafeMutableRawPointer) {
        p.copyMemory(from: x, byteCount: 4 * n)
    }
}

enum F16Storage: KVStorage {
    @inline(__always) static func load8(_ p: UnsafeRawPointer, _ i: Int) -> SIMD8<Float> {
        kronos_f32_from_f16x8(p.loadUnaligned(fromByteOffset: 2 &* i, as: SIMD8<UInt16>.self))
    }
    @inline(__always) static func load4(_ p: UnsafeRawPointer, _ i: Int) -> SIMD4<Float> {
        kronos_f32_from_f16x4(p.loadUnaligned(fromByteOffset: 2 &* i, as: SIMD4<UInt16>.self))
    }
    @inline(__always) static func load(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        Float(p.loadUnaligned(fromByteOffset: 2 &* i, as: Float16.self))
    }
    @inline(__always) static func store(_ x: UnsafePointer<Float>, _ n: Int, to p: UnsafeMutableRawPointer) {
        let rx = UnsafeRawPointer(x)
        var i = 0
        while i + 8 <= n {
            p.storeBytes(
                of: SIMD8<Float16>(rx.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)), toByteOffset: 2 * i,
                as: SIMD8<Float16>.self)
            i += 8
        }
        while i < n { p.storeBytes(of: Float16(x[i]), toByteOffset: 2 * i, as: Float16.self); i += 1 }
    }
}

/// Keys and values of one layer for `batch` sequences in lockstep, in groups of `perGroup`
/// sequences that share their oldest rows (the samples of one series share its context).
/// - Shared rows (absolute positions below `split`) are stored once per group, in a ring of
///   `capacity` positions: position a lives in slot a mod capacity, so evicting the oldest row (the
///   keep-cache approximation of a sliding window) moves nothing.
/// - Private rows (positions from `split` on, once `seal()` set it) are stored per sequence:
///   position a in private slot a - split (at most `privateCapacity` of them).
/// Without sharing (perGroup 1, or before `seal()`), every row lives in the group ring.
/// Rows hold `width` values of `precision` (f32, or f16 as an approximation).
package final class KVCache: @unchecked Sendable {
    let batch: Int, perGroup: Int, capacity: Int, privateCapacity: Int, width: Int
    let precision: KVCachePrecision
    /// Bytes of one row: width · precision.bytes.
    let rowBytes: Int
    var groups: Int { batch / perGroup }
    let keys: UnsafeMutableRawPointer  // [groups, capacity, width] shared rows
    let values: UnsafeMutableRawPointer  // [groups, capacity, width]
    let privateKeys: UnsafeMutableRawPointer  // [batch, privateCapacity, width] private rows
    let privateValues: UnsafeMutableRawPointer  // [batch, privateCapacity, width]
    /// Absolute position of the oldest cached row (the same for every sequence).
    private(set) var offset = 0
    /// Rows cached (the same for every sequence).
    package var length = 0
    /// Absolute position of the next row.
    var end: Int { offset + length }
    /// Absolute position of the first private row (Int.max: none, every row is shared).
    private(set) var split = Int.max

    package init(
        batch: Int, perGroup: Int = 1, capacity: Int, privateCapacity: Int = 0, width: Int,
        precision: KVCachePrecision = .f32
    ) {
        precondition(perGroup >= 1 && batch % perGroup == 0)
        self.batch = batch; self.perGroup = perGroup; self.capacity = capacity
        self.privateCapacity = privateCapacity; self.width = width; self.precision = precision
        rowBytes = width * precision.bytes
        let shared = batch / perGroup * capacity * rowBytes, own = batch * privateCapacity * rowBytes
        keys = arena.rawBuffer(bytes: shared); values = arena.rawBuffer(bytes: shared)
        privateKeys = arena.rawBuffer(bytes: own); privateValues = arena.rawBuffer(bytes: own)
    }
    private let arena = ScratchArena()  // owns the four row buffers

    func clear() { offset = 0; length = 0; split = Int.max }
    /// Forgets the oldest row of every sequence.
    package func evictOldest() { precondition(length > 0); offset += 1; length -= 1 }
    /// Rows appended from now on are each sequence's own.
    func seal() { precondition(split == Int.max); split = end }

    /// Stores key [width] and value [width] as the row of sequence b at absolute position a.
    package func store(_ b: Int, position a: Int, key: UnsafePointer<Float>, value: UnsafePointer<Float>) {
        let k = row(keys, privateKeys, b, a), v = row(values, privateValues, b, a)
        switch precision {
        case .f32: F32Storage.store(key, width, to: k); F32Storage.store(value, width, to: v)
        case .f16: F16Storage.store(key, width, to: k); F16Storage.store(value, width, to: v)
        }
    }
    @inline(__always) private func row(
        _ shared: UnsafeMutableRawPointer, _ own: UnsafeMutableRawPointer, _ b: Int, _ a: Int
    )
        -> UnsafeMutableRawPointer
    {
        if a < split { return shared + ((b / perGroup) * capacity + a % capacity) * rowBytes }
        precondition(a - split < privateCapacity, "private rows exceed the cache")
        return own + (b * privateCapacity + a - split) * rowBytes
    }
}

/// The key-lane attention kernels attendWide runs, one contract: AVX512 (KronosWideVNNI) where the
/// processor has AVX-512, else AVX2 (KronosWideAVX2).
protocol KeyLaneKernels {
    static func scores(
        queries: Int, q: UnsafePointer<Float>, qStride: Int, headDimension hd: Int, kt: UnsafePointer<Float>,
        keys n: Int, scale: Float, out: UnsafeMutablePointer<Float>, ld: Int)
    static func transpose(
        rows: UnsafePointer<UnsafeRawPointer?>, half: Bool, headDimension hd: Int, kt: UnsafeMutablePointer<Float>)
    static func values(
        queries: Int, w: UnsafePointer<Float>, ld: Int, visible: Int, v: UnsafePointer<Float>, ldv: Int,
        headDimension hd: Int, out: UnsafeMutablePointer<Float>, outStride: Int)
}
extension AVX512: KeyLaneKernels {}
extension AVX2: KeyLaneKernels {}

/// Queries per block of the causal attention: each cached key / value is loaded once per block.
let attentionQueryBlock = 4

/// Where a sequence's visible rows keep their keys and values (one head slice): row p (0 = oldest)
/// in the group's ring while p < firstPrivate, else in the sequence's own rows.
struct HeadRows {
    let kShared, vShared, kOwn, vOwn: UnsafeRawPointer
    let origin, ring, rowBytes, firstPrivate: Int
    // (Wrapping arithmetic: the callers checked the indices against the cache's size.)
    @inline(__always) func slot(_ p: Int) -> Int { let s = origin &+ p; return s >= ring ? s &- ring : s }
    @inline(__always) func key(_ p: Int) -> UnsafeRawPointer {
        p < firstPrivate ? kShared + slot(p) &* rowBytes : kOwn + p &* rowBytes
    }
    @inline(__always) func value(_ p: Int) -> UnsafeRawPointer {
        p < firstPrivate ? vShared + slot(p) &* rowBytes : vOwn + p &* rowBytes
    }
}

extension KVCache {
    // Attention of qb (1...attentionQueryBlock) consecutive queries of sequence b, head slice
    // [column, column + hd): query i [hd] at q + i·qStride sees the oldest n0 + i cached rows and
    // writes out + i·outStride [hd]. scores: scratch of qb·(n0 + qb - 1) floats.
    // For every query the arithmetic is the same whatever qb is (attendRows), so a cached decode
    // step equals recomputing the window, bit for bit.
    func attend(
        sequence b: Int, column: Int, headDimension hd: Int, visible n0: Int, queries qb: Int,
        q: UnsafePointer<Float>, qStride: Int, scale: Float, scores: UnsafeMutablePointer<Float>,
        out: UnsafeMutablePointer<Float>, outStride: Int
    ) {
        switch precision {
        case .f32:
            attend(
                F32Storage.self, sequence: b, column: column, headDimension: hd, visible: n0, queries: qb, q: q,
                qStride: qStride,
                scale: scale, scores: scores, out: out, outStride: outStride)
        case .f16:
            attend(
                F16Storage.self, sequence: b, column: column, headDimension: hd, visible: n0, queries: qb, q: q,
                qStride: qStride,
                scale: scale, scores: scores, out: out, outStride: outStride)
        }
    }

    private func attend<E: KVStorage>(
        _: E.Type, sequence b: Int, column: Int, headDimension hd: Int, visible n0: Int, queries qb: Int,
        q: UnsafePointer<Float>, qStride: Int, scale: Float, scores: UnsafeMutablePointer<Float>,
        out: UnsafeMutablePointer<Float>, outStride: Int
    ) {
        precondition(qb >= 1 && qb <= attentionQueryBlock && n0 >= 1 && n0 + qb - 1 <= length)
        let rows = headRows(sequence: b, column: column)
        @inline(__always) func kRow(_ p: Int) -> UnsafeRawPointer { rows.key(p) }
        @inline(__always) func vRow(_ p: Int) -> UnsafeRawPointer { rows.value(p) }
        // The first n0 rows are seen by every query; query i also sees the i rows after them.
        attendRows(
            E.self, queries: qb, headDimension: hd, q: q, qStride: qStride, scale: scale, scores: scores,
            ld: n0 + qb - 1,
            out: out, outStride: outStride, common: n0, extra: { $0 },
            commonKey: kRow, commonValue: vRow, ownKey: { _, p in kRow(n0 + p) }, ownValue: { _, p in vRow(n0 + p) })
    }

    /// Where visible row p (0 = oldest) of sequence b keeps its key and value, head slice from `column`.
    @inline(__always) func headRows(sequence b: Int, column: Int) -> HeadRows {
        let ring = capacity, bytes = precision.bytes, g = b / perGroup
        // Visible row p is shared while p < firstPrivate, else private row p - firstPrivate.
        let firstPrivate = split == Int.max ? Int.max : split - offset
        let own =
            firstPrivate == Int.max ? 0 : b * privateCapacity * rowBytes + column * bytes - firstPrivate * rowBytes
        return HeadRows(
            kShared: UnsafeRawPointer(keys + g * ring * rowBytes + column * bytes),
            vShared: UnsafeRawPointer(values + g * ring * rowBytes + column * bytes),
            kOwn: UnsafeRawPointer(privateKeys + own), vOwn: UnsafeRawPointer(privateValues + own),
            origin: offset % ring, ring: ring, rowBytes: rowBytes, firstPrivate: firstPrivate)
    }

    /// Floats of worker scratch `attendWide` needs for `positions` visible rows of `hd` columns:
    /// the keys transposed in blocks of 16 [ldk / 16, hd, 16], the values [positions, hd] and 4 score
    /// rows [ldk] (the first hd floats after the values hold a row of zeros while the keys are transposed).
    static func wideScratch(positions: Int, headDimension hd: Int) -> Int {
        let ldk = (positions + 15) / 16 * 16
        return hd * ldk + (positions * hd + 15) / 16 * 16 + max(attentionQueryBlock * ldk, hd)
    }

    // The attention of `queries` consecutive queries of sequence b (query i [hd] at q + i·qStride sees
    // the oldest n0 + i rows, writes out + i·outStride [hd]) with the key-lane kernels (AVX512, or
    // AVX2 on processors without AVX-512: KeyLaneKernels): the visible keys transposed and the
    // values gathered into `scratch` (wideScratch floats, 64-byte aligned) once for all queries, then per
    // block of 4 queries: scores, softmaxInPlace, values. The same numbers as attend's, bit for bit
    // (both kernels' scores and values keep attendRows' order).
    func attendWide(
        sequence b: Int, column: Int, headDimension hd: Int, visible n0: Int, queries: Int,
        q: UnsafePointer<Float>, qStride: Int, scale: Float, scratch: UnsafeMutablePointer<Float>,
        out: UnsafeMutablePointer<Float>, outStride: Int, wide512: Bool
    ) {
        let kernels: any KeyLaneKernels.Type = wide512 ? AVX512.self : AVX2.self
        switch precision {
        case .f32:
            attendWide(
                F32Storage.self, sequence: b, column: column, headDimension: hd, visible: n0, queries: queries, q: q,
                qStride: qStride, scale: scale, scratch: scratch, out: out, outStride: outStride, kernels: kernels)
        case .f16:
            attendWide(
                F16Storage.self, sequence: b, column: column, headDimension: hd, visible: n0, queries: queries, q: q,
                qStride: qStride, scale: scale, scratch: scratch, out: out, outStride: outStride, kernels: kernels)
        }
    }

    private func attendWide<E: KVStorage>(
        _: E.Type, sequence b: Int, column: Int, headDimension hd: Int, visible n0: Int, queries: Int,
        q: UnsafePointer<Float>, qStride: Int, scale: Float, scratch: UnsafeMutablePointer<Float>,
        out: UnsafeMutablePointer<Float>, outStride: Int, kernels: any KeyLaneKernels.Type
    ) {
        let n = n0 + queries - 1
        precondition(queries >= 1 && n0 >= 1 && n <= length)
        let ldk = (n + 15) / 16 * 16
        let kt = scratch, v = scratch + hd * ldk, scores = v + (n * hd + 15) / 16 * 16
        let rows = headRows(sequence: b, column: column)
        // Keys 16 at a time through the transposing kernel (rows past n: a row of zeros).
        let zeros = v + n * hd  // (the scores' space, not yet written: zeroed for the padding keys)
        zeros.initialize(repeating: 0, count: hd)
        withUnsafeTemporaryAllocation(of: UnsafeRawPointer?.self, capacity: 16) { block in
            for p0 in stride(from: 0, to: n, by: 16) {
                for r in 0..<16 { block[r] = p0 + r < n ? rows.key(p0 + r) : UnsafeRawPointer(zeros) }
                kernels.transpose(
                    rows: UnsafePointer(block.baseAddress!), half: E.self == F16Storage.self, headDimension: hd,
                    kt: kt + p0 * hd)
            }
        }
        for p in 0..<n {
            let value = rows.value(p), row = UnsafeMutableRawPointer(v + p * hd)
            var d = 0
            while d + 8 <= hd {
                row.storeBytes(of: E.load8(value, d), toByteOffset: 4 * d, as: SIMD8<Float>.self); d += 8
            }
            while d < hd { v[p * hd + d] = E.load(value, d); d += 1 }
        }
        var i0 = 0
        while i0 < queries {
            let qb = min(attentionQueryBlock, queries - i0), keys = n0 + i0 + qb - 1
            // Scores of the block's queries (2 at a time) over every key the last of them sees.
            var i = 0
            while i < qb {
                let r = min(2, qb - i)
                kernels.scores(
                    queries: r, q: q + (i0 + i) * qStride, qStride: qStride, headDimension: hd, kt: kt, keys: keys,
                    scale: scale, out: scores + i * ldk, ld: ldk)
                i += r
            }
            for i in 0..<qb { softmaxInPlace(scores + i * ldk, n0 + i0 + i) }
            kernels.values(
                queries: qb, w: scores, ld: ldk, visible: n0 + i0, v: v, ldv: hd, headDimension: hd,
                out: out + i0 * outStride, outStride: outStride)
            i0 += qb
        }
    }

    // Decode-step attention of the perGroup sequences of group g at once, head slice [column,
    // column + hd): query i [hd] (sequence g·perGroup + i) at q + i·qStride sees its n visible
    // rows and writes out + i·outStride. The group's shared rows are loaded once for 4 queries at
    // a time; each query's own rows follow. scores: 4·n floats. Per query the arithmetic is
    // attend's (attendRows), so the result is bitwise the per-sequence one.
    func attendGroup(
        _ g: Int, column: Int, headDimension hd: Int, visible n: Int, q: UnsafePointer<Float>, qStride: Int,
        scale: Float, scores: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>, outStride: Int
    ) {
        switch precision {
        case .f32:
            attendGroup(
                F32Storage.self, g, column: column, headDimension: hd, visible: n, q: q, qStride: qStride, scale: scale,
                scores: scores, out: out, outStride: outStride)
        case .f16:
            attendGroup(
                F16Storage.self, g, column: column, headDimension: hd, visible: n, q: q, qStride: qStride, scale: scale,
                scores: scores, out: out, outStride: outStride)
        }
    }

    private func attendGroup<E: KVStorage>(
        _: E.Type, _ g: Int, column: Int, headDimension hd: Int, visible n: Int, q: UnsafePointer<Float>,
        qStride: Int, scale: Float, scores: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>,
        outStride: Int
    ) {
        precondition(n >= 1 && n <= length && split != Int.max)
        let ring = capacity, origin = offset % ring, bytes = precision.bytes, rowBytes = self.rowBytes
        let kShared = UnsafeRawPointer(keys + g * ring * rowBytes + column * bytes)
        let vShared = UnsafeRawPointer(values + g * ring * rowBytes + column * bytes)
        let firstPrivate = split - offset
        let shared = min(n, max(0, firstPrivate))
        @inline(__always) func slot(_ p: Int) -> Int { let s = origin &+ p; return s >= ring ? s &- ring : s }
        var i0 = 0
        while i0 < perGroup {
            let qb = min(attentionQueryBlock, perGroup - i0)
            // Private row p of query i (sequence g·perGroup + i0 + i) is visible row shared + p.
            @inline(__always) func own(_ i: Int, _ p: Int) -> Int {
                ((g &* perGroup &+ i0 &+ i) &* privateCapacity &+ shared &- firstPrivate &+ p) &* rowBytes &+ column
                    &* bytes
            }
            attendRows(
                E.self, queries: qb, headDimension: hd, q: q + i0 * qStride, qStride: qStride, scale: scale,
                scores: scores, ld: n,
                out: out + i0 * outStride, outStride: outStride, common: shared, extra: { _ in n - shared },
                commonKey: { kShared + slot($0) &* rowBytes }, commonValue: { vShared + slot($0) &* rowBytes },
                ownKey: { UnsafeRawPointer(privateKeys + own($0, $1)) },
                ownValue: { UnsafeRawPointer(privateValues + own($0, $1)) })
            i0 += qb
        }
    }

    // The arithmetic of every attention: qb (1...4) queries, query i [hd] at q + i·qStride sees the
    // `common` rows commonKey / commonValue(p) (oldest first; shared by pairs of queries when qb is
    // 4), then its own extra(i) rows ownKey / ownValue(i, p). Per query, whatever qb is: scores =
    // (q · k)·scale in scores4's order (scores row i at scores + i·ld), softmaxInPlace, then
    // out[e] = Σ w·v[e] by fused multiply-add in row order, written to out + i·outStride [hd].
    @inline(__always)
    private func attendRows<E: KVStorage>(
        _: E.Type, queries qb: Int, headDimension hd: Int, q: UnsafePointer<Float>, qStride: Int,
        scale: Float, scores: UnsafeMutablePointer<Float>, ld: Int, out: UnsafeMutablePointer<Float>,
        outStride: Int, common: Int, extra: (Int) -> Int,
        commonKey: (Int) -> UnsafeRawPointer, commonValue: (Int) -> UnsafeRawPointer,
        ownKey: (Int, Int) -> UnsafeRawPointer, ownValue: (Int, Int) -> UnsafeRawPointer
    ) {
        // Scores, 4 keys at a time (scores4; over the common rows two queries at a time when qb is 4,
        // scores2x4): every grouping computes the same numbers.
        @inline(__always) func put(_ s: SIMD4<Float>, _ row: UnsafeMutablePointer<Float>, _ p: Int, _ count: Int) {
            for j in 0..<count { row[p &+ j] = s[j] * scale }
        }
        var paired = 0  // common rows scored for all 4 queries by scores2x4
        if qb == 4 {
            while paired + 4 <= common {
                let p = paired, k0 = commonKey(p), k1 = commonKey(p &+ 1), k2 = commonKey(p &+ 2),
                    k3 = commonKey(p &+ 3)
                let (s0, s1) = scores2x4(E.self, q, q + qStride, k0, k1, k2, k3, hd)
                let (s2, s3) = scores2x4(E.self, q + 2 * qStride, q + 3 * qStride, k0, k1, k2, k3, hd)
                put(s0, scores, p, 4); put(s1, scores + ld, p, 4); put(s2, scores + 2 * ld, p, 4);
                put(s3, scores + 3 * ld, p, 4)
                paired += 4
            }
        }
        for i in 0..<qb {
            let row = scores + i * ld, qi = q + i * qStride, total = common + extra(i), last = total &- 1
            @inline(__always) func key(_ p: Int) -> UnsafeRawPointer {
                p < common ? commonKey(p) : ownKey(i, p &- common)
            }
            var p = paired
            while p < total {
                // (past the last key, the last key again; its extra scores are not stored)
                let s = scores4(
                    E.self, qi, key(p), key(min(p &+ 1, last)), key(min(p &+ 2, last)), key(min(p &+ 3, last)), hd)
                put(s, row, p, min(4, total &- p))
                p &+= 4
            }
            softmaxInPlace(row, total)
        }
        // The weighted sums: common rows once for all 4 queries when qb is 4, then per query from `start`.
        let start = qb == 4 ? common : 0

        // Weighted values, 16 columns at a time (then 8): each value row is addressed once per 16
        // columns and each weight broadcast serves two vectors.
        @inline(__always) func v8(_ row: UnsafeRawPointer, _ c: Int) -> SIMD8<Float> { E.load8(row, c) }
        @inline(__always) func store(_ a: SIMD8<Float>, _ i: Int, _ c: Int) {
            UnsafeMutableRawPointer(out + i * outStride + c).storeBytes(of: a, as: SIMD8<Float>.self)
        }
        var c = 0
        while c + 16 <= hd {
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
            var b0 = SIMD8<Float>(), b1 = SIMD8<Float>(), b2 = SIMD8<Float>(), b3 = SIMD8<Float>()
            if qb == 4 {
                for p in 0..<common {
                    let row = commonValue(p)
                    let va = v8(row, c), vb = v8(row, c &+ 8)
                    let w0 = SIMD8(repeating: scores[p]), w1 = SIMD8(repeating: scores[ld &+ p])
                    a0.addProduct(w0, va); b0.addProduct(w0, vb); a1.addProduct(w1, va); b1.addProduct(w1, vb)
                    let w2 = SIMD8(repeating: scores[2 &* ld &+ p]), w3 = SIMD8(repeating: scores[3 &* ld &+ p])
                    a2.addProduct(w2, va); b2.addProduct(w2, vb); a3.addProduct(w3, va); b3.addProduct(w3, vb)
                }
            }
            for i in 0..<qb {
                let weights = scores + i * ld
                var a = i == 0 ? a0 : i == 1 ? a1 : i == 2 ? a2 : a3
                var b = i == 0 ? b0 : i == 1 ? b1 : i == 2 ? b2 : b3
                for p in start..<common {
                    let row = commonValue(p), w = SIMD8(repeating: weights[p])
                    a.addProduct(w, v8(row, c)); b.addProduct(w, v8(row, c &+ 8))
                }
                for p in 0..<extra(i) {
                    let row = ownValue(i, p), w = SIMD8(repeating: weights[common &+ p])
                    a.addProduct(w, v8(row, c)); b.addProduct(w, v8(row, c &+ 8))
                }
                store(a, i, c); store(b, i, c + 8)
            }
            c += 16
        }
        while c + 8 <= hd {
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
            if qb == 4 {
                for p in 0..<common {
                    let v = v8(commonValue(p), c)
                    a0.addProduct(SIMD8(repeating: scores[p]), v)
                    a1.addProduct(SIMD8(repeating: scores[ld &+ p]), v)
                    a2.addProduct(SIMD8(repeating: scores[2 &* ld &+ p]), v)
                    a3.addProduct(SIMD8(repeating: scores[3 &* ld &+ p]), v)
                }
            }
            for i in 0..<qb {
                let weights = scores + i * ld
                var a = i == 0 ? a0 : i == 1 ? a1 : i == 2 ? a2 : a3
                for p in start..<common { a.addProduct(SIMD8(repeating: weights[p]), v8(commonValue(p), c)) }
                for p in 0..<extra(i) { a.addProduct(SIMD8(repeating: weights[common &+ p]), v8(ownValue(i, p), c)) }
                store(a, i, c)
            }
            c += 8
        }
        while c + 4 <= hd {  // head dimensions that are not a multiple of 8 (e.g. 52 = 3·16 + 4)
            for i in 0..<qb {
                let weights = scores + i * ld
                var a = SIMD4<Float>()
                @inline(__always) func v4(_ row: UnsafeRawPointer) -> SIMD4<Float> { E.load4(row, c) }
                for p in 0..<common { a.addProduct(SIMD4(repeating: weights[p]), v4(commonValue(p))) }
                for p in 0..<extra(i) { a.addProduct(SIMD4(repeating: weights[common &+ p]), v4(ownValue(i, p))) }
                UnsafeMutableRawPointer(out + i * outStride + c).storeBytes(of: a, as: SIMD4<Float>.self)
            }
            c += 4
        }
        while c < hd {
            for i in 0..<qb {
                let row = scores + i * ld
                var a: Float = 0
                for p in 0..<common { a = a.addingProduct(row[p], E.load(commonValue(p), c)) }
                for p in 0..<extra(i) { a = a.addingProduct(row[common + p], E.load(ownValue(i, p), c)) }
                out[i * outStride + c] = a
            }
            c += 1
        }
    }
}

// Attention scores q · k of one query and 4 key rows [n]: per key an 8-lane fused multiply-add
// accumulator over k in steps of 8, its lanes added as ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))
// (kronos_sum4x8f: the 4 keys' sums together), then the tail's products added in order. Every
// attention score is computed this way (scores2x4 too), so a cached decode step's attention is
// bitwise the recomputed window's.
@inline(__always)
func scores4<E: KVStorage>(
    _: E.Type, _ q: UnsafePointer<Float>, _ k0: UnsafeRawPointer, _ k1: UnsafeRawPointer,
    _ k2: UnsafeRawPointer, _ k3: UnsafeRawPointer, _ n: Int
) -> SIMD4<Float> {
    var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
    let rq = UnsafeRawPointer(q)
    var i = 0
    while i &+ 8 <= n {
        let qv = rq.loadUnaligned(fromByteOffset: 4 &* i, as: SIMD8<Float>.self)
        a0.addProduct(qv, E.load8(k0, i)); a1.addProduct(qv, E.load8(k1, i))
        a2.addProduct(qv, E.load8(k2, i)); a3.addProduct(qv, E.load8(k3, i))
        i &+= 8
    }
    var s = kronos_sum4x8f(a0, a1, a2, a3)
    while i < n {
        let qi = q[i]
        s[0] += qi * E.load(k0, i); s[1] += qi * E.load(k1, i); s[2] += qi * E.load(k2, i); s[3] += qi * E.load(k3, i)
        i &+= 1
    }
    return s
}

// scores4 of two queries over the same 4 key rows: 8 accumulators, each key vector loaded once for both.
@inline(__always)
func scores2x4<E: KVStorage>(
    _: E.Type, _ q0: UnsafePointer<Float>, _ q1: UnsafePointer<Float>, _ k0: UnsafeRawPointer,
    _ k1: UnsafeRawPointer, _ k2: UnsafeRawPointer, _ k3: UnsafeRawPointer, _ n: Int
) -> (SIMD4<Float>, SIMD4<Float>) {
    var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
    var b0 = SIMD8<Float>(), b1 = SIMD8<Float>(), b2 = SIMD8<Float>(), b3 = SIMD8<Float>()
    let r0 = UnsafeRawPointer(q0), r1 = UnsafeRawPointer(q1)
    var i = 0
    while i &+ 8 <= n {
        let x0 = r0.loadUnaligned(fromByteOffset: 4 &* i, as: SIMD8<Float>.self)
        let x1 = r1.loadUnaligned(fromByteOffset: 4 &* i, as: SIMD8<Float>.self)
        let v0 = E.load8(k0, i), v1 = E.load8(k1, i)
        a0.addProduct(x0, v0); b0.addProduct(x1, v0); a1.addProduct(x0, v1); b1.addProduct(x1, v1)
        let v2 = E.load8(k2, i), v3 = E.load8(k3, i)
        a2.addProduct(x0, v2); b2.addProduct(x1, v2); a3.addProduct(x0, v3); b3.addProduct(x1, v3)
        i &+= 8
    }
    var s = kronos_sum4x8f(a0, a1, a2, a3), t = kronos_sum4x8f(b0, b1, b2, b3)
    while i < n {
        let x0 = q0[i], x1 = q1[i], v0 = E.load(k0, i), v1 = E.load(k1, i), v2 = E.load(k2, i), v3 = E.load(k3, i)
        s[0] += x0 * v0; s[1] += x0 * v1; s[2] += x0 * v2; s[3] += x0 * v3
        t[0] += x1 * v0; t[1] += x1 * v1; t[2] += x1 * v2; t[3] += x1 * v3
        i &+= 1
    }
    return (s, t)
}

/// Rows per core from which the row-wise steps of a block (norms, rotary, gating, residuals) are
/// split across cores: below, waking a second core costs more than the rows.
let rowwiseMinimumRows = 8

/// Scratch for block forward passes over up to `rows` rows of width D and F, and the kernels'
/// per-worker workspace: everything a pass needs, allocated once.
final class BlockScratch {
    let h, q, k, v, att: UnsafeMutablePointer<Float>  // [rows, D]
    let f1, f3: UnsafeMutablePointer<Float>  // [rows, F]
    let rows: Int
    let workspace: Workspace
    /// Owns the buffers above and the rotary rows; the caller's own scratch for this pass comes from it too.
    let arena = ScratchArena()
    /// `columns`: the widest input of any other matmul run with this scratch.
    init(rows: Int, D: Int, F: Int, columns: Int = 0, positions: Int, headDimension: Int = 0, threads: Int) {
        self.rows = rows
        h = arena.buffer(count: rows * D); q = arena.buffer(count: rows * D); k = arena.buffer(count: rows * D)
        v = arena.buffer(count: rows * D); att = arena.buffer(count: rows * D)
        f1 = arena.buffer(count: rows * F); f3 = arena.buffer(count: rows * F)
        workspace = Workspace(
            columns: max(D, F, columns), positions: positions, headDimension: headDimension, threads: threads)
    }

    // Rotary rows past the model's table, computed for the pass that needs them (this scratch's
    // own memory: forecasts sharing a model never write to anything they share).
    private var rotaryCos: UnsafeMutablePointer<Float>?, rotarySin: UnsafeMutablePointer<Float>?
    private var rotaryCapacity = 0
    private var rotaryKey: RotaryKey?
    private struct RotaryKey: Equatable { let table: ObjectIdentifier, start: Int, count: Int }

    /// cos, sin [count, half] of positions start ..< start + count: rows of the model's table when
    /// it covers them, else computed here once per pass (every block of a pass with the same table
    /// reads the same rows).
    func rotaryRows(_ table: RotaryTable, start: Int, count: Int) -> (
        cos: UnsafePointer<Float>, sin: UnsafePointer<Float>
    ) {
        if start + count <= table.positions { return table.rows(from: start) }
        let needed = count * table.half
        if needed > rotaryCapacity {
            rotaryCapacity = needed
            rotaryCos = arena.regrow(rotaryCos, count: needed); rotarySin = arena.regrow(rotarySin, count: needed)
            rotaryKey = nil
        }
        let key = RotaryKey(table: ObjectIdentifier(table), start: start, count: count)
        if rotaryKey != key {
            RotaryTable.angles(table.invFreq, positions: start..<(start + count), cos: rotaryCos!, sin: rotarySin!)
            rotaryKey = key
        }
        return (UnsafePointer(rotaryCos!), UnsafePointer(rotarySin!))
    }
}

extension Block {
    var width: Int { norm1.count }
    var hidden: Int { w1.outputs }

    /// x [batch, newRows, D] (in place): one block over the new rows of `batch` sequences (b-th row
    /// block = cache sequence b·sequenceStride: stride perGroup runs one sequence per group, for
    /// shared rows), whose absolute positions are cache.end ..< cache.end + newRows; their keys /
    /// values are appended. Attention is causal over the cached and new rows.
    func forward(
        _ x: UnsafeMutablePointer<Float>, batch: Int, sequenceStride: Int = 1, newRows: Int, cache: KVCache,
        scratch s: BlockScratch
    ) {
        let D = width, F = hidden, rows = batch * newRows
        let hd = D / heads, ws = s.workspace
        let start = cache.end
        precondition(cache.length + newRows <= cache.capacity && rows <= s.rows)
        let angles = s.rotaryRows(rotary, start: start, count: newRows)
        let half = rotary.half

        // The row-wise steps between the matmuls run on every core for long passes (rows split in
        // chunks: each row's arithmetic is unchanged); a decode step's few rows stay on one.
        @inline(__always) func perRows(_ body: (Range<Int>) -> Void) {
            parallelChunks(rows, minimumPerChunk: rowwiseMinimumRows, threads: ws.workers) { _, range in body(range) }
        }
        norm1.withUnsafeBufferPointer { w in
            perRows { r in
                rmsNorm(x + r.lowerBound * D, weight: w.baseAddress!, rows: r.count, n: D, s.h + r.lowerBound * D)
            }
        }
        ws.sharingQuantizedInput {  // (the integer path quantizes h once for the three)
            q(s.h, rows: rows, into: s.q, ws)
            k(s.h, rows: rows, into: s.k, ws)
            v(s.h, rows: rows, into: s.v, ws)
        }
        // Rotary on queries and keys, then keys / values into the cache.
        perRows { range in
            for r in range {
                let b = r / newRows, i = r % newRows, p = start + i
                let c = angles.cos + i * half, sn = angles.sin + i * half
                for h in 0..<heads {
                    RotaryTable.apply(s.q + r * D + h * hd, half: half, cos: c, sin: sn)
                    RotaryTable.apply(s.k + r * D + h * hd, half: half, cos: c, sin: sn)
                }
                cache.store(b * sequenceStride, position: p, key: s.k + r * D, value: s.v + r * D)
            }
        }
        let before = cache.length
        cache.length += newRows
        cache.attention(
            heads: heads, batch: batch, sequenceStride: sequenceStride, newRows: newRows, before: before, q: s.q,
            out: s.att,
            D: D, hd: hd, workspace: ws)
        // x += out_proj(att); h = norm2(x)
        out(s.att, rows: rows, into: s.h, ws)
        norm2.withUnsafeBufferPointer { w in
            perRows { r in
                for i in (r.lowerBound * D)..<(r.upperBound * D) { x[i] += s.h[i] }
                rmsNorm(x + r.lowerBound * D, weight: w.baseAddress!, rows: r.count, n: D, s.h + r.lowerBound * D)
            }
        }
        // x += w2(silu(w1 h) * w3 h)
        ws.sharingQuantizedInput {
            w1(s.h, rows: rows, into: s.f1, ws)
            w3(s.h, rows: rows, into: s.f3, ws)
        }
        perRows { r in
            siluGate(s.f1 + r.lowerBound * F, s.f3 + r.lowerBound * F, r.count * F)
        }
        w2(s.f1, rows: rows, into: s.h, ws)
        perRows { r in
            for i in (r.lowerBound * D)..<(r.upperBound * D) { x[i] += s.h[i] }
        }
    }
}

extension KVCache {
    // q [batch*newRows, D]: new row t of sequence b sees the `before` older cached rows and new rows
    // 0...t -> out [batch*newRows, D]. Tasks are (sequence, head, block of attentionQueryBlock new
    // rows), dealt round-robin to the workers (causal blocks get longer towards the end).
    // `wide512`: the 512-bit kernels where the key-lane path is taken, else the 256-bit ones (tests run
    // both).
    package func attention(
        heads: Int, batch: Int, sequenceStride: Int, newRows: Int, before: Int, q: UnsafeMutablePointer<Float>,
        out: UnsafeMutablePointer<Float>, D: Int, hd: Int, workspace: Workspace,
        wide512: Bool = Kernels.wideAttention512
    ) {
        let cache = self
        let scale = 1 / Float(hd).squareRoot()
        precondition(!wide512 || Kernels.IntegerKernels.vnni.runs, "the 512-bit attention needs AVX-512")
        // A decode step of groups that share rows runs one task per (group, head): the group's
        // queries together over its shared rows.
        let grouped = newRows == 1 && sequenceStride == 1 && cache.perGroup > 1 && cache.split != Int.max
        // A prefill's many queries per sequence run through the 512-bit kernels where the processor
        // has them (the keys transposed once per (sequence, head) for all of its queries), one task
        // per (sequence, head); the same numbers either way.
        let wide =
            !grouped && newRows >= Kernels.wideAttentionMinimumRows && Kernels.wideAttention
            && workspace.floatsPerWorker >= KVCache.wideScratch(positions: before + newRows, headDimension: hd)
        let blocks = wide ? 1 : (newRows + attentionQueryBlock - 1) / attentionQueryBlock
        let tasks = grouped ? cache.groups * heads : batch * heads * blocks
        let workers = tasks > 1 && batch * heads * newRows * (before + newRows) * hd > 1 << 15 ? workspace.workers : 1
        precondition(
            workspace.floatsPerWorker >= attentionQueryBlock * (before + newRows), "workspace too small for attention")
        let arguments = AttentionArguments(
            cache: cache, heads: heads, sequenceStride: sequenceStride, newRows: newRows,
            before: before, q: q, out: out, D: D, hd: hd, workspace: workspace, scale: scale,
            grouped: grouped, wide: wide, wide512: wide512, blocks: blocks, tasks: tasks, workers: workers)
        parallelChunks(workers, threads: workers, arguments: arguments) { raw, worker, range in
            let a = raw.load(as: AttentionArguments.self)
            let (cache, heads, D, hd, q, out, before) = (a.cache, a.heads, a.D, a.hd, a.q, a.out, a.before)
            let scores = a.workspace.scratch(worker)
            for task in stride(from: range.lowerBound, to: a.tasks, by: a.workers) {
                if a.grouped {
                    let h = task % heads, r0 = (task / heads) * cache.perGroup
                    cache.attendGroup(
                        task / heads, column: h * hd, headDimension: hd, visible: before + 1, q: q + r0 * D + h * hd,
                        qStride: D, scale: a.scale, scores: scores, out: out + r0 * D + h * hd, outStride: D)
                    continue
                }
                if a.wide {
                    let h = task % heads, b = task / heads, r0 = b * a.newRows
                    cache.attendWide(
                        sequence: b * a.sequenceStride, column: h * hd, headDimension: hd, visible: before + 1,
                        queries: a.newRows, q: q + r0 * D + h * hd, qStride: D, scale: a.scale, scratch: scores,
                        out: out + r0 * D + h * hd, outStride: D, wide512: a.wide512)
                    continue
                }
                let blk = task % a.blocks, h = (task / a.blocks) % heads, b = task / (a.blocks * heads)
                let t0 = blk * attentionQueryBlock, qb = min(attentionQueryBlock, a.newRows - t0)
                let r0 = b * a.newRows + t0
                cache.attend(
                    sequence: b * a.sequenceStride, column: h * hd, headDimension: hd, visible: before + t0 + 1,
                    queries: qb,
                    q: q + r0 * D + h * hd, qStride: D, scale: a.scale, scores: scores,
                    out: out + r0 * D + h * hd, outStride: D)
            }
        }
    }
}

/// The arguments of one attention pass, for its capture-free parallel body.
struct AttentionArguments {
    let cache: KVCache
    let heads, sequenceStride, newRows, before: Int
    let q, out: UnsafeMutablePointer<Float>
    let D, hd: Int
    let workspace: Workspace
    let scale: Float
    let grouped, wide, wide512: Bool
    let blocks, tasks, workers: Int
}
