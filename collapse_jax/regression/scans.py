"""The computations behind experiments: simulation beside theory on a grid, as named-axis arrays.

Each scan returns (arrays, axes, rows): arrays for `io.save`, their axis names, and one printable row per
curve (largest |z|, relative error, and for T-scans the fitted log-log slopes beside the predicted exponent).
"""

from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np

from collapse_jax.engine.compilation_cache import stored_closure
from collapse_jax.engine.progress import reporter
from collapse_jax.regression import regularization, theory
from collapse_jax.regression.problem import Downstream, Generators
from collapse_jax.regression.simulate import simulate, simulate_lambdas
from collapse_jax.regression.spectra import Spectrum


def lambda_scan(
    spec: Spectrum,
    gen: Generators,
    down: Downstream,
    lams,
    generations: int,
    seeds: int,
    key: int,
    sampler: str = "auto",
    progress: bool = True,
):
    """Error for every (lambda, n): simulation (lam, seed, n) and theory (lam, n)."""
    say, t0 = reporter(progress), time.perf_counter()
    # Same key for every lambda (common random numbers): smoother curves, each point still exact; and one program
    # for all of them, which draws what does not depend on lambda once per seed.
    sims = simulate_lambdas(spec, gen, down, lams, generations, seeds, key=key, sampler=sampler, progress=progress)
    say(f"  {len(lams)} lambdas: {time.perf_counter() - t0:.1f}s")
    th = theory_over_lambda(spec, gen, down, lams, np.arange(generations + 1))
    arrays = dict(
        test_error=np.stack([r.test_error for r in sims]),
        generator_error=np.stack([r.generator_error for r in sims]),
        theory_test_error=th.test_error,
        theory_generator_error=th.generator_error,
        lam=np.asarray(lams),
        n=np.arange(generations + 1),
    )
    axes = dict(
        test_error=["lam", "seed", "n"],
        generator_error=["lam", "seed", "n"],
        theory_test_error=["lam", "n"],
        theory_generator_error=["lam", "n"],
        lam=["lam"],
        n=["n"],
    )
    return arrays, axes, sims[0].config


def theory_over_lambda(spec, gen, down, lams, ns) -> theory.Metrics:
    """Theory metrics of shape (len(lams), len(ns)), vmapped over lambda (one compiled evaluation: under a bare
    vmap every operation of the theory would be dispatched, and compiled, on its own, ~200 programs)."""
    one = lambda lam: theory.metrics(spec, gen, dataclasses.replace(down, lam=lam), np.asarray(ns))
    program = stored_closure("scans.theory_over_lambda", jax.vmap(one), (spec, gen, down, ns))
    return jax.tree.map(np.asarray, program(jax.numpy.asarray(lams)))


def schedule(rule, spec, gen, down, beta=None, r=None):
    """A lambda schedule (T, n) -> lam from an experiment's rule: a number, "crit" (T^-ell_crit), "naive",
    "adaptive", or {power_law = [c, ell]} (ell may be "crit")."""
    if isinstance(rule, (int, float)):
        return lambda T, n=0: float(rule)
    if rule in ("naive", "adaptive"):
        return getattr(regularization, rule)(spec, gen, down)
    if rule == "crit":
        rule = {"power_law": [1.0, "crit"]}
    if isinstance(rule, dict) and "power_law" in rule:
        c, ell = rule["power_law"]
        if ell == "crit":
            if beta is None:
                raise ValueError("lambda rule 'crit' needs a power-law spectrum (spectrum.beta and spectrum.r)")
            ell = float(theory.ell_crit(beta, r))
        return regularization.power_law(float(c), float(ell))
    raise ValueError(
        f"scan.rules entries must be a number, 'crit', 'naive', 'adaptive' or {{power_law = [c, ell]}}, got {rule!r}"
    )


def predicted_exponent(rule, beta, r, noisy: bool):
    """The exponent of E_test in T that theory/powerlaw.md predicts for a rule (None where it predicts none)."""
    if beta is None or beta <= 1:
        return None
    if rule == "crit" or (isinstance(rule, dict) and "power_law" in rule):
        ell = theory.ell_crit(beta, r) if rule == "crit" or rule["power_law"][1] == "crit" else rule["power_law"][1]
        return float(theory.error_exponent(beta, r, ell, noisy))
    if rule == "adaptive":
        return float(theory.slow_exponent(beta, r) if noisy else theory.fast_exponent(beta, r))
    return None


def rule_label(rule, mathtext: bool = True) -> str:
    """How a lambda rule reads: mathtext for figures, plain text (mathtext=False) for progress lines."""
    if isinstance(rule, dict):
        c, ell = rule["power_law"]
        if not mathtext:
            return f"λ = {c:g} T^-{'ℓcrit' if ell == 'crit' else format(ell, 'g')}"
        ell = r"\ell_{crit}" if ell == "crit" else f"{ell:g}"
        return rf"$\lambda = {c:g}\,T^{{-{ell}}}$"
    crit = r"$\lambda = T^{-\ell_{crit}}$" if mathtext else "λ = T^-ℓcrit"
    named = {"crit": crit, "naive": "naive λ (best for n=0)", "adaptive": "adaptive λ"}
    return named.get(rule, f"λ = {rule}")


def T_scan(spec, gen, down, Ts, rules, generations, seeds, key, sampler="auto", beta=None, r=None, progress=True):
    """Error against T for each lambda rule: simulation (rule, T, seed, n), theory and lambda (rule, T, n)."""
    say, t0 = reporter(progress), time.perf_counter()
    test, theo, lam_used = [], [], []
    for rule in rules:
        per_T = []
        for T in Ts:
            d = dataclasses.replace(down, T=int(T))
            sched = schedule(rule, spec, gen, d, beta, r)
            d = dataclasses.replace(d, lam=sched).resolved(generations)
            res = simulate(spec, gen, d, generations, seeds, key=key, sampler=sampler)
            th = theory.metrics(spec, gen, d, np.arange(generations + 1))
            per_T.append((res.test_error, np.asarray(th.test_error), np.asarray(d.lam)))
            say(f"  {rule_label(rule, mathtext=False)}, T = {T}: {time.perf_counter() - t0:.1f}s")
        test.append(np.stack([p[0] for p in per_T]))
        theo.append(np.stack([p[1] for p in per_T]))
        lam_used.append(np.stack([p[2] for p in per_T]))
    arrays = dict(
        test_error=np.stack(test),
        theory_test_error=np.stack(theo),
        lam=np.stack(lam_used),
        T=np.asarray(Ts),
        n=np.arange(generations + 1),
        rule=np.arange(len(rules)),
    )
    axes = dict(
        test_error=["rule", "T", "seed", "n"],
        theory_test_error=["rule", "T", "n"],
        lam=["rule", "T", "n"],
        T=["T"],
        n=["n"],
        rule=["rule"],
    )
    return arrays, axes


def theory_over_T(spec, gen, down, rule, Ts, ns, beta=None, r=None):
    """Theory curve (len(ns), len(Ts)) for a rule on a fine T grid (for the figure's lines)."""
    out = []
    for T in Ts:
        d = dataclasses.replace(down, T=int(T))
        d = dataclasses.replace(d, lam=schedule(rule, spec, gen, d, beta, r))
        out.append(np.asarray(theory.metrics(spec, gen, d, np.asarray(ns)).test_error))
    return np.stack(out, axis=1)


def loglog_slope(x, y) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def optimal_lambda_scan(
    spec, gen, down, Ts, ns, seeds, key, span=2.0, points=7, sampler="auto", progress=True, bootstrap=200
):
    """lambda*(T, n): theory (T, n) and the argmin of the simulated error on a lambda grid around it.

    For each (T, n) a local geometric grid lambda*(T, n) * span^[-1..1] (`points` values) is simulated, all
    grids of one T together and with common random numbers (every simulation gives every n); a parabola in
    log lambda through a grid gives the simulated argmin, and a bootstrap over seeds its standard error.
    The grid is local on purpose: a parabola through a wide span of an asymmetric U-curve is biased (a
    span of x10 put the argmin 10-13% low at n = 0, several bootstrap standard errors).
    """
    say, t0 = reporter(progress), time.perf_counter()
    generations = max(ns)
    ns = np.asarray(ns)
    lam_theory = np.stack([np.asarray(regularization.optimal_lambda(spec, gen, down, ns, T=float(T))) for T in Ts])
    lam_sim, lam_sem, lam_grid_th = (np.zeros_like(lam_theory) for _ in range(3))
    rng = np.random.default_rng(key)
    offsets = span ** np.linspace(-1, 1, points)
    for i, T in enumerate(Ts):
        d = dataclasses.replace(down, T=int(T))
        grid = np.outer(lam_theory[i], offsets)  # (n, points)
        runs = simulate_lambdas(spec, gen, d, grid.ravel(), generations, seeds, key=key, sampler=sampler)
        errs = np.stack([r.test_error for r in runs])
        errs = errs.reshape(grid.shape + errs.shape[1:])  # (n, points, seed, generation)
        for j, n in enumerate(ns):
            e = errs[j, :, :, n]
            lam_sim[i, j] = _parabola_argmin(grid[j], e.mean(1))
            curve = theory_over_lambda(spec, gen, d, grid[j], [n]).test_error[:, 0]
            lam_grid_th[i, j] = _parabola_argmin(grid[j], curve)
            boots = [_parabola_argmin(grid[j], e[:, rng.integers(0, seeds, seeds)].mean(1)) for _ in range(bootstrap)]
            lam_sem[i, j] = np.std(np.log(boots))  # standard error of log lambda*
        say(f"  T = {T}: {time.perf_counter() - t0:.1f}s")
    arrays = dict(
        lam_theory=lam_theory,
        lam_theory_grid=lam_grid_th,
        lam_sim=lam_sim,
        log_lam_sim_sem=lam_sem,
        T=np.asarray(Ts),
        n=ns,
    )
    axes = dict(
        lam_theory=["T", "n"],
        lam_theory_grid=["T", "n"],
        lam_sim=["T", "n"],
        log_lam_sim_sem=["T", "n"],
        T=["T"],
        n=["n"],
    )
    return arrays, axes


def _parabola_argmin(grid, mean):
    """Argmin of a parabola in log lambda fitted to the grid (clipped to it)."""
    x = np.log(grid)
    a, b, _ = np.polyfit(x, mean, 2)
    u = -b / (2 * a) if a > 0 else x[np.argmin(mean)]
    return float(np.exp(np.clip(u, x[0], x[-1])))
