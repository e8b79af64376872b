// Numeric kernels of the runtime (scalar / portable-SIMD path). Every kernel states its contract.
// The order of every reduction depends only on the vector length, never on how many rows are
// processed together, so a KV-cached step is bitwise equal to recomputing the window.
import Foundation
import KronosQuant

/// A weight matrix as stored in the bundle: `rows` rows of `columns` elements of `type`.
public struct WeightMatrix: @unchecked Sendable {
    public let type: TensorType
    public let rows: Int
    public let columns: Int
    public let data: UnsafeRawPointer
    public let rowBytes: Int

    public init(type: TensorType, rows: Int, columns: Int, data: UnsafeRawPointer) {
        self.type = type; self.rows = rows; self.columns = columns; self.data = data
        rowBytes = type.rowBytes(columns: columns)!
    }

    @inline(__always) public func row(_ r: Int) -> UnsafeRawPointer { data + r * rowBytes }

    /// Row r as f32 into out [columns].
    @inline(__always) public func decodeRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        type.decodeRow(row(r), columns: columns, into: out)
    }
}

// dot(a [n], b [n]) -> scalar, fixed summation order (16-lane partial sums, then the tail).
@inline(__always)
func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>()
    var i = 0
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    while i + 32 <= n {
        acc0 += ra.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self) * rb.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
        acc1 += ra.loadUnaligned(fromByteOffset: 4 * i + 64, as: SIMD16<Float>.self) * rb.loadUnaligned(fromByteOffset: 4 * i + 64, as: SIMD16<Float>.self)
        i += 32
    }
    if i + 16 <= n {
        acc0 += ra.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self) * rb.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
        i += 16
    }
    var s = (acc0 + acc1).sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

/// y [n] += a * x [n]
@inline(__always)
func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    for i in 0..<n { y[i] += a * x[i] }
}

/// Runs `body(chunk)` over `count` items split into contiguous chunks across the cores.
@inline(__always)
func parallelChunks(_ count: Int, minimumPerChunk: Int = 1, _ body: (Range<Int>) -> Void) {
    let workers = min(Runtime.threads, max(1, count / max(minimumPerChunk, 1)))
    if workers <= 1 { body(0..<count); return }
    let per = (count + workers - 1) / workers
    withoutActuallyEscaping(body) { escapable in
        let task = UncheckedSendable(escapable)
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            let lo = w * per, hi = min(count, lo + per)
            if lo < hi { task.value(lo..<hi) }
        }
    }
}

/// Hands a value to concurrent iterations that only read shared state or write disjoint ranges.
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

public enum Runtime {
    /// Worker threads of the kernels (default: all cores).
    nonisolated(unsafe) public static var threads = ProcessInfo.processInfo.activeProcessorCount
}

// Y [rows, W.rows] = X [rows, W.columns] @ W^T (+ bias [W.rows])
// Each weight row is dequantized once into a per-thread buffer and dotted with every input row.
func matmul(_ w: WeightMatrix, bias: UnsafePointer<Float>?, _ x: UnsafePointer<Float>, rows: Int, _ y: UnsafeMutablePointer<Float>) {
    let n = w.columns, out = w.rows
    let work = out * rows * n
    parallelChunks(out, minimumPerChunk: work > 1 << 15 ? 1 : out) { range in
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { scratch.deallocate() }
        for j in range {
            let wr: UnsafePointer<Float>
            if w.type == .f32 {
                wr = w.row(j).assumingMemoryBound(to: Float.self)
            } else {
                w.decodeRow(j, into: scratch)
                wr = UnsafePointer(scratch)
            }
            let b = bias?[j] ?? 0
            for t in 0..<rows { y[t * out + j] = dot(wr, x + t * n, n) + b }
        }
    }
}

// x [rows, n] -> x / sqrt(mean(x^2) + eps) * weight [n], into y (may alias x)
func rmsNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, rows: Int, n: Int, _ y: UnsafeMutablePointer<Float>, eps: Float = 1e-5) {
    for t in 0..<rows {
        let xr = x + t * n, yr = y + t * n
        let ms = dot(xr, xr, n) / Float(n)
        let r = 1 / (ms + eps).squareRoot()
        for i in 0..<n { yr[i] = xr[i] * r * weight[i] }
    }
}

@inline(__always) func silu(_ a: Float) -> Float { a / (1 + Foundation.exp(-a)) }

// v [n] -> softmax(v) in place (max-subtracted); returns nothing.
func softmaxInPlace(_ v: UnsafeMutablePointer<Float>, _ n: Int) {
    var m = -Float.infinity
    for i in 0..<n { m = max(m, v[i]) }
    var s: Float = 0
    for i in 0..<n { v[i] = Foundation.exp(v[i] - m); s += v[i] }
    let inv = 1 / s
    for i in 0..<n { v[i] *= inv }
}

/// cos / sin of position p times inv_freq [half] for rotate-half rotary, grown on demand.
final class RotaryTable: @unchecked Sendable {
    let invFreq: [Float]
    var half: Int { invFreq.count }
    private(set) var positions = 0
    private var cos = [Float](), sin = [Float]()   // [positions, half]

    init(invFreq: [Float], positions: Int) {
        self.invFreq = invFreq
        ensure(positions)
    }

    /// Makes the table cover positions 0 ..< n (call before any parallel use).
    func ensure(_ n: Int) {
        guard n > positions else { return }
        let target = max(n, positions * 2)
        cos.reserveCapacity(target * half); sin.reserveCapacity(target * half)
        for p in positions..<target {
            for j in 0..<half {
                // theta in f32 as the reference computes it (position × inv_freq), then cos / sin.
                let theta = Float(p) * invFreq[j]
                cos.append(Float(Foundation.cos(Double(theta))))
                sin.append(Float(Foundation.sin(Double(theta))))
            }
        }
        positions = target
    }

    // v [2*half] at position p -> rotated in place:
    // out[j] = v[j] cos - v[j+half] sin; out[j+half] = v[j+half] cos + v[j] sin
    @inline(__always)
    func apply(_ v: UnsafeMutablePointer<Float>, position p: Int) {
        let half = self.half
        cos.withUnsafeBufferPointer { c in sin.withUnsafeBufferPointer { s in
            let cp = c.baseAddress! + p * half, sp = s.baseAddress! + p * half
            for j in 0..<half {
                let a = v[j], b = v[j + half]
                v[j] = a * cp[j] - b * sp[j]
                v[j + half] = b * cp[j] + a * sp[j]
            }
        } }
    }
}
