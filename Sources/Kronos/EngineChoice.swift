// The one place that names both builds of the engine (KronosEngineTypes/Processor.swift says why
// there are two).
import KronosBundle
import KronosEngineBaseline
import KronosEngineTypes
import KronosWideEngine

extension KronosModel {
    /// Loads and checks the bundle at `path` into the engine build this processor runs.
    package static func loadEngine(path: String, threads: Int?) throws(RuntimeError) -> any ForecastBackend {
        if Processor.runsNativeEngine { return try KronosWideEngine.ForecastEngine(path: path, threads: threads) }
        return try KronosEngineBaseline.ForecastEngine(path: path, threads: threads)
    }

    /// The engine build this processor runs, from tensors already in memory (as BundleReader.loadAll
    /// gives them) and their manifest; `name` stands for the bundle's path in messages.
    package static func loadEngine(
        manifest: Manifest, tensors: [String: TensorData], name: String, threads: Int?
    ) throws(RuntimeError) -> any ForecastBackend {
        if Processor.runsNativeEngine {
            return try KronosWideEngine.ForecastEngine(
                manifest: manifest, tensors: tensors, path: name, threads: threads)
        }
        return try KronosEngineBaseline.ForecastEngine(
            manifest: manifest, tensors: tensors, path: name, threads: threads)
    }
}
