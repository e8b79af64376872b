// Conversion pipeline: checked checkpoint -> per-tensor type choice -> quantize -> zstd frame ->
// streamed into an atomically written bundle.
import Foundation
import KronosBundle
import KronosCheckpoint
import KronosQuant
#if canImport(Glibc)
    import Glibc
#endif

public let converterVersion = KronosVersion.string

/// The user's choice of default type for quantizable tensors.
public enum QuantizeChoice: String, Sendable, CaseIterable, Codable {
    case f32, f16, q8, q4
    public var tensorType: TensorType {
        switch self {
        case .f32: .f32;
        case .f16: .f16;
        case .q8: .q8_0;
        case .q4: .q4_k
        }
    }
    /// Accepts both the short names (q8, q4) and the bundle type names (q8_0, q4_1, q4_k).
    /// q5 and q6 name q5_0 and q6_0 (types for --keep, not defaults).
    public static func parse(_ s: String) -> TensorType? {
        if let c = QuantizeChoice(rawValue: s) { return c.tensorType }
        if s == "q5" { return .q5_0 }
        if s == "q6" { return .q6_0 }
        if let t = TensorType(rawValue: s), t != .i64 { return t }
        return nil
    }
}

/// `--keep PATTERN=TYPE`: a glob on tensor names (as `fnmatch`, e.g. `head.*`) and the type to use.
public struct KeepRule: Sendable, Equatable {
    public let pattern: String
    public let type: TensorType
    public let text: String

    public init(parsing text: String) throws(ConversionError) {
        guard let eq = text.lastIndex(of: "="), eq != text.startIndex else {
            throw .badOption("--keep \"\(text)\": expected PATTERN=TYPE, e.g. 'head.*=q8'")
        }
        let pattern = String(text[..<eq]), typeName = String(text[text.index(after: eq)...])
        guard let type = QuantizeChoice.parse(typeName) else {
            throw .badOption("--keep \"\(text)\": unknown type \"\(typeName)\" (expected f32, f16, q8, q6, q5 or q4)")
        }
        self.pattern = pattern; self.type = type; self.text = text
    }

    /// Whether the rule matches `name` or `part/name`.
    public func matches(_ name: String, part: ModelPart) -> Bool {
        fnmatch(pattern, name, 0) == 0 || fnmatch(pattern, "\(part.rawValue)/\(name)", 0) == 0
    }
}

public struct ConversionOptions: Sendable {
    public var output: String
    public var quantize: QuantizeChoice = .q8
    public var keep: [KeepRule] = []
    public var zstdLevel: Int = 3
    public var q4SearchSteps: Int = BlockQ4_1.defaultSearchSteps
    public var maxContext: Int?
    /// Importance of each matmul weight's input columns (--calibrate / --imatrix): quantized blocks of
    /// the weights it covers minimise the importance-weighted error (KronosQuant/Weighted.swift).
    public var importance: ImportanceMatrix?
    public var force = false
    /// Worker threads (default: all cores).
    public var threads = ProcessInfo.processInfo.activeProcessorCount

    public init(output: String) { self.output = output }
}

public enum ConversionError: Error, LocalizedError, Sendable {
    case badOption(String)
    case checkpoint(CheckpointError)
    case bundle(BundleError)
    case tensor(file: String, tensor: String, message: String)

    public var errorDescription: String? {
        switch self {
        case let .badOption(m): return m
        case let .checkpoint(e): return e.errorDescription
        case let .bundle(e): return e.errorDescription
        case let .tensor(file, tensor, message): return "\(file): tensor \(tensor): \(message)"
        }
    }
}

/// One converted tensor, as reported.
public struct ConvertedTensor: Codable, Sendable {
    public var part: ModelPart
    public var name: String
    public var shape: [Int]
    public var type: TensorType
    public var sourceDType: String
    public var rawBytes: Int
    public var storedBytes: Int
    public var error: TensorErrorRecord?
    enum CodingKeys: String, CodingKey {
        case part, name, shape, type
        case sourceDType = "source_dtype"
        case rawBytes = "raw_bytes"
        case storedBytes = "stored_bytes"
        case error
    }
}

public struct ConversionReport: Codable, Sendable {
    public var output: String
    public var quantize: QuantizeChoice
    public var tensors: Int
    public var parameters: Int
    public var sourceBytes: Int
    public var bundleBytes: Int
    public var ratio: Double
    public var bitsPerWeight: Double
    public var worstTensor: String?
    public var worstRelativeRMSE: Double
    public var worstMaxAbs: Double
    public var seconds: Double
    public var maxContext: Int
    public var notes: [String]
    public var tensorRows: [ConvertedTensor]
    enum CodingKeys: String, CodingKey {
        case output, quantize, tensors, parameters
        case sourceBytes = "source_bytes"
        case bundleBytes = "bundle_bytes"
        case ratio
        case bitsPerWeight = "bits_per_weight"
        case worstTensor = "worst_tensor"
        case worstRelativeRMSE = "worst_rel_rmse"
        case worstMaxAbs = "worst_max_abs"
        case seconds
        case maxContext = "max_context"
        case notes
        case tensorRows = "tensor_rows"
    }
}

public enum ProgressEvent: Sendable {
    case checked(tensors: Int, sourceBytes: Int)
    case tensorDone(index: Int, total: Int, name: String, type: TensorType)
}

/// The type a tensor gets, and a note when it differs from the request for a reason.
///
/// Recipe (formats/kq-bundle.md, "Which tensors are quantized"): vectors stay f32, int64 buffers
/// i64. Matrices and embedding tables get the requested type, except that in q8 and q4 conversions
/// the tokenizer's `quant_embed` (the BSQ projection whose signs are the token ids, C × D weights)
/// stays f16, and in q4 conversions the predictor's most sensitive tensors get 5 or 6 bits (`q4Mix`)
/// and rows that are a multiple of 256 use q4_k (4.5 bits per weight), other rows q4_1.
/// `--keep` rules replace the recipe for the tensors they match. A row length the type cannot
/// store falls back to f16 with a note.
public func chooseType(for e: ExpectedTensor, options: ConversionOptions) -> (TensorType, String?) {
    switch e.role {
    case .int64Buffer: return (.i64, nil)
    case .vector: return (.f32, nil)
    case .linearWeight, .embeddingTable:
        let columns = e.shape.last ?? 1
        var type: TensorType
        if let rule = options.keep.first(where: { $0.matches(e.name, part: e.part) }) {
            type = rule.type
        } else if options.quantize != .f32 && options.quantize != .f16 && e.part == .tokenizer
            && e.name == "quant_embed.weight"
        {
            type = .f16
        } else if options.quantize == .q4, e.part == .predictor, let t = q4Mix(e.name, columns: columns) {
            type = t
        } else {
            type = options.quantize.tensorType
        }
        // q4 means the 256-block type where the row allows it, else the 32-block one.
        if type == .q4_k && !type.canStore(rowLength: columns) { type = .q4_1 }
        if !type.canStore(rowLength: columns) {
            return (
                .f16,
                "\(e.part.rawValue)/\(e.name): row length \(columns) is not a multiple of \(type.traits.blockSize); "
                    + "stored as f16 instead of \(type.rawValue)"
            )
        }
        return (type, nil)
    }
}

/// The predictor tensors a q4 conversion keeps above 4 bits, and their types: the ones whose error
/// moves the forecast most per bit (measured one group at a time on Kronos-mini: q/k projections,
/// the token embeddings and the fusion projection carried 60 % of the q4 drift in 20 % of the
/// weights; BENCHMARKS.md, "q4 recipes and calibration"). The q/k projections get q5_0 only where their rows take
/// q4_k (4.5 bits): where they take q4_1 (5.0; Kronos-base's 832-column rows) the extra bit would
/// put the bundle over the 5.0 bits-per-weight budget. nil: the default q4 type.
func q4Mix(_ name: String, columns: Int) -> TensorType? {
    if name.hasPrefix("head.proj_") { return .q6_0 }
    if name.hasPrefix("embedding.emb_s") || name == "embedding.fusion_proj.weight" { return .q6_0 }
    if name.hasPrefix("transformer."), TensorType.q4_k.canStore(rowLength: columns),
        name.hasSuffix(".self_attn.q_proj.weight") || name.hasSuffix(".self_attn.k_proj.weight")
    {
        return .q5_0
    }
    return nil
}

/// A bundle's max context must be in 1...2^20 (the rows the runtime's tables and caches are sized by).
func checkMaxContext(_ maxContext: Int) throws(ConversionError) {
    guard (1...(1 << 20)).contains(maxContext) else {
        throw .badOption("--max-context must be in 1...\(1 << 20), found \(maxContext)")
    }
}

/// Default max context when neither the user nor the config says: the released models' values.
public func inferredMaxContext(_ config: ModelConfig) -> Int {
    config.predictor.modelDimension == 256 && config.predictor.layers == 4 ? 2048 : 512
}

/// Converts a checked checkpoint into a bundle at `options.output`.
public func convert(
    _ checkpoint: Checkpoint, options: ConversionOptions,
    progress: @escaping @Sendable (ProgressEvent) -> Void = { _ in }
) throws(ConversionError) -> ConversionReport {
    let start = Date()
    do { try checkpoint.checkLayout(); try checkpoint.checkFinite() } catch { throw .checkpoint(error) }
    let expected = TensorLayout.expected(checkpoint.config)
    try options.importance?.check(against: expected, file: "importance matrix")
    progress(.checked(tensors: expected.count, sourceBytes: checkpoint.sourceBytes))

    var notes = [String]()
    let maxContext: Int
    if let m = options.maxContext {
        maxContext = m
    } else if let m = checkpoint.configuredMaxContext {
        maxContext = m
    } else {
        maxContext = inferredMaxContext(checkpoint.config)
        notes.append("max_context \(maxContext) inferred from the model's shape (override with --max-context)")
    }
    try checkMaxContext(maxContext)

    let plan = expected.map { e -> (ExpectedTensor, TensorType) in
        let (t, note) = chooseType(for: e, options: options)
        if let note { notes.append(note) }
        return (e, t)
    }

    let writer: BundleWriter
    do { writer = try BundleWriter(destination: options.output, force: options.force) } catch { throw .bundle(error) }

    let factors = CompensationFactors(
        options.importance,
        weights: plan.filter { $0.1.traits.isQuantized }.map { "\($0.0.part.rawValue)/\($0.0.name)" },
        threads: max(1, options.threads))
    // Tensors are encoded and compressed in parallel windows, then written in table order. A window
    // waits for its slowest tensor: 8 per thread rather than 2 (synthesized Kronos-base, 2 cores,
    // medians of 3: q4 2.46 -> 2.10 s, f32 1.93 -> 1.81 s, q8 1.10 -> 1.05 s; q4 from an importance
    // matrix 10.5 -> 9.0 s; peak RSS +47 MB for f32, +3-7 MB for q4 / q8; the same bundles byte for byte).
    let window = max(1, options.threads) * 8
    var rows = [ConvertedTensor]()
    var index = 0
    while index < plan.count {
        let batch = Array(plan[index..<min(plan.count, index + window)])
        let results = ResultSlots<EncodedTensor, ConversionError>(count: batch.count)
        BoundedParallel.forEach(batch.count, threads: max(1, options.threads)) { i in
            let (e, type) = batch[i]
            let source = checkpoint.tensor(e.part, e.name)!
            let fit = type.traits.isQuantized ? factors.fit("\(e.part.rawValue)/\(e.name)") : nil
            results[i] = Result { () throws(ConversionError) in try encode(source, as: type, options: options, fit: fit)
            }
        }
        for (i, (e, type)) in batch.enumerated() {
            let enc: EncodedTensor
            do { enc = try results.get(i) } catch { writer.abandon(); throw error }
            var finalType = type
            if let note = enc.note { notes.append("\(e.part.rawValue)/\(e.name): \(note)"); finalType = enc.type }
            do {
                try writer.append(
                    name: e.name, part: e.part, type: finalType, shape: e.shape, frame: enc.frame,
                    rawSize: enc.rawSize, error: enc.error)
            } catch { writer.abandon(); throw .bundle(error) }
            let src = checkpoint.tensor(e.part, e.name)!
            rows.append(
                ConvertedTensor(
                    part: e.part, name: e.name, shape: e.shape, type: finalType, sourceDType: src.dtype.rawValue,
                    rawBytes: enc.rawSize, storedBytes: enc.frame.count, error: enc.error.map(TensorErrorRecord.init)))
            progress(
                .tensorDone(
                    index: index + i + 1, total: plan.count, name: "\(e.part.rawValue)/\(e.name)", type: finalType))
        }
        index += batch.count
    }

    let manifest = Manifest(
        converter: ConverterInfo(name: "kronos-convert", version: converterVersion),
        settings: CreationSettings(
            quantize: options.quantize.rawValue, keep: options.keep.map(\.text),
            zstdLevel: options.zstdLevel, q4SearchSteps: options.q4SearchSteps,
            calibration: options.importance?.calibration),
        maxContext: maxContext, config: checkpoint.config,
        sources: checkpoint.tokenizer.sourceFiles() + checkpoint.predictor.sourceFiles(),
        notes: notes, tensors: [])
    let bundleBytes: Int
    do { bundleBytes = try writer.finish(manifest) } catch { throw .bundle(error) }

    let parameters = expected.reduce(0) { $0 + (elementCount($1.shape) ?? 0) }
    let floatParams = zip(expected, rows).filter { $0.0.role.isFloat }.reduce(0) {
        $0 + (elementCount($1.0.shape) ?? 0)
    }
    let floatBytes = rows.filter { $0.type != .i64 }.reduce(0) { $0 + $1.rawBytes }
    let worst = rows.filter { $0.error != nil }.max { $0.error!.relativeRMSE < $1.error!.relativeRMSE }
    return ConversionReport(
        output: options.output, quantize: options.quantize, tensors: rows.count, parameters: parameters,
        sourceBytes: checkpoint.sourceBytes, bundleBytes: bundleBytes,
        ratio: Double(bundleBytes) / Double(max(checkpoint.sourceBytes, 1)),
        bitsPerWeight: Double(floatBytes * 8) / Double(max(floatParams, 1)),
        worstTensor: worst.map { "\($0.part.rawValue)/\($0.name)" },
        worstRelativeRMSE: worst?.error?.relativeRMSE ?? 0,
        worstMaxAbs: rows.compactMap { $0.error?.maxAbs }.max() ?? 0,
        seconds: Date().timeIntervalSince(start), maxContext: maxContext, notes: notes, tensorRows: rows)
}

struct EncodedTensor: Sendable {
    var type: TensorType
    var frame: [UInt8]
    var rawSize: Int
    var error: QuantErrorStats?
    var note: String?
}

/// Encodes one source tensor as `type` and compresses it into a frame.
/// fit: how the blocks of a calibrated tensor are fitted (nil: data-free).
func encode(
    _ src: SafetensorsTensor, as requested: TensorType, options: ConversionOptions, fit: BlockFit? = nil
) throws(ConversionError) -> EncodedTensor {
    var type = requested
    var note: String?
    if type == .i64 {
        let frame: [UInt8]
        do { frame = try Zstd.compress(src.data, level: Int32(options.zstdLevel)) } catch {
            throw .tensor(file: src.file, tensor: src.name, message: "zstd: \(error)")
        }
        return EncodedTensor(type: .i64, frame: frame, rawSize: src.data.count, error: nil, note: nil)
    }
    let columns = src.shape.last ?? 1
    let rows = src.elementCount / max(columns, 1)
    let floats = src.floats()
    func encodeAll(_ t: TensorType) throws(QuantError) -> AlignedBuffer {
        let rowBytes = t.rowBytes(columns: columns)!
        let buf = AlignedBuffer(byteCount: rows * rowBytes)
        let base = buf.bytes.baseAddress!
        let r: Result<Void, QuantError> = floats.withUnsafeBufferPointer { f in
            Result { () throws(QuantError) in
                // Calibrated: importance-weighted fits, with compensation where the factor exists.
                let fit = t.traits.isQuantized && fit?.importance.count == columns ? fit : nil
                guard let fit, let u = fit.compensation, u.count == columns * columns else {
                    let weights = fit?.importance
                    for r in 0..<rows {
                        try Codecs.encodeRow(
                            t, f.baseAddress! + r * columns, columns: columns, into: base + r * rowBytes,
                            q4SearchSteps: options.q4SearchSteps, weights: weights)
                    }
                    return
                }
                var w = Array(f)  // the sweep overwrites its rows
                try w.withUnsafeMutableBufferPointer { (wp) throws(QuantError) in
                    try u.withUnsafeBufferPointer { (up) throws(QuantError) in
                        try fit.importance.withUnsafeBufferPointer { (ip) throws(QuantError) in
                            try Codecs.encodeCompensated(
                                t, wp.baseAddress!, rows: rows, columns: columns, factor: up.baseAddress!,
                                importance: ip.baseAddress!, into: base)
                        }
                    }
                }
            }
        }
        try r.get()
        return buf
    }
    var raw: AlignedBuffer
    do { raw = try encodeAll(type) } catch {
        guard case let .unrepresentable(block) = error else {
            throw .tensor(file: src.file, tensor: src.name, message: "\(error)")
        }
        note =
            type == .f16
            ? "value \(block) exceeds the f16 range (±65504); stored as f32"
            : "block \(block) of a row exceeds the f16 scale range of \(type.rawValue); stored as f32"
        type = .f32
        do { raw = try encodeAll(.f32) } catch { throw .tensor(file: src.file, tensor: src.name, message: "\(error)") }
    }
    var stats: QuantErrorStats?
    if type != .f32 {
        var decoded = [Float](repeating: 0, count: floats.count)
        let rowBytes = type.rowBytes(columns: columns)!
        decoded.withUnsafeMutableBufferPointer { d in
            for r in 0..<rows {
                Codecs.decodeRow(
                    type, raw.bytes.baseAddress! + r * rowBytes, columns: columns, into: d.baseAddress! + r * columns)
            }
        }
        stats = floats.withUnsafeBufferPointer { f in
            decoded.withUnsafeBufferPointer { d in
                Codecs.measure(source: f.baseAddress!, decoded: d.baseAddress!, count: floats.count)
            }
        }
    }
    let frame: [UInt8]
    do { frame = try Zstd.compress(UnsafeRawBufferPointer(raw.bytes), level: Int32(options.zstdLevel)) } catch {
        throw .tensor(file: src.file, tensor: src.name, message: "zstd: \(error)")
    }
    return EncodedTensor(type: type, frame: frame, rawSize: raw.bytes.count, error: stats, note: note)
}

/// How a calibrated tensor's blocks are fitted: each block's scale to the importance of its input
/// columns [columns], and with compensation (the factor V [columns, columns] of its input's second
/// moments, TensorType.compensationFactor) each column's rounding error spread over the next
/// (KronosQuant/Compensated.swift).
struct BlockFit: Sendable {
    var importance: [Float]
    var compensation: [Float]?
}

/// The compensation factors of the inputs of the quantized weights an importance matrix covers,
/// each computed once, in parallel, before any tensor is encoded (weights sharing an input, q/k/v of
/// a block, share it: computed as each tensor came, the three would factor it at once).
final class CompensationFactors: Sendable {
    private let matrix: ImportanceMatrix?
    private let factors: [String: [Float]]  // by input key; absent where the factorization failed

    init(_ matrix: ImportanceMatrix?, weights: [String], threads: Int) {
        self.matrix = matrix
        guard let matrix else { factors = [:]; return }
        let keys = Array(Set(weights.compactMap { matrix.inputs[$0] })).sorted()
        let results = ResultSlots<[Float]?, Never>(count: keys.count)
        BoundedParallel.forEach(keys.count, threads: threads) { i in
            let h = matrix.moments[keys[i]]!, n = Int(Double(h.count).squareRoot())
            results[i] = .success(h.withUnsafeBufferPointer { Codecs.compensationFactor($0.baseAddress!, n: n) })
        }
        var factors = [String: [Float]]()
        for (i, key) in keys.enumerated() { if case let .success(u?) = results[i] { factors[key] = u } }
        self.factors = factors
    }

    func fit(_ weight: String) -> BlockFit? {
        guard let matrix, let importance = matrix.columnImportance(weight), let key = matrix.inputs[weight] else {
            return nil
        }
        return BlockFit(importance: importance, compensation: factors[key])
    }
}

/// The tensors and manifest an f32 bundle of `checkpoint` would load into, made in memory instead:
/// every expected tensor's values in f32 (int64 buffers as they are), keyed "part/name" as
/// BundleReader.loadAll keys them, with the checks `convert` makes first (layout, finiteness). For
/// calibration's f32 model, which took a temporary f32 bundle written to disk and read back (zstd,
/// hashes, a second finiteness check): the same tensors, ready sooner.
public func f32Model(_ checkpoint: Checkpoint, maxContext: Int, threads: Int) throws(ConversionError) -> (
    manifest: Manifest, tensors: [String: TensorData]
) {
    do { try checkpoint.checkLayout(); try checkpoint.checkFinite() } catch { throw .checkpoint(error) }
    try checkMaxContext(maxContext)
    let expected = TensorLayout.expected(checkpoint.config)
    let records = expected.map { e -> TensorRecord in
        let type: TensorType = e.role.isFloat ? .f32 : .i64
        let count = elementCount(e.shape) ?? 0
        return TensorRecord(
            name: e.name, part: e.part, type: type, shape: e.shape, offset: 0, storedSize: 0,
            rawSize: count * (type == .i64 ? 8 : 4), xxh64: "", error: nil)
    }
    let slots = ResultSlots<TensorData, Never>(count: expected.count)
    BoundedParallel.forEach(expected.count, threads: max(1, threads)) { i in
        let e = expected[i], r = records[i]
        let source = checkpoint.tensor(e.part, e.name)!  // (checkLayout: every expected tensor is there)
        let buffer = AlignedBuffer(byteCount: r.rawSize, zeroed: false, hugePages: true)  // (all written below)
        if r.type == .i64 {
            buffer.bytes.baseAddress!.copyMemory(from: source.data.baseAddress!, byteCount: r.rawSize)
        } else {
            source.floats(into: buffer.bytes.baseAddress!.assumingMemoryBound(to: Float.self))
        }
        slots[i] = .success(TensorData(record: r, buffer: buffer))
    }
    var tensors = [String: TensorData]()
    for (i, e) in expected.enumerated() { tensors["\(e.part.rawValue)/\(e.name)"] = slots.get(i) }
    let manifest = Manifest(
        converter: ConverterInfo(name: "kronos-convert", version: converterVersion),
        settings: CreationSettings(quantize: "f32", keep: [], zstdLevel: 0, q4SearchSteps: 0),
        maxContext: maxContext, config: checkpoint.config, sources: [], notes: [], tensors: records)
    return (manifest, tensors)
}
