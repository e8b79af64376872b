// The integer matvec for few input rows (decode steps), shared by KronosWideVNNI and KronosWideAVX2:
// Sources/KronosWideAVX2/Matvec.swift is a link to Sources/KronosWideVNNI/Matvec.swift, compiled in
// each module with that module's `MatvecKernels` (the enum the matvec extends) and `dotBytes` (lane
// i: acc + Σ of 4 unsigned x signed byte products: vpdpbusd with VNNI, vpmaddubsw + vpmaddwd
// without, exact for the codes the integer path feeds it). Straight from the stored rows: lanes are
// 8 weight rows, each block's codes read once for up to 6 inputs. The arithmetic is the integer
// path's (KronosWideVNNI's Int8Kernels.swift states it), bit for bit.
import CKronosHints
import KronosQuant

#if arch(x86_64)

    extension MatvecKernels {
        /// Weight rows per group of the few-rows kernel (`matvec`).
        @inlinable public static var matvecRows: Int { 8 }

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
                    w: w, rowBytes: rowBytes, rows: rows, groups: groups, x: x, inputs: inputs, y: y, ldy: ldy,
                    bias: bias)
                guard type.withIntegerCodes(task) != nil else {
                    preconditionFailure("the integer path takes q8_0, q4_1 and q4_k weights, not \(type)")
                }
            #else
                preconditionFailure("the integer kernels exist on x86-64 only")
            #endif
        }
    }

    // The bias behind a branch, not `acc[r] + (bias?[r] ?? 0)`: for AVX2 that became a vmaskmovps whose
    // masked-off lanes at a null bias took a fault-suppression assist per call (Zen 3, measured).
    @inline(__always)
    func finish(_ acc: SIMD8<Float>, _ y: UnsafeMutablePointer<Float>, _ lanes: Int, _ bias: UnsafePointer<Float>?) {
        if lanes == 8 {
            let b = bias.map { UnsafeRawPointer($0).loadUnaligned(as: SIMD8<Float>.self) } ?? SIMD8<Float>()
            UnsafeMutableRawPointer(y).storeBytes(of: acc + b, as: SIMD8<Float>.self)
        } else if let bias {
            for r in 0..<lanes { y[r] = acc[r] + bias[r] }
        } else {
            for r in 0..<lanes { y[r] = acc[r] + 0 }  // (+ 0 as the reference adds it: -0 comes out +0)
        }
    }

    @inline(__always)
    func matvecGroups<C: IntegerCodes>(
        _: C.Type, _ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Int, _ groups: Range<Int>, _ x: Int8Activations,
        _ inputs: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _ bias: UnsafePointer<Float>?
    ) {
        for g in groups {
            let j0 = g * MatvecKernels.matvecRows, count = min(MatvecKernels.matvecRows, rows - j0)
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
        let next = r0 + MatvecKernels.matvecRows * rowBytes, slice = MatvecKernels.matvecRows * C.unitBytes
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
            dotBytes(dotBytes(SIMD8<Int32>(), p.low, xl), p.high, xh)
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
            return dotBytes(SIMD8<Int32>(), kronos_abs8(signed), kronos_sign8(xq, signed))
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

    // The minimum term's second factor, d_x · Float(S), of input t's block u, in every lane.
    @inline(__always)
    func minimumFactor(_ x: Int8Activations, _ t: Int, _ u: Int) -> SIMD8<Float> {
        let i = t * (x.columns / 32) + u
        return SIMD8<Float>(repeating: x.scales[i] * Float(x.sums[i]))
    }

#endif
