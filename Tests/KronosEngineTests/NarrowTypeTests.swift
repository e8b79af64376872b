import Foundation
import KronosBundle
import KronosConvert
import KronosQuant
import KronosTestSupport
#if KRONOS_ENGINE_BASELINE
    import KronosEngineBaseline
#else
    import KronosWideEngine
#endif
import Testing

/// q5_0 and q6_0 tensors run as the q8_0 blocks they expand into: a bundle with them forecasts
/// exactly (bit for bit, float and integer arithmetic) what the same bundle forecasts with each of
/// those tensors rewritten as its q8_0 expansion.
@Suite struct NarrowTypeEngineTests {
    @Test(arguments: [ActivationPrecision.f32, .int8])
    func narrowTypesForecastAsTheirQ8Expansion(activations: ActivationPrecision) throws {
        let dir = temporaryDirectory("narrow")
        let narrow = dir + "/narrow.kq", expanded = dir + "/expanded.kq"
        let convert = try runTool(
            "kronos-convert",
            [
                "--tokenizer", goldenTinyDirectory + "/tokenizer", "--predictor", goldenTinyDirectory + "/predictor",
                "--quantize", "q4", "--keep", "predictor/transformer.*=q5", "--keep", "tokenizer/*coder.*=q6",
                "--max-context", "64", "-o", narrow,
            ])
        #expect(convert.status == 0, "\(convert.stderr)")
        // The same bundle with every q5_0 / q6_0 tensor rewritten as its q8_0 expansion.
        let reader = try BundleReader(path: narrow)
        let writer = try BundleWriter(destination: expanded, force: true)
        var rewritten = 0
        for t in reader.manifest.tensors {
            let data = try reader.load(t)
            var type = t.type
            var raw = Array(UnsafeRawBufferPointer(start: data.raw, count: t.rawSize))
            if t.type == .q5_0 || t.type == .q6_0 {
                type = .q8_0
                let q8RowBytes = TensorType.q8_0.rowBytes(columns: data.columns)!
                raw = [UInt8](repeating: 0, count: data.rows * q8RowBytes)
                raw.withUnsafeMutableBytes { out in
                    for r in 0..<data.rows {
                        t.type.expandRow(
                            data.raw + r * data.rowBytes, columns: data.columns, into: out.baseAddress! + r * q8RowBytes
                        )
                    }
                }
                rewritten += 1
            }
            let frame = try raw.withUnsafeBytes { try Zstd.compress($0, level: 1) }
            try writer.append(
                name: t.name, part: t.part, type: type, shape: t.shape, frame: frame, rawSize: raw.count, error: nil)
        }
        try writer.finish(reader.manifest)
        #expect(rewritten >= 10, "the recipe made \(rewritten) q5_0 / q6_0 tensors")
        let a = try ForecastEngine(path: narrow), b = try ForecastEngine(path: expanded)
        let input = try sampleInput(rows: 40, future: 24)
        var settings = ForecastSettings(
            predictionLength: 24, maxContext: 64, sampling: SamplingSettings(temperature: 1, topK: 0, topP: 0.9),
            samples: 2, seed: 5)
        settings.activations = activations
        var ta = ForecastTrace(), tb = ForecastTrace()
        let fa = try a.forecast([input], settings: settings, trace: &ta)
        let fb = try b.forecast([input], settings: settings, trace: &tb)
        #expect(ta.contextS1 == tb.contextS1 && ta.contextReconstruction == tb.contextReconstruction)
        #expect(ta.stepS1Logits == tb.stepS1Logits && ta.stepS2Logits == tb.stepS2Logits)
        #expect(fa[0].mean == fb[0].mean)
    }
}
