// A Kronos model as two Hugging Face checkpoint directories (tokenizer + predictor), read and
// checked against the configs: read -> check (no missing, no unexpected, no shape mismatch,
// finite weights) before anything is converted.
import Crypto
import Foundation
import KronosBundle

/// One checkpoint directory: config.json plus model.safetensors or a sharded index.
public struct CheckpointDirectory: Sendable {
    public let part: ModelPart
    public let directory: String
    public let configPath: String
    public let configData: Data
    /// The safetensors files (one, or the shards in index order).
    public let files: [SafetensorsFile]
    /// Tensor name -> tensor.
    public let tensors: [String: SafetensorsTensor]

    public static let indexName = "model.safetensors.index.json"
    /// Largest config or index JSON read (bytes); the released ones are a few KB.
    public static let maxJSONBytes = 16 << 20

    public init(part: ModelPart, directory: String) throws(CheckpointError) {
        self.part = part
        self.directory = directory
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw .io(file: directory, message: "\(part.rawValue) checkpoint directory does not exist")
        }
        func p(_ n: String) -> String { (directory as NSString).appendingPathComponent(n) }
        configPath = p("config.json")
        let data: Data
        do { data = try InputFile.read(configPath, limit: Self.maxJSONBytes) } catch {
            throw .io(
                file: configPath,
                message:
                    "cannot read the \(part.rawValue) config (expected config.json beside the weights): "
                    + "\(error.message)"
            )
        }
        configData = data
        let single = p("model.safetensors"), index = p(Self.indexName)
        if fm.fileExists(atPath: single) {
            files = [try SafetensorsFile(path: single)]
        } else if fm.fileExists(atPath: index) {
            files = try Self.openShards(index: index, directory: directory)
        } else if fm.fileExists(atPath: p("pytorch_model.bin")) {
            throw .pickle(file: p("pytorch_model.bin"))
        } else {
            throw .io(
                file: directory, message: "no model.safetensors or \(Self.indexName) in the \(part.rawValue) directory")
        }
        var all = [String: SafetensorsTensor]()
        for f in files {
            for t in f.tensors {
                if let prev = all[t.name] {
                    throw .format(file: f.path, message: "tensor \"\(t.name)\" also appears in \(prev.file)")
                }
                all[t.name] = t
            }
        }
        tensors = all
    }

    static func openShards(index: String, directory: String) throws(CheckpointError) -> [SafetensorsFile] {
        let data: Data
        do { data = try InputFile.read(index, limit: Self.maxJSONBytes) } catch {
            throw .io(file: index, message: error.message)
        }
        let json: JSONValue
        do { json = try StrictJSON.parse([UInt8](data)) } catch {
            throw .format(file: index, message: "index JSON: \(error)")
        }
        guard let map = json["weight_map"]?.object else {
            throw .format(file: index, message: "expected an object \"weight_map\" (tensor name -> shard file)")
        }
        var order = [String]()
        var wanted = [String: String]()
        for (name, v) in map {
            guard let f = v.string, !f.contains("/"), !f.hasPrefix(".") else {
                throw .format(
                    file: index,
                    message: "weight_map[\"\(name)\"] must be a file name in the same directory, found \(v)")
            }
            if !order.contains(f) { order.append(f) }
            wanted[name] = f
        }
        var files = [SafetensorsFile]()
        for f in order {
            let sf = try SafetensorsFile(path: (directory as NSString).appendingPathComponent(f))
            for t in sf.tensors where wanted[t.name] != f {
                throw .format(
                    file: sf.path,
                    message:
                        "tensor \"\(t.name)\" is in this shard but weight_map says "
                        + "\(wanted[t.name].map { "\"\($0)\"" } ?? "nothing")"
                )
            }
            files.append(sf)
        }
        for (name, f) in wanted {
            let path = (directory as NSString).appendingPathComponent(f)
            guard files.first(where: { $0.path == path })?[name] != nil else {
                throw .format(
                    file: path, message: "weight_map lists tensor \"\(name)\" in this shard but it is not there")
            }
        }
        return files
    }

    /// Files the conversion read (config, index if any, weights), with sizes and SHA-256.
    public func sourceFiles() -> [SourceFile] {
        var out = [
            SourceFile(
                part: part, file: "config.json", bytes: UInt64(configData.count),
                sha256: Self.hex(SHA256.hash(data: configData)))
        ]
        let index = (directory as NSString).appendingPathComponent(Self.indexName)
        if files.count > 1 || files.first.map({ !$0.path.hasSuffix("/model.safetensors") }) == true,
            let d = try? InputFile.read(index, limit: Self.maxJSONBytes)
        {
            out.append(
                SourceFile(
                    part: part, file: Self.indexName, bytes: UInt64(d.count), sha256: Self.hex(SHA256.hash(data: d))))
        }
        for f in files {
            out.append(
                SourceFile(
                    part: part, file: (f.path as NSString).lastPathComponent, bytes: UInt64(f.mapping.count),
                    sha256: Self.sha256(f.mapping.bytes)))
        }
        return out
    }

    static func hex<D: Sequence>(_ d: D) -> String where D.Element == UInt8 {
        d.map { String(format: "%02x", $0) }.joined()
    }

    /// Lowercase hex SHA-256 of `bytes`, hashed 8 MiB at a time (a mapped file is not read whole).
    public static func sha256(_ bytes: UnsafeRawBufferPointer) -> String {
        var h = SHA256()
        var o = 0
        while o < bytes.count {
            let e = min(bytes.count, o + (8 << 20))
            h.update(bufferPointer: UnsafeRawBufferPointer(rebasing: bytes[o..<e]))
            o = e
        }
        return hex(h.finalize())
    }

    public var weightBytes: Int { files.reduce(0) { $0 + $1.mapping.count } }
}

/// Tokenizer + predictor, configs decoded and validated, tensors checked against the configs.
public struct Checkpoint: Sendable {
    public let tokenizer: CheckpointDirectory
    public let predictor: CheckpointDirectory
    public let config: ModelConfig
    /// Max context found in a config ("max_context" extra key), if any.
    public let configuredMaxContext: Int?

    public init(tokenizerDirectory: String, predictorDirectory: String) throws(CheckpointError) {
        tokenizer = try CheckpointDirectory(part: .tokenizer, directory: tokenizerDirectory)
        predictor = try CheckpointDirectory(part: .predictor, directory: predictorDirectory)
        do {
            let t = try ConfigDecoding.decode(
                TokenizerConfig.self, from: tokenizer.configData, file: tokenizer.configPath)
            let p = try ConfigDecoding.decode(
                PredictorConfig.self, from: predictor.configData, file: predictor.configPath)
            config = ModelConfig(tokenizer: t, predictor: p)
            try config.validate(tokenizerFile: tokenizer.configPath, predictorFile: predictor.configPath)
        } catch { throw .config(error) }
        let extra = try? StrictJSON.parse([UInt8](predictor.configData))
        configuredMaxContext = extra?["max_context"]?.nonNegativeInt
    }

    /// The checkpoint's tensor `name` of `part`, or nil.
    public func tensor(_ part: ModelPart, _ name: String) -> SafetensorsTensor? {
        (part == .tokenizer ? tokenizer : predictor).tensors[name]
    }

    /// Compares the checkpoints with the tensor table the configs describe; reports every problem.
    public func checkLayout() throws(CheckpointError) {
        var found = [FoundTensor]()
        for dir in [tokenizer, predictor] {
            for t in dir.tensors.values.sorted(by: { $0.name < $1.name }) {
                found.append(
                    FoundTensor(
                        part: dir.part, name: t.name, shape: t.shape, isFloat: t.dtype.isFloat,
                        typeName: t.dtype.rawValue))
            }
        }
        let problems = TensorLayout.compare(expected: TensorLayout.expected(config), found: found)
        if !problems.isEmpty { throw .layout(problems: problems) }
    }

    /// Fails on the first NaN / Inf weight, naming the tensor and the flat index.
    public func checkFinite() throws(CheckpointError) {
        for e in TensorLayout.expected(config) {
            guard let t = tensor(e.part, e.name), let bad = t.firstNonFinite() else { continue }
            throw .nonFinite(file: t.file, tensor: e.name, index: bad.index, value: "\(bad.value)")
        }
    }

    public var sourceBytes: Int { tokenizer.weightBytes + predictor.weightBytes }
}
