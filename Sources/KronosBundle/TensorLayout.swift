// The tensor table a Kronos model must have, derived from its configs (ARCHITECTURE.md §8).

/// Which half of the model a tensor belongs to.
public enum ModelPart: String, Codable, Sendable, CaseIterable, Comparable {
    case tokenizer, predictor
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// What a tensor is used for; decides how it may be stored.
public enum TensorRole: String, Codable, Sendable {
    /// Linear layer weight [out, in]: quantizable along `in`.
    case linearWeight
    /// Embedding table [rows, D]: quantizable along D.
    case embeddingTable
    /// Norm weight, bias or rotary inverse frequencies: kept f32.
    case vector
    /// int64 buffer: kept i64.
    case int64Buffer

    public var isQuantizable: Bool { self == .linearWeight || self == .embeddingTable }
    public var isFloat: Bool { self != .int64Buffer }
}

public struct ExpectedTensor: Sendable, Equatable {
    public let part: ModelPart
    public let name: String
    public let shape: [Int]
    public let role: TensorRole
}

public enum TensorLayout {
    /// Every tensor the model's checkpoints must hold, tokenizer first, in a stable order.
    public static func expected(_ config: ModelConfig) -> [ExpectedTensor] {
        tokenizer(config.tokenizer) + predictor(config.predictor)
    }

    public static func tokenizer(_ c: TokenizerConfig) -> [ExpectedTensor] {
        var t = [ExpectedTensor]()
        let D = c.modelDimension, C = c.codeBits
        func add(_ n: String, _ s: [Int], _ r: TensorRole) {
            t.append(ExpectedTensor(part: .tokenizer, name: n, shape: s, role: r))
        }
        func linear(_ n: String, _ out: Int, _ inp: Int) {
            add(n + ".weight", [out, inp], .linearWeight); add(n + ".bias", [out], .vector)
        }
        linear("embed", D, c.inputDimension)
        for i in 0..<max(c.encoderBlocks, 0) {
            block("encoder.\(i)", D, c.headDimension, c.feedForwardDimension, .tokenizer, &t)
        }
        for i in 0..<max(c.decoderBlocks, 0) {
            block("decoder.\(i)", D, c.headDimension, c.feedForwardDimension, .tokenizer, &t)
        }
        linear("quant_embed", C, D)
        linear("post_quant_embed_pre", D, c.s1Bits)
        linear("post_quant_embed", D, C)
        linear("head", c.inputDimension, D)
        add("tokenizer.bsq.basis", [C], .int64Buffer)
        add("tokenizer.bsq.group_basis", [c.groupSize], .int64Buffer)
        return t
    }

    /// Names of the time tables, their row counts, and the stamp column each reads.
    public static let timeTables: [(name: String, rows: Int)] = [
        ("minute", 60), ("hour", 24), ("weekday", 7), ("day", 32), ("month", 13),
    ]

    public static func timeTableName(_ table: String, learned: Bool) -> String {
        learned ? "time_emb.\(table)_embed.weight" : "time_emb.\(table)_embed.emb.weight"
    }

    public static func predictor(_ c: PredictorConfig) -> [ExpectedTensor] {
        var t = [ExpectedTensor]()
        let D = c.modelDimension
        func add(_ n: String, _ s: [Int], _ r: TensorRole) {
            t.append(ExpectedTensor(part: .predictor, name: n, shape: s, role: r))
        }
        func linear(_ n: String, _ out: Int, _ inp: Int) {
            add(n + ".weight", [out, inp], .linearWeight); add(n + ".bias", [out], .vector)
        }
        add("embedding.emb_s1.weight", [c.s1Vocabulary, D], .embeddingTable)
        add("embedding.emb_s2.weight", [c.s2Vocabulary, D], .embeddingTable)
        linear("embedding.fusion_proj", D, 2 * D)
        for (name, rows) in timeTables {
            add(timeTableName(name, learned: c.learnedTimeEmbedding), [rows, D], .embeddingTable)
        }
        for i in 0..<c.layers { block("transformer.\(i)", D, c.headDimension, c.feedForwardDimension, .predictor, &t) }
        add("norm.weight", [D], .vector)
        for p in ["q", "k", "v", "out"] { linear("dep_layer.cross_attn.\(p)_proj", D, D) }
        add("dep_layer.cross_attn.rotary.inv_freq", [D / PredictorConfig.dependencyHeads / 2], .vector)
        add("dep_layer.norm.weight", [D], .vector)
        linear("head.proj_s1", c.s1Vocabulary, D)
        linear("head.proj_s2", c.s2Vocabulary, D)
        return t
    }

    private static func block(
        _ p: String, _ D: Int, _ hd: Int, _ F: Int, _ part: ModelPart, _ t: inout [ExpectedTensor]
    ) {
        func add(_ n: String, _ s: [Int], _ r: TensorRole) {
            t.append(ExpectedTensor(part: part, name: "\(p).\(n)", shape: s, role: r))
        }
        add("norm1.weight", [D], .vector)
        for q in ["q", "k", "v", "out"] {
            add("self_attn.\(q)_proj.weight", [D, D], .linearWeight)
            add("self_attn.\(q)_proj.bias", [D], .vector)
        }
        add("self_attn.rotary.inv_freq", [hd / 2], .vector)
        add("norm2.weight", [D], .vector)
        add("ffn.w1.weight", [F, D], .linearWeight)
        add("ffn.w3.weight", [F, D], .linearWeight)
        add("ffn.w2.weight", [D, F], .linearWeight)
    }
}

/// A tensor as some file holds it, for comparison with the expected table.
public struct FoundTensor: Sendable {
    public let part: ModelPart
    public let name: String
    public let shape: [Int]
    /// True for float data (F32/F16/BF16 or any float bundle type), false for integers.
    public let isFloat: Bool
    /// The file's own name of its dtype, for messages.
    public let typeName: String
    public init(part: ModelPart, name: String, shape: [Int], isFloat: Bool, typeName: String) {
        self.part = part; self.name = name; self.shape = shape; self.isFloat = isFloat; self.typeName = typeName
    }
}

extension TensorLayout {
    /// Every missing, unexpected and mis-shaped / mis-typed tensor, one line each (empty when all match).
    public static func compare(expected: [ExpectedTensor], found: [FoundTensor]) -> [String] {
        var problems = [String]()
        var byKey = [String: FoundTensor]()
        for f in found { byKey["\(f.part.rawValue)/\(f.name)"] = f }
        var expectedKeys = Set<String>()
        for e in expected {
            let key = "\(e.part.rawValue)/\(e.name)"
            expectedKeys.insert(key)
            guard let f = byKey[key] else {
                problems.append("missing tensor \(key): expected shape \(e.shape)")
                continue
            }
            if f.shape != e.shape {
                let hint = f.shape.count == 2 && f.shape.reversed() == e.shape ? " (transposed?)" : ""
                problems.append("tensor \(key): expected shape \(e.shape), found \(f.shape)\(hint)")
            }
            let typeMatches = e.role.isFloat ? f.isFloat : f.typeName.uppercased() == "I64"
            if !typeMatches {
                problems.append(
                    "tensor \(key): expected \(e.role.isFloat ? "a float dtype" : "an int64 buffer"), found "
                        + "\(f.typeName)"
                )
            }
        }
        for f in found where !expectedKeys.contains("\(f.part.rawValue)/\(f.name)") {
            problems.append(
                "unexpected tensor \(f.part.rawValue)/\(f.name): shape \(f.shape), not part of the model the config "
                    + "describes"
            )
        }
        return problems
    }
}
