// Row-level quantize / dequantize / dot over any TensorType (reference paths).

public enum QuantError: Error, Equatable {
    /// The row length is not a whole number of blocks of the type.
    case rowNotBlockAligned(columns: Int, blockSize: Int)
    /// A block's range cannot be represented by the type's f16 scale (block index in the row), or
    /// (f16) a value lies beyond the f16 range (value index in the row).
    case unrepresentable(block: Int)
    /// The type cannot hold floating-point data (i64).
    case notFloatType(TensorType)
}

extension TensorType {
    /// Quantizes (or converts) one row of `columns` floats into `dst` (rowBytes(columns:) bytes).
    public func encodeRow(
        _ src: UnsafePointer<Float>, columns: Int, into dst: UnsafeMutableRawPointer,
        q4SearchSteps: Int = BlockQ4_1.defaultSearchSteps, weights: UnsafePointer<Float>? = nil
    ) throws(QuantError) {
        // weights [columns]: the importance of each element (Weighted.swift); the plain types ignore them.
        switch self {
        case .f32:
            dst.copyMemory(from: src, byteCount: columns * 4)
        case .f16:
            let out = dst.assumingMemoryBound(to: UInt16.self)
            for i in 0..<columns {
                // A finite value beyond ±65504 would become ±Inf: refused (the converter keeps the
                // tensor in f32 with a note), as q8 / q4 refuse a block their f16 scale cannot hold.
                guard abs(src[i]) <= 65504 || !src[i].isFinite else { throw .unrepresentable(block: i) }
                out[i] = f16Bits(src[i]).littleEndian
            }
        case .q8_0:
            guard columns % BlockQ8_0.count == 0 else { throw .rowNotBlockAligned(columns: columns, blockSize: 32) }
            for b in 0..<(columns / BlockQ8_0.count) {
                let x = src + b * BlockQ8_0.count, out = dst + b * BlockQ8_0.byteCount
                let ok =
                    if let weights { BlockQ8_0.quantize(x, weights: weights + b * BlockQ8_0.count, into: out) } else {
                        BlockQ8_0.quantize(x, into: out)
                    }
                guard ok else { throw .unrepresentable(block: b) }
            }
        case .q4_1:
            guard columns % BlockQ4_1.count == 0 else { throw .rowNotBlockAligned(columns: columns, blockSize: 32) }
            for b in 0..<(columns / BlockQ4_1.count) {
                let x = src + b * BlockQ4_1.count, out = dst + b * BlockQ4_1.byteCount
                let ok =
                    if let weights { BlockQ4_1.quantize(x, weights: weights + b * BlockQ4_1.count, into: out) } else {
                        BlockQ4_1.quantize(x, into: out, searchSteps: q4SearchSteps)
                    }
                guard ok else { throw .unrepresentable(block: b) }
            }
        case .q4_k:
            guard columns % BlockQ4_K.count == 0 else {
                throw .rowNotBlockAligned(columns: columns, blockSize: BlockQ4_K.count)
            }
            for b in 0..<(columns / BlockQ4_K.count) {
                let x = src + b * BlockQ4_K.count, out = dst + b * BlockQ4_K.byteCount
                let ok =
                    if let weights { BlockQ4_K.quantize(x, weights: weights + b * BlockQ4_K.count, into: out) } else {
                        BlockQ4_K.quantize(x, into: out, searchSteps: q4SearchSteps)
                    }
                guard ok else { throw .unrepresentable(block: b) }
            }
        case .q5_0: try encodeNarrow(BlockQ5_0.self, src, columns: columns, into: dst, weights: weights)
        case .q6_0: try encodeNarrow(BlockQ6_0.self, src, columns: columns, into: dst, weights: weights)
        case .i64:
            throw .notFloatType(self)
        }
    }

    /// Dequantizes one stored row into `columns` floats (reference path). i64 is not a float type.
    public func decodeRow(_ src: UnsafeRawPointer, columns: Int, into dst: UnsafeMutablePointer<Float>) {
        switch self {
        case .f32:
            UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: columns * 4)
        case .f16:
            for i in 0..<columns {
                dst[i] = loadF16(src, at: 2 * i)
            }
        case .q8_0:
            for b in 0..<(columns / BlockQ8_0.count) {
                BlockQ8_0.dequantize(src + b * BlockQ8_0.byteCount, into: dst + b * BlockQ8_0.count)
            }
        case .q4_1:
            for b in 0..<(columns / BlockQ4_1.count) {
                BlockQ4_1.dequantize(src + b * BlockQ4_1.byteCount, into: dst + b * BlockQ4_1.count)
            }
        case .q4_k:
            for b in 0..<(columns / BlockQ4_K.count) {
                BlockQ4_K.dequantize(src + b * BlockQ4_K.byteCount, into: dst + b * BlockQ4_K.count)
            }
        case .q5_0:
            for b in 0..<(columns / 32) { BlockQ5_0.dequantize(src + b * BlockQ5_0.byteCount, into: dst + b * 32) }
        case .q6_0:
            for b in 0..<(columns / 32) { BlockQ6_0.dequantize(src + b * BlockQ6_0.byteCount, into: dst + b * 32) }
        case .i64:
            for i in 0..<columns {
                dst[i] = Float(Int64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))
            }
        }
    }

    /// Reference dot product of one stored row with x [columns].
    public func dotRow(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, columns: Int) -> Float {
        var s: Float = 0
        switch self {
        case .f32:
            let w = row.assumingMemoryBound(to: Float.self)
            for i in 0..<columns { s += w[i] * x[i] }
        case .f16:
            for i in 0..<columns {
                s += loadF16(row, at: 2 * i) * x[i]
            }
        case .q8_0:
            for b in 0..<(columns / BlockQ8_0.count) {
                s += BlockQ8_0.dot(row + b * BlockQ8_0.byteCount, x + b * BlockQ8_0.count)
            }
        case .q4_1:
            for b in 0..<(columns / BlockQ4_1.count) {
                s += BlockQ4_1.dot(row + b * BlockQ4_1.byteCount, x + b * BlockQ4_1.count)
            }
        case .q4_k:
            for b in 0..<(columns / BlockQ4_K.count) {
                s += BlockQ4_K.dot(row + b * BlockQ4_K.byteCount, x + b * BlockQ4_K.count)
            }
        case .q5_0:
            for b in 0..<(columns / 32) { s += BlockQ5_0.dot(row + b * BlockQ5_0.byteCount, x + b * 32) }
        case .q6_0:
            for b in 0..<(columns / 32) { s += BlockQ6_0.dot(row + b * BlockQ6_0.byteCount, x + b * 32) }
        case .i64:
            for i in 0..<columns {
                s += Float(Int64(littleEndian: row.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))) * x[i]
            }
        }
        return s
    }
}

/// Round-trip error of a tensor: root-mean-square and maximum absolute error, and the RMS of the
/// source (so relative RMSE = rmse / rms).
public struct QuantErrorStats: Sendable, Equatable, Codable {
    public var rmse: Double
    public var maxAbs: Double
    public var sourceRMS: Double
    public var relativeRMSE: Double { sourceRMS > 0 ? rmse / sourceRMS : 0 }

    public init(rmse: Double, maxAbs: Double, sourceRMS: Double) {
        self.rmse = rmse; self.maxAbs = maxAbs; self.sourceRMS = sourceRMS
    }

    /// Compares `count` source values with their decoded values.
    public static func measure(source: UnsafePointer<Float>, decoded: UnsafePointer<Float>, count: Int)
        -> QuantErrorStats
    {
        var se = 0.0, ss = 0.0, mx = 0.0
        for i in 0..<count {
            let e = Double(source[i]) - Double(decoded[i])
            se += e * e; ss += Double(source[i]) * Double(source[i]); mx = max(mx, abs(e))
        }
        let n = Double(max(count, 1))
        return QuantErrorStats(rmse: (se / n).squareRoot(), maxAbs: mx, sourceRMS: (ss / n).squareRoot())
    }
}

extension TensorType {
    /// Encodes a row of q5_0 / q6_0 blocks.
    private func encodeNarrow<B: SymmetricNarrowBlock>(
        _ block: B.Type, _ src: UnsafePointer<Float>, columns: Int, into dst: UnsafeMutableRawPointer,
        weights: UnsafePointer<Float>?
    ) throws(QuantError) {
        guard columns % 32 == 0 else { throw .rowNotBlockAligned(columns: columns, blockSize: 32) }
        for b in 0..<(columns / 32) {
            guard B.quantize(src + b * 32, weights: weights.map { $0 + b * 32 }, into: dst + b * B.byteCount) else {
                throw .unrepresentable(block: b)
            }
        }
    }

    /// The type a reader runs a tensor of this type as: q5_0 and q6_0 expand exactly into q8_0
    /// (`expandRow`); every other type runs as stored.
    public var runType: TensorType {
        switch self {
        case .q5_0, .q6_0: .q8_0
        default: self
        }
    }

    /// One stored q5_0 / q6_0 row -> the same values as a q8_0 row (`runType`); other types copy.
    public func expandRow(_ src: UnsafeRawPointer, columns: Int, into dst: UnsafeMutableRawPointer) {
        switch self {
        case .q5_0:
            for b in 0..<(columns / 32) {
                BlockQ5_0.expand(src + b * BlockQ5_0.byteCount, into: dst + b * BlockQ8_0.byteCount)
            }
        case .q6_0:
            for b in 0..<(columns / 32) {
                BlockQ6_0.expand(src + b * BlockQ6_0.byteCount, into: dst + b * BlockQ8_0.byteCount)
            }
        default:
            dst.copyMemory(from: src, byteCount: rowBytes(columns: columns) ?? 0)
        }
    }
}
