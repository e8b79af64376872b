// Safetensors reader: memory-mapped, every header field validated before use (the same rules as
// the reference loader: header ≤ 100 MB and inside the file, JSON object, `__metadata__` string
// map, offsets sorted, contiguous from 0, no overlap, sizes = elements × dtype size with overflow
// checks, buffer ends at end of file, no duplicate names).
import Foundation
import KronosBundle
import KronosQuant

/// Element types of safetensors files that Kronos checkpoints use.
public enum SafetensorsDType: String, Sendable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", i64 = "I64"
    /// Bytes (masks in reference fixtures); never accepted as a model weight.
    case u8 = "U8"
    public var size: Int {
        switch self {
        case .f32: 4;
        case .f16, .bf16: 2;
        case .i64: 8;
        case .u8: 1
        }
    }
    public var isFloat: Bool { self == .f32 || self == .f16 || self == .bf16 }
    /// Every dtype the safetensors format defines (to tell "unsupported" from "unknown").
    static let allKnown: [String: Int] = [
        "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
        "I32": 4, "U32": 4, "F32": 4, "F64": 8, "I64": 8, "U64": 8,
    ]
}

public enum CheckpointError: Error, LocalizedError, Sendable, Equatable {
    case io(file: String, message: String)
    /// The file breaks the safetensors format; message names the tensor / byte offset.
    case format(file: String, message: String)
    /// A pickle checkpoint.
    case pickle(file: String)
    case config(ConfigError)
    /// The checkpoints do not hold the tensors the configs describe.
    case layout(problems: [String])
    case nonFinite(file: String, tensor: String, index: Int, value: String)

    public var errorDescription: String? {
        switch self {
        case let .io(file, message): return "\(file): \(message)"
        case let .format(file, message): return "\(file): not a valid safetensors file: \(message)"
        case let .pickle(file):
            return
                "\(file): PyTorch pickle checkpoints are refused (loading a pickle can run arbitrary code). Convert it "
                + "to safetensors in Python first: `model = <Class>.from_pretrained(dir); "
                + "model.save_pretrained(dir, safe_serialization=True)` or "
                + "`safetensors.torch.save_file(torch.load(path, weights_only=True), \"model.safetensors\")`."
        case let .config(e): return e.errorDescription
        case let .layout(problems):
            return
                "checkpoint does not match its config (\(problems.count) problem\(problems.count == 1 ? "" : "s")):\n  "
                + BundleError.report(problems)
        case let .nonFinite(file, tensor, index, value):
            return "\(file): tensor \(tensor) holds \(value) at flat index \(index); weights must be finite"
        }
    }
}

/// One tensor inside a mapped safetensors file.
public struct SafetensorsTensor: @unchecked Sendable {
    public let name: String
    public let dtype: SafetensorsDType
    public let shape: [Int]
    /// The tensor's bytes inside the mapping.
    public let data: UnsafeRawBufferPointer
    /// Byte offset of the data in the file (for messages).
    public let fileOffset: Int
    public let file: String
    /// Keeps the mapping alive.
    let owner: MappedFile

    public var elementCount: Int { data.count / dtype.size }

    /// Converts to f32 exactly (F16 and BF16 are subsets of F32; I64 is converted by value).
    public func floats(into out: UnsafeMutablePointer<Float>) {
        let n = elementCount
        let b = data.baseAddress!
        switch dtype {
        case .f32:
            UnsafeMutableRawPointer(out).copyMemory(from: b, byteCount: n * 4)
        case .f16:
            for i in 0..<n { out[i] = loadF16(b, at: 2 * i) }
        case .bf16:
            for i in 0..<n {
                out[i] = floatFromBF16(UInt16(littleEndian: b.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case .i64:
            for i in 0..<n {
                out[i] = Float(Int64(littleEndian: b.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))
            }
        case .u8:
            for i in 0..<n { out[i] = Float(b.load(fromByteOffset: i, as: UInt8.self)) }
        }
    }

    public func floats() -> [Float] {
        [Float](unsafeUninitializedCapacity: elementCount) { buf, n in
            floats(into: buf.baseAddress!); n = elementCount
        }
    }

    /// Index of the first NaN or ±Inf, with its value, or nil.
    public func firstNonFinite() -> (index: Int, value: Float)? {
        let b = data.baseAddress!
        switch dtype {
        case .f32:
            // Exponent bits all ones <=> NaN or Inf.
            for i in 0..<elementCount {
                let bits = UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
                if bits & 0x7F80_0000 == 0x7F80_0000 { return (i, Float(bitPattern: bits)) }
            }
        case .f16:
            for i in 0..<elementCount {
                let bits = UInt16(littleEndian: b.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                if bits & 0x7C00 == 0x7C00 { return (i, floatFromF16(bits)) }
            }
        case .bf16:
            for i in 0..<elementCount {
                let bits = UInt16(littleEndian: b.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                if bits & 0x7F80 == 0x7F80 { return (i, floatFromBF16(bits)) }
            }
        case .i64, .u8:
            return nil
        }
        return nil
    }

    public func int64s() -> [Int64] {
        guard dtype == .i64 else { return [] }
        return (0..<elementCount).map {
            Int64(littleEndian: data.baseAddress!.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))
        }
    }
}

/// A parsed safetensors file.
public final class SafetensorsFile: @unchecked Sendable {
    public static let maxHeaderSize = 100_000_000
    public let path: String
    public let tensors: [SafetensorsTensor]
    public let metadata: [String: String]
    public let mapping: MappedFile

    public init(path: String) throws(CheckpointError) {
        self.path = path
        if path.hasSuffix(".bin") || path.hasSuffix(".pt") || path.hasSuffix(".pth") { throw .pickle(file: path) }
        do { mapping = try MappedFile(path: path) } catch {
            if case let .io(_, m) = error { throw .io(file: path, message: m) }
            throw .io(file: path, message: "\(error)")
        }
        (tensors, metadata) = try SafetensorsFile.parse(mapping, path: path)
    }

    public subscript(name: String) -> SafetensorsTensor? { tensors.first { $0.name == name } }

    static func parse(_ map: MappedFile, path: String) throws(CheckpointError) -> (
        [SafetensorsTensor], [String: String]
    ) {
        let b = map.bytes
        func bad(_ m: String) -> CheckpointError { .format(file: path, message: m) }
        guard b.count >= 8 else { throw bad("file is \(b.count) bytes, expected at least 8 (the header length)") }
        let n64 = UInt64(littleEndian: b.loadUnaligned(as: UInt64.self))
        // A header length that cannot be right, with a pickle signature (zip "PK\3\4", or protocol
        // 2-5 opcode 0x80 followed by a non-zero high byte), is a PyTorch pickle.
        if n64 > UInt64(maxHeaderSize) || n64 > UInt64(b.count - 8) {
            if b[0] == 0x50 && b[1] == 0x4B && b[2] == 0x03 && b[3] == 0x04 || b[0] == 0x80 && (2...5).contains(b[1]) {
                throw .pickle(file: path)
            }
        }
        guard n64 <= UInt64(maxHeaderSize) else {
            throw bad("header length \(n64) at byte 0 exceeds the 100 MB limit (\(maxHeaderSize))")
        }
        let n = Int(n64)
        guard n <= b.count - 8 else {
            throw bad("header length \(n) at byte 0 runs past the end of the \(b.count)-byte file (truncated?)")
        }
        guard n >= 2 else { throw bad("header length \(n) is too small for a JSON object") }
        let headerBytes = UnsafeRawBufferPointer(rebasing: b[8..<(8 + n)])
        guard headerBytes[0] == UInt8(ascii: "{") else {
            throw bad("header at byte 8 does not start with '{' (not a JSON object)")
        }
        let json: JSONValue
        do { json = try StrictJSON.parse(headerBytes) } catch {
            throw bad("header JSON: \(error.reason) at byte \(8 + error.offset)")
        }
        guard let entries = json.object else { throw bad("header is \(json.kindName), expected a JSON object") }
        let bufferStart = 8 + n
        let bufferSize = b.count - bufferStart
        var metadata = [String: String]()
        struct Info { let name: String; let dtype: SafetensorsDType; let shape: [Int]; let begin: Int; let end: Int }
        var infos = [Info]()
        for (name, value) in entries {
            if name == "__metadata__" {
                guard let m = value.object else {
                    throw bad("__metadata__ must be an object of strings, found \(value.kindName)")
                }
                for (k, v) in m {
                    guard let s = v.string else {
                        throw bad("__metadata__[\"\(k)\"] must be a string, found \(v.kindName)")
                    }
                    metadata[k] = s
                }
                continue
            }
            func badT(_ m: String) -> CheckpointError { bad("tensor \"\(name)\": \(m)") }
            guard value.object != nil else {
                throw badT("expected an object with dtype, shape, data_offsets, found \(value.kindName)")
            }
            guard let dt = value["dtype"]?.string else { throw badT("missing or non-string \"dtype\"") }
            guard let elementSize = SafetensorsDType.allKnown[dt] else { throw badT("unknown dtype \"\(dt)\"") }
            guard let dtype = SafetensorsDType(rawValue: dt) else {
                throw badT("dtype \(dt) is not supported (expected F32, F16, BF16, I64 or U8)")
            }
            _ = elementSize
            guard let shapeArr = value["shape"]?.array else { throw badT("missing or non-array \"shape\"") }
            var shape = [Int]()
            for d in shapeArr {
                guard let v = d.nonNegativeInt else {
                    throw badT("shape entries must be non-negative integers, found \(d)")
                }
                shape.append(v)
            }
            guard let offs = value["data_offsets"]?.array, offs.count == 2,
                let begin = offs[0].nonNegativeInt, let end = offs[1].nonNegativeInt
            else {
                throw badT("data_offsets must be [begin, end] non-negative integers")
            }
            guard end >= begin else { throw badT("data_offsets [\(begin), \(end)]: end before begin") }
            guard let count = elementCount(shape) else { throw badT("element count of shape \(shape) overflows") }
            let (bytes, o) = count.multipliedReportingOverflow(by: dtype.size)
            guard !o else { throw badT("byte size of shape \(shape) × \(dtype.size) overflows") }
            guard end - begin == bytes else {
                throw badT(
                    "data_offsets [\(begin), \(end)] span \(end - begin) bytes, expected \(bytes) (\(count) elements × "
                        + "\(dtype.size) bytes of \(dt))"
                )
            }
            infos.append(Info(name: name, dtype: dtype, shape: shape, begin: begin, end: end))
        }
        infos.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var expected = 0
        for info in infos {
            guard info.begin == expected else {
                if info.begin < expected {
                    throw bad(
                        "tensor \"\(info.name)\": data_offsets begin \(info.begin) overlaps the previous tensor, which "
                            + "ends at \(expected)"
                    )
                }
                throw bad(
                    "tensor \"\(info.name)\": data_offsets begin \(info.begin), expected \(expected) (tensors must be "
                        + "contiguous from 0, gap found)"
                )
            }
            expected = info.end
        }
        guard expected == bufferSize else {
            if expected > bufferSize {
                throw bad(
                    "tensor data ends at byte \(bufferStart + expected) but the file has \(b.count) bytes (truncated "
                        + "by \(expected - bufferSize) bytes)"
                )
            }
            throw bad(
                "tensor data ends at byte \(bufferStart + expected) but the file has \(b.count) bytes "
                    + "(\(bufferSize - expected) trailing bytes)"
            )
        }
        let tensors = infos.map {
            SafetensorsTensor(
                name: $0.name, dtype: $0.dtype, shape: $0.shape,
                data: UnsafeRawBufferPointer(rebasing: b[(bufferStart + $0.begin)..<(bufferStart + $0.end)]),
                fileOffset: bufferStart + $0.begin, file: path, owner: map)
        }
        return (tensors, metadata)
    }
}
