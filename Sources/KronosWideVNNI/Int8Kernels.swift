// Int8 kernels for processors with AVX-512 VNNI: q8_0, q4_1 and q4_k weights times int8-quantized
// activations, 32 (ymm) or 64 (zmm) byte products per instruction (vpdpbusd). Compiled for AVX-512 VL / BW / VNNI
// (Package.swift), so nothing in it may run before the runtime has checked the processor
// (KronosWideEngine's `Kernels.IntegerKernels.native`, by cpuid): its kernels are never inlined into callers compiled
// for other processors, and its constants are inlinable (they compile in the caller).
//
// The arithmetic of every (weight row r, input row t) pair, whichever kernel computes it, with the
// weights' codes c, block scales d_w and minimums m_w as KronosQuant's IntegerCodes gives them:
//   acc = 0; for each 32-column block u in order:
//     I = Σ_k c[r, 32u + k] · q[t, 32u + k]        (exact in 32 bits)
//     acc = fma(Float(I), d_w[r, u] · d_x[t, u], acc)   (d_w · d_x rounded to f32 first)
//     q4_1, q4_k only: acc = fma(m_w[r, u], d_x[t, u] · Float(S[t, u]), acc)   (S: the block's Σ q)
//   y[t, r] = acc + bias[r]
// The scalar reference (KronosWideEngine, integerReferenceDot) and the portable path compute the same,
// bit for bit.
import CKronosHints
import KronosQuant

public enum VNNI {
    /// Weight rows per group of the few-rows kernel (`matvec`).
    @inlinable public static var matvecRows: Int { 8 }

    /// Y [inputs, ldy]: y[t·ldy + j] = row j of W . input t (+ bias[j]) for the weight rows j of
    /// 16-row groups `groups` (the last may be partial: rows < `rows` only).
    /// W: rows of x.columns values of `type` (q8_0, q4_1, q4_k), `rowBytes` apart. Each group is
    /// repacked once into `scratch` (repackedGroupBytes), then multiplied with 8 input rows at a time in
    /// 512-bit registers (kronos_vnni512_tile).
    @inline(never)
    public static func gemm(
        _ type: TensorType, weights w: UnsafeRawPointer, rowBytes: Int, rows: Int, groups: Range<Int>,
        x: Int8Activations, inputs: Int, y: UnsafeMutablePointer<Float>, ldy: Int, bias: UnsafePointer<Float>?,
        scratch: UnsafeMutableRawPointer
    ) {
        #if arch(x86_64)
            struct Gemm: IntegerCodesTask {
                let w: UnsafeRawPointer, rowBytes: Int, rows: Int, groups: Range<Int>, x: Int8Activations
                let inputs: Int, y: UnsafeMutablePointer<Float>, ldy: Int, bias: UnsafePointer<Float>?
                let scratch: UnsafeMutableRawPointer
                @inline(__always) func run<C: IntegerCodes>(_: C.Type) {
                    gemmGroups(C.self, w, rowBytes, rows, groups, x, inputs, y, ldy, bias, scratch)
                }
            }
            let task = Gemm(
                w: w, rowBytes: rowBytes, rows: rows, groups: groups, x: x, inputs: inputs, y: y, ldy: ldy, bias: bias,
                scratch: scratch)
            guard type.withIntegerCodes(task) != nil else {
                preconditionFailure("the integer path takes q8_0, q4_1 and q4_k weights, not \(type)")
            }
        #else
            preconditionFailure("the VNNI kernels exist on x86-64 only")
        #endif
    }

    /// The same products for few input rows (decode steps), straight from the stored rows: weight
    /// rows of 8-row groups `groups`, up to 6 input rows at a time.
    @inline(never)
    public static func matvec(
        _ type: TensorType, weights w: UnsafeRawPointer, rowBytes: Int, rows: Int, groups: Range<Int>,
        x: Int8Activations, inputs: Int, y: UnsafeMutablePointer<Float>, ldy: Int, bias: UnsafePointer<Float>?
    ) {
        #if arch(x86_64)
            struct Matvec: IntegerCodesTask {
                let w: UnsafeRawPointer, rowBytes: Int, rows: Int, groups: Range<Int>, x: Int8Activations
                let inputs: Int, y: UnsafeMutablePointer<Float>, ldy: Int, bias: UnsafePointer<Float>?
                @inline(__always) func run<C: IntegerCodes>(_: C.Type) {
                    matvecGroups(C.self, w, rowBytes, rows, groups, x, inputs, y, ldy, bias)
                }
            }
            let task = Matvec(
                w: w, rowBytes: rowBytes, rows: rows, groups: groups, x: x, inputs: inputs, y: y, ldy: ldy, bias: bias)
            guard type.withIntegerCodes(task) != nil else {
                preconditionFailure("the integer path takes q8_0, q4_1 and q4_k weights, not \(type)")
            }
        #else
            preconditionFailure("the VNNI kernels exist on x86-64 only")
        #endif
    }
}

#if arch(x86_64)

    @inline(__always)
    func gemmGroups<C: IntegerCodes>(
        _: C.Type, _ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Int, _ groups: Range<Int>, _ x: Int8Activations,
        _ inputs: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _ bias: UnsafePointer<Float>?,
        _ scratch: UnsafeMutableRawPointer
    ) {
        let blocks = x.columns / 32, nb = blocks, minimum: Int32 = C.hasMinimum ? 1 : 0
        let group = UnsafePointer<UInt8>(scratch.assumingMemoryBound(to: UInt8.self))
        for g in groups {
            let j0 = g * repackedGroupRows, count = min(repackedGroupRows, rows - j0)
            repackGroup(
                C.self, w + j0 * rowBytes, rowBytes: rowBytes, count: count, blocks: blocks, biased: true, into: scratch
            )
            // Input rows 8 at a time (zmm lanes: the group's 16 weight rows), then 4, then one by one:
            // the same arithmetic per (input, weight row) pair whatever the tile. Each tile asks for a
            // slice of the next group's stored rows, so they come from memory while this group computes
            // (in a forecast the weights stream from DRAM: without it the repack waited on them).
            let next = w + (j0 + repackedGroupRows) * rowBytes  // (past the last row: a prefetch never faults)
            let slice = (repackedGroupRows * rowBytes / max(1, (inputs + 7) / 8) + 63) / 64 * 64
            var t = 0, k = 0
            func tile(_ r: Int32) {
                if g + 1 < groups.upperBound { kronos_prefetch_slice(next, k, slice); k += 1 }
                kronos_vnni512_tile(
                    r, group, blocks, x.codes + t * x.columns, x.columns, x.scales + t * nb, x.sums + t * nb, minimum,
                    y + t * ldy + j0, ldy, count, bias.map { $0 + j0 })
                t += Int(r)
            }
            while t + 8 <= inputs { tile(8) }
            if t + 4 <= inputs { tile(4) }
            while t < inputs { tile(1) }
        }
    }

    // The minimum term's second factor, d_x · Float(S), of input t's block u, in every lane.
    @inline(__always)
    func minimumFactor(_ x: Int8Activations, _ t: Int, _ u: Int) -> SIMD8<Float> {
        let i = t * (x.columns / 32) + u
        return SIMD8<Float>(repeating: x.scales[i] * Float(x.sums[i]))
    }

    @inline(__always)
    func finish(_ acc: SIMD8<Float>, _ y: UnsafeMutablePointer<Float>, _ lanes: Int, _ bias: UnsafePointer<Float>?) {
        for r in 0..<lanes { y[r] = acc[r] + (bias?[r] ?? 0) }
    }

    @inline(__always)
    func matvecGroups<C: IntegerCodes>(
        _: C.Type, _ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Int, _ groups: Range<Int>, _ x: Int8Activations,
        _ inputs: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _ bias: UnsafePointer<Float>?
    ) {
        for g in groups {
            let j0 = g * VNNI.matvecRows, count = min(VNNI.matvecRows, rows - j0)
            var t = 0
            // The next group's rows are prefetched while the first inputs are multiplied. Up to 6 inputs
            // go in one pass (the group's codes read once), more 4 at a time first.
            while inputs - t > 6 {
                matvecTile(C.self, FourInputRows.self, w, rowBytes, j0, count, x, t, y, ldy, bias); t += 4
            }
            switch inputs - t {
            case 6: matvecTile(C.self, SixInputRows.self, w, rowBytes, j0, count, x, t, y, ldy, bias)
            case 5: matvecTile(C.self, FiveInputRows.self, w, rowBytes, j0, count, x, t, y, ldy, bias)
            case 4: matvecTile(C.self, FourInputRows.self, w, rowBytes, j0, count, x, t, y, ldy, bias)
            case 3: matvecTile(C.self, ThreeInputRows.self, w, rowBytes, j0, count, x, t, y, ldy, bias)
            case 2: matvecTile(C.self, TwoInputRows.self, w, rowBytes, j0, count, x, t, y, ldy, bias)
            case 1: matvecTile(C.self, OneInputRow.self, w, rowBytes, j0, count, x, t, y, ldy, bias)
            default: break
            }
        }
    }

    // Y rows t ..< t+R, columns j0 ..< j0+count (<= 8) = weight rows j0 ..< j0+count (straight from the
    // stored rows) . input rows t ..< t+R: lanes are weight rows. Each block's codes are read once for
    // the R inputs; each unit's scales once, lanes-are-rows (IntegerCodes.laneScales).
    @inline(__always)
    func matvecTile<C: IntegerCodes, R: InputRowCount>(
        _: C.Type, _: R.Type, _ w: UnsafeRawPointer, _ rowBytes: Int, _ j0: Int, _ count: Int,
        _ x: Int8Activations, _ t: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int,
        _ bias: UnsafePointer<Float>?
    ) {
        let blocks = x.columns / 32, units = blocks / C.blocksPerUnit
        // Missing rows of a partial group read the group's first row; their lanes are dropped.
        let r0 = w + j0 * rowBytes
        @inline(__always) func row(_ r: Int) -> UnsafeRawPointer { r < count ? r0 + r * rowBytes : r0 }
        let p0 = row(0), p1 = row(1), p2 = row(2), p3 = row(3), p4 = row(4), p5 = row(5), p6 = row(6), p7 = row(7)
        let next = r0 + VNNI.matvecRows * rowBytes, slice = VNNI.matvecRows * C.unitBytes
        var f0 = SIMD8<Float>(), f1 = SIMD8<Float>(), f2 = SIMD8<Float>(), f3 = SIMD8<Float>(), f4 = SIMD8<Float>(),
            f5 = SIMD8<Float>()
        // Scales (0 ..< 8) and minimums (8 ..< 16) of the unit's blocks, lanes are rows.
        var lanes = (
            SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(),
            SIMD8<Float>(), SIMD8<Float>(),
            SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(),
            SIMD8<Float>(), SIMD8<Float>()
        )
        withUnsafeMutableBytes(of: &lanes) { raw in
            let h = raw.baseAddress!.assumingMemoryBound(to: SIMD8<Float>.self)
            for v in 0..<units {
                if t == 0 { kronos_prefetch_slice(next, v, slice) }
                let o = v * C.unitBytes
                unitScales(C.self, p0 + o, p1 + o, p2 + o, p3 + o, p4 + o, p5 + o, p6 + o, p7 + o, into: h)
                for k in 0..<C.blocksPerUnit {
                    let u = v * C.blocksPerUnit + k
                    @inline(__always) func input(_ i: Int, _ sums: SIMD8<Int32>, _ f: inout SIMD8<Float>) {
                        let dx = x.scales[(t + i) * blocks + u]
                        f.addProduct(kronos_float8(sums), h[k] * SIMD8<Float>(repeating: dx))
                        if C.hasMinimum { f.addProduct(h[8 + k], minimumFactor(x, t + i, u)) }
                    }
                    // Block u's integer sums of the 8 rows with each input, lanes are rows. The input calls
                    // are written out in both branches: passing nibbleSums / byteSums to one shared
                    // accumulate(_ sums: (Int) -> SIMD8<Int32>) cost q4_k+i8 at 5 rows ~20 % and q8_0+i8 at 1
                    // row ~10 % (hot 1024x512, measured).
                    if C.hasMinimum {
                        // 4-bit codes: rows r and r + 4 share a vector (their 16 packed bytes side by side),
                        // split into low and high nibbles (codes 0-15 and 16-31).
                        @inline(__always) func pair(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer) -> NibblePair {
                            let v = kronos_pair16(C.packedCodes(a + o, block: k), C.packedCodes(b + o, block: k))
                            return NibblePair(low: kronos_low_nibbles(v), high: kronos_high_nibbles(v))
                        }
                        let c = (pair(p0, p4), pair(p1, p5), pair(p2, p6), pair(p3, p7))
                        input(0, nibbleSums(c, x, t, u), &f0)
                        if R.count > 1 { input(1, nibbleSums(c, x, t + 1, u), &f1) }
                        if R.count > 2 { input(2, nibbleSums(c, x, t + 2, u), &f2) }
                        if R.count > 3 { input(3, nibbleSums(c, x, t + 3, u), &f3) }
                        if R.count > 4 { input(4, nibbleSums(c, x, t + 4, u), &f4) }
                        if R.count > 5 { input(5, nibbleSums(c, x, t + 5, u), &f5) }
                    } else {
                        let c = (
                            C.codes(p0 + o, block: k), C.codes(p1 + o, block: k), C.codes(p2 + o, block: k),
                            C.codes(p3 + o, block: k),
                            C.codes(p4 + o, block: k), C.codes(p5 + o, block: k), C.codes(p6 + o, block: k),
                            C.codes(p7 + o, block: k)
                        )
                        input(0, byteSums(c, x, t, u), &f0)
                        if R.count > 1 { input(1, byteSums(c, x, t + 1, u), &f1) }
                        if R.count > 2 { input(2, byteSums(c, x, t + 2, u), &f2) }
                        if R.count > 3 { input(3, byteSums(c, x, t + 3, u), &f3) }
                        if R.count > 4 { input(4, byteSums(c, x, t + 4, u), &f4) }
                        if R.count > 5 { input(5, byteSums(c, x, t + 5, u), &f5) }
                    }
                }
            }
        }
        @inline(__always) func store(_ i: Int, _ f: SIMD8<Float>) {
            finish(f, y + (t + i) * ldy + j0, count, bias.map { $0 + j0 })
        }
        store(0, f0)
        if R.count > 1 { store(1, f1) }
        if R.count > 2 { store(2, f2) }
        if R.count > 3 { store(3, f3) }
        if R.count > 4 { store(4, f4) }
        if R.count > 5 { store(5, f5) }
    }

    /// The low and high nibbles of two rows' 16 packed bytes: [row r | row r + 4].
    struct NibblePair {
        let low: SIMD32<UInt8>
        let high: SIMD32<UInt8>
    }

    // Lane r: Σ_k code[r, k] · q[t, 32u + k] over block u, for 8 rows of 4-bit codes held as pairs
    // (rows 0|4, 1|5, 2|6, 3|7): each half multiplied with the matching 16 input codes, then 3 vphaddd.
    @inline(__always)
    func nibbleSums(_ c: (NibblePair, NibblePair, NibblePair, NibblePair), _ x: Int8Activations, _ t: Int, _ u: Int)
        -> SIMD8<Int32>
    {
        let xb = UnsafeRawPointer(x.codes) + t * x.columns + 32 * u
        let xl = kronos_broadcast16(xb), xh = kronos_broadcast16(xb + 16)
        @inline(__always) func part(_ p: NibblePair) -> SIMD8<Int32> {
            kronos_dpbusd(kronos_dpbusd(SIMD8<Int32>(), p.low, xl), p.high, xh)
        }
        return kronos_sum4x2x4(part(c.0), part(c.1), part(c.2), part(c.3))
    }

    // Lane r: Σ_k code[r, k] · q[t, 32u + k] over block u, for 8 rows of signed byte codes: |c| · (x
    // signed as c) are the exact products c·x, -128 included.
    @inline(__always)
    func byteSums(
        _ c: (
            SIMD32<UInt8>, SIMD32<UInt8>, SIMD32<UInt8>, SIMD32<UInt8>, SIMD32<UInt8>, SIMD32<UInt8>, SIMD32<UInt8>,
            SIMD32<UInt8>
        ),
        _ x: Int8Activations, _ t: Int, _ u: Int
    ) -> SIMD8<Int32> {
        let xq = UnsafeRawPointer(x.codes).loadUnaligned(fromByteOffset: t * x.columns + 32 * u, as: SIMD32<Int8>.self)
        @inline(__always) func part(_ c: SIMD32<UInt8>) -> SIMD8<Int32> {
            let signed = unsafeBitCast(c, to: SIMD32<Int8>.self)
            return kronos_dpbusd(SIMD8<Int32>(), kronos_abs8(signed), kronos_sign8(xq, signed))
        }
        return kronos_sum8x8(part(c.0), part(c.1), part(c.2), part(c.3), part(c.4), part(c.5), part(c.6), part(c.7))
    }

    // The scales and minimums of one unit of 8 rows (pointers to the unit in each row), lanes are rows:
    // h[k] = d_w of block k, h[8 + k] = m_w of block k (k < blocksPerUnit).
    @inline(__always)
    func unitScales<C: IntegerCodes>(
        _: C.Type, _ p0: UnsafeRawPointer, _ p1: UnsafeRawPointer, _ p2: UnsafeRawPointer, _ p3: UnsafeRawPointer,
        _ p4: UnsafeRawPointer, _ p5: UnsafeRawPointer, _ p6: UnsafeRawPointer, _ p7: UnsafeRawPointer,
        into h: UnsafeMutablePointer<SIMD8<Float>>
    ) {
        @inline(__always) func word(_ p: UnsafeRawPointer, _ b: Int) -> UInt32 {
            UInt32(littleEndian: p.loadUnaligned(fromByteOffset: b, as: UInt32.self))
        }
        C.laneScales(
            { b in
                SIMD8<UInt32>(
                    word(p0, b), word(p1, b), word(p2, b), word(p3, b), word(p4, b), word(p5, b), word(p6, b),
                    word(p7, b))
            },
            into: h)
    }

#endif
