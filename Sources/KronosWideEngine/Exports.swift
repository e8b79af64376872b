// The engine's settings, inputs, results and errors are KronosEngineTypes' (shared by both builds of
// the engine); importing the engine imports them.
@_exported import KronosEngineTypes

extension ForecastEngine: ForecastBackend {}
