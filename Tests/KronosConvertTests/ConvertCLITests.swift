import Foundation
import KronosBundle
import KronosCheckpoint
import KronosConvert
import KronosQuant
import KronosTestSupport
import Testing

let sharedReference = sharedReferenceDirectory

typealias RunResult = ToolResult
func run(_ tool: String, _ args: [String]) throws -> ToolResult { try runTool(tool, args) }

/// The checkpoints of a reference model: tiny is embedded (golden/tiny), mini is in ../shared.
func modelDirectory(_ model: String) -> String { model == "tiny" ? goldenTinyDirectory : sharedReference + "/\(model)" }

/// A writable copy of a reference model's checkpoints.
func copyModel(_ model: String) -> (dir: String, tok: String, pred: String) {
    let dir = temporaryDirectory(model)
    for part in ["tokenizer", "predictor"] {
        try! FileManager.default.copyItem(atPath: modelDirectory(model) + "/\(part)", toPath: dir + "/\(part)")
        chmod(dir + "/\(part)", 0o755)
        for f in ["config.json", "model.safetensors"] { chmod(dir + "/\(part)/\(f)", 0o644) }
    }
    return (dir, dir + "/tokenizer", dir + "/predictor")
}

/// Rewrites a safetensors file through `edit` on its (name, shape, payload) list.
func rewrite(_ path: String, _ edit: (inout [(name: String, shape: [Int], payload: SafetensorsWriter.Payload)]) -> Void)
    throws
{
    let f = try SafetensorsFile(path: path)
    var list = f.tensors.map { t in
        (
            name: t.name, shape: t.shape,
            payload: SafetensorsWriter.Payload.raw(dtype: t.dtype.rawValue, bytes: Array(t.data))
        )
    }
    edit(&list)
    let bytes = SafetensorsWriter.encode(list)
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// Named bounds of the per-tensor relative RMSE after a round trip through the bundle.
enum BundleThreshold {
    static let f16RelRMSE = 5e-4
    static let q8RelRMSE = 0.01
    static let q4RelRMSE = 0.10
    static let q4kRelRMSE = 0.11
    static let q5RelRMSE = 0.06
    static let q6RelRMSE = 0.03
}

@Suite(.serialized) struct ConvertReferenceModelsTests {
    @Test(arguments: ["f32", "f16", "q8", "q4"])
    func convertsAndMatchesSourceTiny(quantize: String) throws {
        try convertsAndMatchesSource(model: "tiny", quantize: quantize)
    }

    @Test(
        .enabled(if: sharedReferenceAvailable, Comment(rawValue: sharedReferenceMissing)),
        arguments: ["f32", "f16", "q8", "q4"])
    func convertsAndMatchesSourceMini(quantize: String) throws {
        try convertsAndMatchesSource(model: "mini", quantize: quantize)
    }

    func convertsAndMatchesSource(model: String, quantize: String) throws {
        let dir = temporaryDirectory("conv")
        let out = dir + "/\(model)-\(quantize).kq"
        let tok = modelDirectory(model) + "/tokenizer", pred = modelDirectory(model) + "/predictor"
        let r = try run(
            "kronos-convert",
            ["--tokenizer", tok, "--predictor", pred, "--quantize", quantize, "--output", out, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let ratio = report["ratio"] as! Double
        if model == "mini" {
            // Acceptance: bundle size over F32 safetensors size on mini.
            if quantize == "q8" { #expect(ratio <= 0.28, "q8 ratio \(ratio)") }
            if quantize == "q4" { #expect(ratio <= 0.18, "q4 ratio \(ratio)") }
        }

        // inspect lists every tensor
        let ins = try run("kronos-convert", ["inspect", out])
        #expect(ins.status == 0)
        let checkpoint = try Checkpoint(tokenizerDirectory: tok, predictorDirectory: pred)
        let expected = TensorLayout.expected(checkpoint.config)
        for e in expected { #expect(ins.stdout.contains(" \(e.name) "), "inspect misses \(e.name)") }

        // every tensor decoded from the bundle matches its source within the type's bound
        let bundle = try BundleReader(path: out)
        #expect(bundle.manifest.tensors.count == expected.count)
        for e in expected {
            let rec = bundle.record(e.part, e.name)!
            let src = checkpoint.tensor(e.part, e.name)!
            let data = try bundle.load(rec)
            if rec.type == .i64 { #expect(data.int64s() == src.int64s()); continue }
            let a = src.floats(), b = data.floats()
            let s = a.withUnsafeBufferPointer { x in
                b.withUnsafeBufferPointer { y in
                    QuantErrorStats.measure(source: x.baseAddress!, decoded: y.baseAddress!, count: a.count)
                }
            }
            switch rec.type {
            case .f32: #expect(a == b, "\(e.name) not bit-exact in f32")
            case .f16: #expect(s.relativeRMSE <= BundleThreshold.f16RelRMSE, "\(e.name) f16 \(s.relativeRMSE)")
            case .q8_0: #expect(s.relativeRMSE <= BundleThreshold.q8RelRMSE, "\(e.name) q8 \(s.relativeRMSE)")
            case .q4_1: #expect(s.relativeRMSE <= BundleThreshold.q4RelRMSE, "\(e.name) q4 \(s.relativeRMSE)")
            case .q4_k: #expect(s.relativeRMSE <= BundleThreshold.q4kRelRMSE, "\(e.name) q4_k \(s.relativeRMSE)")
            case .q5_0: #expect(s.relativeRMSE <= BundleThreshold.q5RelRMSE, "\(e.name) q5_0 \(s.relativeRMSE)")
            case .q6_0: #expect(s.relativeRMSE <= BundleThreshold.q6RelRMSE, "\(e.name) q6_0 \(s.relativeRMSE)")
            case .i64: break
            }
            if !e.role.isQuantizable { #expect(rec.type == .f32, "\(e.name) must stay f32") }
            if model == "mini" && quantize == "q4" && e.role.isQuantizable && e.name != "quant_embed.weight" {
                // The q4 recipe (formats/kq-bundle.md): 6 bits for the heads, the token embeddings and the
                // fusion projection, 5 for the predictor's q / k projections, q4_k for the rest.
                let six =
                    e.part == .predictor
                    && (e.name.hasPrefix("head.proj_") || e.name.hasPrefix("embedding.emb_s")
                        || e.name == "embedding.fusion_proj.weight")
                let five =
                    e.part == .predictor && e.name.hasPrefix("transformer.")
                    && (e.name.hasSuffix("self_attn.q_proj.weight") || e.name.hasSuffix("self_attn.k_proj.weight"))
                let columns = e.shape.last!
                let want: TensorType =
                    six ? .q6_0 : five ? .q5_0 : columns % 256 == 0 ? .q4_k : columns % 32 == 0 ? .q4_1 : .f16
                #expect(rec.type == want, "\(e.name) should be \(want.rawValue), is \(rec.type.rawValue)")
            }
        }
    }

    @Test func keepOverridesPerTensor() throws {
        let dir = temporaryDirectory("keep")
        let r = try run(
            "kronos-convert",
            [
                "--tokenizer", goldenTinyDirectory + "/tokenizer", "--predictor", goldenTinyDirectory + "/predictor",
                "--quantize", "q4", "--keep", "head.*=q8", "--keep", "predictor/embedding.*=f16", "-o", dir + "/k.kq",
            ])
        #expect(r.status == 0, "\(r.stderr)")
        let b = try BundleReader(path: dir + "/k.kq")
        #expect(b.record(.predictor, "head.proj_s1.weight")?.type == .q8_0)
        #expect(b.record(.tokenizer, "head.weight")?.type == .q8_0)
        #expect(b.record(.predictor, "embedding.emb_s1.weight")?.type == .f16)
        #expect(b.record(.predictor, "transformer.0.ffn.w1.weight")?.type == .q4_1)  // row 32: not a multiple of 256
        #expect(b.record(.tokenizer, "quant_embed.weight")?.type == .f16)  // recipe: BSQ projection
        #expect(b.record(.tokenizer, "embed.weight")?.type == .f16)  // row 6: fallback
        #expect(b.manifest.notes.contains { $0.contains("embed.weight: row length 6") })
        #expect(b.manifest.settings.keep == ["head.*=q8", "predictor/embedding.*=f16"])
    }
}

@Suite(.serialized) struct BadCheckpointTests {
    func convert(_ m: (dir: String, tok: String, pred: String), extra: [String] = []) throws -> RunResult {
        try run(
            "kronos-convert",
            ["--tokenizer", m.tok, "--predictor", m.pred, "--quantize", "q8", "-o", m.dir + "/out.kq"] + extra)
    }

    func expectFailure(_ r: RunResult, _ needles: [String], dir: String) {
        #expect(r.status == 1, "exit \(r.status): \(r.stderr)")
        for n in needles { #expect(r.stderr.contains(n), "missing \"\(n)\" in: \(r.stderr)") }
        let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: dir))?.filter { $0.contains(".kq") } ?? []
        #expect(leftovers.isEmpty, "left behind: \(leftovers)")
    }

    @Test func wrongDModel() throws {
        let m = copyModel("tiny")
        let cfg = m.pred + "/config.json"
        let text = try String(contentsOfFile: cfg, encoding: .utf8).replacingOccurrences(
            of: "\"d_model\": 32", with: "\"d_model\": 64")
        try text.write(toFile: cfg, atomically: true, encoding: .utf8)
        expectFailure(
            try convert(m), ["predictor/embedding.emb_s1.weight: expected shape [64, 64], found [64, 32]"], dir: m.dir)
    }

    @Test func missingTensor() throws {
        let m = copyModel("tiny")
        try rewrite(m.pred + "/model.safetensors") { $0.removeAll { $0.name == "transformer.1.ffn.w2.weight" } }
        expectFailure(
            try convert(m), ["missing tensor predictor/transformer.1.ffn.w2.weight: expected shape [32, 64]"],
            dir: m.dir)
    }

    @Test func extraTensor() throws {
        let m = copyModel("tiny")
        try rewrite(m.tok + "/model.safetensors") {
            $0.append((name: "encoder.1.norm1.weight", shape: [32], payload: .f32(Array(repeating: 1, count: 32))))
        }
        expectFailure(try convert(m), ["unexpected tensor tokenizer/encoder.1.norm1.weight: shape [32]"], dir: m.dir)
    }

    @Test func transposedWeight() throws {
        let m = copyModel("tiny")
        try rewrite(m.pred + "/model.safetensors") { list in
            let i = list.firstIndex { $0.name == "transformer.0.ffn.w1.weight" }!
            list[i].shape = [32, 64]
        }
        expectFailure(
            try convert(m),
            ["tensor predictor/transformer.0.ffn.w1.weight: expected shape [64, 32], found [32, 64] (transposed?)"],
            dir: m.dir)
    }

    @Test func truncatedSafetensors() throws {
        let m = copyModel("tiny")
        let path = m.tok + "/model.safetensors"
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try data.prefix(data.count - 100).write(to: URL(fileURLWithPath: path))
        expectFailure(
            try convert(m),
            [
                "tokenizer/model.safetensors", "truncated by 100 bytes",
                "tensor data ends at byte 93000 but the file has 92900 bytes",
            ], dir: m.dir)
    }

    @Test func nanWeight() throws {
        let m = copyModel("tiny")
        try rewrite(m.pred + "/model.safetensors") { list in
            let i = list.firstIndex { $0.name == "head.proj_s2.weight" }!
            guard case var .raw(dt, bytes) = list[i].payload else { return }
            withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { for k in 0..<4 { bytes[5 * 4 + k] = $0[k] } }
            list[i].payload = .raw(dtype: dt, bytes: bytes)
        }
        expectFailure(try convert(m), ["tensor head.proj_s2.weight holds nan at flat index 5"], dir: m.dir)
    }

    @Test func existingBundleIsKeptWithoutForceAndOnFailure() throws {
        let m = copyModel("tiny")
        let out = m.dir + "/out.kq"
        #expect(try convert(m).status == 0)
        let original = try Data(contentsOf: URL(fileURLWithPath: out))
        let again = try convert(m)
        #expect(again.status == 1 && again.stderr.contains("already exists (use --force"))
        // A failing conversion with --force leaves the previous bundle intact and no temporary file.
        try rewrite(m.pred + "/model.safetensors") { $0.removeAll { $0.name == "norm.weight" } }
        let failed = try convert(m, extra: ["--force"])
        #expect(failed.status == 1)
        #expect(try Data(contentsOf: URL(fileURLWithPath: out)) == original)
        #expect(try FileManager.default.contentsOfDirectory(atPath: m.dir).filter { $0.contains(".tmp-") }.isEmpty)
    }

    @Test func usageErrorsExitTwo() throws {
        #expect(
            try run("kronos-convert", ["--tokenizer", "a", "--predictor", "b", "-o", "x.kq", "--quantize", "q3"]).status
                == 2)
        #expect(try run("kronos-convert", ["--predictor", "b", "-o", "x.kq"]).status == 2)
        #expect(
            try run("kronos-convert", ["--tokenizer", "a", "--predictor", "b", "-o", "x.kq", "--keep", "head.*"]).status
                == 2)
        #expect(try run("kronos-convert", ["--help"]).status == 0)
    }
}

@Suite struct BundleIntegrityTests {
    func tinyBundle() throws -> (dir: String, path: String, bytes: [UInt8]) {
        let dir = temporaryDirectory("integrity")
        let r = try run(
            "kronos-convert",
            [
                "--tokenizer", goldenTinyDirectory + "/tokenizer", "--predictor", goldenTinyDirectory + "/predictor",
                "--quantize", "q8", "-o", dir + "/t.kq",
            ])
        #expect(r.status == 0)
        return (dir, dir + "/t.kq", [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/t.kq"))))
    }

    func refusal(_ bytes: [UInt8], _ dir: String) -> String? {
        let p = dir + "/mut.kq"
        FileManager.default.createFile(atPath: p, contents: Data(bytes))
        do { _ = try BundleReader(path: p); return nil } catch { return error.errorDescription }
    }

    @Test func corruptionIsRefusedWithItsLocation() throws {
        let (dir, path, bytes) = try tinyBundle()
        let reader = try BundleReader(path: path)
        let t = reader.manifest.tensors[10]
        var frame = bytes; frame[64 + t.offset + t.storedSize / 2] ^= 1
        #expect(
            refusal(frame, dir)?.contains(
                "tensor \(t.part.rawValue)/\(t.name) (frame at byte \(64 + t.offset)): xxh64 mismatch") == true)
        var magic = bytes; magic[0] = UInt8(ascii: "G")
        #expect(refusal(magic, dir)?.contains("magic: expected \"KRONOSKQ\"") == true)
        var manifest = bytes; manifest[bytes.count - 10] ^= 0x20
        #expect(refusal(manifest, dir)?.contains("manifest corrupted") == true)
        #expect(refusal(Array(bytes.prefix(bytes.count - 1)), dir)?.contains("truncated") == true)
        #expect(refusal(Array(bytes.prefix(40)), dir)?.contains("truncated") == true)
        var padding = bytes; padding[64 + t.offset + t.storedSize] = 7
        if t.storedSize % 64 != 0 { #expect(refusal(padding, dir)?.contains("padding byte") == true) }
    }

    @Test func futureVersionIsRefused() throws {
        let (dir, _, bytes) = try tinyBundle()
        var b = bytes
        b[8] = 2
        // Recompute the header checksum so that the version check itself is reached.
        let h = XXH64.hash(Array(b[0..<56]))
        withUnsafeBytes(of: h.littleEndian) { for k in 0..<8 { b[56 + k] = $0[k] } }
        #expect(refusal(b, dir)?.contains("version: expected 1, found 2 (written by a newer converter") == true)
    }
}
