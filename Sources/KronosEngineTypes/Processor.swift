// Which build of the engine runs on this processor. The engine is compiled twice from the same
// sources: KronosWideEngine for x86-64-v3 (AVX2, FMA, F16C: every x86 processor since 2013-2015; on
// other architectures without CPU flags) and KronosEngineBaseline without any CPU flags (x86-64's
// SSE2 baseline: processors before those, and KRONOS_KERNELS=portable). The façade loads a model
// into the build this processor runs, so no instruction the processor lacks is ever executed.
import CKronosHints
import KronosBundle
import Foundation

public enum Processor {
    /// `KRONOS_KERNELS=portable` in the environment: the baseline engine and the portable integer
    /// kernels whatever the processor (the code path of a processor without AVX2, or of arm64;
    /// the test suite runs once this way in CI).
    public static let portableForced: Bool = ProcessInfo.processInfo.environment["KRONOS_KERNELS"] == "portable"
    /// `KRONOS_KERNELS=avx2`: the x86-64-v3 engine with the integer kernels of processors without
    /// AVX-512 VNNI (vpmaddubsw) and the 256-bit attention, whatever the processor: how a VNNI machine
    /// tests and times the path older x86-64-v3 processors take.
    public static let avx2Forced: Bool = ProcessInfo.processInfo.environment["KRONOS_KERNELS"] == "avx2"
    /// The processor and OS run x86-64-v3 code (AVX2, FMA, F16C, BMI1/2, LZCNT, MOVBE, POPCNT).
    public static let hasX86_64_v3: Bool = kronos_cpu_has_x86_64_v3() != 0
    /// The processor and OS run AVX-512 F / BW / VL with VNNI (the int8 kernels of KronosWideVNNI).
    public static let hasAVX512VNNI: Bool = kronos_cpu_has_avx512_vnni() != 0

    /// Whether models load into KronosWideEngine (else KronosEngineBaseline).
    public static var runsNativeEngine: Bool {
        #if arch(x86_64)
            return hasX86_64_v3 && !portableForced
        #else
            return !portableForced
        #endif
    }

    /// The build models load into, for messages and reports: "x86-64-v3", "baseline" or "native".
    public static var engineName: String {
        #if arch(x86_64)
            return runsNativeEngine ? "x86-64-v3" : "baseline"
        #else
            return runsNativeEngine ? "native" : "baseline"
        #endif
    }
}

/// What the façade and the evaluation need of a loaded model, whichever build of the engine holds it.
public protocol ForecastBackend: AnyObject, Sendable {
    var manifest: Manifest { get }
    var path: String { get }
    var maxContext: Int { get }
    var threads: Int { get }
    var threadWarning: String? { get }
    var loadSeconds: Double { get }
    var defaultActivations: ActivationPrecision { get }
    var defaultKVCache: KVCachePrecision { get }
    func activations(_ requested: ActivationPrecision?) -> ActivationPrecision
    func kvCache(_ requested: KVCachePrecision?) -> KVCachePrecision
    func forecast(
        _ inputs: [SeriesInput], settings: ForecastSettings, trace: UnsafeMutablePointer<ForecastTrace>?,
        progress: ((ForecastEvent) -> Void)?, cancelled: (() -> Bool)?
    ) throws(RuntimeError) -> [SeriesForecast]
    func encode(_ x: [Float], rows: Int) -> (s1: [Int], s2: [Int])
    func decode(s1: [[Int]], s2: [[Int]]) -> [Float]
    /// From now on, `observer` sees the input rows of every matmul (nil: none); for calibration.
    /// blockedSums: the f32 passes may sum in the order of the engine's fastest GEMM instead of the
    /// decode steps' (the same values to f32 rounding, not the same bits).
    func observeActivations(_ observer: (any ActivationObserver)?, blockedSums: Bool)
    func teacherForcedLogits(
        contextS1: [Int], contextS2: [Int], stamps: [TimeStamp], pathS1: [Int], pathS2: [Int],
        maxContext window: Int, cache: CacheMode, activations: ActivationPrecision?,
        kvCache: KVCachePrecision?
    ) -> (s1: [[Float]], s2: [[Float]])
}

extension ForecastBackend {
    /// observeActivations with the decode steps' sums (the passes' bits unchanged by observing).
    public func observeActivations(_ observer: (any ActivationObserver)?) {
        observeActivations(observer, blockedSums: false)
    }

    /// A forecast without a trace, progress or cancellation.
    public func forecast(_ inputs: [SeriesInput], settings: ForecastSettings) throws(RuntimeError) -> [SeriesForecast] {
        try forecast(inputs, settings: settings, trace: nil, progress: nil, cancelled: nil)
    }

    /// Teacher forcing with the default arithmetic of this model.
    public func teacherForcedLogits(
        contextS1: [Int], contextS2: [Int], stamps: [TimeStamp], pathS1: [Int], pathS2: [Int],
        maxContext window: Int, cache: CacheMode = .exact
    ) -> (s1: [[Float]], s2: [[Float]]) {
        teacherForcedLogits(
            contextS1: contextS1, contextS2: contextS2, stamps: stamps, pathS1: pathS1, pathS2: pathS2,
            maxContext: window,
            cache: cache, activations: nil, kvCache: nil)
    }
}

/// Sees the input rows of every matmul a model runs while it is installed
/// (ForecastBackend.observeActivations): calibration collects their mean squares per input column.
/// `observe` is called on the thread driving the pass, before the matmul, once per weight and pass;
/// several passes of one model may run at once, so implementations must be thread-safe.
public protocol ActivationObserver: AnyObject, Sendable {
    /// x [rows, columns]: the rows the weight `weight` ("part/name") is about to multiply.
    /// `gram(y, n, g, accumulate)` writes the upper triangle (j ≥ i) of YᵀY [columns, columns] of any
    /// rows y [n, columns] into g (or, with accumulate, adds it to g's upper triangle) with the
    /// engine's f32 kernels (on as many cores as the pass), for an observer that wants the rows'
    /// second moments (of these rows, or of rows it kept earlier); it may be kept and called later,
    /// from one thread at a time.
    func observe(
        _ weight: String, _ x: UnsafePointer<Float>, rows: Int, columns: Int,
        gram: @escaping @Sendable (UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>, Bool) -> Void)
}
