// The importance matrix: for every matmul weight, the second moments of the activation rows it
// multiplies, H = E[x xᵀ] [in, in], collected by running the f32 model over calibration windows
// (KronosCalibrate). Its diagonal is the per-column importance of llama.cpp's imatrix; the whole
// matrix drives error-compensating quantization (KronosQuant/Compensated.swift), which quantizes a
// row's columns in order and spreads each one's rounding error over the columns not yet quantized,
// along H, so that the row's outputs Σ w x stay close on the inputs the model sees.
//
// File (--imatrix-out / --imatrix): a safetensors file, one F32 [in, in] tensor per distinct input
// (weights fed the same rows, q/k/v of a block, w1/w3, the dependency layer's k/v, share one), and
// in `__metadata__`: "format" "kronos-imatrix", "version" "1", "calibration" (the manifest's
// CalibrationRecord as JSON), "rows" ({input: activation rows}) and "inputs" ({weight: input}).
import Foundation
import KronosBundle
import KronosCheckpoint

public struct ImportanceMatrix: Sendable, Equatable {
    /// E[x xᵀ] [n, n] (row-major) by input key.
    public var moments: [String: [Float]]
    /// Activation rows behind each input key's moments.
    public var rows: [String: Int]
    /// The input key of every covered weight "part/name" (e.g.
    /// "predictor/transformer.0.self_attn.k_proj.weight" -> "...q_proj.weight").
    public var inputs: [String: String]
    /// What was run to collect it.
    public var calibration: CalibrationRecord

    public init(
        moments: [String: [Float]], rows: [String: Int], inputs: [String: String], calibration: CalibrationRecord
    ) {
        self.moments = moments; self.rows = rows; self.inputs = inputs; self.calibration = calibration
    }

    /// The weight whose input rows stand for `weight`'s: the engine feeds q/k/v of a block the same
    /// normed rows, w1 and w3 the same, and the dependency layer's k and v the same context rows.
    public static func inputKey(_ weight: String) -> String {
        for (suffix, leader) in [
            ("self_attn.k_proj.weight", "self_attn.q_proj.weight"),
            ("self_attn.v_proj.weight", "self_attn.q_proj.weight"),
            ("ffn.w3.weight", "ffn.w1.weight"),
            ("dep_layer.cross_attn.v_proj.weight", "dep_layer.cross_attn.k_proj.weight"),
        ] where weight.hasSuffix(suffix) {
            return String(weight.dropLast(suffix.count)) + leader
        }
        return weight
    }

    /// The file's `__metadata__` "format" value.
    public static let formatName = "kronos-imatrix"
    public static let version = 1

    /// The file's bytes (this file's header).
    public func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        func json<T: Encodable>(_ v: T) -> String {
            (try? encoder.encode(v)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        }
        return SafetensorsWriter.encode(
            moments.keys.sorted().map { key in
                let v = moments[key]!, n = Int(Double(v.count).squareRoot())
                return (name: key, shape: [n, n], payload: .f32(v))
            },
            metadata: [
                "format": Self.formatName, "version": String(Self.version), "calibration": json(calibration),
                "rows": json(rows), "inputs": json(inputs),
            ])
    }

    /// Reads and checks an importance matrix file written by `encoded()`.
    public static func load(path: String) throws(ConversionError) -> ImportanceMatrix {
        func fail(_ m: String) -> ConversionError { .badOption("--imatrix \(path): \(m)") }
        let file: SafetensorsFile
        do { file = try SafetensorsFile(path: path) } catch { throw fail(error.errorDescription ?? "\(error)") }
        guard file.metadata["format"] == formatName else {
            throw fail(
                "not an importance matrix: expected __metadata__ format \"\(formatName)\", found "
                    + (file.metadata["format"].map { "\"\($0)\"" } ?? "none"))
        }
        guard file.metadata["version"] == String(version) else {
            throw fail("expected version \(version), found \(file.metadata["version"] ?? "none")")
        }
        let decoder = JSONDecoder()
        func field<T: Decodable>(_ key: String, _ type: T.Type, _ what: String) throws(ConversionError) -> T {
            guard let text = file.metadata[key], let v = try? decoder.decode(T.self, from: Data(text.utf8)) else {
                throw fail("__metadata__ \(key) is missing or not \(what)")
            }
            return v
        }
        let record = try field("calibration", CalibrationRecord.self, "a calibration record")
        let counts = try field("rows", [String: Int].self, "an object of row counts")
        let inputs = try field("inputs", [String: String].self, "an object of input keys")
        var moments = [String: [Float]]()
        for t in file.tensors {
            guard t.dtype == .f32, t.shape.count == 2, t.shape[0] == t.shape[1], t.shape[0] >= 1 else {
                throw fail("tensor \(t.name): expected a square F32 matrix, found \(t.dtype.rawValue) \(t.shape)")
            }
            let v = t.floats(), n = t.shape[0]
            if let i = v.firstIndex(where: { !$0.isFinite }) {
                throw fail("tensor \(t.name): element [\(i / n), \(i % n)] is \(v[i]), expected a finite number")
            }
            if let i = (0..<n).first(where: { v[$0 * n + $0] < 0 }) {
                throw fail("tensor \(t.name): diagonal element \(i) is \(v[i * n + i]), expected a mean square ≥ 0")
            }
            guard (counts[t.name] ?? 0) >= 1 else { throw fail("tensor \(t.name): no row count in __metadata__ rows") }
            moments[t.name] = v
        }
        guard !moments.isEmpty else { throw fail("no tensors") }
        for (weight, key) in inputs.sorted(by: { $0.key < $1.key }) where moments[key] == nil {
            throw fail("weight \(weight): its input \(key) has no tensor")
        }
        var m = ImportanceMatrix(
            moments: moments, rows: counts.filter { moments[$0.key] != nil }, inputs: inputs, calibration: record)
        m.calibration.imatrixSHA256 = CheckpointDirectory.sha256(file.mapping.bytes)  // the bytes parsed above
        return m
    }

    /// Checks that every covered weight is a matmul weight of `layout` whose rows are as long as its
    /// input's moments: an importance matrix of another model is refused, naming the first weight
    /// that does not fit.
    public func check(against layout: [ExpectedTensor], file: String) throws(ConversionError) {
        let weights = Dictionary(
            layout.filter { $0.role == .linearWeight }.map { ("\($0.part.rawValue)/\($0.name)", $0.shape) },
            uniquingKeysWith: { a, _ in a })
        for (name, key) in inputs.sorted(by: { $0.key < $1.key }) {
            guard let shape = weights[name] else {
                throw .badOption(
                    "\(file): tensor \(name) is not a matmul weight of this model (an importance matrix of another "
                        + "model?)")
            }
            let n = Int(Double(moments[key]?.count ?? 0).squareRoot())
            guard shape.last == n else {
                throw .badOption(
                    "\(file): tensor \(name) has \(n) input columns, the model's weight has \(shape.last ?? 0) (an "
                        + "importance matrix of another model?)")
            }
        }
    }

    /// E[x xᵀ] [n, n] of `weight`'s input rows, or nil when the matrix does not cover it.
    public func secondMoments(_ weight: String) -> [Float]? {
        inputs[weight].flatMap { moments[$0] }
    }

    /// The mean square of each input column of `weight` (the diagonal of its second moments), plus a
    /// floor of 1e-6 of their mean so that no column is free; nil when not covered.
    public func columnImportance(_ weight: String) -> [Float]? {
        guard let h = secondMoments(weight) else { return nil }
        let n = Int(Double(h.count).squareRoot())
        let diagonal = (0..<n).map { h[$0 * n + $0] }
        let floor = max(diagonal.reduce(0, +) / Float(n) * 1e-6, Float.leastNormalMagnitude)
        return diagonal.map { $0 + floor }
    }
}
