// Forecast scores of a backtest (kronos-run backtest): point errors, proper scores of sample paths and of
// the baselines' closed-form distributions, quantile coverage and PIT. Pure functions of their arguments,
// in Double. Each is checked against figures computed independently (tools/eval_reference.py: numpy,
// scipy, properscoring, statsmodels, run once; the figures in tools/eval_reference.json).
import Foundation

public enum Scores {
    /// Quantile `level` in [0, 1] of ascending `sorted` values (type 7, numpy's default "linear":
    /// position level · (n - 1), interpolated between its neighbours).
    public static func quantile(sorted: [Double], level: Double) -> Double {
        precondition(!sorted.isEmpty && level >= 0 && level <= 1)
        let h = level * Double(sorted.count - 1)
        let lo = Int(h.rounded(.down)), hi = min(lo + 1, sorted.count - 1)
        return sorted[lo] + (h - Double(lo)) * (sorted[hi] - sorted[lo])
    }

    /// CRPS of the ensemble's empirical distribution for the outcome y:
    /// mean |X_i - y| - (1 / 2m²) Σ_i Σ_j |X_i - X_j| (as properscoring's crps_ensemble). The pair sum
    /// from the sorted values: Σ_i Σ_j |x_i - x_j| = 2 Σ_k (2k - m - 1) x_(k), k = 1 ... m.
    public static func crps(sorted: [Double], outcome y: Double) -> Double {
        precondition(!sorted.isEmpty)
        let m = Double(sorted.count)
        var spread = 0.0, miss = 0.0
        for (k, x) in sorted.enumerated() {
            miss += abs(x - y)
            spread += (2 * Double(k + 1) - m - 1) * x
        }
        return miss / m - spread / (m * m)
    }

    /// Pinball loss of the quantile forecast q at `level` for the outcome y:
    /// level · (y - q) when y >= q, (1 - level) · (q - y) otherwise.
    public static func quantileLoss(_ q: Double, outcome y: Double, level: Double) -> Double {
        y >= q ? level * (y - q) : (1 - level) * (q - y)
    }

    /// Probability integral transform of y under the ensemble: the share of values below y, ties
    /// counted half (so a y equal to every value gives 0.5, not 0 or 1).
    public static func pit(sorted: [Double], outcome y: Double) -> Double {
        precondition(!sorted.isEmpty)
        let below = lowerBound(sorted, y), notAbove = upperBound(sorted, y)
        return (Double(below) + 0.5 * Double(notAbove - below)) / Double(sorted.count)
    }

    /// Standard normal density and distribution function.
    public static func phi(_ z: Double) -> Double { exp(-0.5 * z * z) / (2 * Double.pi).squareRoot() }
    public static func Phi(_ z: Double) -> Double { 0.5 * erfc(-z / 2.0.squareRoot()) }

    /// CRPS of N(mu, sigma²) for y (Gneiting and Raftery 2007): sigma · [z (2Φ(z) - 1) + 2φ(z) - 1/√π],
    /// z = (y - mu) / sigma; |y - mu| when sigma is 0.
    public static func normalCRPS(mean mu: Double, sd sigma: Double, outcome y: Double) -> Double {
        guard sigma > 0 else { return abs(y - mu) }
        let z = (y - mu) / sigma
        return sigma * (z * (2 * Phi(z) - 1) + 2 * phi(z) - 1 / Double.pi.squareRoot())
    }

    /// CRPS of the log-normal distribution exp(N(mu, sigma²)) for y > 0 (Baran and Lerch 2015):
    /// y (2Φ(z) - 1) - 2 e^(mu + sigma²/2) [Φ(z - sigma) + Φ(sigma / √2) - 1], z = (ln y - mu) / sigma;
    /// |y - e^mu| when sigma is 0.
    public static func logNormalCRPS(mu: Double, sigma: Double, outcome y: Double) -> Double {
        guard sigma > 0 else { return abs(y - exp(mu)) }
        guard y > 0 else { return exp(mu + sigma * sigma / 2) - y }  // the whole mass lies above y
        let z = (log(y) - mu) / sigma
        return y * (2 * Phi(z) - 1) - 2 * exp(mu + sigma * sigma / 2)
            * (Phi(z - sigma) + Phi(sigma / 2.0.squareRoot()) - 1)
    }

    /// Standard normal quantile (Acklam's rational approximation, relative error below 1.2e-9, refined
    /// by one Halley step on Φ to the precision of erfc).
    public static func inversePhi(_ p: Double) -> Double {
        precondition(p > 0 && p < 1)
        let a = [
            -3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02,
            -3.066479806614716e+01, 2.506628277459239e+00,
        ]
        let b = [
            -5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01,
            -1.328068155288572e+01,
        ]
        let c = [
            -7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00,
            4.374664141464968e+00, 2.938163982698783e+00,
        ]
        let d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00]
        var x: Double
        if p < 0.02425 {
            let q = (-2 * log(p)).squareRoot()
            x =
                (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5])
                / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        } else if p <= 1 - 0.02425 {
            let q = p - 0.5, r = q * q
            x =
                (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
                / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
        } else {
            let q = (-2 * log(1 - p)).squareRoot()
            x =
                -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5])
                / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        }
        let e = Phi(x) - p, u = e * (2 * Double.pi).squareRoot() * exp(x * x / 2)
        x -= u / (1 + x * u / 2)
        return x
    }

    /// Index of the first value >= y / > y in ascending `sorted`.
    static func lowerBound(_ sorted: [Double], _ y: Double) -> Int {
        var lo = 0, hi = sorted.count
        while lo < hi { let mid = (lo + hi) / 2; if sorted[mid] < y { lo = mid + 1 } else { hi = mid } }
        return lo
    }
    static func upperBound(_ sorted: [Double], _ y: Double) -> Int {
        var lo = 0, hi = sorted.count
        while lo < hi { let mid = (lo + hi) / 2; if sorted[mid] <= y { lo = mid + 1 } else { hi = mid } }
        return lo
    }
}

/// The Diebold-Mariano test of equal predictive accuracy: d_t = loss of A - loss of B at origin t (in
/// time order), its mean over T origins, and the variance of that mean by Newey and West (Bartlett
/// weights 1 - k / (L + 1) up to lag L), since overlapping horizons correlate neighbouring origins:
/// Var(d̄) = (γ_0 + 2 Σ_{k=1}^{L} (1 - k / (L + 1)) γ_k) / T, γ_k = (1/T) Σ_{t=k}^{T-1} (d_t - d̄)(d_{t-k} - d̄).
/// The statistic d̄ / sd(d̄) is compared with the standard normal (two-sided p-value, 95 % interval).
public struct DieboldMariano: Sendable, Equatable, Codable {
    public let origins: Int
    public let lag: Int
    public let meanDifference: Double
    public let standardError: Double
    public let statistic: Double
    public let pValue: Double
    public let lower95: Double
    public let upper95: Double

    /// nil with fewer than 2 differences, or when they do not vary (no test to make).
    public init?(differences d: [Double], lag: Int) {
        let T = d.count
        guard T >= 2, lag >= 0 else { return nil }
        let mean = d.reduce(0, +) / Double(T)
        func gamma(_ k: Int) -> Double {
            var s = 0.0
            for t in k..<T { s += (d[t] - mean) * (d[t - k] - mean) }
            return s / Double(T)
        }
        let L = min(lag, T - 1)
        var v = gamma(0)
        if L >= 1 { for k in 1...L { v += 2 * (1 - Double(k) / Double(L + 1)) * gamma(k) } }
        guard v > 0 else { return nil }
        let se = (v / Double(T)).squareRoot()
        origins = T
        self.lag = L
        meanDifference = mean
        standardError = se
        statistic = mean / se
        pValue = 2 * (1 - Scores.Phi(abs(mean / se)))
        let z = Scores.inversePhi(0.975)
        lower95 = mean - z * se
        upper95 = mean + z * se
    }
}
