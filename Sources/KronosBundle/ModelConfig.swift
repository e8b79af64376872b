// The two config.json files of a Kronos model (ARCHITECTURE.md §8) as Codable structs.
import Foundation

/// Tokenizer `config.json` (the constructor's keyword arguments).
public struct TokenizerConfig: Codable, Sendable, Equatable {
    /// Input features per row (6: open, high, low, close, volume, amount).
    public var inputDimension: Int
    /// Width of the tokenizer's transformer.
    public var modelDimension: Int
    /// Attention heads of the encoder/decoder blocks.
    public var headCount: Int
    /// Hidden width of the SwiGLU feed-forward.
    public var feedForwardDimension: Int
    /// Encoder layers as configured (the model holds one block fewer).
    public var encoderLayers: Int
    /// Decoder layers as configured (the model holds one block fewer).
    public var decoderLayers: Int
    /// Bits of the coarse id s1.
    public var s1Bits: Int
    /// Bits of the fine id s2.
    public var s2Bits: Int
    /// Size of the BSQ group basis buffer.
    public var groupSize: Int
    // Training-only settings (kept for the manifest, not used at inference).
    public var feedForwardDropout: Double?
    public var attentionDropout: Double?
    public var residualDropout: Double?
    public var beta: Double?
    public var gamma0: Double?
    public var gamma: Double?
    public var zeta: Double?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case inputDimension = "d_in"
        case modelDimension = "d_model"
        case headCount = "n_heads"
        case feedForwardDimension = "ff_dim"
        case encoderLayers = "n_enc_layers"
        case decoderLayers = "n_dec_layers"
        case s1Bits = "s1_bits"
        case s2Bits = "s2_bits"
        case groupSize = "group_size"
        case feedForwardDropout = "ffn_dropout_p"
        case attentionDropout = "attn_dropout_p"
        case residualDropout = "resid_dropout_p"
        case beta, gamma0, gamma, zeta
    }

    /// Bits of a full code: C = s1_bits + s2_bits.
    public var codeBits: Int { s1Bits + s2Bits }
    /// Head dimension.
    public var headDimension: Int { modelDimension / max(headCount, 1) }
    /// Encoder blocks actually present (n_enc_layers - 1).
    public var encoderBlocks: Int { encoderLayers - 1 }
    /// Decoder blocks actually present (n_dec_layers - 1).
    public var decoderBlocks: Int { decoderLayers - 1 }
}

/// Predictor `config.json`.
public struct PredictorConfig: Codable, Sendable, Equatable {
    public var s1Bits: Int
    public var s2Bits: Int
    /// Transformer blocks.
    public var layers: Int
    public var modelDimension: Int
    public var headCount: Int
    public var feedForwardDimension: Int
    /// True: learned time tables (`*_embed.weight`); false: fixed sinusoids (`*_embed.emb.weight`).
    public var learnedTimeEmbedding: Bool
    public var feedForwardDropout: Double?
    public var attentionDropout: Double?
    public var residualDropout: Double?
    public var tokenDropout: Double?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case s1Bits = "s1_bits"
        case s2Bits = "s2_bits"
        case layers = "n_layers"
        case modelDimension = "d_model"
        case headCount = "n_heads"
        case feedForwardDimension = "ff_dim"
        case learnedTimeEmbedding = "learn_te"
        case feedForwardDropout = "ffn_dropout_p"
        case attentionDropout = "attn_dropout_p"
        case residualDropout = "resid_dropout_p"
        case tokenDropout = "token_dropout_p"
    }

    public init(
        s1Bits: Int, s2Bits: Int, layers: Int, modelDimension: Int, headCount: Int, feedForwardDimension: Int,
        learnedTimeEmbedding: Bool
    ) {
        self.s1Bits = s1Bits; self.s2Bits = s2Bits; self.layers = layers; self.modelDimension = modelDimension
        self.headCount = headCount; self.feedForwardDimension = feedForwardDimension
        self.learnedTimeEmbedding = learnedTimeEmbedding
    }

    public var headDimension: Int { modelDimension / max(headCount, 1) }
    public var s1Vocabulary: Int { 1 << s1Bits }
    public var s2Vocabulary: Int { 1 << s2Bits }
    /// Heads of the dependency layer: always 4 in the reference.
    public static let dependencyHeads = 4
}

/// A config that cannot describe a working Kronos model, or cannot be read.
public struct ConfigError: Error, LocalizedError, Sendable, Equatable {
    /// The config file (or "bundle manifest").
    public let file: String
    public let message: String
    public init(file: String, message: String) { self.file = file; self.message = message }
    public var errorDescription: String? { "\(file): \(message)" }
}

public enum ConfigDecoding {
    /// Decodes a config from JSON bytes, naming missing or mistyped keys.
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data, file: String) throws(ConfigError) -> T {
        let parsed: JSONValue
        do { parsed = try StrictJSON.parse([UInt8](data)) } catch {
            throw ConfigError(file: file, message: "not valid JSON: \(error)")
        }
        guard case .object = parsed else {
            throw ConfigError(file: file, message: "expected a JSON object, found \(parsed.kindName)")
        }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let DecodingError.keyNotFound(key, _) {
            throw ConfigError(file: file, message: "missing required key \"\(key.stringValue)\"")
        } catch let DecodingError.typeMismatch(expected, ctx) {
            let key = ctx.codingPath.map(\.stringValue).joined(separator: ".")
            throw ConfigError(file: file, message: "key \"\(key)\": expected \(expected), found another type")
        } catch let DecodingError.valueNotFound(expected, ctx) {
            let key = ctx.codingPath.map(\.stringValue).joined(separator: ".")
            throw ConfigError(file: file, message: "key \"\(key)\": expected \(expected), found null")
        } catch let DecodingError.dataCorrupted(ctx) {
            let key = ctx.codingPath.map(\.stringValue).joined(separator: ".")
            throw ConfigError(file: file, message: "key \"\(key)\": \(ctx.debugDescription)")
        } catch {
            throw ConfigError(file: file, message: "\(error)")
        }
    }
}

extension TokenizerConfig {
    /// Rejects configurations the runtime cannot execute, naming the key and the value found.
    public func validate(file: String) throws(ConfigError) {
        func fail(_ m: String) -> ConfigError { ConfigError(file: file, message: m) }
        for (key, v, limit) in [
            ("d_in", inputDimension, 6), ("d_model", modelDimension, ConfigLimits.modelDimension),
            ("n_heads", headCount, ConfigLimits.heads), ("ff_dim", feedForwardDimension, ConfigLimits.feedForward),
            ("n_enc_layers", encoderLayers, ConfigLimits.layers), ("n_dec_layers", decoderLayers, ConfigLimits.layers),
            ("group_size", groupSize, ConfigLimits.groupSize),
        ] where v < 1 || v > limit {
            throw fail("\(key) must be in 1...\(limit), found \(v)")
        }
        guard inputDimension == 6 else {
            throw fail("d_in must be 6 (open, high, low, close, volume, amount), found \(inputDimension)")
        }
        try validateBits(s1Bits, s2Bits, file: file)
        guard modelDimension % headCount == 0 else {
            throw fail("d_model \(modelDimension) is not divisible by n_heads \(headCount)")
        }
        guard headDimension % 2 == 0 else {
            throw fail("head dimension d_model / n_heads = \(headDimension) must be even (rotary)")
        }
    }
}

extension PredictorConfig {
    public func validate(file: String) throws(ConfigError) {
        func fail(_ m: String) -> ConfigError { ConfigError(file: file, message: m) }
        for (key, v, limit) in [
            ("d_model", modelDimension, ConfigLimits.modelDimension), ("n_heads", headCount, ConfigLimits.heads),
            ("ff_dim", feedForwardDimension, ConfigLimits.feedForward), ("n_layers", layers, ConfigLimits.layers),
        ]
        where v < 1 || v > limit {
            throw fail("\(key) must be in 1...\(limit), found \(v)")
        }
        try validateBits(s1Bits, s2Bits, file: file)
        guard modelDimension % headCount == 0 else {
            throw fail("d_model \(modelDimension) is not divisible by n_heads \(headCount)")
        }
        guard headDimension % 2 == 0 else {
            throw fail("head dimension d_model / n_heads = \(headDimension) must be even (rotary)")
        }
        guard modelDimension % (2 * Self.dependencyHeads) == 0 else {
            throw fail(
                "d_model \(modelDimension) must be divisible by 8 (the dependency layer's 4 heads need an even head "
                    + "dimension)"
            )
        }
    }
}

/// Sane bounds on config values (far above every released Kronos), so that no tensor size derived
/// from a config can be absurd before anything is allocated.
public enum ConfigLimits {
    public static let modelDimension = 16384
    public static let heads = 1024
    public static let feedForward = 65536
    public static let layers = 256
    public static let groupSize = 64
}

private func validateBits(_ s1: Int, _ s2: Int, file: String) throws(ConfigError) {
    guard (1...16).contains(s1) else {
        throw ConfigError(file: file, message: "s1_bits must be in 1...16, found \(s1)")
    }
    guard (1...16).contains(s2) else {
        throw ConfigError(file: file, message: "s2_bits must be in 1...16, found \(s2)")
    }
    guard s1 == s2 else {
        throw ConfigError(
            file: file,
            message: "s1_bits (\(s1)) must equal s2_bits (\(s2)): the reference decode splits the code in halves")
    }
}

/// Both configs together, checked against each other.
public struct ModelConfig: Codable, Sendable, Equatable {
    public var tokenizer: TokenizerConfig
    public var predictor: PredictorConfig

    public init(tokenizer: TokenizerConfig, predictor: PredictorConfig) {
        self.tokenizer = tokenizer; self.predictor = predictor
    }

    public func validate(tokenizerFile: String, predictorFile: String) throws(ConfigError) {
        try tokenizer.validate(file: tokenizerFile)
        try predictor.validate(file: predictorFile)
        guard tokenizer.s1Bits == predictor.s1Bits, tokenizer.s2Bits == predictor.s2Bits else {
            throw ConfigError(
                file: predictorFile,
                message:
                    "s1_bits/s2_bits \(predictor.s1Bits)/\(predictor.s2Bits) differ from the tokenizer's "
                    + "\(tokenizer.s1Bits)/\(tokenizer.s2Bits) (\(tokenizerFile))"
            )
        }
    }
}
