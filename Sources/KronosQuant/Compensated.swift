// Error-compensating quantization of a whole matrix (the method of GPTQ, Frantar et al. 2022, in
// our own code): given the second moments H = E[x xᵀ] of the rows a weight W [out, in] multiplies,
// each row's columns are quantized in order, and the rounding errors of the columns already done
// move the target of every later column so that the row's output Σ_j w_j x_j changes least on
// those inputs. GPTQ writes the sweep with U, the upper Cholesky factor of (H + λI)⁻¹:
//
//     e = (t_i − q_i) / U[i, i];   t_j −= e · U[i, j]  for j > i          (t starts as w)
//
// Unrolled, that leaves column i's target at t_i = w_i + Σ_{k<i} V[k, i] (w_k − q_k), where
// V = R · diag(R)⁻¹ and R = U⁻¹ is the upper triangular matrix with H + λI = R Rᵀ. So this file
// sweeps with V (unit upper triangular: H + λI = V D Vᵀ, D diagonal) and the original errors
// w_k − q_k: the same quantization, from one Cholesky factorization and no matrix inverse
// (the factorization and the inverse took two thirds of a calibrated Kronos-base conversion).
//
// λ = 1 % of H's mean diagonal: a column the calibration never saw active still gets a finite,
// well-conditioned update. Block types fit a block's scale / minimum when the sweep reaches it, to
// the row's targets at that point (importance-weighted, Weighted.swift), then code each column
// against them; the stored block is the same layout a reader decodes for any bundle.
//
// Rows are independent: they go through the sweep `compensationTile` at a time. Inside a block the
// errors move the block's own later columns at once; the columns after the block are moved once
// per block, by all its errors together (GPTQ's lazy batch update: a small matrix product instead
// of a pass over the rows per column).

extension TensorType {
    /// Rows swept together (each row of V read once for them).
    static let compensationTile = 16
    /// Columns per lazy update: the errors of this many columns move the later columns together. It
    /// divides every block type's size (32 or 256), so a block's fit always finds its columns'
    /// targets up to date.
    static let compensationBatch = 32

    /// The compensation factor of second moments h [n, n]: the unit upper triangular V [n, n]
    /// (row-major, zero below the diagonal) with H + λI = V D Vᵀ for a positive diagonal D, λ = 1 % of
    /// H's mean diagonal, computed in f64; nil when the damped matrix is not positive definite (then
    /// the caller quantizes without compensation).
    ///
    /// With J the reversal of the index order: J (H + λI) J = L Lᵀ (lower L), so H + λI = R Rᵀ with
    /// R = J L J upper, and V = R · diag(R)⁻¹.
    public static func compensationFactor(_ h: UnsafePointer<Float>, n: Int) -> [Float]? {
        var mean = 0.0
        for i in 0..<n { mean += Double(h[i * n + i]) }
        mean /= Double(max(n, 1))
        let scale = mean > 0 ? mean : 1
        let a = UnsafeMutablePointer<Double>.allocate(capacity: n * n)
        defer { a.deallocate() }
        // A = J (H + λI) J
        for i in 0..<n {
            for j in 0..<n { a[i * n + j] = Double(h[(n - 1 - i) * n + (n - 1 - j)]) }
            if a[i * n + i] <= 0 { a[i * n + i] = scale }  // a column never active
            a[i * n + i] += 0.01 * scale
        }
        guard cholesky(a, n) else { return nil }
        // V[k, i] = R[k, i] / R[i, i] = L[n−1−k, n−1−i] / L[n−1−i, n−1−i] for k ≤ i
        var v = [Float](repeating: 0, count: n * n)
        for i in 0..<n {
            let li = n - 1 - i, pivot = a[li * n + li]
            for k in 0...i { v[k * n + i] = Float(a[(n - 1 - k) * n + li] / pivot) }
        }
        return v
    }

    /// Columns of a Cholesky panel (cholesky): the trailing update is a product over this many.
    static let choleskyPanel = 64

    /// In place: the lower Cholesky factor of a symmetric positive-definite a [n, n] (row-major,
    /// lower part read and written; the upper part is left as it was); false when a pivot is not
    /// positive. Blocked, right-looking: each panel of `choleskyPanel` columns is factored column by
    /// column, then the matrix right of and below it is updated by the panel times its transpose,
    /// 4 x 3 tiles of dot products over the panel's contiguous row segments, a band of rows at a
    /// time (the unblocked form streamed the whole trailing matrix from memory once per column:
    /// 19 % of a calibrated Kronos-base conversion, on 32 MB matrices for 2048 columns).
    static func cholesky(_ a: UnsafeMutablePointer<Double>, _ n: Int) -> Bool {
        let nb = choleskyPanel
        let column = UnsafeMutablePointer<Double>.allocate(capacity: nb)  // a[j0 ..< j1, j], contiguous
        defer { column.deallocate() }
        for j0 in stride(from: 0, to: n, by: nb) {
            let j1 = min(n, j0 + nb)
            // The panel: columns j0 ..< j1 of rows j0 ..< n, column by column.
            for j in j0..<j1 {
                let d = a[j * n + j]
                guard d > 0, d.isFinite else { return false }
                let l = d.squareRoot()
                a[j * n + j] = l
                let inverse = 1 / l
                for i in (j + 1)..<max(j + 1, n) { a[i * n + j] *= inverse }
                // a[i, k] −= a[i, j] a[k, j] for j < k < j1, k ≤ i
                guard j + 1 < j1 else { continue }
                for k in (j + 1)..<j1 { column[k - j0] = a[k * n + j] }
                for i in (j + 1)..<n {
                    let lij = a[i * n + j]
                    if lij == 0 { continue }
                    let row = a + i * n
                    for k in (j + 1)..<min(i + 1, j1) { row[k] -= lij * column[k - j0] }
                }
            }
            guard j1 < n else { break }
            // The trailing matrix: a[i, k] −= Σ_p a[i, p] a[k, p], p in j0 ..< j1, for j1 ≤ k ≤ i, by
            // bands of 48 k rows (their panel segments stay in cache) against every i row below.
            let width = j1 - j0, band = 48
            for k0 in stride(from: j1, to: n, by: band) {
                let k1 = min(n, k0 + band)
                var i0 = k0
                while i0 < n {
                    let rows = min(4, n - i0)
                    var k = k0
                    while k < min(k1, i0 + rows) {
                        let ks = min(3, k1 - k)
                        choleskyTile(a, n, j0, width, i0, rows, k, ks)
                        k += ks
                    }
                    i0 += rows
                }
            }
        }
        return true
    }

    /// a[i, k] −= Σ_p a[i, p] a[k, p] over the panel's columns p in j0 ..< j0 + width, for rows
    /// i0 ..< i0 + rows (≤ 4) and k ..< k + ks (≤ 3), only where k ≤ i (the lower part).
    @inline(__always)
    private static func choleskyTile(
        _ a: UnsafeMutablePointer<Double>, _ n: Int, _ j0: Int, _ width: Int, _ i0: Int, _ rows: Int, _ k: Int,
        _ ks: Int
    ) {
        guard rows == 4, ks == 3, width % 4 == 0 else {
            for i in i0..<(i0 + rows) {
                for kk in k..<max(k, min(k + ks, i + 1)) {
                    var s = 0.0
                    for c in j0..<(j0 + width) { s += a[i * n + c] * a[kk * n + c] }
                    a[i * n + kk] -= s
                }
            }
            return
        }
        var c00 = SIMD4<Double>(), c01 = SIMD4<Double>(), c02 = SIMD4<Double>()
        var c10 = SIMD4<Double>(), c11 = SIMD4<Double>(), c12 = SIMD4<Double>()
        var c20 = SIMD4<Double>(), c21 = SIMD4<Double>(), c22 = SIMD4<Double>()
        var c30 = SIMD4<Double>(), c31 = SIMD4<Double>(), c32 = SIMD4<Double>()
        let r = UnsafeRawPointer(a), stride = 8 * n
        let ai = i0 * stride + 8 * j0, ak = k * stride + 8 * j0
        var o = 0
        while o < 8 * width {
            let x0 = r.loadUnaligned(fromByteOffset: ak + o, as: SIMD4<Double>.self)
            let x1 = r.loadUnaligned(fromByteOffset: ak + stride + o, as: SIMD4<Double>.self)
            let x2 = r.loadUnaligned(fromByteOffset: ak + 2 * stride + o, as: SIMD4<Double>.self)
            let y0 = r.loadUnaligned(fromByteOffset: ai + o, as: SIMD4<Double>.self)
            c00.addProduct(y0, x0); c01.addProduct(y0, x1); c02.addProduct(y0, x2)
            let y1 = r.loadUnaligned(fromByteOffset: ai + stride + o, as: SIMD4<Double>.self)
            c10.addProduct(y1, x0); c11.addProduct(y1, x1); c12.addProduct(y1, x2)
            let y2 = r.loadUnaligned(fromByteOffset: ai + 2 * stride + o, as: SIMD4<Double>.self)
            c20.addProduct(y2, x0); c21.addProduct(y2, x1); c22.addProduct(y2, x2)
            let y3 = r.loadUnaligned(fromByteOffset: ai + 3 * stride + o, as: SIMD4<Double>.self)
            c30.addProduct(y3, x0); c31.addProduct(y3, x1); c32.addProduct(y3, x2)
            o += 32
        }
        @inline(__always) func put(_ t: Int, _ j: Int, _ s: SIMD4<Double>) {
            if k + j <= i0 + t { a[(i0 + t) * n + k + j] -= s.sum() }
        }
        put(0, 0, c00); put(0, 1, c01); put(0, 2, c02)
        put(1, 0, c10); put(1, 1, c11); put(1, 2, c12)
        put(2, 0, c20); put(2, 1, c21); put(2, 2, c22)
        put(3, 0, c30); put(3, 1, c31); put(3, 2, c32)
    }

    /// Quantizes W [rows, columns] (overwritten: each row ends holding the targets its codes were
    /// chosen for) into rows of this block type at dst (rowBytes apart), compensating the errors
    /// along v (`compensationFactor` of the input's second moments); importance [columns]: the
    /// column weights each block's scale is fitted with.
    public func encodeCompensated(
        _ w: UnsafeMutablePointer<Float>, rows: Int, columns n: Int, factor v: UnsafePointer<Float>,
        importance: UnsafePointer<Float>, into dst: UnsafeMutableRawPointer
    ) throws(QuantError) {
        guard traits.isQuantized else { throw .notFloatType(self) }
        let block = traits.blockSize, blockBytes = traits.bytesPerBlock
        guard n % block == 0 else { throw .rowNotBlockAligned(columns: n, blockSize: block) }
        let rowBytes = n / block * blockBytes
        let tileRows = Self.compensationTile, batch = Self.compensationBatch
        let original = UnsafeMutablePointer<Float>.allocate(capacity: tileRows * n)  // the tile's rows as given
        let errors = UnsafeMutablePointer<Float>.allocate(capacity: tileRows * batch)  // [tile, batch]: w − q
        let fitted = UnsafeMutablePointer<Float>.allocate(capacity: block)  // one block's fitting targets
        var codings = [(d: Float, m: Float, id: Float)](repeating: (0, 0, 0), count: tileRows)
        defer { original.deallocate(); errors.deallocate(); fitted.deallocate() }
        let lift = Self.blockLifts(v, n: n, block: block)
        defer { lift.deallocate() }
        for r0 in stride(from: 0, to: rows, by: tileRows) {
            let tile = min(tileRows, rows - r0)
            original.update(from: w + r0 * n, count: tile * n)
            for b0 in stride(from: 0, to: n, by: batch) {
                let b1 = min(n, b0 + batch)
                for i in b0..<b1 {
                    if i % block == 0 {
                        // Fit each row's block to GPTQ's targets for it: the sweep's targets t are
                        // exact for the column at hand only; the block's later columns need
                        // w + Xᵀ (t − w), X = (V_BB)⁻¹ of the block's own 32 or 256 columns (see blockLifts).
                        let l = lift + i / block * block * block
                        for t in 0..<tile {
                            let r = r0 + t, tr = w + r * n + i, wr = original + t * n + i
                            fitted.update(from: tr, count: block)
                            for k in 0..<block {  // fitted += Xᵀ (t − w), X unit upper: by rows of X
                                let m = tr[k] - wr[k], xk = l + k * block
                                if m == 0 { continue }
                                for j in (k + 1)..<block { fitted[j] += xk[j] * m }
                            }
                            try encodeRow(
                                fitted, columns: block, into: dst + r * rowBytes + i / block * blockBytes,
                                weights: importance + i)
                        }
                    }
                    let g = i - i % block
                    if i % 32 == 0 {  // each row's coding of this 32-column sub-block, read once
                        for t in 0..<tile {
                            codings[t] = subBlockCoding(
                                dst + (r0 + t) * rowBytes + g / block * blockBytes, sub: (i - g) / 32)
                        }
                    }
                    for t in 0..<tile {
                        errors[t * batch + i - b0] = original[t * n + i] - coded(w[(r0 + t) * n + i], codings[t])
                    }
                    // this batch's later columns at once
                    let vRow = v + i * n
                    for t in 0..<tile {
                        let e = errors[t * batch + i - b0]
                        if e == 0 { continue }
                        let row = w + (r0 + t) * n
                        for j in (i + 1)..<b1 { row[j] += e * vRow[j] }
                    }
                    if (i + 1) % block == 0 {
                        // Codes for the targets the sweep chose them for (the scales fitted above stay).
                        for r in r0..<(r0 + tile) {
                            recode(w + r * n + g, block: dst + r * rowBytes + g / block * blockBytes)
                        }
                    }
                }
                // the columns after the batch, by all its errors: W[t, j] += Σ_i E[t, i] V[b0 + i, j]
                if b1 < n {
                    Self.lazyUpdate(
                        w + r0 * n + b1, n, tile: tile, errors: errors, count: b1 - b0, batch: batch,
                        v: v + b0 * n + b1, columns: n - b1)
                }
            }
        }
    }

    /// For each block of `block` columns on V's diagonal, X = (V_BB)⁻¹ [block, block] (unit upper
    /// triangular, row-major; blocks one after the other).
    ///
    /// Why: once the columns before a block are quantized (errors δ), GPTQ's targets for the block's
    /// columns are the least-squares best values given them, w_B + (H_FF⁻¹ H_FQ δ)_B over the free
    /// columns F. With H + λI = V D Vᵀ that is w_B + (V_FF⁻ᵀ V_QFᵀ δ)_B = w_B + Xᵀ (t_B − w_B): the
    /// sweep's targets t_B = w_B + V_QBᵀ δ lifted by the block's own triangle (V_FF⁻ᵀ is lower
    /// triangular, so its top-left block is (V_BB)⁻ᵀ = Xᵀ). Fitting a block's scale to t_B instead
    /// cost q4_1 26 % and q6_0 40 % more output error than GPTQ's own form (CompensationTests).
    static func blockLifts(_ v: UnsafePointer<Float>, n: Int, block: Int) -> UnsafeMutablePointer<Float> {
        let out = UnsafeMutablePointer<Float>.allocate(capacity: n * block)
        let x = UnsafeMutablePointer<Double>.allocate(capacity: block * block)  // (V_BB)⁻¹, unit upper
        defer { x.deallocate() }
        for g in stride(from: 0, to: n, by: block) {
            x.initialize(repeating: 0, count: block * block)
            for c in 0..<block {
                x[c * block + c] = 1
                for r in stride(from: c - 1, through: 0, by: -1) {
                    var s = 0.0
                    for k in (r + 1)...c { s += Double(v[(g + r) * n + g + k]) * x[k * block + c] }
                    x[r * block + c] = -s
                }
            }
            let l = out + g / block * block * block
            for j in 0..<(block * block) { l[j] = Float(x[j]) }
        }
        return out
    }

    /// W [tile, columns] (rows n apart) += E [tile, count] (rows `batch` apart) · V [count, columns]
    /// (rows n apart): 4 rows x 16 columns of W per step, each V row segment loaded once for 4 rows.
    private static func lazyUpdate(
        _ w: UnsafeMutablePointer<Float>, _ n: Int, tile: Int, errors e: UnsafePointer<Float>, count: Int,
        batch: Int, v: UnsafePointer<Float>, columns: Int
    ) {
        let rv = UnsafeRawPointer(v)
        var t = 0
        while t < tile {
            let rows = min(4, tile - t)
            var j = 0
            if rows == 4 {
                while j + 16 <= columns {
                    let w0 = w + t * n + j
                    var a00 = SIMD8<Float>(), a01 = SIMD8<Float>(), a10 = SIMD8<Float>(), a11 = SIMD8<Float>()
                    var a20 = SIMD8<Float>(), a21 = SIMD8<Float>(), a30 = SIMD8<Float>(), a31 = SIMD8<Float>()
                    for i in 0..<count {
                        let o = 4 * (i * n + j)
                        let v0 = rv.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                        let v1 = rv.loadUnaligned(fromByteOffset: o + 32, as: SIMD8<Float>.self)
                        let e0 = SIMD8(repeating: e[t * batch + i]), e1 = SIMD8(repeating: e[(t + 1) * batch + i])
                        a00.addProduct(e0, v0); a01.addProduct(e0, v1); a10.addProduct(e1, v0); a11.addProduct(e1, v1)
                        let e2 = SIMD8(repeating: e[(t + 2) * batch + i]), e3 = SIMD8(repeating: e[(t + 3) * batch + i])
                        a20.addProduct(e2, v0); a21.addProduct(e2, v1); a30.addProduct(e3, v0); a31.addProduct(e3, v1)
                    }
                    @inline(__always) func add(_ p: UnsafeMutablePointer<Float>, _ x: SIMD8<Float>) {
                        let r = UnsafeMutableRawPointer(p)
                        r.storeBytes(of: r.loadUnaligned(as: SIMD8<Float>.self) + x, as: SIMD8<Float>.self)
                    }
                    add(w0, a00); add(w0 + 8, a01); add(w0 + n, a10); add(w0 + n + 8, a11)
                    add(w0 + 2 * n, a20); add(w0 + 2 * n + 8, a21); add(w0 + 3 * n, a30); add(w0 + 3 * n + 8, a31)
                    j += 16
                }
            }
            for r in t..<(t + rows) {
                for i in 0..<count {
                    let x = e[r * batch + i]
                    if x == 0 { continue }
                    let vr = v + i * n, row = w + r * n
                    for c in j..<columns { row[c] += x * vr[c] }
                }
            }
            t += rows
        }
    }

    /// How the elements of 32-column sub-block j of a stored block code: v -> m + d · code, with
    /// id = 1 / d (0 for d = 0) and m = 0 for the symmetric types.
    @inline(__always)
    func subBlockCoding(_ block: UnsafeRawPointer, sub j: Int) -> (d: Float, m: Float, id: Float) {
        switch self {
        case .q8_0, .q5_0, .q6_0:
            let d = loadF16(block)
            return (d, 0, d > 0 ? 1 / d : 0)
        case .q4_1:
            let d = loadF16(block)
            return (d, loadF16(block, at: 2), d > 0 ? 1 / d : 0)
        case .q4_k:
            let (d, dmin, f) = BlockQ4_K.fields(block)
            let s = d * Float(f[j]), mn = dmin * Float(f[8 + j])
            return (s, -mn, s > 0 ? 1 / s : 0)
        case .f32, .f16, .i64:
            return (1, 0, 1)
        }
    }

    /// The value v codes to under a sub-block's coding (subBlockCoding).
    @inline(__always)
    func coded(_ v: Float, _ c: (d: Float, m: Float, id: Float)) -> Float {
        switch self {
        case .q8_0: return c.d * BlockQ8_0.code(v, c.id)
        case .q5_0: return c.d * BlockQ5_0.code(v, c.id)
        case .q6_0: return c.d * BlockQ6_0.code(v, c.id)
        case .q4_1, .q4_k: return c.m.addingProduct(c.d, BlockQ4_1.quantCode(v, c.m, c.id))
        case .f32, .f16, .i64: return v
        }
    }

    /// The value v codes to in element e of a stored block (its scale / minimum as stored).
    public func roundTrip(_ v: Float, element e: Int, block: UnsafeRawPointer) -> Float {
        coded(v, subBlockCoding(block, sub: e / 32))
    }

    /// Rewrites the codes of a stored block for values x [blockSize], keeping its scale / minimum.
    public func recode(_ x: UnsafePointer<Float>, block: UnsafeMutableRawPointer) {
        switch self {
        case .q8_0:
            let d = loadF16(block), id: Float = d > 0 ? 1 / d : 0
            let qs = block.advanced(by: 2).assumingMemoryBound(to: Int8.self)
            for i in 0..<32 { qs[i] = Int8(BlockQ8_0.code(x[i], id)) }
        case .q5_0: BlockQ5_0.recode(x, block: block)
        case .q6_0: BlockQ6_0.recode(x, block: block)
        case .q4_1:
            let d = loadF16(block), m = loadF16(block, at: 2), id: Float = d > 0 ? 1 / d : 0
            let qs = block.advanced(by: 4).assumingMemoryBound(to: UInt8.self)
            for j in 0..<16 {
                qs[j] = UInt8(BlockQ4_1.quantCode(x[j], m, id)) | (UInt8(BlockQ4_1.quantCode(x[j + 16], m, id)) << 4)
            }
        case .q4_k:
            let d16 = Float16(bitPattern: UInt16(littleEndian: block.loadUnaligned(as: UInt16.self)))
            let dmin16 = Float16(
                bitPattern: UInt16(littleEndian: block.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
            BlockQ4_K.store(x, d16: d16, dmin16: dmin16, fields: BlockQ4_K.fields(block).sm, into: block)
        case .f32, .f16, .i64:
            break
        }
    }
}
