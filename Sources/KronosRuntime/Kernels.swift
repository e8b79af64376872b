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

// dot(a [n], b [n]) -> scalar. Fixed summation order: one 8-lane fused multiply-add accumulator
// over k in steps of 8, its lanes summed, then the tail. The GEMM tile kernel below uses exactly
// this order for every (row, column) pair, so results never depend on how rows are grouped.
@inline(__always)
func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD8<Float>()
    var i = 0
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    while i + 8 <= n {
        acc.addProduct(ra.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self), rb.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self))
        i += 8
    }
    var s = acc.sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

// C [2, 4] = A [4, n] (rows a0...a3) . B [2, n] (rows b0, b1), each pair in dot()'s order.
// 8 accumulators + 4 A vectors + 1 B vector fit the 16 AVX2 registers.
@inline(__always)
func tile4x2(_ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int, _ n: Int,
             _ c: UnsafeMutablePointer<Float>, _ ldc: Int, bias: SIMD4<Float>) {
    var c00 = SIMD8<Float>(), c01 = SIMD8<Float>(), c02 = SIMD8<Float>(), c03 = SIMD8<Float>()
    var c10 = SIMD8<Float>(), c11 = SIMD8<Float>(), c12 = SIMD8<Float>(), c13 = SIMD8<Float>()
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    let sa = 4 * lda, sb = 4 * ldb
    var k = 0
    while k + 8 <= n {
        let o = 4 * k
        let a0 = ra.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
        let a1 = ra.loadUnaligned(fromByteOffset: o + sa, as: SIMD8<Float>.self)
        let a2 = ra.loadUnaligned(fromByteOffset: o + 2 * sa, as: SIMD8<Float>.self)
        let a3 = ra.loadUnaligned(fromByteOffset: o + 3 * sa, as: SIMD8<Float>.self)
        let b0 = rb.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
        c00.addProduct(a0, b0); c01.addProduct(a1, b0); c02.addProduct(a2, b0); c03.addProduct(a3, b0)
        let b1 = rb.loadUnaligned(fromByteOffset: o + sb, as: SIMD8<Float>.self)
        c10.addProduct(a0, b1); c11.addProduct(a1, b1); c12.addProduct(a2, b1); c13.addProduct(a3, b1)
        k += 8
    }
    var r0 = SIMD4<Float>(c00.sum(), c01.sum(), c02.sum(), c03.sum())
    var r1 = SIMD4<Float>(c10.sum(), c11.sum(), c12.sum(), c13.sum())
    while k < n {
        let av = SIMD4<Float>(a[k], a[lda + k], a[2 * lda + k], a[3 * lda + k])
        r0 += av * b[k]; r1 += av * b[ldb + k]
        k += 1
    }
    r0 += bias; r1 += bias
    for j in 0..<4 { c[j] = r0[j]; c[ldc + j] = r1[j] }
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
// Weight rows are taken 4 at a time (dequantized once into a per-thread buffer unless f32) and
// multiplied with 2 input rows at a time by the register tile; leftovers go through dot().
// Output rows are split across the cores.
func matmul(_ w: WeightMatrix, bias: UnsafePointer<Float>?, _ x: UnsafePointer<Float>, rows: Int, _ y: UnsafeMutablePointer<Float>) {
    let n = w.columns, out = w.rows
    let groups = (out + 3) / 4
    let work = out * rows * n
    parallelChunks(groups, minimumPerChunk: work > 1 << 16 ? 1 : groups) { range in
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 4 * n)
        defer { scratch.deallocate() }
        for g in range {
            let j0 = 4 * g, count = min(4, out - j0)
            // A: the group's weight rows as f32, row stride lda.
            let a: UnsafePointer<Float>, lda: Int
            if w.type == .f32 {
                a = w.row(j0).assumingMemoryBound(to: Float.self); lda = n
            } else {
                for r in 0..<count { w.decodeRow(j0 + r, into: scratch + r * n) }
                a = UnsafePointer(scratch); lda = n
            }
            if count == 4 {
                let bv = bias.map { SIMD4<Float>($0[j0], $0[j0 + 1], $0[j0 + 2], $0[j0 + 3]) } ?? SIMD4<Float>()
                var t = 0
                while t + 2 <= rows {
                    tile4x2(a, lda, x + t * n, n, n, y + t * out + j0, out, bias: bv)
                    t += 2
                }
                while t < rows {
                    for r in 0..<4 { y[t * out + j0 + r] = dot(a + r * lda, x + t * n, n) + bv[r] }
                    t += 1
                }
            } else {
                for r in 0..<count {
                    let b = bias?[j0 + r] ?? 0
                    for t in 0..<rows { y[t * out + j0 + r] = dot(a + r * lda, x + t * n, n) + b }
                }
            }
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
