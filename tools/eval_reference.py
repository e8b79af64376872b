#!/usr/bin/env python3
"""Reference figures for the backtest's scores (Tests/KronosEvalTests), computed with numpy, scipy,
properscoring and statsmodels, independently of the Swift code. Run once offline; its output is
committed as tools/eval_reference.json (inputs and expected values together):

    pip install numpy scipy properscoring statsmodels
    python3 tools/eval_reference.py > tools/eval_reference.json
"""
import json

import numpy as np
import properscoring as ps
import scipy.integrate
import scipy.stats
import statsmodels.api as sm

rng = np.random.default_rng(20261202)
out = {"ensembles": [], "normal": [], "lognormal": [], "diebold_mariano": [], "normal_quantiles": []}

# Ensembles: sizes 1, 2, 5, 20, 100; outcomes inside, outside and on a member; ties.
for m, y_kind in [(1, "out"), (2, "in"), (5, "in"), (5, "tie"), (20, "out"), (100, "in"), (7, "member")]:
    x = rng.normal(100, 5, size=m).round(3)
    if y_kind == "tie":
        x[1] = x[3] = x[0]
    y = {"out": lambda: float(x.max() + 3.5), "in": lambda: float(np.median(x) + 0.25),
         "tie": lambda: float(x[0]), "member": lambda: float(x[2])}[y_kind]()
    levels = [0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0]
    pit = (np.sum(x < y) + 0.5 * np.sum(x == y)) / m
    out["ensembles"].append({
        "samples": x.tolist(), "outcome": y,
        "crps": float(ps.crps_ensemble(y, x)),
        "levels": levels, "quantiles": [float(np.quantile(x, q, method="linear")) for q in levels],
        "pinball": [float(np.mean(np.maximum(q * (y - np.quantile(x, q)), (q - 1) * (y - np.quantile(x, q)))))
                    for q in levels],
        "pit": float(pit),
    })

for mu, sd, y in [(0.0, 1.0, 0.3), (100.0, 5.0, 91.0), (-2.0, 0.1, -2.0), (50.0, 20.0, 120.0)]:
    out["normal"].append({"mean": mu, "sd": sd, "outcome": y, "crps": float(ps.crps_gaussian(y, mu, sd))})

# Log-normal CRPS by numerical integration of (F(x) - 1{x >= y})^2 (not the closed form).
for mu, sigma, y in [(np.log(100), 0.02, 101.0), (np.log(100), 0.2, 80.0), (np.log(65000), 0.05, 70000.0),
                     (0.0, 1.0, 2.5)]:
    dist = scipy.stats.lognorm(s=sigma, scale=np.exp(mu))
    lo = scipy.integrate.quad(lambda t: dist.cdf(t) ** 2, 0, y, limit=500, epsabs=1e-12, epsrel=1e-12)[0]
    hi = scipy.integrate.quad(lambda t: dist.sf(t) ** 2, y, np.inf, limit=500, epsabs=1e-12, epsrel=1e-12)[0]
    out["lognormal"].append({"mu": float(mu), "sigma": sigma, "outcome": y, "crps": lo + hi})

# Diebold-Mariano: the mean of d and its Newey-West standard error (statsmodels OLS on a constant, HAC
# with Bartlett weights, no small-sample correction), on autocorrelated differences (MA(3)).
for T, lag, shift in [(40, 0, 0.0), (200, 5, 0.05), (640, 47, -0.02), (25, 3, 0.3)]:
    e = rng.normal(size=T + 3)
    d = (e[3:] + 0.6 * e[2:-1] + 0.3 * e[1:-2] + 0.1 * e[:-3]) * 0.2 + shift
    fit = sm.OLS(d, np.ones(T)).fit(cov_type="HAC", cov_kwds={"maxlags": lag, "use_correction": False})
    se = float(fit.bse[0])
    stat = float(d.mean() / se)
    out["diebold_mariano"].append({
        "differences": d.tolist(), "lag": lag, "mean": float(d.mean()), "standard_error": se,
        "statistic": stat, "p_value": float(2 * scipy.stats.norm.sf(abs(stat))),
        "lower95": float(d.mean() - scipy.stats.norm.ppf(0.975) * se),
        "upper95": float(d.mean() + scipy.stats.norm.ppf(0.975) * se),
    })

for p in [1e-10, 0.001, 0.02, 0.025, 0.3, 0.5, 0.9, 0.975, 0.99, 1 - 1e-9]:
    out["normal_quantiles"].append({"p": p, "z": float(scipy.stats.norm.ppf(p))})

print(json.dumps(out, indent=1))
