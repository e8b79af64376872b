// The one place that names both builds of the engine (KronosEngineTypes/Processor.swift says why
// there are two).
import KronosWideEngine
import KronosEngineBaseline
import KronosEngineTypes

extension KronosModel {
    /// Loads and checks the bundle at `path` into the engine build this processor runs.
    package static func loadEngine(path: String, threads: Int?) throws(RuntimeError) -> any ForecastBackend {
        if Processor.runsNativeEngine { return try KronosWideEngine.ForecastEngine(path: path, threads: threads) }
        return try KronosEngineBaseline.ForecastEngine(path: path, threads: threads)
    }
}
