// The model's weights, as loaded from a bundle. Quantized tensors stay quantized; vectors are f32.
import Foundation
import KronosBundle
import KronosQuant
import KronosWideAVX2

/// A linear layer: y = W x + b.
struct Linear: @unchecked Sendable {
    let weight: WeightMatrix  // [out, in]
    let bias: [Float]?  // [out]
    let name: String  // the weight's "part/name", as the workspace's observer sees it
    var outputs: Int { weight.rows }
    var inputs: Int { weight.columns }

    // X [rows, in] -> Y [rows, out]
    func callAsFunction(
        _ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, _ workspace: Workspace
    ) {
        if let observer = workspace.observer {
            // (the Gram runs on this pass's workspace: an observer calls it during the pass, or later
            // while no pass of the model runs, ActivationObserver)
            let columns = inputs
            observer.observe(name, x, rows: rows, columns: columns) { [workspace] y, n, g, accumulate in
                gramMatrix(y, rows: n, columns: columns, into: g, accumulate: accumulate, workspace: workspace)
            }
        }
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
    private(set) var tensors: [String: TensorData]
    let path: String
    /// Rotary tables by inv_freq: blocks whose inv_freq buffers are equal (all of a released model's)
    /// share one table (Kronos-base: 12 tables of 213 KB each would be the same numbers).
    private var rotaryTables = [[UInt32]: RotaryTable]()  // keyed by inv_freq's bits
    /// The q8_0 expansions of q5_0 / q6_0 matrices, by "part/name" (alive as long as the store); the
    /// stored blocks they came from are dropped once expanded (they stayed beside the expansion:
    /// Kronos-small q4 57.5 -> 65.1 MiB peak RSS).
    private var expanded = [String: (buffer: AlignedBuffer, matrix: WeightMatrix)]()
    init(tensors: [String: TensorData], path: String) { self.tensors = tensors; self.path = path }

    func data(_ part: ModelPart, _ name: String) throws(RuntimeError) -> TensorData {
        guard let t = tensors["\(part.rawValue)/\(name)"] else {
            throw .model("\(path): tensor \(part.rawValue)/\(name) missing")
        }
        return t
    }

    func matrix(_ part: ModelPart, _ name: String) throws(RuntimeError) -> WeightMatrix {
        let key = "\(part.rawValue)/\(name)"
        if let known = expanded[key] { return known.matrix }
        let t = try data(part, name)
        guard t.record.shape.count == 2, t.record.type != .i64 else {
            throw .model(
                "\(path): tensor \(part.rawValue)/\(name) must be a float matrix, found \(t.record.type.rawValue) "
                    + "\(t.record.shape)"
            )
        }
        let (type, rows, columns) = (t.record.type, t.record.shape[0], t.record.shape[1])
        guard type.runType != type else {
            return WeightMatrix(type: type, rows: rows, columns: columns, data: t.raw)
        }
        // q5_0 / q6_0 run as the q8_0 blocks they expand into, exactly (KronosQuant/BlockQ6_0.swift).
        let run = type.runType
        let runRowBytes = run.rowBytes(columns: columns)!
        let buffer = AlignedBuffer(byteCount: rows * runRowBytes)
        for r in 0..<rows {
            type.expandRow(t.raw + r * t.rowBytes, columns: columns, into: buffer.bytes.baseAddress! + r * runRowBytes)
        }
        let matrix = WeightMatrix(
            type: run, rows: rows, columns: columns, data: UnsafeRawPointer(buffer.bytes.baseAddress!))
        expanded[key] = (buffer, matrix)
        tensors[key] = nil  // nothing else reads the stored blocks
        return matrix
    }

    func vector(_ part: ModelPart, _ name: String) throws(RuntimeError) -> [Float] {
        try data(part, name).floats()
    }

    func linear(_ part: ModelPart, _ name: String, bias: Bool = true) throws(RuntimeError) -> Linear {
        Linear(
            weight: try matrix(part, name + ".weight"), bias: bias ? try vector(part, name + ".bias") : nil,
            name: "\(part.rawValue)/\(name).weight")
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

/// X [rows, columns] -> XᵀX [columns, columns] into g (g[i, j] for j ≥ i is always written; below it,
/// what the caller does not read), or with `accumulate` added to g's upper triangle (where the packed
/// GEMM runs, bit for bit what one Gram of all the rows would give) (calibration,
/// ActivationObserver): by the packed GEMM where it runs
/// (Xᵀ read in place as both operands, only the tiles on and above the diagonal), else through the
/// f32 matmul: Xᵀ is a [columns, rows] weight matrix multiplying its own rows, by blocks of `gramBlock`
/// columns, only the blocks on and above the diagonal.
package func gramMatrix(
    _ x: UnsafePointer<Float>, rows: Int, columns n: Int, into g: UnsafeMutablePointer<Float>, accumulate: Bool = false,
    workspace: Workspace
) {
    if Kernels.packedGemm {
        let xt = AVX2.GemmOperand(base: x, rowStride: 1, depthStride: n)  // (i, p) = x[p, i]
        packedGemm(
            rows: n, columns: n, depth: rows, a: xt, b: xt, bias: nil, c: g, ldc: n, upper: true,
            accumulate: accumulate, workspace: workspace)
        return
    }
    let threads = workspace.workers
    let gramBlock = 128
    let t = UnsafeMutablePointer<Float>.allocate(capacity: rows * n)
    let y = UnsafeMutablePointer<Float>.allocate(capacity: gramBlock * n)
    defer { t.deallocate(); y.deallocate() }
    // Xᵀ by 16 x 16 tiles (one side of a plain transpose is strided)
    for r0 in stride(from: 0, to: rows, by: 16) {
        for c0 in stride(from: 0, to: n, by: 16) {
            for r in r0..<min(rows, r0 + 16) { for c in c0..<min(n, c0 + 16) { t[c * rows + r] = x[r * n + c] } }
        }
    }
    let workspace = Workspace(columns: rows, positions: 0, threads: threads)
    for i0 in stride(from: 0, to: n, by: gramBlock) {
        let bi = min(gramBlock, n - i0)
        // columns i0 ..< i0 + bi against columns i0 ..< n: y [bi, n - i0]
        let w = WeightMatrix(type: .f32, rows: n - i0, columns: rows, data: UnsafeRawPointer(t + i0 * rows))
        matmul(w, bias: nil, t + i0 * rows, rows: bi, y, workspace: workspace)
        for i in 0..<bi {
            let row = g + (i0 + i) * n + i0, yi = y + i * (n - i0)
            if accumulate {
                for j in 0..<(n - i0) { row[j] += yi[j] }
            } else {
                row.update(from: yi, count: n - i0)
            }
        }
    }
}
