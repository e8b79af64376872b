// Storage types of tensors in a bundle and their traits (the ggml-style traits table).

/// How one tensor's elements are stored. The raw string is the name written in bundle manifests.
public enum TensorType: String, Sendable, CaseIterable, Codable {
    /// IEEE binary32, little-endian.
    case f32
    /// IEEE binary16, little-endian (round to nearest even from f32).
    case f16
    /// Blocks of 32 along the row: fp16 scale d, 32 signed 8-bit codes. x = d * q.
    case q8_0
    /// Blocks of 32 along the row: fp16 scale d, fp16 minimum m, 32 unsigned 4-bit codes. x = d * q + m.
    case q4_1
    /// Super-blocks of 256 along the row: fp16 d and dmin, 8 six-bit sub-block scales and minimums,
    /// 256 unsigned 4-bit codes (4.5 bits per weight). x = d·sc·q − dmin·mn.
    case q4_k
    /// Blocks of 32: fp16 scale d, 32 five-bit codes q in -16...15 (5.5 bits per weight). x = d * q.
    case q5_0
    /// Blocks of 32: fp16 scale d, 32 six-bit codes q in -32...31 (6.5 bits per weight). x = d * q.
    case q6_0
    /// Signed 64-bit integers, little-endian (int64 buffers such as the BSQ basis).
    case i64

    /// Traits of the type: elements per block and bytes per block.
    public var traits: TensorTypeTraits {
        switch self {
        case .f32: return TensorTypeTraits(name: "f32", blockSize: 1, bytesPerBlock: 4, isQuantized: false)
        case .f16: return TensorTypeTraits(name: "f16", blockSize: 1, bytesPerBlock: 2, isQuantized: false)
        case .q8_0:
            return TensorTypeTraits(
                name: "q8_0", blockSize: BlockQ8_0.count, bytesPerBlock: BlockQ8_0.byteCount, isQuantized: true)
        case .q4_1:
            return TensorTypeTraits(
                name: "q4_1", blockSize: BlockQ4_1.count, bytesPerBlock: BlockQ4_1.byteCount, isQuantized: true)
        case .q4_k:
            return TensorTypeTraits(
                name: "q4_k", blockSize: BlockQ4_K.count, bytesPerBlock: BlockQ4_K.byteCount, isQuantized: true)
        case .q5_0:
            return TensorTypeTraits(
                name: "q5_0", blockSize: BlockQ5_0.count, bytesPerBlock: BlockQ5_0.byteCount, isQuantized: true)
        case .q6_0:
            return TensorTypeTraits(
                name: "q6_0", blockSize: BlockQ6_0.count, bytesPerBlock: BlockQ6_0.byteCount, isQuantized: true)
        case .i64: return TensorTypeTraits(name: "i64", blockSize: 1, bytesPerBlock: 8, isQuantized: false)
        }
    }

    /// Bits per weight including block headers (e.g. 8.5 for q8_0, 5.0 for q4_1).
    public var bitsPerWeight: Double {
        Double(traits.bytesPerBlock * 8) / Double(traits.blockSize)
    }

    /// Whether a row of `columns` elements can be stored in this type.
    public func canStore(rowLength columns: Int) -> Bool {
        columns % traits.blockSize == 0
    }

    /// Bytes of one stored row of `columns` elements, or nil when `columns` is not a whole number of
    /// blocks or the product overflows.
    public func rowBytes(columns: Int) -> Int? {
        guard columns >= 0, columns % traits.blockSize == 0 else { return nil }
        let (bytes, overflow) = (columns / traits.blockSize).multipliedReportingOverflow(by: traits.bytesPerBlock)
        return overflow ? nil : bytes
    }

    /// Bytes of a whole tensor of `shape` (rows are the last dimension), or nil on overflow / bad row.
    public func byteCount(shape: [Int]) -> Int? {
        guard let columns = shape.last else { return rowBytes(columns: 1) }  // scalar
        var rows = 1
        for dim in shape.dropLast() {
            guard dim >= 0 else { return nil }
            let (r, o) = rows.multipliedReportingOverflow(by: dim)
            if o { return nil }
            rows = r
        }
        guard let perRow = rowBytes(columns: columns) else { return nil }
        let (total, o) = rows.multipliedReportingOverflow(by: perRow)
        return o ? nil : total
    }
}

/// One row of the traits table.
public struct TensorTypeTraits: Sendable, Equatable {
    /// Name as written in manifests and printed by tools.
    public let name: String
    /// Elements per block (1 for plain types).
    public let blockSize: Int
    /// Bytes per block.
    public let bytesPerBlock: Int
    /// True for the block-quantized types.
    public let isQuantized: Bool
}

/// Overflow-checked product of dimensions; nil if any dimension is negative or the product overflows.
public func elementCount(_ shape: [Int]) -> Int? {
    var n = 1
    for d in shape {
        guard d >= 0 else { return nil }
        let (p, o) = n.multipliedReportingOverflow(by: d)
        if o { return nil }
        n = p
    }
    return n
}
