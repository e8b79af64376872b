// The codecs a conversion runs, in the build this processor runs: KronosWideQuant (the sources of
// KronosQuant compiled for x86-64-v3: AVX2, FMA, F16C) where cpuid reports those, else KronosQuant
// (no CPU flags). The same source gives the same bytes in both builds (no fused operations in the
// encoders, f16 rounding to nearest even in both; tools/check-old-cpu.sh compares the bundles written
// on a processor without AVX with this machine's). Without it a q4 conversion of Kronos-base shapes
// took 1.16x the time (the q4_1 / q4_k scale searches vectorize 4 wide instead of 8).
import CKronosHints
import Foundation
import KronosQuant
import KronosWideQuant

enum Codecs {
    /// Whether this processor runs KronosWideQuant (KRONOS_KERNELS=portable: never).
    static let wide: Bool = {
        #if arch(x86_64)
            return kronos_cpu_has_x86_64_v3() != 0
                && ProcessInfo.processInfo.environment["KRONOS_KERNELS"] != "portable"
        #else
            return false
        #endif
    }()

    /// KronosQuant.TensorType.encodeRow in the build this processor runs.
    static func encodeRow(
        _ type: KronosQuant.TensorType, _ src: UnsafePointer<Float>, columns: Int, into dst: UnsafeMutableRawPointer,
        q4SearchSteps: Int, weights: UnsafePointer<Float>? = nil
    ) throws(KronosQuant.QuantError) {
        guard wide, let t = KronosWideQuant.TensorType(rawValue: type.rawValue) else {
            return try type.encodeRow(src, columns: columns, into: dst, q4SearchSteps: q4SearchSteps, weights: weights)
        }
        do { try t.encodeRow(src, columns: columns, into: dst, q4SearchSteps: q4SearchSteps, weights: weights) } catch {
            switch error {
            case let .rowNotBlockAligned(columns, blockSize):
                throw .rowNotBlockAligned(columns: columns, blockSize: blockSize)
            case let .unrepresentable(block): throw .unrepresentable(block: block)
            case .notFloatType: throw .notFloatType(type)
            }
        }
    }

    /// KronosQuant.TensorType.decodeRow in the build this processor runs.
    static func decodeRow(
        _ type: KronosQuant.TensorType, _ src: UnsafeRawPointer, columns: Int, into out: UnsafeMutablePointer<Float>
    ) {
        guard wide, let t = KronosWideQuant.TensorType(rawValue: type.rawValue) else {
            return type.decodeRow(src, columns: columns, into: out)
        }
        t.decodeRow(src, columns: columns, into: out)
    }

    /// KronosQuant.QuantErrorStats.measure in the build this processor runs.
    static func measure(source: UnsafePointer<Float>, decoded: UnsafePointer<Float>, count: Int)
        -> KronosQuant.QuantErrorStats
    {
        guard wide else { return KronosQuant.QuantErrorStats.measure(source: source, decoded: decoded, count: count) }
        let s = KronosWideQuant.QuantErrorStats.measure(source: source, decoded: decoded, count: count)
        return KronosQuant.QuantErrorStats(rmse: s.rmse, maxAbs: s.maxAbs, sourceRMS: s.sourceRMS)
    }

    /// KronosQuant.TensorType.compensationFactor in the build this processor runs.
    static func compensationFactor(_ h: UnsafePointer<Float>, n: Int) -> [Float]? {
        wide
            ? KronosWideQuant.TensorType.compensationFactor(h, n: n)
            : KronosQuant.TensorType.compensationFactor(h, n: n)
    }

    /// KronosQuant.TensorType.encodeCompensated in the build this processor runs.
    static func encodeCompensated(
        _ type: KronosQuant.TensorType, _ w: UnsafeMutablePointer<Float>, rows: Int, columns: Int,
        factor: UnsafePointer<Float>, importance: UnsafePointer<Float>, into dst: UnsafeMutableRawPointer
    ) throws(KronosQuant.QuantError) {
        guard wide, let t = KronosWideQuant.TensorType(rawValue: type.rawValue) else {
            return try type.encodeCompensated(
                w, rows: rows, columns: columns, factor: factor, importance: importance, into: dst)
        }
        do {
            try t.encodeCompensated(w, rows: rows, columns: columns, factor: factor, importance: importance, into: dst)
        } catch {
            switch error {
            case let .rowNotBlockAligned(columns, blockSize):
                throw .rowNotBlockAligned(columns: columns, blockSize: blockSize)
            case let .unrepresentable(block): throw .unrepresentable(block: block)
            case .notFloatType: throw .notFloatType(type)
            }
        }
    }
}
