import Foundation
import Testing

import KronosEval

/// tools/eval_reference.json: inputs and the figures numpy / scipy / properscoring / statsmodels gave
/// for them (tools/eval_reference.py, run once offline).
private struct Reference: Decodable {
    struct Ensemble: Decodable {
        let samples: [Double], outcome: Double, crps: Double, levels: [Double], quantiles: [Double]
        let pinball: [Double], pit: Double
    }
    struct Normal: Decodable { let mean: Double, sd: Double, outcome: Double, crps: Double }
    struct LogNormal: Decodable { let mu: Double, sigma: Double, outcome: Double, crps: Double }
    struct DM: Decodable {
        let differences: [Double], lag: Int, mean: Double, standard_error: Double, statistic: Double
        let p_value: Double, lower95: Double, upper95: Double
    }
    struct Quantile: Decodable { let p: Double, z: Double }
    let ensembles: [Ensemble], normal: [Normal], lognormal: [LogNormal], diebold_mariano: [DM]
    let normal_quantiles: [Quantile]

    static let shared: Reference = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("tools/eval_reference.json")
        return try! JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
    }()
}

/// Relative closeness for figures computed in another order (Double throughout).
private func close(_ a: Double, _ b: Double, _ tolerance: Double = 1e-12) -> Bool {
    abs(a - b) <= tolerance * max(1, abs(a), abs(b))
}

@Suite struct ScoresTests {
    /// Two members and the outcome between them, worked by hand: CRPS = mean|X - y| - |x1 - x2| / 4.
    @Test func handWorkedCases() {
        // X = {1, 3}, y = 2: mean|X - y| = 1, (1 / 2·4)·(2 + 2) = 0.5 -> 0.5.
        #expect(Scores.crps(sorted: [1, 3], outcome: 2) == 0.5)
        // One member: the absolute error.
        #expect(Scores.crps(sorted: [5], outcome: 2) == 3)
        // Type-7 quantiles of {1, 2, 3, 4}: 0.5 -> 2.5, 0.25 -> 1.75, 0 and 1 the extremes.
        #expect(Scores.quantile(sorted: [1, 2, 3, 4], level: 0.5) == 2.5)
        #expect(Scores.quantile(sorted: [1, 2, 3, 4], level: 0.25) == 1.75)
        #expect(Scores.quantile(sorted: [1, 2, 3, 4], level: 1) == 4)
        // PIT: 2 of 4 below, 1 tie counted half -> 2.5 / 4.
        #expect(Scores.pit(sorted: [1, 2, 3, 4], outcome: 3) == 0.625)
        // Pinball at 0.9: under-forecast by 2 costs 1.8, over-forecast by 2 costs 0.2.
        #expect(close(Scores.quantileLoss(8, outcome: 10, level: 0.9), 1.8))
        #expect(close(Scores.quantileLoss(12, outcome: 10, level: 0.9), 0.2))
        // Degenerate distributions are the absolute error.
        #expect(Scores.normalCRPS(mean: 3, sd: 0, outcome: 1) == 2)
        #expect(Scores.logNormalCRPS(mu: log(4), sigma: 0, outcome: 1) == 3)
    }

    @Test func ensemblesMatchProperscoringAndNumpy() {
        let r = Reference.shared
        #expect(r.ensembles.count == 7)
        for e in r.ensembles {
            let s = e.samples.sorted()
            #expect(close(Scores.crps(sorted: s, outcome: e.outcome), e.crps), "crps of \(e.samples.count) members")
            for (level, q) in zip(e.levels, e.quantiles) {
                #expect(close(Scores.quantile(sorted: s, level: level), q), "quantile \(level)")
            }
            for (level, loss) in zip(e.levels, e.pinball) {
                let q = Scores.quantile(sorted: s, level: level)
                #expect(close(Scores.quantileLoss(q, outcome: e.outcome, level: level), loss, 1e-9))
            }
            #expect(Scores.pit(sorted: s, outcome: e.outcome) == e.pit)
        }
    }

    @Test func closedFormsMatchProperscoringAndQuadrature() {
        let r = Reference.shared
        for n in r.normal {
            #expect(close(Scores.normalCRPS(mean: n.mean, sd: n.sd, outcome: n.outcome), n.crps, 1e-10))
        }
        #expect(r.lognormal.count == 4)
        for l in r.lognormal {
            // Against numerical integration of the definition (scipy quad, 1e-12).
            let c = Scores.logNormalCRPS(mu: l.mu, sigma: l.sigma, outcome: l.outcome)
            #expect(close(c, l.crps, 1e-8), "log-normal (\(l.mu), \(l.sigma)) at \(l.outcome): \(c) vs \(l.crps)")
        }
        for q in r.normal_quantiles {
            #expect(close(Scores.inversePhi(q.p), q.z, 1e-10), "Φ⁻¹(\(q.p))")
        }
    }

    @Test func dieboldMarianoMatchesStatsmodelsHAC() throws {
        let r = Reference.shared
        #expect(r.diebold_mariano.count == 4)
        for c in r.diebold_mariano {
            let dm = try #require(DieboldMariano(differences: c.differences, lag: c.lag))
            #expect(close(dm.meanDifference, c.mean))
            #expect(close(dm.standardError, c.standard_error, 1e-10), "lag \(c.lag): \(dm.standardError)")
            #expect(close(dm.statistic, c.statistic, 1e-9))
            #expect(close(dm.pValue, c.p_value, 1e-8))
            #expect(close(dm.lower95, c.lower95, 1e-9) && close(dm.upper95, c.upper95, 1e-9))
        }
        #expect(DieboldMariano(differences: [1, 1, 1], lag: 1) == nil)  // no variation: no test
    }
}
