// Calibration's second moments: whatever the observations' sizes, the mean of x xᵀ over every row.
import KronosCalibrate
import Testing

@Suite struct ActivationStatisticsTests {
    /// |M − mean x xᵀ| / max |mean x xᵀ|: f32 Grams of up to 512 rows summed in f64.
    static let momentError = 1e-6

    /// Rows in observations of 1 to 300 rows (a prefill's chunks, a step's one row): every row
    /// counts once, whether it went into a batch's Gram at once or waited with other small ones, in a
    /// finished batch or in the one still open at the end; weights that share
    /// an input (k, v beside q) are named but not counted twice; the matrices are symmetric.
    @Test func momentsAreTheMeanOfEveryRowSeen() {
        let n = 24
        let chunks = [128, 128, 100, 1, 1, 16, 300, 7, 128, 1]
        var state: UInt64 = 41
        func values(_ count: Int) -> [Float] {  // SplitMix64, uniform in [-1, 1), columns scaled apart
            (0..<count).map { k in
                state &+= 0x9E37_79B9_7F4A_7C15
                var z = state
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                z ^= z >> 31
                return (Float(z >> 40) / Float(1 << 23) - 1) * Float(1 + k % n)
            }
        }
        let statistics = ActivationStatistics()
        // the upper triangle, written or added to, as the engine's Gram does
        let gram: ActivationStatistics.Gram = { y, rows, g, accumulate in
            for i in 0..<n {
                for j in i..<n {
                    var s: Float = accumulate ? g[i * n + j] : 0
                    for r in 0..<rows { s += y[r * n + i] * y[r * n + j] }
                    g[i * n + j] = s
                }
            }
        }
        var all = [Float]()
        for rows in chunks {
            let x = values(rows * n)
            all += x
            for name in ["p/t.0.self_attn.q_proj.weight", "p/t.0.self_attn.k_proj.weight"] {
                x.withUnsafeBufferPointer {
                    statistics.observe(name, $0.baseAddress!, rows: rows, columns: n, gram: gram)
                }
            }
        }
        let total = chunks.reduce(0, +)
        let (moments, counts, weights) = statistics.result()
        #expect(weights == ["p/t.0.self_attn.q_proj.weight", "p/t.0.self_attn.k_proj.weight"])
        #expect(counts == ["p/t.0.self_attn.q_proj.weight": total])
        guard let m = moments["p/t.0.self_attn.q_proj.weight"], m.count == n * n else {
            Issue.record("no moments for the input")
            return
        }
        var worst = 0.0, scale = 0.0
        for i in 0..<n {
            for j in 0..<n {
                var e = 0.0
                for r in 0..<total { e += Double(all[r * n + i]) * Double(all[r * n + j]) }
                e /= Double(total)
                let d = abs(Double(m[i * n + j]) - e)
                worst = d.isNaN ? .infinity : max(worst, d)
                scale = max(scale, abs(e))
                #expect(m[i * n + j] == m[j * n + i], "not symmetric at \(i), \(j)")
            }
        }
        #expect(worst <= Self.momentError * scale, "moments off by \(worst) of \(scale)")
    }
}
