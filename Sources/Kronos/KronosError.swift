import Foundation
import KronosEngineTypes

/// What went wrong, in the library's terms (a command-line tool maps these to its flags and exit
/// codes). Every message names the file, the tensor, the line or the value, what was expected and
/// what was found.
public enum KronosError: Error, LocalizedError, Sendable, Equatable {
    /// The bundle cannot be used: missing, not a bundle, damaged, or from a newer format.
    case invalidBundle(String)
    /// The candles cannot be forecast: a bad file, line or value.
    case invalidInput(String)
    /// The options do not fit the model or the input (say which and why).
    case invalidOptions(String)
    /// The model produced numbers that are not finite (an input or weights out of range).
    case numericFailure(String)
    /// The forecast was cancelled (its task was cancelled, or its progress handler asked to stop).
    case cancelled

    public var errorDescription: String? {
        switch self {
        case let .invalidBundle(m), let .invalidInput(m), let .invalidOptions(m), let .numericFailure(m): return m
        case .cancelled: return "the forecast was cancelled"
        }
    }

    init(_ e: RuntimeError) {
        switch e {
        case .bundle: self = .invalidBundle(e.errorDescription ?? "invalid bundle")
        case .model: self = .numericFailure(e.errorDescription ?? "the model failed")
        case .input: self = .invalidInput(e.errorDescription ?? "invalid input")
        case let .options(m): self = .invalidOptions(m)
        case .cancelled: self = .cancelled
        }
    }
}

/// How generation reuses keys and values between steps (``ForecastOptions/cache``).
public typealias CacheMode = KronosEngineTypes.CacheMode
/// The arithmetic of the matmuls over quantized weights (``ForecastOptions/activations``).
public typealias ActivationPrecision = KronosEngineTypes.ActivationPrecision
/// The precision of the key / value cache (``ForecastOptions/kvCache``).
public typealias KVCachePrecision = KronosEngineTypes.KVCachePrecision
