// Importance-weighted quantizers: the same block layouts as BlockQ8_0 / BlockQ4_1 / BlockQ4_K (a
// reader cannot tell them apart), with each block's scale and minimum chosen to minimise
//
//     Σ_i w_i (x_i − x̂_i)²
//
// instead of the plain squared error. w_i is the importance of element i: the mean square of the
// activation its input column multiplies (the converter's importance matrix, collected by running
// the f32 model over calibration candles), so that the error of a row's output, Σ_i (x_i − x̂_i) a_i,
// is small on the inputs the model actually sees. Codes stay the nearest level for the chosen
// (scale, minimum): for a fixed pair the weighted error separates per element.
//
// The search per block: the plain min/max grid, then `weightedSearchSteps` trial inverse scales
// spanning 14 ... 16 levels over the range; for each the codes it gives, the weighted least-squares
// (scale, minimum) for those codes, and up to `weightedRefinements` rounds of "codes for the pair,
// refit the pair" from the best; the pair with the smallest weighted error wins.

import CKronosHints

/// Candidate inverse scales per block of the weighted search (14 ... 16 levels in steps of 0.1).
public let weightedSearchSteps = 21
/// Rounds of codes-then-refit from the best candidate.
let weightedRefinements = 3

/// Weighted sums of one block against a set of codes, and the least-squares affine pair.
@usableFromInline
struct WeightedFit {
    var w: Float = 0, wq: Float = 0, wqq: Float = 0, wx: Float = 0, wxq: Float = 0

    /// (d, m) minimising Σ w (x − d q − m)²; with `minimumAtMostZero` the minimum is held ≤ 0 (the
    /// q4_k sub-blocks store −m ≥ 0). nil when the codes do not determine a positive scale.
    func pair(minimumAtMostZero: Bool) -> (Float, Float)? {
        let det = w * wqq - wq * wq
        guard det > 0, w > 0 else { return nil }
        var d = (w * wxq - wq * wx) / det
        var m = (wx - d * wq) / w
        if minimumAtMostZero && m > 0 {
            guard wqq > 0 else { return nil }
            m = 0; d = wxq / wqq
        }
        guard d > 0, d.isFinite, m.isFinite else { return nil }
        return (d, m)
    }
}

extension BlockQ4_1 {
    // The two loops of the search run on 8-lane vectors (4 per block): a scalar search was 40 % of
    // a calibrated Kronos-base conversion.

    /// The codes of (m, 1/d) for 8 values: quantCode, lane by lane.
    @inline(__always)
    static func quantCodes(_ x: SIMD8<Float>, _ m: Float, _ id: Float) -> SIMD8<Float> {
        // (kronos_clamp8f: the standard library's pointwise min / max are not inlined)
        kronos_clamp8f((x - m) * id + 0.5, SIMD8(repeating: 0), SIMD8(repeating: 15)).rounded(.towardZero)
    }

    @inline(__always)
    static func lanes(_ p: UnsafePointer<Float>, _ c: Int) -> SIMD8<Float> {
        UnsafeRawPointer(p + 8 * c).loadUnaligned(as: SIMD8<Float>.self)
    }

    /// Weighted sums of x [count] with weights w [count] against the codes of (m, 1/d).
    @inline(__always)
    static func weightedFit(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, m: Float, id: Float) -> WeightedFit {
        var sw = SIMD8<Float>(), swq = sw, swqq = sw, swx = sw, swxq = sw
        for c in 0..<(count / 8) {
            let xv = lanes(x, c), wv = lanes(w, c)
            let q = quantCodes(xv, m, id), wq = wv * q
            sw += wv; swq += wq; swqq += wq * q; swx += wv * xv; swxq += wq * xv
        }
        return WeightedFit(w: sw.sum(), wq: swq.sum(), wqq: swqq.sum(), wx: swx.sum(), wxq: swxq.sum())
    }

    /// Σ w (x − (d q + m))² with q the codes of (d, m).
    @inline(__always)
    static func weightedError(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, d: Float, m: Float) -> Float {
        let id: Float = d > 0 ? 1 / d : 0
        var e = SIMD8<Float>()
        for c in 0..<(count / 8) {
            let xv = lanes(x, c)
            let r = xv - (d * quantCodes(xv, m, id) + m)
            e += lanes(w, c) * r * r
        }
        return e.sum()
    }

    /// The weighted search of this file's header over one block: x, w [32] -> the best (d, m), each
    /// passed through `round` (f16 for q4_1's stored pair, identity for q4_k's f32 sub-block search)
    /// before it is scored; nil when the range is not finite.
    static func searchWeighted(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, minimumAtMostZero: Bool,
        round: (Float, Float) -> (Float, Float)?
    ) -> (Float, Float)? {
        var lo = x[0], hi = x[0]
        for i in 1..<count { lo = min(lo, x[i]); hi = max(hi, x[i]) }
        guard lo.isFinite, hi.isFinite, (hi - lo).isFinite else { return nil }
        let lo0 = minimumAtMostZero ? min(lo, 0) : lo
        guard hi > lo0 else { return round(0, lo0) }
        var best: (Float, Float)?, bestError = Float.infinity
        func consider(_ d: Float, _ m: Float) {
            guard let (rd, rm) = round(d, m) else { return }
            let e = weightedError(x, w, d: rd, m: rm)
            if e < bestError { best = (rd, rm); bestError = e }
        }
        consider((hi - lo0) / 15, lo0)
        for step in 0..<weightedSearchSteps {
            let levels = 14 + 2 * Float(step) / Float(weightedSearchSteps - 1)
            if let (d, m) = weightedFit(x, w, m: lo0, id: levels / (hi - lo0)).pair(
                minimumAtMostZero: minimumAtMostZero)
            {
                consider(d, m)
            }
        }
        for _ in 0..<weightedRefinements {
            guard let (d, m) = best,
                let (d2, m2) = weightedFit(x, w, m: m, id: 1 / d).pair(minimumAtMostZero: minimumAtMostZero)
            else { break }
            let before = bestError
            consider(d2, m2)
            if !(bestError < before) { break }
        }
        return best
    }

    /// Importance-weighted quantizer for one block: x, w [32] -> block [20 bytes] (the layout of
    /// `quantize`). Returns false when the block's range cannot be represented with f16 d and m.
    @discardableResult
    public static func quantize(
        _ x: UnsafePointer<Float>, weights w: UnsafePointer<Float>, into block: UnsafeMutableRawPointer
    ) -> Bool {
        var lo = x[0], hi = x[0]
        for i in 1..<count { lo = min(lo, x[i]); hi = max(hi, x[i]) }
        guard abs(lo) <= float16Max, abs(hi) <= float16Max, (hi - lo) / 15 <= float16Max else { return false }
        let pair = searchWeighted(x, w, minimumAtMostZero: false) { d, m in
            guard d <= float16Max, abs(m) <= float16Max else { return nil }
            return (Float(Float16(d)), Float(Float16(m)))
        }
        let (d, m) = pair ?? (0, Float(Float16(lo)))
        block.storeBytes(of: Float16(d).bitPattern.littleEndian, toByteOffset: 0, as: UInt16.self)
        block.storeBytes(of: Float16(m).bitPattern.littleEndian, toByteOffset: 2, as: UInt16.self)
        let qs = block.advanced(by: 4).assumingMemoryBound(to: UInt8.self)
        let id: Float = d > 0 ? 1 / d : 0
        for j in 0..<16 {
            qs[j] = UInt8(quantCode(x[j], m, id)) | (UInt8(quantCode(x[j + 16], m, id)) << 4)
        }
        return true
    }
}

extension BlockQ4_K {
    /// Importance-weighted quantizer for one super-block: x, w [256] -> block [144 bytes] (the layout
    /// of `quantize`): weighted sub-block searches, then each sub-block's 6-bit scale and minimum
    /// chosen among ±2 of the nearest by weighted error.
    @discardableResult
    public static func quantize(
        _ x: UnsafePointer<Float>, weights w: UnsafePointer<Float>, into block: UnsafeMutableRawPointer
    ) -> Bool {
        var scales = SIMD8<Float>(), offsets = SIMD8<Float>()
        for j in 0..<subBlocks {
            guard
                let (s, m) = BlockQ4_1.searchWeighted(
                    x + 32 * j, w + 32 * j, minimumAtMostZero: true, round: { ($0, $1) })
            else { return false }
            scales[j] = s; offsets[j] = 0 - m  // 0 - m: never a negative zero
        }
        return finish(x, scales: scales, offsets: offsets, radius: 2, into: block) { j, s, mn in
            BlockQ4_1.weightedError(x + 32 * j, w + 32 * j, d: s, m: -mn)
        }
    }
}

extension BlockQ8_0 {
    /// Importance-weighted quantizer for one block: x, w [32] -> block [34 bytes] (the layout of
    /// `quantize`). Candidate scales absmax / (127 + t) for t in −2 ... 12 (larger ones clip the
    /// largest values, which pays where those carry little weight) and the weighted least-squares
    /// refit of each, scored after rounding to f16.
    @discardableResult
    public static func quantize(
        _ x: UnsafePointer<Float>, weights w: UnsafePointer<Float>, into block: UnsafeMutableRawPointer
    ) -> Bool {
        var amax: Float = 0
        for i in 0..<count { amax = max(amax, abs(x[i])) }
        guard amax / 127 <= float16Max else { return false }
        var best = Float(Float16(amax / 127)), bestError = Float.infinity
        // 8-lane vectors, 4 per block (BlockQ4_1.lanes); codes as `code`, lane by lane
        @inline(__always) func codes(_ v: SIMD8<Float>, _ id: Float) -> SIMD8<Float> {
            kronos_clamp8f((v * id).rounded(.toNearestOrAwayFromZero), SIMD8(repeating: -127), SIMD8(repeating: 127))
        }
        func consider(_ d: Float) {
            guard d > 0, d <= float16Max else { return }
            let d16 = Float(Float16(d)), id = 1 / d16
            var e = SIMD8<Float>()
            for c in 0..<(count / 8) {
                let xv = BlockQ4_1.lanes(x, c), r = xv - d16 * codes(xv, id)
                e += BlockQ4_1.lanes(w, c) * r * r
            }
            let error = e.sum()
            if error < bestError { best = d16; bestError = error }
        }
        if amax > 0 {
            for t in -2...12 {
                let d = amax / (127 + Float(t))
                consider(d)
                var wxq = SIMD8<Float>(), wqq = SIMD8<Float>()
                for c in 0..<(count / 8) {
                    let xv = BlockQ4_1.lanes(x, c), q = codes(xv, 1 / d), wq = BlockQ4_1.lanes(w, c) * q
                    wxq += wq * xv; wqq += wq * q
                }
                if wqq.sum() > 0 { consider(wxq.sum() / wqq.sum()) }
            }
        }
        let d = amax > 0 ? best : 0
        let id: Float = d > 0 ? 1 / d : 0
        block.storeBytes(of: Float16(d).bitPattern.littleEndian, toByteOffset: 0, as: UInt16.self)
        let qs = block.advanced(by: 2).assumingMemoryBound(to: Int8.self)
        for i in 0..<count { qs[i] = Int8(code(x[i], id)) }
        return true
    }
}
