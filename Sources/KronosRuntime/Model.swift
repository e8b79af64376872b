// The Kronos model (KRONOS.md §3-§4): tokenizer encode / decode, predictor decode_s1 / decode_s2.
import Foundation
import KronosBundle
import KronosQuant

/// Tokenizer weights (KRONOS.md §3). D = tokenizer d_model, C = s1_bits + s2_bits.
final class TokenizerModel: @unchecked Sendable {
    let config: TokenizerConfig
    let embed: Linear            // [D, 6] + [D]
    let encoder: [Block]         // n_enc_layers - 1 blocks
    let decoder: [Block]         // n_dec_layers - 1 blocks
    let quantEmbed: Linear       // [C, D] + [C]
    let postQuantEmbed: Linear   // [D, C] + [D]
    let head: Linear             // [6, D] + [6]

    init(_ s: TensorStore, config c: TokenizerConfig, positions: Int) throws(RuntimeError) {
        config = c
        embed = try s.linear(.tokenizer, "embed")
        encoder = try (0..<c.encoderBlocks).map { (i) throws(RuntimeError) in try s.block(.tokenizer, "encoder.\(i)", heads: c.headCount, positions: positions) }
        decoder = try (0..<c.decoderBlocks).map { (i) throws(RuntimeError) in try s.block(.tokenizer, "decoder.\(i)", heads: c.headCount, positions: positions) }
        quantEmbed = try s.linear(.tokenizer, "quant_embed")
        postQuantEmbed = try s.linear(.tokenizer, "post_quant_embed")
        head = try s.linear(.tokenizer, "head")
    }

    // x [batch, rows, D] through `blocks` (positions from 0 in every sequence), in place.
    private func runBlocks(_ blocks: [Block], _ x: UnsafeMutablePointer<Float>, batch: Int, rows: Int, scratch: BlockScratch) {
        let cache = KVCache(batch: batch, capacity: rows, width: config.modelDimension)  // one cache, emptied for every block
        for b in blocks {
            cache.clear()
            b.forward(x, batch: batch, newRows: rows, cache: cache, scratch: scratch)
        }
    }

    private func scratch(rows: Int, positions: Int) -> BlockScratch {
        BlockScratch(rows: rows, D: config.modelDimension, F: config.feedForwardDimension,
                     columns: max(6, config.codeBits), positions: positions)
    }

    /// x [rows, 6] normalized candles -> (s1, s2) [rows] ids (binary spherical quantization).
    func encode(_ x: [Float], rows: Int) -> (s1: [Int], s2: [Int]) {
        let D = config.modelDimension, C = config.codeBits
        let h = UnsafeMutablePointer<Float>.allocate(capacity: rows * D)
        let z = UnsafeMutablePointer<Float>.allocate(capacity: rows * C)
        defer { h.deallocate(); z.deallocate() }
        let s = scratch(rows: rows, positions: rows)
        x.withUnsafeBufferPointer { embed($0.baseAddress!, rows: rows, into: h, s.workspace) }
        runBlocks(encoder, h, batch: 1, rows: rows, scratch: s)
        quantEmbed(h, rows: rows, into: z, s.workspace)
        var s1 = [Int](repeating: 0, count: rows), s2 = [Int](repeating: 0, count: rows)
        for t in 0..<rows {
            // The L2 normalization does not change signs; bit k = z_k > 0, lowest bit first.
            for k in 0..<config.s1Bits where z[t * C + k] > 0 { s1[t] |= 1 << k }
            for k in 0..<config.s2Bits where z[t * C + config.s1Bits + k] > 0 { s2[t] |= 1 << k }
        }
        return (s1, s2)
    }

    /// ids [batch, rows] -> candles [batch, rows, 6] (positions from 0 in every sequence). One
    /// sequence at a time: the scratch is one sequence's, whatever the batch (results do not depend
    /// on how sequences are grouped).
    func decode(s1: [[Int]], s2: [[Int]]) -> [Float] {
        let rows = s1.first?.count ?? 0
        var out = [Float]()
        out.reserveCapacity(s1.count * rows * 6)
        for b in s1.indices { out += decodeOne(s1: s1[b], s2: s2[b]) }
        return out
    }

    // ids [rows] -> candles [rows, 6].
    private func decodeOne(s1: [Int], s2: [Int]) -> [Float] {
        let batch = 1, rows = s1.count
        let s1 = [s1], s2 = [s2]
        let D = config.modelDimension, C = config.codeBits, n = batch * rows
        let q = UnsafeMutablePointer<Float>.allocate(capacity: n * C)
        let h = UnsafeMutablePointer<Float>.allocate(capacity: n * D)
        defer { q.deallocate(); h.deallocate() }
        let mag = 1 / Float(C).squareRoot()
        for b in 0..<batch {
            for t in 0..<rows {
                let r = (b * rows + t) * C
                for k in 0..<config.s1Bits { q[r + k] = (s1[b][t] >> k) & 1 == 1 ? mag : -mag }
                for k in 0..<config.s2Bits { q[r + config.s1Bits + k] = (s2[b][t] >> k) & 1 == 1 ? mag : -mag }
            }
        }
        let s = scratch(rows: n, positions: rows)
        postQuantEmbed(q, rows: n, into: h, s.workspace)
        runBlocks(decoder, h, batch: batch, rows: rows, scratch: s)
        var out = [Float](repeating: 0, count: n * 6)
        out.withUnsafeMutableBufferPointer { head(h, rows: n, into: $0.baseAddress!, s.workspace) }
        return out
    }
}

/// Calendar features of one timestamp, as the time tables index them.
public struct TimeStamp: Sendable, Equatable {
    public var minute: Int   // 0...59
    public var hour: Int     // 0...23
    public var weekday: Int  // Monday = 0 ... Sunday = 6
    public var day: Int      // 1...31
    public var month: Int    // 1...12
    public init(minute: Int, hour: Int, weekday: Int, day: Int, month: Int) {
        self.minute = minute; self.hour = hour; self.weekday = weekday; self.day = day; self.month = month
    }
}

/// Predictor weights (KRONOS.md §4). D = predictor d_model.
final class PredictorModel: @unchecked Sendable {
    let config: PredictorConfig
    let embS1: WeightMatrix       // [V1, D] (embedding table, maybe quantized)
    let embS2: WeightMatrix       // [V2, D]
    let fusion: Linear            // [D, 2D] + [D]
    let minuteTable, hourTable, weekdayTable, dayTable, monthTable: WeightMatrix   // [60|24|7|32|13, D]
    let blocks: [Block]           // n_layers
    let norm: [Float]             // [D]
    let depQ, depK, depV, depOut: Linear   // [D, D] + [D], 4 heads, no rotation at inference
    let depNorm: [Float]          // [D]
    let projS1: Linear            // [V1, D] + [V1]
    let projS2: Linear            // [V2, D] + [V2]

    init(_ s: TensorStore, config c: PredictorConfig, positions: Int) throws(RuntimeError) {
        config = c
        embS1 = try s.matrix(.predictor, "embedding.emb_s1.weight")
        embS2 = try s.matrix(.predictor, "embedding.emb_s2.weight")
        fusion = try s.linear(.predictor, "embedding.fusion_proj")
        func table(_ n: String) throws(RuntimeError) -> WeightMatrix {
            try s.matrix(.predictor, TensorLayout.timeTableName(n, learned: c.learnedTimeEmbedding))
        }
        minuteTable = try table("minute"); hourTable = try table("hour"); weekdayTable = try table("weekday")
        dayTable = try table("day"); monthTable = try table("month")
        blocks = try (0..<c.layers).map { (i) throws(RuntimeError) in try s.block(.predictor, "transformer.\(i)", heads: c.headCount, positions: positions) }
        norm = try s.vector(.predictor, "norm.weight")
        depQ = try s.linear(.predictor, "dep_layer.cross_attn.q_proj")
        depK = try s.linear(.predictor, "dep_layer.cross_attn.k_proj")
        depV = try s.linear(.predictor, "dep_layer.cross_attn.v_proj")
        depOut = try s.linear(.predictor, "dep_layer.cross_attn.out_proj")
        depNorm = try s.vector(.predictor, "dep_layer.norm.weight")
        projS1 = try s.linear(.predictor, "head.proj_s1")
        projS2 = try s.linear(.predictor, "head.proj_s2")
    }

    /// Input embedding of one token: fusion(concat(emb_s1[s1]·√D, emb_s2[s2]·√D)) + time(stamp) -> out [D].
    func embed(s1: Int, s2: Int, stamp: TimeStamp, pair: UnsafeMutablePointer<Float>, time: UnsafeMutablePointer<Float>,
               out: UnsafeMutablePointer<Float>, workspace: Workspace) {
        let D = config.modelDimension
        let scale = Float(D).squareRoot()
        embS1.decodeRow(s1, into: pair)
        embS2.decodeRow(s2, into: pair + D)
        for i in 0..<(2 * D) { pair[i] *= scale }
        fusion(pair, rows: 1, into: out, workspace)
        // time = hour + weekday + day + month + minute, in that order
        hourTable.decodeRow(stamp.hour, into: time)
        let tmp = pair  // reuse as scratch for the other rows
        func add(_ table: WeightMatrix, _ index: Int) {
            table.decodeRow(index, into: tmp)
            for i in 0..<D { time[i] += tmp[i] }
        }
        add(weekdayTable, stamp.weekday); add(dayTable, stamp.day); add(monthTable, stamp.month); add(minuteTable, stamp.minute)
        for i in 0..<D { out[i] += time[i] }
    }
}

/// A loaded bundle, ready to forecast.
public final class KronosModel: @unchecked Sendable {
    public let manifest: Manifest
    public let path: String
    let tokenizer: TokenizerModel
    let predictor: PredictorModel
    private let store: TensorStore
    /// Seconds spent opening, validating and decompressing the bundle.
    public let loadSeconds: Double

    public var maxContext: Int { manifest.maxContext }

    public init(path: String) throws(RuntimeError) {
        let start = Date()
        let reader: BundleReader
        do { reader = try BundleReader(path: path) } catch { throw .bundle(error) }
        let decoded = reader.manifest.decodedBytes
        guard decoded <= ProcessInfo.processInfo.physicalMemory else {
            throw .model("\(path): the bundle decodes to \(decoded) bytes, more than this machine's \(ProcessInfo.processInfo.physicalMemory) bytes of memory")
        }
        let tensors: [String: TensorData]
        do { tensors = try reader.loadAll() } catch { throw .bundle(error) }
        store = TensorStore(tensors: tensors, path: path)
        manifest = reader.manifest
        self.path = path
        tokenizer = try TokenizerModel(store, config: manifest.tokenizerConfig, positions: manifest.maxContext)
        predictor = try PredictorModel(store, config: manifest.predictorConfig, positions: manifest.maxContext)
        loadSeconds = Date().timeIntervalSince(start)
    }

    /// x [rows, 6] normalized -> ids.
    public func encode(_ x: [Float], rows: Int) -> (s1: [Int], s2: [Int]) { tokenizer.encode(x, rows: rows) }

    /// ids [batch][rows] -> candles [batch, rows, 6] normalized.
    public func decode(s1: [[Int]], s2: [[Int]]) -> [Float] { tokenizer.decode(s1: s1, s2: s2) }
}
