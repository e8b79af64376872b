// What the engine takes and gives: settings, inputs, results, errors. Shared by the engine's
// builds for each processor (KronosWideEngine, KronosEngineBaseline) and by everything above them.
import Foundation
import KronosBundle

/// How generation reuses keys / values between steps (ARCHITECTURE.md §6).
public enum CacheMode: String, Sendable, Codable, CaseIterable {
    /// Exact (default): the KV cache while the window grows from position 0, the whole window
    /// recomputed once it slides. Equal to `recompute`, bit for bit (the tests compare them).
    case exact
    /// Recompute the whole window at every step, as the reference does (slow; for checks).
    case recompute
    /// Approximation: once the window slides, evict the oldest row and keep the cached keys / values
    /// of the others, which were computed while the evicted rows were still in the window (rotary
    /// positions keep counting, so relative positions stay exact). One row per step instead of a
    /// window; the drift it costs is measured by `kronos-run verify --cache approx-slide`.
    case approxSlide = "approx-slide"
}

/// Arithmetic of the predictor's matmuls over q8_0 / q4_1 / q4_k weights (f32 and f16 weights
/// always multiply f32 activations).
public enum ActivationPrecision: String, Sendable, Codable, CaseIterable {
    /// f32 activations times the weights dequantized in registers.
    case f32
    /// Activations quantized to int8 per 32 values, products summed exactly in integers, block sums
    /// scaled and accumulated in f32 (IntegerActivations.swift; as ggml multiplies its quantized
    /// weights). An approximation of the f32 arithmetic: on Kronos-mini it changes no top-1 share,
    /// context id or decoder output, and moves s1 KLD from 2.6e-4 to 3.9e-4 with q8 weights (3.6e-2 to
    /// 3.5e-2 with q4); `kronos-run verify --activations int8` measures it.
    case int8
}

public struct ForecastSettings: Sendable, Codable, Equatable {
    public var predictionLength: Int
    /// Model window (default: the bundle's max context).
    public var maxContext: Int
    public var sampling: SamplingSettings
    /// Independent paths per series, averaged.
    public var samples: Int
    /// Seed of the one random stream every sequence of the batch draws from, in batch order.
    public var seed: UInt64
    /// Per series, the seed of a stream of its own (nil: the one stream of `seed`): series k's
    /// samples then draw from it alone, so its paths do not depend on the series batched with it
    /// (a backtest's origins, batched or not, draw the same numbers). One series with
    /// seriesSeeds [s] draws exactly what seed s draws.
    public var seriesSeeds: [UInt64]?
    /// Values are clipped to ±clip after normalization.
    public var clip: Float = 5
    /// Reuse of keys / values between steps.
    public var cache: CacheMode = .exact
    /// Arithmetic of the predictor's matmuls over q8_0 / q4_1 / q4_k weights (nil: the model's
    /// `defaultActivations` on this processor).
    public var activations: ActivationPrecision?
    /// Precision of the predictor's key / value cache (nil: the model's `defaultKVCache`).
    public var kvCache: KVCachePrecision?

    public init(
        predictionLength: Int, maxContext: Int, sampling: SamplingSettings = SamplingSettings(), samples: Int = 1,
        seed: UInt64 = 0
    ) {
        self.predictionLength = predictionLength; self.maxContext = maxContext; self.sampling = sampling
        self.samples = samples; self.seed = seed
    }
    enum CodingKeys: String, CodingKey {
        case predictionLength = "pred_len"
        case maxContext = "max_context"
        case sampling, samples, seed, clip
        case seriesSeeds = "series_seeds"
        case cache
        case activations
        case kvCache = "kv_cache"
    }
}

/// One input series: T rows of (open, high, low, close, volume, amount) and their time features,
/// plus the time features of the P future rows.
public struct SeriesInput: Sendable {
    /// The six values of a row, in order.
    public static let columns = ["open", "high", "low", "close", "volume", "amount"]
    public var values: [Float]  // [T, 6]
    public var stamps: [TimeStamp]  // [T]
    public var futureStamps: [TimeStamp]  // [P]
    public var rows: Int { stamps.count }
    public init(values: [Float], stamps: [TimeStamp], futureStamps: [TimeStamp]) {
        self.values = values; self.stamps = stamps; self.futureStamps = futureStamps
    }
}

/// What the forecast computed on the way, for parity checks (first sequence of the batch).
public struct ForecastTrace: Sendable {
    public var normalized: [Float] = []  // x_norm [T, 6]
    public var mean: [Float] = []  // [6]
    public var std: [Float] = []  // [6]
    public var contextS1: [Int] = []  // [T]
    public var contextS2: [Int] = []
    public var contextReconstruction: [Float] = []  // decode of the last min(T, max_context) context tokens [., 6]
    public var stepS1Logits: [[Float]] = []  // [P][V1]
    public var stepS2Logits: [[Float]] = []  // [P][V2]
    public init() {}
}

public struct SeriesForecast: Sendable {
    /// Mean over samples, denormalized [P, 6].
    public var mean: [Float]
    /// Every sample's denormalized path [samples][P, 6].
    public var paths: [[Float]]
    /// Generated ids of every sample [samples][P].
    public var s1: [[Int]]
    public var s2: [[Int]]

    public init(mean: [Float], paths: [[Float]], s1: [[Int]], s2: [[Int]]) {
        self.mean = mean; self.paths = paths; self.s1 = s1; self.s2 = s2
    }
}

public enum ForecastEvent: Sendable {
    case step(done: Int, total: Int)
}

/// Precision of the predictor's cached keys / values.
public enum KVCachePrecision: String, Sendable, Codable, CaseIterable {
    /// Exact: keys and values as computed (the default of f32 / f16 bundles, ForecastEngine.defaultKVCache).
    case f32
    /// Approximation: keys and values rounded to f16 (round to nearest even) when cached, which
    /// halves the cache (Kronos-base, 512 rows: 42 -> 21 MiB per series). Attention still computes
    /// in f32 from the exactly widened f16 values; the drift it costs is measured by
    /// `kronos-run verify --kv-cache f16`. The default of q8 / q4 bundles.
    case f16

    /// Bytes per cached value.
    public var bytes: Int { self == .f32 ? 4 : 2 }
}

public struct SamplingSettings: Sendable, Equatable, Codable {
    public var temperature: Float = 1
    public var topK: Int = 0
    public var topP: Float = 0.9
    public init(temperature: Float = 1, topK: Int = 0, topP: Float = 0.9) {
        self.temperature = temperature; self.topK = topK; self.topP = topP
    }
    enum CodingKeys: String, CodingKey {
        case temperature
        case topK = "top_k"
        case topP = "top_p"
    }
}

/// The engine's bounds, the same in every build.
public enum EngineLimits {
    /// Largest model window a forecast takes (the converter's bound on max_context).
    public static let maxWindow = 1 << 20
    /// Most sequences (series × samples) in one batch.
    public static let maxBatch = 4096
    /// Threads a model uses when asked for none: one per core.
    public static var defaultThreads: Int { ProcessInfo.processInfo.activeProcessorCount }
    /// Most threads a model may ask for: 4 per core (at least 8, at most 256). More threads than that
    /// only cost memory (a 1 MiB stack and a scratch slice each) and cannot make kernels faster.
    public static let maxThreads = min(256, max(8, 4 * ProcessInfo.processInfo.activeProcessorCount))
}

public enum RuntimeError: Error, LocalizedError, Sendable {
    case bundle(BundleError)
    case model(String)
    case input(file: String, line: Int?, column: String?, message: String)
    case options(String)
    /// The caller stopped the forecast (`forecast(cancelled:)` returned true between two steps).
    case cancelled

    public var errorDescription: String? {
        switch self {
        case let .bundle(e): return e.errorDescription
        case let .model(m): return m
        case let .input(file, line, column, message):
            var loc = file
            if let line { loc += ":\(line)" }
            if let column { loc += " (column \(column))" }
            return "\(loc): \(message)"
        case let .options(m): return m
        case .cancelled: return "the forecast was cancelled"
        }
    }
}
