// Timing of the runtime's matmul kernels on model-shaped matrices (used by kronos-bench).
import Foundation
import KronosQuant

public struct KernelTiming: Sendable, Codable {
    public var type: String
    public var rows: Int        // input rows (1 = decode step, > 1 = prefill / batch)
    public var out: Int         // weight rows
    public var inner: Int       // weight columns
    public var seconds: Double  // per call (best of the repetitions)
    public var gflops: Double   // 2 · rows · out · inner / seconds
    public var weightGBps: Double  // stored weight bytes read per second
}

public enum KernelBenchmark {
    /// Times Y [rows, out] = X [rows, inner] @ W^T for W stored as `type` (random normal weights).
    public static func matmul(type: TensorType, out: Int, inner: Int, rows: Int, minSeconds: Double = 0.3) -> KernelTiming {
        var state: UInt64 = 0x1234_5678
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2_000_001 - 1_000_000) / 1e7
        }
        let rowBytes = type.rowBytes(columns: inner)!
        let w = UnsafeMutableRawPointer.allocate(byteCount: out * rowBytes, alignment: 64)
        let row = [Float](unsafeUninitializedCapacity: inner) { b, n in for i in 0..<inner { b[i] = next() }; n = inner }
        row.withUnsafeBufferPointer { r in
            for j in 0..<out { try? type.encodeRow(r.baseAddress!, columns: inner, into: w + j * rowBytes) }
        }
        let x = UnsafeMutablePointer<Float>.allocate(capacity: rows * inner)
        for i in 0..<(rows * inner) { x[i] = next() }
        let y = UnsafeMutablePointer<Float>.allocate(capacity: rows * out)
        defer { w.deallocate(); x.deallocate(); y.deallocate() }
        let m = WeightMatrix(type: type, rows: out, columns: inner, data: w)
        KronosRuntime.matmul(m, bias: nil, x, rows: rows, y)  // warm up
        var best = Double.infinity, total = 0.0
        while total < minSeconds {
            let t0 = Date()
            KronosRuntime.matmul(m, bias: nil, x, rows: rows, y)
            let dt = Date().timeIntervalSince(t0)
            best = min(best, dt); total += dt
        }
        let flops = 2.0 * Double(rows * out * inner)
        return KernelTiming(type: type.rawValue, rows: rows, out: out, inner: inner, seconds: best,
                            gflops: flops / best / 1e9, weightGBps: Double(out * rowBytes) / best / 1e9)
    }

    /// numpy's matmul (OpenBLAS) GFLOP/s for the same f32 shape, via python3; nil when unavailable.
    public static func numpyGFLOPs(out: Int, inner: Int, rows: Int, minSeconds: Double = 0.3) -> Double? {
        let script = """
        import time, numpy as np
        rng = np.random.default_rng(0)
        w = rng.standard_normal((\(out), \(inner)), dtype=np.float32); x = rng.standard_normal((\(rows), \(inner)), dtype=np.float32)
        x @ w.T
        best, total = 1e9, 0.0
        while total < \(minSeconds):
            t = time.perf_counter(); x @ w.T; d = time.perf_counter() - t; best = min(best, d); total += d
        print(2.0 * \(rows) * \(out) * \(inner) / best / 1e9)
        """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { return nil }
        return Double(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
