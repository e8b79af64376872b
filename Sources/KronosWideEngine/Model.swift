// The Kronos model (ARCHITECTURE.md §3-§4): tokenizer encode / decode, predictor decode_s1 / decode_s2.
import Foundation
import KronosBundle
import KronosQuant

/// Tokenizer weights (ARCHITECTURE.md §3). D = tokenizer d_model, C = s1_bits + s2_bits.
final class TokenizerModel: @unchecked Sendable {
    let config: TokenizerConfig
    let embed: Linear  // [D, 6] + [D]
    let encoder: [Block]  // n_enc_layers - 1 blocks
    let decoder: [Block]  // n_dec_layers - 1 blocks
    let quantEmbed: Linear  // [C, D] + [C]
    let postQuantEmbed: Linear  // [D, C] + [D]
    let head: Linear  // [6, D] + [6]

    /// Threads its passes run on.
    let threads: Int
    /// Given every matmul's input rows (ForecastEngine.observeActivations); nil in forecasts.
    var observer: (any ActivationObserver)?
    var blockedSums = false {  // Workspace.blockedSums of its passes
        didSet { if !blockedSums { panels.removeAll() } }
    }
    let panels = WeightPanels()  // its weights packed for blockedSums passes

    init(_ s: TensorStore, config c: TokenizerConfig, positions: Int, threads: Int) throws(RuntimeError) {
        config = c
        self.threads = threads
        embed = try s.linear(.tokenizer, "embed")
        encoder = try (0..<c.encoderBlocks).map { (i) throws(RuntimeError) in
            try s.block(.tokenizer, "encoder.\(i)", heads: c.headCount, positions: positions)
        }
        decoder = try (0..<c.decoderBlocks).map { (i) throws(RuntimeError) in
            try s.block(.tokenizer, "decoder.\(i)", heads: c.headCount, positions: positions)
        }
        quantEmbed = try s.linear(.tokenizer, "quant_embed")
        postQuantEmbed = try s.linear(.tokenizer, "post_quant_embed")
        head = try s.linear(.tokenizer, "head")
    }

    private func scratch(rows: Int, positions: Int) -> BlockScratch {
        let s = BlockScratch(
            rows: rows, D: config.modelDimension, F: config.feedForwardDimension,
            columns: max(6, config.codeBits), positions: positions,
            headDimension: config.modelDimension / config.headCount, threads: threads)
        s.workspace.observer = observer
        s.workspace.blockedSums = blockedSums
        s.workspace.weightPanels = blockedSums ? panels : nil
        return s
    }

    /// x [rows, 6] normalized candles -> (s1, s2) [rows] ids (binary spherical quantization).
    /// The encoder is causal: rows go through it passRows at a time, each block's keys / values
    /// cached (results do not depend on the chunking), so the scratch stays small for long inputs.
    func encode(_ x: [Float], rows: Int) -> (s1: [Int], s2: [Int]) {
        let D = config.modelDimension, C = config.codeBits, chunk = max(1, min(rows, passRows))
        let s = scratch(rows: chunk, positions: rows)
        defer { withExtendedLifetime(s) {} }  // s's arena owns h and z
        let h: UnsafeMutablePointer<Float> = s.arena.buffer(count: chunk * D)
        let z: UnsafeMutablePointer<Float> = s.arena.buffer(count: chunk * C)
        let caches = encoder.map { _ in KVCache(batch: 1, capacity: max(rows, 1), width: D) }
        var s1 = [Int](repeating: 0, count: rows), s2 = [Int](repeating: 0, count: rows)
        runChunked(
            encoder, caches: caches, count: rows, h: h, scratch: s,
            input: { c0, n in
                x.withUnsafeBufferPointer { embed($0.baseAddress! + c0 * 6, rows: n, into: h, s.workspace) }
            },
            output: { c0, n in
                quantEmbed(h, rows: n, into: z, s.workspace)
                for t in 0..<n {
                    // The L2 normalization does not change signs; bit k = z_k > 0, lowest bit first.
                    for k in 0..<config.s1Bits where z[t * C + k] > 0 { s1[c0 + t] |= 1 << k }
                    for k in 0..<config.s2Bits where z[t * C + config.s1Bits + k] > 0 { s2[c0 + t] |= 1 << k }
                }
            })
        return (s1, s2)
    }

    /// ids [batch, rows] -> candles [batch, rows, 6] (positions from 0 in every sequence). One
    /// sequence at a time: the scratch is one sequence's, whatever the batch (results do not depend
    /// on how sequences are grouped).
    func decode(s1: [[Int]], s2: [[Int]]) -> [Float] {
        let rows = s1.first?.count ?? 0
        var out = [Float]()
        out.reserveCapacity(s1.count * rows * 6)
        for b in s1.indices { out += decode(prefixS1: [], prefixS2: [], suffixesS1: [s1[b]], suffixesS2: [s2[b]])[0] }
        return out
    }

    /// ids of a prefix [m] shared by several sequences, then each sequence's own suffix [k][r] ->
    /// candles of the suffix rows [k][r, 6]. The decoder is causal, so the prefix rows are the same
    /// in every sequence: they run once, their keys / values cached per block, and each suffix runs
    /// after them (positions m ..< m + r). Equal, bit for bit, to decoding each whole sequence and
    /// keeping its last r rows.
    func decode(prefixS1: [Int], prefixS2: [Int], suffixesS1: [[Int]], suffixesS2: [[Int]]) -> [[Float]] {
        let m = prefixS1.count, r = suffixesS1.first?.count ?? 0
        let rows = max(1, min(max(m, r), passRows))
        let D = config.modelDimension, C = config.codeBits
        let s = scratch(rows: rows, positions: m + r)
        defer { withExtendedLifetime(s) {} }  // s's arena owns q and h
        let q: UnsafeMutablePointer<Float> = s.arena.buffer(count: rows * C)
        let h: UnsafeMutablePointer<Float> = s.arena.buffer(count: rows * D)
        let caches = decoder.map { _ in KVCache(batch: 1, capacity: max(m + r, 1), width: D) }
        let mag = 1 / Float(C).squareRoot()
        // ids [count] -> post_quant_embed of their ±1/√C codes, then the decoder blocks after the
        // cached rows; head of every row -> out [count, 6] when given.
        func run(_ s1: [Int], _ s2: [Int], into out: UnsafeMutablePointer<Float>?) {
            runChunked(
                decoder, caches: caches, count: s1.count, h: h, scratch: s,
                input: { c0, n in
                    for t in 0..<n {
                        for k in 0..<config.s1Bits { q[t * C + k] = (s1[c0 + t] >> k) & 1 == 1 ? mag : -mag }
                        for k in 0..<config.s2Bits {
                            q[t * C + config.s1Bits + k] = (s2[c0 + t] >> k) & 1 == 1 ? mag : -mag
                        }
                    }
                    postQuantEmbed(q, rows: n, into: h, s.workspace)
                },
                output: { c0, n in
                    if let out { head(h, rows: n, into: out + c0 * 6, s.workspace) }
                })
        }
        run(prefixS1, prefixS2, into: nil)
        var out = [[Float]]()
        for (k, suffix) in suffixesS1.enumerated() {
            for c in caches { c.length = m }  // back to the prefix: the suffix rows overwrite the previous suffix's
            var candles = [Float](repeating: 0, count: r * 6)
            candles.withUnsafeMutableBufferPointer { run(suffix, suffixesS2[k], into: $0.baseAddress!) }
            out.append(candles)
        }
        return out
    }

    /// Rows of one encoder / decoder pass at most (longer runs are chunked; results do not depend on it).
    static let passRows = 128
    /// passRows, or with blockedSums blockedPassRows (PackedGemm.swift).
    var passRows: Int { blockedSums ? blockedPassRows : Self.passRows }

    // Rows 0 ..< count through `blocks` (causal) after the rows already in `caches`, scratch.rows at
    // a time: input(c0, n) writes the block input of rows c0 ..< c0 + n into h [n, D], output(c0, n)
    // reads the chunk's result from h.
    private func runChunked(
        _ blocks: [Block], caches: [KVCache], count: Int, h: UnsafeMutablePointer<Float>, scratch s: BlockScratch,
        input: (Int, Int) -> Void, output: (Int, Int) -> Void
    ) {
        var c0 = 0
        while c0 < count {
            let n = min(s.rows, count - c0)
            input(c0, n)
            for (i, block) in blocks.enumerated() {
                block.forward(h, batch: 1, newRows: n, cache: caches[i], scratch: s)
            }
            output(c0, n)
            c0 += n
        }
    }
}

/// Predictor weights (ARCHITECTURE.md §4). D = predictor d_model.
package final class PredictorModel: @unchecked Sendable {
    let config: PredictorConfig
    let embS1: WeightMatrix  // [V1, D] (embedding table, maybe quantized)
    let embS2: WeightMatrix  // [V2, D]
    let fusion: Linear  // [D, 2D] + [D]
    let minuteTable, hourTable, weekdayTable, dayTable, monthTable: WeightMatrix  // [60|24|7|32|13, D]
    let blocks: [Block]  // n_layers
    let norm: [Float]  // [D]
    let depQ, depK, depV, depOut: Linear  // [D, D] + [D], 4 heads, no rotation at inference
    let depNorm: [Float]  // [D]
    let projS1: Linear  // [V1, D] + [V1]
    let projS2: Linear  // [V2, D] + [V2]
    let hasIntegerCodes: Bool  // some matmul weight is q8_0 / q4_1 / q4_k (the integer path's types)
    let threads: Int  // threads its sessions run on
    var observer: (any ActivationObserver)?  // given every matmul's input rows (calibration); nil in forecasts
    var blockedSums = false {  // Workspace.blockedSums of its sessions
        didSet { if !blockedSums { panels.removeAll() } }
    }
    let panels = WeightPanels()  // its weights packed for blockedSums passes

    init(_ s: TensorStore, config c: PredictorConfig, positions: Int, threads: Int) throws(RuntimeError) {
        config = c
        self.threads = threads
        embS1 = try s.matrix(.predictor, "embedding.emb_s1.weight")
        embS2 = try s.matrix(.predictor, "embedding.emb_s2.weight")
        fusion = try s.linear(.predictor, "embedding.fusion_proj")
        func table(_ n: String) throws(RuntimeError) -> WeightMatrix {
            try s.matrix(.predictor, TensorLayout.timeTableName(n, learned: c.learnedTimeEmbedding))
        }
        minuteTable = try table("minute"); hourTable = try table("hour"); weekdayTable = try table("weekday")
        dayTable = try table("day"); monthTable = try table("month")
        blocks = try (0..<c.layers).map { (i) throws(RuntimeError) in
            try s.block(.predictor, "transformer.\(i)", heads: c.headCount, positions: positions)
        }
        norm = try s.vector(.predictor, "norm.weight")
        depQ = try s.linear(.predictor, "dep_layer.cross_attn.q_proj")
        depK = try s.linear(.predictor, "dep_layer.cross_attn.k_proj")
        depV = try s.linear(.predictor, "dep_layer.cross_attn.v_proj")
        depOut = try s.linear(.predictor, "dep_layer.cross_attn.out_proj")
        depNorm = try s.vector(.predictor, "dep_layer.norm.weight")
        projS1 = try s.linear(.predictor, "head.proj_s1")
        projS2 = try s.linear(.predictor, "head.proj_s2")
        let linears =
            [fusion, depQ, depK, depV, depOut, projS1, projS2]
            + blocks.flatMap { [$0.q, $0.k, $0.v, $0.out, $0.w1, $0.w3, $0.w2] }
        hasIntegerCodes = linears.contains { $0.weight.type.hasIntegerCodes }
    }

    /// Multiply-adds of the transformer blocks' matmuls (q, k, v, out, w1, w3, w2) per input row: a
    /// prefill's matmul work is twice this (multiply and add) per row.
    package var blockMatmulMultiplyAddsPerRow: Int {
        blocks.reduce(0) { sum, b in
            sum + [b.q, b.k, b.v, b.out, b.w1, b.w3, b.w2].reduce(0) { $0 + $1.outputs * $1.inputs }
        }
    }

    /// The arithmetic a predictor session runs when asked for none (ForecastEngine.defaultActivations /
    /// defaultKVCache say why): int8 activations where some matmul weight has integer codes and this
    /// processor has the fast integer kernels (AVX-512 VNNI or AVX2), the f16 cache where some matmul
    /// weight has integer codes.
    var defaultActivations: ActivationPrecision {
        hasIntegerCodes && Kernels.IntegerKernels.native.outpaceFloat ? .int8 : .f32
    }
    var defaultKVCache: KVCachePrecision { hasIntegerCodes ? .f16 : .f32 }
    /// `requested`, or the default when nil (int8 only where some weight has integer codes).
    func activations(_ requested: ActivationPrecision?) -> ActivationPrecision {
        hasIntegerCodes ? requested ?? defaultActivations : .f32
    }
    func kvCache(_ requested: KVCachePrecision?) -> KVCachePrecision { requested ?? defaultKVCache }

    /// Input embedding of one token: fusion(concat(emb_s1[s1]·√D, emb_s2[s2]·√D)) + time(stamp) -> out [D].
    func embed(
        s1: Int, s2: Int, stamp: TimeStamp, pair: UnsafeMutablePointer<Float>, time: UnsafeMutablePointer<Float>,
        out: UnsafeMutablePointer<Float>, workspace: Workspace
    ) {
        embedPair(s1: s1, s2: s2, into: pair)
        fusion(pair, rows: 1, into: out, workspace)
        addTime(stamp, time: time, scratch: pair, to: out)
    }

    /// concat(emb_s1[s1]·√D, emb_s2[s2]·√D) -> pair [2D]: the fusion's input row of a token.
    func embedPair(s1: Int, s2: Int, into pair: UnsafeMutablePointer<Float>) {
        let D = config.modelDimension
        let scale = Float(D).squareRoot()
        embS1.decodeRow(s1, into: pair)
        embS2.decodeRow(s2, into: pair + D)
        for i in 0..<(2 * D) { pair[i] *= scale }
    }

    /// out [D] += time(stamp), the time embedding summed in time [D] (scratch [D]: a free row).
    func addTime(
        _ stamp: TimeStamp, time: UnsafeMutablePointer<Float>, scratch tmp: UnsafeMutablePointer<Float>,
        to out: UnsafeMutablePointer<Float>
    ) {
        let D = config.modelDimension
        // time = hour + weekday + day + month + minute, in that order
        hourTable.decodeRow(stamp.hour, into: time)
        func add(_ table: WeightMatrix, _ index: Int) {
            table.decodeRow(index, into: tmp)
            for i in 0..<D { time[i] += tmp[i] }
        }
        add(weekdayTable, stamp.weekday); add(dayTable, stamp.day); add(monthTable, stamp.month);
        add(minuteTable, stamp.minute)
        for i in 0..<D { out[i] += time[i] }
    }
}

/// A loaded bundle, ready to forecast.
public final class ForecastEngine: @unchecked Sendable {
    public let manifest: Manifest
    public let path: String
    let tokenizer: TokenizerModel
    package let predictor: PredictorModel
    private let store: TensorStore
    /// Seconds spent opening, validating and decompressing the bundle.
    public let loadSeconds: Double

    public var maxContext: Int { manifest.maxContext }
    /// Threads every forecast on this model runs its kernels on (the caller's included).
    public let threads: Int
    /// Set when fewer threads started than were asked for (a process or memory limit): the model
    /// runs on those that did.
    public let threadWarning: String?
    /// Rotary positions computed at load (Kronos-mini's 2048-row window).
    static let initialRotaryPositions = 2048

    /// Loads and checks the bundle at `path`; its forecasts run on `threads` threads (nil: one per
    /// core; at most Runtime.maxThreads).
    public convenience init(path: String, threads requested: Int? = nil) throws(RuntimeError) {
        let start = Date()
        let (threads, warning) = try Self.startThreads(requested)
        let reader: BundleReader
        do { reader = try BundleReader(path: path) } catch { throw .bundle(error) }
        let decoded = reader.manifest.decodedBytes
        guard decoded <= ProcessInfo.processInfo.physicalMemory else {
            throw .model(
                "\(path): the bundle decodes to \(decoded) bytes, more than this machine's "
                    + "\(ProcessInfo.processInfo.physicalMemory) bytes of memory"
            )
        }
        let tensors: [String: TensorData]
        do { tensors = try reader.loadAll() } catch { throw .bundle(error) }
        try self.init(
            manifest: reader.manifest, tensors: tensors, path: path, threads: threads, threadWarning: warning,
            started: start)
    }

    /// A model from tensors already in memory, as BundleReader.loadAll gives them, with their
    /// manifest (calibration's f32 model, KronosConvert.f32Model); `path` names it in messages.
    package convenience init(
        manifest: Manifest, tensors: [String: TensorData], path: String, threads requested: Int? = nil
    ) throws(RuntimeError) {
        let start = Date()
        let (threads, warning) = try Self.startThreads(requested)
        try self.init(
            manifest: manifest, tensors: tensors, path: path, threads: threads, threadWarning: warning, started: start)
    }

    /// The threads a model runs on: `requested` (nil: one per core) or as many as started.
    private static func startThreads(_ requested: Int?) throws(RuntimeError) -> (Int, String?) {
        if let t = requested, !(1...Runtime.maxThreads).contains(t) {
            throw .options(
                "threads must be in 1...\(Runtime.maxThreads) (4 per core on this machine, at least 8), found \(t)")
        }
        let asked = requested ?? Runtime.defaultThreads
        let threads = Runtime.startThreads(asked)
        return (
            threads,
            threads < asked
                ? "started \(threads) of \(asked) threads (a process or memory limit): running on \(threads)" : nil
        )
    }

    private init(
        manifest: Manifest, tensors: [String: TensorData], path: String, threads: Int, threadWarning: String?,
        started start: Date
    ) throws(RuntimeError) {
        self.threads = threads
        self.threadWarning = threadWarning
        store = TensorStore(tensors: tensors, path: path)
        self.manifest = manifest
        self.path = path
        // Rotary tables start at the released windows' size and grow to the rows a run uses (a
        // bundle claiming max_context 1048576 must not cost 1 GB of tables per distinct inv_freq).
        let positions = min(manifest.maxContext, Self.initialRotaryPositions)
        tokenizer = try TokenizerModel(store, config: manifest.tokenizerConfig, positions: positions, threads: threads)
        predictor = try PredictorModel(store, config: manifest.predictorConfig, positions: positions, threads: threads)
        loadSeconds = Date().timeIntervalSince(start)
    }

    /// From now on, `observer` sees the input rows of every matmul this model runs (nil: none), and
    /// with `blockedSums` (and an observer) its f32 passes sum by the packed GEMM
    /// (Workspace.blockedSums). For calibration: set it before the passes to observe and run nothing
    /// else meanwhile.
    public func observeActivations(_ observer: (any ActivationObserver)?, blockedSums: Bool) {
        tokenizer.observer = observer
        predictor.observer = observer
        tokenizer.blockedSums = observer != nil && blockedSums
        predictor.blockedSums = observer != nil && blockedSums
    }

    /// x [rows, 6] normalized -> ids.
    public func encode(_ x: [Float], rows: Int) -> (s1: [Int], s2: [Int]) { tokenizer.encode(x, rows: rows) }

    /// ids [batch][rows] -> candles [batch, rows, 6] normalized.
    public func decode(s1: [[Int]], s2: [[Int]]) -> [Float] { tokenizer.decode(s1: s1, s2: s2) }
    /// A prefix [m] shared by several sequences, then each one's suffix [k][r] -> the suffix rows'
    /// candles [k][r, 6] (the prefix decoded once; equal to decoding each whole sequence).
    public func decode(prefixS1: [Int], prefixS2: [Int], suffixesS1: [[Int]], suffixesS2: [[Int]]) -> [[Float]] {
        tokenizer.decode(prefixS1: prefixS1, prefixS2: prefixS2, suffixesS1: suffixesS1, suffixesS2: suffixesS2)
    }
}
