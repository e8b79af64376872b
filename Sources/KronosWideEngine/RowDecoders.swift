// In-register dequantization. Each stored row format yields its values eight at a time as
// SIMD8<Float>, bit for bit the floats of `TensorType.decodeRow` (the same operations on the same
// operands, never fused), so a kernel that multiplies straight from the stored row computes exactly
// what it would compute on the decoded row: the fast paths and the reference paths agree bitwise on
// the weights, and only the summation order (fixed, see Kernels.swift) defines the result.
import CKronosHints
import KronosQuant

/// Work that depends on a weight type's in-register decoder, run by `TensorType.withRowDecoder`:
/// `run` is generic over the decoder, so each kernel is specialized for every type.
protocol RowDecoderTask {
    associatedtype Output
    func run<D: RowDecoder>(_ decoder: D.Type) -> Output
}

extension TensorType {
    /// The one dispatch point from a tensor type to its RowDecoder: every float-path kernel and
    /// row lookup reaches its specialization through here. (A generic task keeps the kernels
    /// specialized; returning `any RowDecoder.Type` instead cost the matvec kernels 2-8x, measured
    /// with kronos-bench kernels --shape 16384x1024.)
    @inline(__always)
    func withRowDecoder<T: RowDecoderTask>(_ task: T) -> T.Output {
        switch self {
        case .f32: task.run(F32Rows.self)
        case .f16: task.run(F16Rows.self)
        case .q8_0: task.run(Q8_0Rows.self)
        case .q4_1: task.run(Q4_1Rows.self)
        case .q4_k: task.run(Q4_KRows.self)
        case .i64: preconditionFailure("i64 tensors are not weight matrices")
        case .q5_0, .q6_0: preconditionFailure("q5_0 / q6_0 run as q8_0 (TensorStore.matrix expands them)")
        }
    }
}

/// Row values of a stored row as floats (RowDecoder.decode).
struct DecodeRowTask: RowDecoderTask {
    let row: UnsafeRawPointer, columns: Int, out: UnsafeMutablePointer<Float>
    @inline(__always) func run<D: RowDecoder>(_: D.Type) { D.decode(row, columns: columns, into: out) }
}

protocol RowDecoder {
    /// Values decoded by one call of `unit` (the type's block or super-block; a multiple of 8).
    static var unitValues: Int { get }
    /// Bytes of one unit in a stored row.
    static var unitBytes: Int { get }
    /// Whether the decode matvec prefetches the next group of rows in software. Yes for the block
    /// types (small q8 decode step 216-287 -> 389-769 steps/s: without it their 8 interleaved row
    /// streams stall on every block); no for f32 / f16, whose plain streams the hardware prefetcher
    /// already follows (with it: f32 -5-10 %, f16 325 -> 270 steps/s, measured with kronos-bench).
    static var prefetchesRows: Bool { get }
    /// Values u·unitValues ..< (u+1)·unitValues of `row`, in order: emit(i, v) receives values
    /// u·unitValues + 8i ..< u·unitValues + 8i + 8.
    static func unit(_ row: UnsafeRawPointer, _ u: Int, _ emit: (Int, SIMD8<Float>) -> Void)
    /// Values decoded by one call of `part` (a divisor of unitValues, a multiple of 8): the grain at
    /// which the matvecs interleave their weight rows. unitValues for every type but Q4_K, whose
    /// 256-value super-block would give each row's accumulator 32 dependent fused multiply-adds in a
    /// row, more than the out-of-order window overlaps with the other rows' (latency-bound).
    static var partValues: Int { get }
    /// Writes the header of unit u of `row` into h: per-unit state (at most 16 floats) that `part`
    /// reads instead of decoding it again for every part. Q4_K's 8 sub-block scales d·sc and 8 negated
    /// minimums −dmin·mn; nothing for the other types.
    static func header(_ row: UnsafeRawPointer, _ u: Int, into h: UnsafeMutablePointer<Float>)
    /// Values u·unitValues + j·partValues ..< u·unitValues + (j+1)·partValues of `row`, in order, given
    /// the unit's header in h: emit(i, v) receives the 8 values from u·unitValues + j·partValues + 8i;
    /// bit for bit what `unit` emits for them.
    static func part(
        _ row: UnsafeRawPointer, _ u: Int, _ j: Int, header h: UnsafePointer<Float>, _ emit: (Int, SIMD8<Float>) -> Void
    )
    /// Value k of `row` (for the tail of a row whose length is not a multiple of unitValues: f32, f16;
    /// the block types keep the default, which traps).
    static func value(_ row: UnsafeRawPointer, _ k: Int) -> Float
}

/// f32 rows: 8 values per unit, loaded as they are.
enum F32Rows: RowDecoder {
    static var unitValues: Int { 8 }
    static var unitBytes: Int { 32 }
    static var prefetchesRows: Bool { false }
    @inline(__always)
    static func unit(_ row: UnsafeRawPointer, _ u: Int, _ emit: (Int, SIMD8<Float>) -> Void) {
        emit(0, row.loadUnaligned(fromByteOffset: 32 * u, as: SIMD8<Float>.self))
    }
    @inline(__always)
    static func value(_ row: UnsafeRawPointer, _ k: Int) -> Float {
        row.loadUnaligned(fromByteOffset: 4 * k, as: Float.self)
    }
}

/// f16 rows: 8 halves per unit, widened (vcvtph2ps with F16C).
enum F16Rows: RowDecoder {
    static var unitValues: Int { 8 }
    static var unitBytes: Int { 16 }
    static var prefetchesRows: Bool { false }
    @inline(__always)
    static func unit(_ row: UnsafeRawPointer, _ u: Int, _ emit: (Int, SIMD8<Float>) -> Void) {
        let bits = row.loadUnaligned(fromByteOffset: 16 * u, as: SIMD8<UInt16>.self)
        emit(0, kronos_f32_from_f16x8(bits))
    }
    @inline(__always)
    static func value(_ row: UnsafeRawPointer, _ k: Int) -> Float {
        loadF16(row, at: 2 * k)
    }
}

/// Q8_0 rows: one 34-byte block per unit; value = d * q.
enum Q8_0Rows: RowDecoder {
    static var unitValues: Int { BlockQ8_0.count }
    static var unitBytes: Int { BlockQ8_0.byteCount }
    @inline(__always)
    static func unit(_ row: UnsafeRawPointer, _ u: Int, _ emit: (Int, SIMD8<Float>) -> Void) {
        let block = row + u * BlockQ8_0.byteCount
        let d = SIMD8<Float>(repeating: loadF16(block))
        for i in 0..<4 {
            let q = block.loadUnaligned(fromByteOffset: 2 + 8 * i, as: SIMD8<Int8>.self)
            emit(i, d * kronos_f32_from_i32x8(kronos_i32_from_i8x8(q)))
        }
    }
}

/// Q4_1 rows: one 20-byte block per unit; value = fma(d, q, m) (low nibbles: values 0-15, high: 16-31).
enum Q4_1Rows: RowDecoder {
    static var unitValues: Int { BlockQ4_1.count }
    static var unitBytes: Int { BlockQ4_1.byteCount }
    @inline(__always)
    static func unit(_ row: UnsafeRawPointer, _ u: Int, _ emit: (Int, SIMD8<Float>) -> Void) {
        let block = row + u * BlockQ4_1.byteCount
        let dm = loadF16Pair(block)
        let d = SIMD8<Float>(repeating: dm.0), m = SIMD8<Float>(repeating: dm.1)
        nibbles(block + 4) { i, q in emit(i, m.addingProduct(d, q)) }
    }
}

/// Q4_K rows: one 144-byte super-block per unit; value = fma(d·sc[j], q, −dmin·mn[j]) in sub-block j.
enum Q4_KRows: RowDecoder {
    static var unitValues: Int { BlockQ4_K.count }
    static var unitBytes: Int { BlockQ4_K.byteCount }
    static var partValues: Int { 32 }
    @inline(__always)
    static func unit(_ row: UnsafeRawPointer, _ u: Int, _ emit: (Int, SIMD8<Float>) -> Void) {
        var h = (SIMD8<Float>(), SIMD8<Float>())
        withUnsafeMutableBytes(of: &h) { raw in
            let hp = raw.baseAddress!.assumingMemoryBound(to: Float.self)
            header(row, u, into: hp)
            for j in 0..<8 { part(row, u, j, header: hp) { i, v in emit(4 * j + i, v) } }
        }
    }
    /// h[j] = d·sc[j], h[8 + j] = −(dmin·mn[j]) of super-block u (BlockQ4_K.scaleVectors).
    @inline(__always)
    static func header(_ row: UnsafeRawPointer, _ u: Int, into h: UnsafeMutablePointer<Float>) {
        let (scales, minimums) = BlockQ4_K.scaleVectors(row + u * BlockQ4_K.byteCount)
        let raw = UnsafeMutableRawPointer(h)
        raw.storeBytes(of: scales, as: SIMD8<Float>.self)
        raw.storeBytes(of: minimums, toByteOffset: 32, as: SIMD8<Float>.self)
    }
    /// Sub-block j of super-block u: value = fma(h[j], q, h[8 + j]).
    @inline(__always)
    static func part(
        _ row: UnsafeRawPointer, _ u: Int, _ j: Int, header h: UnsafePointer<Float>, _ emit: (Int, SIMD8<Float>) -> Void
    ) {
        let s = SIMD8<Float>(repeating: h[j]), m = SIMD8<Float>(repeating: h[8 + j])
        nibbles(row + u * BlockQ4_K.byteCount + 16 + 16 * j) { i, q in emit(i, m.addingProduct(s, q)) }
    }
}

/// 16 bytes of packed 4-bit codes -> the 32 codes as floats, 8 at a time: emit(0/1, low nibbles of
/// bytes 0-7 / 8-15), emit(2/3, high nibbles of bytes 0-7 / 8-15).
// Each half of the bytes is widened to 32-bit lanes straight from memory (one vpmovzxbd each), and the
// nibbles are split in those lanes (and, shift): AVX2 has no byte shift, and splitting the 16 bytes
// first took 6 shuffle-port operations per 32 codes instead of 2 (hot q4_1 matvec, 1 / 2 rows: 42 -> 47 /
// 57 -> 85 GFLOP/s).
@inline(__always)
private func nibbles(_ p: UnsafeRawPointer, _ emit: (Int, SIMD8<Float>) -> Void) {
    let b0 = kronos_i32_from_u8x8(p.loadUnaligned(as: SIMD8<UInt8>.self))
    let b1 = kronos_i32_from_u8x8(p.loadUnaligned(fromByteOffset: 8, as: SIMD8<UInt8>.self))
    emit(0, kronos_f32_from_i32x8(b0 & 0x0F))
    emit(1, kronos_f32_from_i32x8(b1 & 0x0F))
    emit(2, kronos_f32_from_i32x8(b0 &>> 4))
    emit(3, kronos_f32_from_i32x8(b1 &>> 4))
}

extension RowDecoder {
    static var prefetchesRows: Bool { true }

    /// One part per unit unless the type says otherwise.
    static var partValues: Int { unitValues }
    /// No header unless the type has one.
    @inline(__always)
    static func header(_ row: UnsafeRawPointer, _ u: Int, into h: UnsafeMutablePointer<Float>) {}
    @inline(__always)
    static func part(
        _ row: UnsafeRawPointer, _ u: Int, _ j: Int, header h: UnsafePointer<Float>, _ emit: (Int, SIMD8<Float>) -> Void
    ) {
        unit(row, u, emit)
    }

    /// Block types have no tail: their rows are whole units.
    static func value(_ row: UnsafeRawPointer, _ k: Int) -> Float {
        preconditionFailure("\(Self.self) rows are whole units")
    }

    // row [n] stored -> out [n] f32 (vectorized decodeRow).
    @inline(__always)
    static func decode(_ row: UnsafeRawPointer, columns n: Int, into out: UnsafeMutablePointer<Float>) {
        let units = n / unitValues
        let raw = UnsafeMutableRawPointer(out)
        for u in 0..<units {
            let base = 4 * u * unitValues
            unit(row, u) { i, v in raw.storeBytes(of: v, toByteOffset: base + 32 * i, as: SIMD8<Float>.self) }
        }
        for k in (units * unitValues)..<n { out[k] = value(row, k) }
    }
}
