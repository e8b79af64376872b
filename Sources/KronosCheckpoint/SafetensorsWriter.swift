// Writes safetensors files (used for golden cases and crafted test inputs).
import Foundation
import KronosBundle

public enum SafetensorsWriter {
    public enum Payload: Sendable {
        case f32([Float])
        case i64([Int64])
        /// Raw bytes with an explicit dtype name (F16, BF16, U8, ...).
        case raw(dtype: String, bytes: [UInt8])

        var dtype: String {
            switch self {
            case .f32: "F32";
            case .i64: "I64";
            case let .raw(d, _): d
            }
        }
        var bytes: [UInt8] {
            switch self {
            case let .f32(v): return v.withUnsafeBytes { Array($0) }
            case let .i64(v): return v.withUnsafeBytes { Array($0) }
            case let .raw(_, b): return b
            }
        }
    }

    /// Serializes tensors (in the given order) with an 8-byte aligned header.
    public static func encode(
        _ tensors: [(name: String, shape: [Int], payload: Payload)], metadata: [String: String] = [:]
    ) -> [UInt8] {
        var entries = [String]()
        var offset = 0
        var data = [UInt8]()
        func quote(_ s: String) -> String {
            let e = JSONEncoder()
            return String(decoding: (try? e.encode(s)) ?? Data("\"\"".utf8), as: UTF8.self)
        }
        if !metadata.isEmpty {
            let m = metadata.sorted { $0.key < $1.key }.map { "\(quote($0.key)):\(quote($0.value))" }.joined(
                separator: ",")
            entries.append("\"__metadata__\":{\(m)}")
        }
        for t in tensors {
            let b = t.payload.bytes
            entries.append(
                "\(quote(t.name)):{\"dtype\":\"\(t.payload.dtype)\","
                    + "\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],"
                    + "\"data_offsets\":[\(offset),\(offset + b.count)]}"
            )
            offset += b.count
            data += b
        }
        var header = Array("{\(entries.joined(separator: ","))}".utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        var out = withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) }
        out += header
        out += data
        return out
    }
}
