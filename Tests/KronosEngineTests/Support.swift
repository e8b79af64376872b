import Foundation
import Kronos
import KronosBundle
import KronosCheckpoint
import KronosConvert
#if KRONOS_ENGINE_BASELINE
    import KronosEngineBaseline
#else
    import KronosWideEngine
#endif

import KronosTestSupport

let sharedReference = sharedReferenceDirectory
let goldenDirectory = repositoryRoot.appendingPathComponent("golden").path

/// Converts a model directory (with tokenizer/ and predictor/) to a bundle, once per process and type.
final class BundleCache: @unchecked Sendable {
    static let shared = BundleCache()
    private var paths = [String: String]()
    private let lock = NSLock()

    func bundle(model: String, quantize: QuantizeChoice, maxContext: Int? = nil) throws -> String {
        lock.lock(); defer { lock.unlock() }
        let key = "\(model)|\(quantize)|\(maxContext ?? 0)"
        if let p = paths[key] { return p }
        let checkpoint = try Checkpoint(
            tokenizerDirectory: model + "/tokenizer", predictorDirectory: model + "/predictor")
        var options = ConversionOptions(output: temporaryDirectory("bundle") + "/m.kq")
        options.quantize = quantize
        options.maxContext = maxContext
        _ = try convert(checkpoint, options: options)
        paths[key] = options.output
        return options.output
    }
}

/// A reference case: its settings, the tensors the reference computed, its input and forecast.
struct ReferenceCase {
    let name: String
    let settings: [String: Any]
    let tensors: SafetensorsFile
    let inputPath: String
    let forecastPath: String

    init(directory: String, name: String) throws {
        self.name = name
        let json = try Data(contentsOf: URL(fileURLWithPath: directory + "/\(name).json"))
        settings = try JSONSerialization.jsonObject(with: json) as! [String: Any]
        tensors = try SafetensorsFile(path: directory + "/\(name).safetensors")
        inputPath = directory + "/\(name)_input.csv"
        forecastPath = directory + "/\(name)_forecast.csv"
    }

    static func all(in directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
    }

    func floats(_ name: String) -> [Float] { tensors[name]!.floats() }
    func ints(_ name: String) -> [Int] { tensors[name]!.int64s().map { Int($0) } }
    var predLen: Int { settings["pred_len"] as! Int }
    var maxContext: Int { settings["max_context"] as! Int }
    var lookback: Int { settings["lookback"] as! Int }
}

/// Largest |a - b| / max(|b|, floor) over the elements.
func maxRelative(_ a: [Float], _ b: [Float], floor: Float = 1e-3) -> Float {
    precondition(a.count == b.count, "\(a.count) vs \(b.count)")
    var m: Float = 0
    for i in a.indices { m = max(m, abs(a[i] - b[i]) / max(abs(b[i]), floor)) }
    return m
}

/// The first `rows` candles of golden/sample_4h.csv and the stamps of `future` 4-hour rows after them.
func sampleInput(rows T: Int, future P: Int) throws -> SeriesInput {
    let table = try Candles.read(path: goldenDirectory + "/sample_4h.csv")
    let times = Array(table.times.prefix(T))
    let future = (1...P).map { TimeStamp(wallClockSeconds: times.last! + Int64($0) * 14400) }
    return SeriesInput(
        values: Array(table.values.prefix(T * 6)), stamps: times.map { TimeStamp(wallClockSeconds: $0) },
        futureStamps: future)
}
