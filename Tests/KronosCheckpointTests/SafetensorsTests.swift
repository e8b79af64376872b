import Foundation
import KronosBundle
import KronosCheckpoint
import KronosQuant
import KronosTestSupport
import Testing

let sharedReference = sharedReferenceDirectory

func writeFile(_ bytes: [UInt8], _ path: String) { FileManager.default.createFile(atPath: path, contents: Data(bytes)) }

/// Opens `bytes` as a safetensors file and returns the error message (nil if it opened).
func openMessage(_ bytes: [UInt8]) -> String? {
    let dir = temporaryDirectory("st")
    let path = dir + "/model.safetensors"
    writeFile(bytes, path)
    do { _ = try SafetensorsFile(path: path); return nil } catch { return error.errorDescription }
}

func header(_ json: String, pad: Bool = true) -> [UInt8] {
    var h = Array(json.utf8)
    if pad { while h.count % 8 != 0 { h.append(0x20) } }
    return withUnsafeBytes(of: UInt64(h.count).littleEndian) { Array($0) } + h
}

@Suite struct SafetensorsReaderTests {
    @Test func readsTheTinyReferenceTokenizer() throws {
        let f = try SafetensorsFile(path: goldenTinyDirectory + "/tokenizer/model.safetensors")
        #expect(f.tensors.count == 40)
        // BSQ basis buffer: powers of two, highest first as stored (ARCHITECTURE.md §3).
        #expect(f["tokenizer.bsq.basis"]?.int64s() == (0..<12).reversed().map { Int64(1) << $0 })
        // Rotary buffer: 1 / 10000^(2j/hd), hd = 16.
        let inv = f["encoder.0.self_attn.rotary.inv_freq"]!.floats()
        for j in 0..<8 { #expect(abs(Double(inv[j]) - 1 / pow(10000, Double(2 * j) / 16)) < 1e-7) }
        #expect(f["embed.weight"]?.shape == [32, 6])
    }

    @Test func convertsF16AndBF16Exactly() throws {
        let f16: [UInt16] = [0x3C00, 0xC000, 0x0001, 0x7BFF]  // 1, -2, 2^-24, 65504
        let bf16: [UInt16] = [0x3F80, 0xC0A0, 0x0001, 0x7F7F]  // 1, -5, 2^-133 (subnormal), ~3.39e38
        let bytes = SafetensorsWriter.encode([
            ("a", [4], .raw(dtype: "F16", bytes: f16.withUnsafeBytes { Array($0) })),
            ("b", [2, 2], .raw(dtype: "BF16", bytes: bf16.withUnsafeBytes { Array($0) })),
        ])
        let dir = temporaryDirectory("f16")
        writeFile(bytes, dir + "/m.safetensors")
        let f = try SafetensorsFile(path: dir + "/m.safetensors")
        #expect(f["a"]!.floats() == [1, -2, 0x1p-24, 65504])
        #expect(f["b"]!.floats() == [1, -5, Float(bitPattern: 0x0001_0000), Float(bitPattern: 0x7F7F_0000)])
    }

    @Test(arguments: [
        ("header length", header(#"{}"#, pad: false).prefix(5).map { $0 }, "expected at least 8"),
        (
            "header > 100MB", withUnsafeBytes(of: UInt64(100_000_001).littleEndian) { Array($0) } + Array("{}".utf8),
            "exceeds the 100 MB limit"
        ),
        (
            "header past EOF", withUnsafeBytes(of: UInt64(64).littleEndian) { Array($0) } + Array("{}".utf8),
            "runs past the end"
        ),
        ("not an object", header("[1,2]  "), "does not start with '{'"),
        ("bad json", header(#"{"a":}"#), "header JSON"),
        (
            "non-UTF-8", header("{\"\u{FF}\":1}").enumerated().map { $0.offset == 11 ? 0xFF : $0.element },
            "not valid UTF-8"
        ),
        ("metadata not strings", header(#"{"__metadata__":{"a":1}}"#), "must be a string"),
        (
            "unknown dtype", header(#"{"t":{"dtype":"Q9","shape":[1],"data_offsets":[0,4]}}"#) + [0, 0, 0, 0],
            "unknown dtype"
        ),
        (
            "unsupported dtype",
            header(#"{"t":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}"#) + [UInt8](repeating: 0, count: 8),
            "not supported"
        ),
        (
            "size mismatch", header(#"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#) + [0, 0, 0, 0],
            "expected 8"
        ),
        (
            "shape overflow",
            header(#"{"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#) + [0, 0, 0, 0],
            "overflows"
        ),
        (
            "gap", header(#"{"t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#) + [UInt8](repeating: 0, count: 8),
            "contiguous from 0"
        ),
        (
            "overlap",
            header(
                #"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
                    + #""u":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
            ) + [UInt8](repeating: 0, count: 8), "overlaps"
        ),
        (
            "truncated",
            header(#"{"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#) + [UInt8](repeating: 0, count: 10),
            "truncated by 6 bytes"
        ),
        (
            "trailing",
            header(#"{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#) + [UInt8](repeating: 0, count: 6),
            "2 trailing bytes"
        ),
        (
            "duplicate",
            header(
                #"{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"#
                    + #""t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
            ) + [UInt8](repeating: 0, count: 8), "duplicate key \"t\""
        ),
        ("end before begin", header(#"{"t":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}"#), "end before begin"),
        ("pickle zip", Array("PK\u{03}\u{04}rest-of-a-zip".utf8), "pickle"),
    ])
    func refuses(label: String, bytes: [UInt8], expected: String) {
        let msg = openMessage(bytes)
        #expect(msg?.contains(expected) == true, "\(label): \(msg ?? "accepted")")
    }

    @Test func refusesPytorchBinDirectory() throws {
        let dir = temporaryDirectory("bin")
        writeFile(Array("{}".utf8), dir + "/config.json")
        writeFile([0x80, 0x02, 0x7D], dir + "/pytorch_model.bin")
        do { _ = try CheckpointDirectory(part: .predictor, directory: dir); Issue.record("accepted a pickle") } catch {
            #expect(error.errorDescription!.contains("pickle"))
            #expect(error.errorDescription!.contains("safetensors"))
        }
    }

    @Test func readsShardedCheckpoints() throws {
        let src = try SafetensorsFile(path: goldenTinyDirectory + "/tokenizer/model.safetensors")
        let dir = temporaryDirectory("shards")
        try FileManager.default.copyItem(
            atPath: goldenTinyDirectory + "/tokenizer/config.json", toPath: dir + "/config.json")
        var map = [String]()
        for (s, range) in [(1, 0..<20), (2, 20..<src.tensors.count)] {
            let part = src.tensors[range].map { t in
                (t.name, t.shape, SafetensorsWriter.Payload.raw(dtype: t.dtype.rawValue, bytes: Array(t.data)))
            }
            writeFile(SafetensorsWriter.encode(part), dir + "/model-0000\(s)-of-00002.safetensors")
            map += src.tensors[range].map { "\"\($0.name)\": \"model-0000\(s)-of-00002.safetensors\"" }
        }
        writeFile(
            Array("{\"metadata\": {}, \"weight_map\": {\(map.joined(separator: ","))}}".utf8),
            dir + "/model.safetensors.index.json")
        let d = try CheckpointDirectory(part: .tokenizer, directory: dir)
        #expect(d.files.count == 2)
        #expect(d.tensors.count == src.tensors.count)
        for t in src.tensors { #expect(Array(d.tensors[t.name]!.data) == Array(t.data)) }
        #expect(d.sourceFiles().map(\.file).contains("model.safetensors.index.json"))

        // A weight_map that names the wrong shard is refused.
        let bad = map.enumerated().map {
            $0.offset == 0 ? $0.element.replacingOccurrences(of: "00001-of", with: "00002-of") : $0.element
        }
        writeFile(
            Array("{\"weight_map\": {\(bad.joined(separator: ","))}}".utf8), dir + "/model.safetensors.index.json")
        #expect(throws: CheckpointError.self) { _ = try CheckpointDirectory(part: .tokenizer, directory: dir) }
    }
}

@Suite struct ConfigCheckTests {
    func tinyCopy() -> (tok: String, pred: String) {
        let dir = temporaryDirectory("cfg")
        for part in ["tokenizer", "predictor"] {
            try! FileManager.default.copyItem(atPath: goldenTinyDirectory + "/\(part)", toPath: dir + "/\(part)")
            chmod(dir + "/\(part)", 0o755); chmod(dir + "/\(part)/config.json", 0o644)
        }
        return (dir + "/tokenizer", dir + "/predictor")
    }

    func editConfig(_ path: String, _ edit: (inout [String: Any]) -> Void) {
        var obj =
            try! JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path + "/config.json")))
            as! [String: Any]
        edit(&obj)
        try! JSONSerialization.data(withJSONObject: obj).write(to: URL(fileURLWithPath: path + "/config.json"))
    }

    func message(_ dirs: (tok: String, pred: String)) -> String? {
        do {
            let c = try Checkpoint(tokenizerDirectory: dirs.tok, predictorDirectory: dirs.pred)
            try c.checkLayout(); try c.checkFinite()
            return nil
        } catch { return error.errorDescription }
    }

    @Test func tinyReferencePasses() {
        #expect(message(tinyCopy()) == nil)
    }

    @Test func wrongDModelReportsEveryMismatchAtOnce() {
        let d = tinyCopy()
        editConfig(d.pred) { $0["d_model"] = 48 }
        let m = message(d) ?? ""
        #expect(m.contains("tensor predictor/norm.weight: expected shape [48], found [32]"), "\(m)")
        #expect(m.contains("tensor predictor/transformer.1.ffn.w2.weight: expected shape [48, 64], found [32, 64]"))
        #expect(m.components(separatedBy: "\n").count > 40)
    }

    @Test(arguments: [
        ("n_heads", 3, "not divisible by n_heads 3"),
        ("s1_bits", 17, "s1_bits must be in 1...16, found 17"),
        ("s2_bits", 5, "must equal s2_bits"),
        ("n_heads", 32, "must be even"),
    ])
    func impossibleConfigs(key: String, value: Int, expected: String) {
        let d = tinyCopy()
        editConfig(d.pred) { $0[key] = value }
        let m = message(d) ?? ""
        #expect(m.contains(expected), "\(m)")
        #expect(m.contains("predictor/config.json"))
    }

    @Test func missingKeyIsNamedAndExtraKeysTolerated() {
        let d = tinyCopy()
        editConfig(d.tok) {
            $0["something_new"] = "ok"; $0.removeValue(forKey: "ff_dim")
        }
        #expect(message(d)?.contains("missing required key \"ff_dim\"") == true)
        editConfig(d.tok) { $0["ff_dim"] = 64 }
        #expect(message(d) == nil)
    }
}
