// The model's weights, as loaded from a bundle. Quantized tensors stay quantized; vectors are f32.
import Foundation
import KronosBundle
import KronosQuant

/// A linear layer: y = W x + b.
struct Linear: @unchecked Sendable {
    let weight: WeightMatrix  // [out, in]
    let bias: [Float]?  // [out]
    var outputs: Int { weight.rows }
    var inputs: Int { weight.columns }

    // X [rows, in] -> Y [rows, out]
    func callAsFunction(
        _ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, _ workspace: Workspace
    ) {
        if let bias {
            bias.withUnsafeBufferPointer {
                matmul(weight, bias: $0.baseAddress!, x, rows: rows, y, workspace: workspace)
            }
        } else {
            matmul(weight, bias: nil, x, rows: rows, y, workspace: workspace)
        }
    }
}

/// One pre-norm transformer block (ARCHITECTURE.md §2).
struct Block: @unchecked Sendable {
    let norm1: [Float]  // [D]
    let q, k, v, out: Linear  // [D, D] + [D]
    let rotary: RotaryTable  // inv_freq [hd/2], cos/sin per position
    let norm2: [Float]  // [D]
    let w1: Linear  // [F, D]
    let w3: Linear  // [F, D]
    let w2: Linear  // [D, F]
    let heads: Int
}

/// Tensors of one bundle by part and name, with typed accessors.
final class TensorStore: @unchecked Sendable {
    let tensors: [String: TensorData]
    let path: String
    /// Rotary tables by inv_freq: blocks whose inv_freq buffers are equal (all of a released model's)
    /// share one table (Kronos-base: 12 tables of 213 KB each would be the same numbers).
    private var rotaryTables = [[UInt32]: RotaryTable]()  // keyed by inv_freq's bits
    init(tensors: [String: TensorData], path: String) { self.tensors = tensors; self.path = path }

    func data(_ part: ModelPart, _ name: String) throws(RuntimeError) -> TensorData {
        guard let t = tensors["\(part.rawValue)/\(name)"] else {
            throw .model("\(path): tensor \(part.rawValue)/\(name) missing")
        }
        return t
    }

    func matrix(_ part: ModelPart, _ name: String) throws(RuntimeError) -> WeightMatrix {
        let t = try data(part, name)
        guard t.record.shape.count == 2, t.record.type != .i64 else {
            throw .model(
                "\(path): tensor \(part.rawValue)/\(name) must be a float matrix, found \(t.record.type.rawValue) "
                    + "\(t.record.shape)"
            )
        }
        return WeightMatrix(type: t.record.type, rows: t.record.shape[0], columns: t.record.shape[1], data: t.raw)
    }

    func vector(_ part: ModelPart, _ name: String) throws(RuntimeError) -> [Float] {
        try data(part, name).floats()
    }

    func linear(_ part: ModelPart, _ name: String, bias: Bool = true) throws(RuntimeError) -> Linear {
        Linear(weight: try matrix(part, name + ".weight"), bias: bias ? try vector(part, name + ".bias") : nil)
    }

    func rotaryTable(invFreq: [Float], positions: Int) -> RotaryTable {
        let key = invFreq.map(\.bitPattern)
        if let t = rotaryTables[key], t.positions >= positions { return t }
        let t = RotaryTable(invFreq: invFreq, positions: positions)
        rotaryTables[key] = t
        return t
    }

    func block(_ part: ModelPart, _ prefix: String, heads: Int, positions: Int) throws(RuntimeError) -> Block {
        Block(
            norm1: try vector(part, prefix + ".norm1.weight"),
            q: try linear(part, prefix + ".self_attn.q_proj"), k: try linear(part, prefix + ".self_attn.k_proj"),
            v: try linear(part, prefix + ".self_attn.v_proj"), out: try linear(part, prefix + ".self_attn.out_proj"),
            rotary: rotaryTable(invFreq: try vector(part, prefix + ".self_attn.rotary.inv_freq"), positions: positions),
            norm2: try vector(part, prefix + ".norm2.weight"),
            w1: try linear(part, prefix + ".ffn.w1", bias: false),
            w3: try linear(part, prefix + ".ffn.w3", bias: false),
            w2: try linear(part, prefix + ".ffn.w2", bias: false), heads: heads)
    }
}
