import Foundation
import KronosEngineTypes

/// How a forecast samples and computes. Every default is the reference implementation's
/// (`KronosPredictor.predict`: temperature 1, top-k off, top-p 0.9, one sample) or the model's own
/// (its maximum context).
public struct ForecastOptions: Sendable, Equatable {
    /// Independent sample paths; the forecast's ``Forecast/mean`` averages them and its quantiles
    /// come from them (20 or more give usable 10 % / 90 % bands).
    public var samples: Int = 1
    /// Seed of the random stream: the same seed, input and options give the same forecast, bit for bit.
    public var seed: UInt64 = 0
    /// One seed per series of a batch forecast (nil: every series draws from the one stream of
    /// ``seed``, in batch order). With it, series k draws from a stream of its own, so its forecast is
    /// the same bit for bit whether it runs alone (with `seed` = seriesSeeds[k]) or batched with any
    /// other series: a walk-forward study batches its origins this way.
    public var seriesSeeds: [UInt64]?
    /// Softmax temperature of the sampler (1: the model's distribution).
    public var temperature: Double = 1
    /// Keep only the k most likely tokens (0: off).
    public var topK: Int = 0
    /// Keep the most likely tokens whose probabilities sum to p (nucleus sampling; 1: off).
    public var topP: Double = 0.9
    /// Rows the model sees at most (nil: the model's maximum context, ``KronosModel/maxContext``).
    public var maxContext: Int?
    /// Values are clipped to ±clip standard deviations after normalization.
    public var clip: Double = 5
    /// Reuse of keys and values between steps (`exact`: equal to recomputing, bit for bit).
    public var cache: CacheMode = .exact
    /// Arithmetic of the matmuls over q8 / q4 weights (nil: the fastest measured to keep the
    /// model's forecasts on this processor, ``KronosModel/defaultActivations``).
    public var activations: ActivationPrecision?
    /// Precision of the key / value cache (nil: ``KronosModel/defaultKVCache``).
    public var kvCache: KVCachePrecision?
    /// The days future candles fall on (nil: inferred from the history, weekdays when two weeks or
    /// more of it have no weekend candle).
    public var tradingDays: TradingDays?
    /// The spacing of future candles (nil: the history's most common spacing).
    public var interval: TimeInterval?
    /// The dates of the future candles, when no regular calendar gives them (exchange holidays,
    /// sessions): as many as the forecast's steps, each after the last candle and the one before.
    public var futureDates: [Date]?

    /// Options with the reference implementation's defaults, changed where given.
    public init(
        samples: Int = 1, seed: UInt64 = 0, temperature: Double = 1, topK: Int = 0, topP: Double = 0.9,
        maxContext: Int? = nil
    ) {
        self.samples = samples
        self.seed = seed
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.maxContext = maxContext
    }
}

/// How far a forecast has come (the `progress` handler of ``KronosModel``'s forecasts).
public struct ForecastProgress: Sendable, Equatable {
    /// Steps generated.
    public var step: Int
    /// Steps asked for.
    public var steps: Int

    /// `step` of `steps` done.
    public init(step: Int, steps: Int) {
        self.step = step
        self.steps = steps
    }
}
