import Foundation
import Kronos
import KronosBundle
import KronosConvert
#if KRONOS_ENGINE_BASELINE
    import KronosEngineBaseline
#else
    import KronosWideEngine
#endif
import KronosTestSupport
import Testing

/// Named tolerances of parity with the reference implementation (issue acceptance: 1e-4).
enum Parity {
    static let tensorRelative: Float = 1e-4
    static let forecastRelative: Float = 1e-4
}

func runCase(_ c: ReferenceCase, bundle: String) throws -> (
    trace: ForecastTrace, forecast: SeriesForecast, table: CandleTable
) {
    let model = try ForecastEngine(path: bundle)
    let table = try Candles.read(path: c.inputPath)
    let interval = Candles.commonInterval(table.times)
    let future = (1...c.predLen).map { TimeStamp(wallClockSeconds: table.times.last! + Int64($0) * interval) }
    let input = SeriesInput(
        values: table.values, stamps: table.times.map { TimeStamp(wallClockSeconds: $0) }, futureStamps: future)
    let settings = ForecastSettings(
        predictionLength: c.predLen, maxContext: c.maxContext,
        sampling: SamplingSettings(temperature: 1, topK: 1, topP: 1), samples: 1, seed: 0)
    var trace = ForecastTrace()
    let result = try model.forecast([input], settings: settings, trace: &trace)
    return (trace, result[0], table)
}

func checkParity(directory: String, name: String, bundle: String) throws {
    let c = try ReferenceCase(directory: directory, name: name)
    let (trace, forecast, table) = try runCase(c, bundle: bundle)
    #expect(table.rows == c.lookback)
    // Time features: (minute, hour, weekday, day, month) per row.
    let xs = c.floats("x_stamp")
    var ours = [Float]()
    for t in table.times {
        let s = TimeStamp(wallClockSeconds: t)
        ours += [Float(s.minute), Float(s.hour), Float(s.weekday), Float(s.day), Float(s.month)]
    }
    #expect(ours == xs, "\(name): x_stamp differs")
    #expect(maxRelative(trace.mean, c.floats("mean")) < Parity.tensorRelative, "\(name): mean")
    #expect(maxRelative(trace.std, c.floats("std")) < Parity.tensorRelative, "\(name): std")
    #expect(maxRelative(trace.normalized, c.floats("x_norm"), floor: 1) < Parity.tensorRelative, "\(name): x_norm")
    #expect(trace.contextS1 == c.ints("context_s1"), "\(name): context s1 ids")
    #expect(trace.contextS2 == c.ints("context_s2"), "\(name): context s2 ids")
    #expect(
        maxRelative(trace.contextReconstruction, c.floats("context_recon"), floor: 1) < Parity.tensorRelative,
        "\(name): context_recon \(maxRelative(trace.contextReconstruction, c.floats("context_recon"), floor: 1))")
    let l1 = c.floats("step_s1_logits"), l2 = c.floats("step_s2_logits")
    let r1 = maxRelative(trace.stepS1Logits.flatMap { $0 }, l1, floor: 1),
        r2 = maxRelative(trace.stepS2Logits.flatMap { $0 }, l2, floor: 1)
    #expect(r1 < Parity.tensorRelative, "\(name): step s1 logits rel \(r1)")
    #expect(r2 < Parity.tensorRelative, "\(name): step s2 logits rel \(r2)")
    #expect(forecast.s1[0] == c.ints("gen_s1"), "\(name): generated s1")
    #expect(forecast.s2[0] == c.ints("gen_s2"), "\(name): generated s2")
    let rf = maxRelative(forecast.mean, c.floats("forecast"))
    #expect(rf < Parity.forecastRelative, "\(name): forecast rel \(rf)")
}

@Suite(.serialized) struct ReferenceParityTests {
    @Test(arguments: ReferenceCase.all(in: goldenDirectory + "/tiny/cases"))
    func goldenTiny(name: String) throws {
        let bundle = try BundleCache.shared.bundle(model: goldenDirectory + "/tiny", quantize: .f32)
        try checkParity(directory: goldenDirectory + "/tiny/cases", name: name, bundle: bundle)
    }

    @Test(
        .enabled(if: sharedReferenceAvailable, Comment(rawValue: sharedReferenceMissing)),
        arguments: ReferenceCase.all(in: sharedReference + "/tiny/cases"))
    func sharedTiny(name: String) throws {
        let bundle = try BundleCache.shared.bundle(model: sharedReference + "/tiny", quantize: .f32)
        try checkParity(directory: sharedReference + "/tiny/cases", name: name, bundle: bundle)
    }

    @Test(
        .enabled(if: sharedReferenceAvailable, Comment(rawValue: sharedReferenceMissing)),
        arguments: ReferenceCase.all(in: sharedReference + "/mini/cases"))
    func sharedMini(name: String) throws {
        let bundle = try BundleCache.shared.bundle(model: sharedReference + "/mini", quantize: .f32)
        try checkParity(directory: sharedReference + "/mini/cases", name: name, bundle: bundle)
    }

    /// The parameterized parity tests above run one test per case file they find: with the folders
    /// there, finding none is a failure, not a silent pass.
    @Test(.enabled(if: sharedReferenceAvailable, Comment(rawValue: sharedReferenceMissing)))
    func sharedCasesAreFound() {
        #expect(ReferenceCase.all(in: sharedReference + "/tiny/cases").count >= 1)
        #expect(ReferenceCase.all(in: sharedReference + "/mini/cases").count >= 3)
        #expect(ReferenceCase.all(in: goldenDirectory + "/tiny/cases").count >= 2)
    }
}
