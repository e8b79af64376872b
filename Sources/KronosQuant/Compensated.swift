// Error-compensating quantization of a whole matrix (the method of GPTQ, Frantar et al. 2022, in
// our own code): given the second moments H = E[x xᵀ] of the rows a weight W [out, in] multiplies,
// each row's columns are quantized in order, and the rounding error of column i is spread over the
// columns not yet quantized so that the row's output Σ_j w_j x_j changes least on those inputs:
//
//     e = (w_i − q(w_i)) / U[i, i];   w_j −= e · U[i, j]  for j > i
//
// where U is the upper Cholesky factor of (H + λI)⁻¹ (λ = 1 % of H's mean diagonal: a column the
// calibration never saw active still gets a finite, well-conditioned update). Block types fit a
// block's scale / minimum when the sweep reaches it, to the row's values at that point
// (importance-weighted, Weighted.swift), then code each column against them; the stored block is
// the same layout a reader decodes for any bundle.
//
// Rows are independent: they go through the sweep `tileRows` at a time, so that each row of U is
// read once per tile rather than once per row.

extension TensorType {
    /// Rows swept together (each row of U read once for them).
    static let compensationTile = 16

    /// The upper Cholesky factor U [n, n] (row-major, zero below the diagonal) of (H + λI)⁻¹, λ = 1 %
    /// of H's mean diagonal, computed in f64; nil when the damped matrix is not positive definite
    /// (then the caller quantizes without compensation).
    ///
    /// With J the reversal of the index order: J (H + λI) J = L Lᵀ (lower L), so H + λI = R Rᵀ with
    /// R = J L J upper, and (H + λI)⁻¹ = R⁻ᵀ R⁻¹: U = R⁻¹ = J L⁻¹ J. Both steps run as row updates
    /// (a · x + y over contiguous rows, which vectorize) rather than dot products: the dot-product
    /// forms took minutes for Kronos-base's 2048-column inputs.
    public static func inverseCholesky(_ h: UnsafePointer<Float>, n: Int) -> [Float]? {
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
        // X = L⁻¹ (lower), row by row: X[i, ..<i] = −(Σ_k<i L[i, k] X[k, ..<i]) / L[i, i].
        let x = UnsafeMutablePointer<Double>.allocate(capacity: n * n)
        defer { x.deallocate() }
        x.initialize(repeating: 0, count: n * n)
        for i in 0..<n {
            let row = x + i * n
            for k in 0..<i {
                let l = a[i * n + k]
                if l == 0 { continue }
                let other = x + k * n
                for j in 0...k { row[j] -= l * other[j] }
            }
            let inverse = 1 / a[i * n + i]
            for j in 0..<i { row[j] *= inverse }
            row[i] = inverse
        }
        // U = J X J
        var u = [Float](repeating: 0, count: n * n)
        for i in 0..<n { for j in i..<n { u[i * n + j] = Float(x[(n - 1 - i) * n + (n - 1 - j)]) } }
        return u
    }

    /// In place: the lower Cholesky factor of a symmetric positive-definite a [n, n] (row-major,
    /// lower part read and written), by right-looking column steps whose trailing update runs over
    /// contiguous rows; false when a pivot is not positive.
    static func cholesky(_ a: UnsafeMutablePointer<Double>, _ n: Int) -> Bool {
        let column = UnsafeMutablePointer<Double>.allocate(capacity: n)
        defer { column.deallocate() }
        for j in 0..<n {
            let d = a[j * n + j]
            guard d > 0, d.isFinite else { return false }
            let l = d.squareRoot()
            a[j * n + j] = l
            let inverse = 1 / l
            for i in (j + 1)..<max(j + 1, n) {
                a[i * n + j] *= inverse
                column[i] = a[i * n + j]
            }
            // a[i, k] −= a[i, j] a[k, j] for j < k ≤ i
            for i in (j + 1)..<max(j + 1, n) {
                let lij = column[i]
                if lij == 0 { continue }
                let row = a + i * n
                for k in (j + 1)...i { row[k] -= lij * column[k] }
            }
        }
        return true
    }

    /// Quantizes W [rows, columns] (overwritten: each row ends holding the values its codes were
    /// chosen for) into rows of this block type at dst (rowBytes apart), compensating each column's
    /// error along u (`inverseCholesky` of the input's second moments); importance [columns]: the
    /// column weights each block's scale is fitted with.
    public func encodeCompensated(
        _ w: UnsafeMutablePointer<Float>, rows: Int, columns n: Int, u: UnsafePointer<Float>,
        importance: UnsafePointer<Float>, into dst: UnsafeMutableRawPointer
    ) throws(QuantError) {
        guard traits.isQuantized else { throw .notFloatType(self) }
        let block = traits.blockSize, blockBytes = traits.bytesPerBlock
        guard n % block == 0 else { throw .rowNotBlockAligned(columns: n, blockSize: block) }
        let rowBytes = n / block * blockBytes
        var errors = [Float](repeating: 0, count: Self.compensationTile)
        for r0 in stride(from: 0, to: rows, by: Self.compensationTile) {
            let tile = min(Self.compensationTile, rows - r0)
            for g in stride(from: 0, to: n, by: block) {
                // Fit the tile's blocks to their current values.
                for r in r0..<(r0 + tile) {
                    try encodeRow(
                        w + r * n + g, columns: block, into: dst + r * rowBytes + g / block * blockBytes,
                        weights: importance + g)
                }
                for i in g..<(g + block) {
                    let pivot = u[i * n + i]
                    for t in 0..<tile {
                        let r = r0 + t
                        let v = w[r * n + i]
                        let q = roundTrip(v, element: i - g, block: dst + r * rowBytes + g / block * blockBytes)
                        errors[t] = pivot > 0 ? (v - q) / pivot : 0
                    }
                    guard i + 1 < n else { continue }
                    let uRow = u + i * n
                    for t in 0..<tile {
                        let e = errors[t]
                        if e == 0 { continue }
                        let row = w + (r0 + t) * n
                        for j in (i + 1)..<n { row[j] -= e * uRow[j] }
                    }
                }
                // Codes for the values the sweep chose them for (the scales fitted above stay).
                for r in r0..<(r0 + tile) {
                    recode(w + r * n + g, block: dst + r * rowBytes + g / block * blockBytes)
                }
            }
        }
    }

    /// The value v codes to in element e of a stored block (its scale / minimum as stored).
    @inline(__always)
    func roundTrip(_ v: Float, element e: Int, block: UnsafeRawPointer) -> Float {
        switch self {
        case .q8_0:
            let d = loadF16(block), id: Float = d > 0 ? 1 / d : 0
            return d * BlockQ8_0.code(v, id)
        case .q5_0:
            let d = loadF16(block), id: Float = d > 0 ? 1 / d : 0
            return d * BlockQ5_0.code(v, id)
        case .q6_0:
            let d = loadF16(block), id: Float = d > 0 ? 1 / d : 0
            return d * BlockQ6_0.code(v, id)
        case .q4_1:
            let d = loadF16(block), m = loadF16(block, at: 2), id: Float = d > 0 ? 1 / d : 0
            return m.addingProduct(d, BlockQ4_1.quantCode(v, m, id))
        case .q4_k:
            let (d, dmin, f) = BlockQ4_K.fields(block)
            let j = e / 32
            let s = d * Float(f[j]), mn = dmin * Float(f[8 + j]), id: Float = s > 0 ? 1 / s : 0
            return (-mn).addingProduct(s, BlockQ4_1.quantCode(v, -mn, id))
        case .f32, .f16, .i64:
            return v
        }
    }

    /// Rewrites the codes of a stored block for values x [blockSize], keeping its scale / minimum.
    func recode(_ x: UnsafePointer<Float>, block: UnsafeMutableRawPointer) {
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
