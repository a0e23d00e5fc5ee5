"""Experiments on weighted real/synthetic training (theory/weighted.md), theory against simulation.

Kinds, each with [spectrum], [generators] (T0, sigma0), [downstream], [scan] and [simulation] (seeds, key):

* "golden_ratio": the generators' error after scan.generations (about stationary) against the real rows' loss
  weight w, for n_s/n_r in scan.ratios (theory lines, simulation markers at scan.weights, the optimum marked,
  the 1/phi line); the optimal w against T0/d (scan.T0_over_d, theory) and against the generators' ridge
  lambda (scan.lam: the isotropic DE's optimum, and the best simulated weight on scan.weights).
* "weighted_strategies": along a chain (scan.generations), the pooled fit against the weighted fit at the
  stationary optimum w*, for the regression chain (real fraction scan.real_fraction) and the Gaussian chain
  (M = scan.M points, the same real fraction).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax.engine import checks, plotting, protocol
from collapse_jax.engine.agreement import mean_sem
from collapse_jax.engine.protocol import ExperimentOutput, Summary, subkey
from collapse_jax.regression import optimize, theory
from collapse_jax.regression.optimize_experiments import OptimizeExperiment, read_problem
from collapse_jax.regression.simulate import simulate
from collapse_jax.regression.theory import weighted
from collapse_jax.regression.theory._common import float64

SCAN = {
    "golden_ratio": {"ratios", "weights", "generations", "T0_over_d", "lam"},
    "weighted_strategies": {"real_fraction", "generations", "M"},
}
PHI = (1 + 5**0.5) / 2


class WeightedExperiment(OptimizeExperiment):
    """A golden_ratio or weighted_strategies experiment: a problem and its [scan] table."""


def from_config(cfg: dict, default_name: str) -> WeightedExperiment:
    """The experiment of a golden_ratio or weighted_strategies file, its [scan] keys checked by name."""
    fields = read_problem(cfg, default_name, SCAN)
    gen = fields["gen"]
    if not isinstance(gen.T0, int):
        raise ValueError(f"[generators] T0 must be one integer here, got {gen.T0}")
    return WeightedExperiment(**fields)


register = protocol.family("regression", from_config)


def _reals(scan, key, default, lo=0.0, hi=None):
    values = np.asarray(scan.get(key, default), float)
    checks.real_array(f"scan.{key}", values, lo=lo, hi=hi, ndim=(1,))
    return values


def _split(T0, ratio):
    """real_fraction giving n_s/n_r = ratio, and the rounded counts (n_r, n_s)."""
    pi = 1.0 / (1.0 + ratio)
    n_r = float(np.round(pi * T0))
    return pi, n_r, T0 - n_r


@float64
def _theory_error(n_r, n_s, w, d, sigma, G):
    """The generators' error at generation G for weights w (array), constant sizes [DE]: c_G d."""
    # one program per shape of w for every ratio: eagerly, the fixed point's loop was traced, lowered and
    # compiled anew at every call (9 calls in golden_ratio), and each other operation was a program of its own
    return np.asarray(_theory_error_program(n_r, n_s, jnp.asarray(w, jnp.float64), d, sigma, G))


@functools.partial(jax.jit, static_argnames=("d", "G"))
def _theory_error_program(n_r, n_s, w, d, sigma, G):
    gamma, nu = weighted.step_factors(n_r, n_s, w, d)
    return sigma**2 * nu * (1 - gamma**G) / (1 - gamma) * d


@register("golden_ratio")
def _golden_ratio(exp, progress):
    d, T0, sigma = exp.spec.d, exp.gen.T0, float(np.asarray(exp.gen.sigma0))
    ratios = _reals(exp.scan, "ratios", [0.5, 1.0, 2.0], lo=0.0)
    weights = _reals(exp.scan, "weights", [0.2, 0.4, 0.5, 0.618, 0.7, 0.8, 0.9], lo=0.0, hi=1.0)
    G = checks.size("scan.generations", exp.scan.get("generations", 10), lo=1)
    sizes = _reals(exp.scan, "T0_over_d", [2, 3, 5, 10, 20, 50, 200], lo=1.0)
    lams = _reals(exp.scan, "lam", [0.0, 0.01, 0.1, 0.3, 1.0], lo=0.0)
    grid = np.linspace(0.02, 0.98, 193)
    fig, axs = plotting.panels(3, sharey=False)
    rows = [f"generators' error at generation {G} (about stationary) against w; theory: DE (theory/weighted.md)"]
    rows.append(f"{'n_s/n_r':>8} {'w* (theory)':>12} {'limit w*':>9} {'w* - 1/phi':>11} {'max |z|':>8}")
    sim = np.zeros((len(ratios), len(weights), exp.seeds))
    th_grid = np.zeros((len(ratios), len(grid)))
    th_at = np.zeros((len(ratios), len(weights)))
    best = np.zeros(len(ratios))
    zs = []
    for i, ratio in enumerate(ratios):
        pi, n_r, n_s = _split(T0, ratio)
        gen = dataclasses.replace(exp.gen, real_fraction=pi, real_weight=None)
        best[i] = float(optimize.real_weight(exp.spec, gen, exp.down).params["gen.real_weight"])
        th_grid[i] = _theory_error(n_r, n_s, grid, d, sigma, G)
        th_at[i] = _theory_error(n_r, n_s, weights, d, sigma, G)
        for j, w in enumerate(weights):
            g = dataclasses.replace(gen, real_weight=float(w))
            sim[i, j] = simulate(exp.spec, g, exp.down, G, exp.seeds, key=subkey(exp.key, 0, i)).generator_error[:, G]
        mean, sem = mean_sem(sim[i], axis=1)
        z = (mean - th_at[i]) / sem
        zs += list(np.abs(z))
        limit = float(weighted.limit_optimum(ratio))
        (line,) = axs[0].plot(grid, th_grid[i], label=f"$n_s/n_r$ = {ratio:g}")
        axs[0].errorbar(weights, mean, yerr=sem, fmt="o", color=line.get_color(), mfc="white")
        axs[0].plot(
            [best[i]], [float(_theory_error(n_r, n_s, best[i], d, sigma, G))], "*", color=line.get_color(), ms=12
        )
        rows.append(f"{ratio:>8g} {best[i]:>12.4f} {limit:>9.4f} {best[i] - 1 / PHI:>11.4f} {np.max(np.abs(z)):>8.2f}")
    axs[0].axvline(1 / PHI, color="k", lw=1, ls="--", label=r"$1/\varphi$")
    axs[0].set(xlabel="loss weight of the real rows $w$", ylabel=f"generator error at n = {G}", yscale="log")
    axs[0].set_title(f"d = {d}, T0 = {T0}")
    axs[0].legend(fontsize=8)

    # finite size: the theory's optimum at n_s = n_r for T0 = (T0/d) d
    w_size = np.zeros(len(sizes))
    for k, ratio_size in enumerate(sizes):
        T_k = round(ratio_size * d)
        if T_k < d + 2:
            raise ValueError(f"scan.T0_over_d must give T0 >= d + 2 = {d + 2}, got {ratio_size}")
        gen = dataclasses.replace(exp.gen, T0=T_k, real_fraction=0.5, real_weight=None)
        w_size[k] = float(optimize.real_weight(exp.spec, gen, exp.down).params["gen.real_weight"])
    axs[1].plot(sizes, w_size, "o-", label="optimum (theory, DE)")
    axs[1].axhline(1 / PHI, color="k", lw=1, ls="--", label=r"$1/\varphi$ (large-sample limit)")
    axs[1].set(xlabel="$T_0/d$", ylabel="optimal $w$", xscale="log", title="finite size, $n_s = n_r$")
    axs[1].legend(fontsize=8)
    rows.append(
        "optimal w at n_s = n_r against T0/d (theory): "
        + ", ".join(f"{s:g}: {w:.4f}" for s, w in zip(sizes, w_size, strict=True))
    )

    # ridge generators (isotropic DE): the theory's optimum against lambda, and the best simulated weight on the grid
    pi, n_r, n_s = _split(T0, 1.0)
    sim_lam = np.zeros((len(lams), len(weights), exp.seeds))
    w_lam, w_lam_theory = np.zeros(len(lams)), np.zeros(len(lams))
    for a, lam in enumerate(lams):
        ridge = float(lam) if lam > 0 else None
        gen = dataclasses.replace(exp.gen, real_fraction=pi, real_weight=None, lam=ridge)
        w_lam_theory[a] = float(optimize.real_weight(exp.spec, gen, exp.down).params["gen.real_weight"])
        for j, w in enumerate(weights):
            g = dataclasses.replace(gen, real_weight=float(w))
            sim_lam[a, j] = simulate(exp.spec, g, exp.down, G, exp.seeds, key=subkey(exp.key, 1, a)).generator_error[
                :, G
            ]
        w_lam[a] = weights[np.argmin(sim_lam[a].mean(axis=1))]
    shown = np.maximum(lams, lams[lams > 0].min() / 10 if np.any(lams > 0) else 1e-3)  # lambda = 0 at the left
    axs[2].plot(shown, w_lam_theory, "o-", label="optimum (theory, DE)")
    axs[2].plot(shown, w_lam, "s", mfc="white", label="best simulated $w$ on the grid")
    axs[2].axhline(1 / PHI, color="k", lw=1, ls="--")
    axs[2].set(
        xlabel=r"generators' ridge $\lambda$ (0 drawn at the left)",
        ylabel="optimal $w$",
        xscale="log",
        title="ridge generators, $n_s = n_r$",
    )
    axs[2].legend(fontsize=8)
    rows.append(
        "optimal w against the generators' lambda, theory / best simulated on the grid: "
        + ", ".join(f"{x:g}: {t:.3f} / {w:.3f}" for x, t, w in zip(lams, w_lam_theory, w_lam, strict=True))
    )
    fig.suptitle(exp.description or "The golden ratio: the optimal weight of the real rows")
    summary = Summary(
        "DE",
        max_abs_z=float(max(zs)),
        d=exp.spec.d,
        details=dict(
            optimum=dict(zip((f"{r:g}" for r in ratios), best.tolist(), strict=True)),
            optimum_vs_T0_over_d=w_size.tolist(),
            optimum_vs_lam=w_lam_theory.tolist(),
            simulated_optimum_vs_lam=w_lam.tolist(),
        ),
    )
    arrays = dict(
        ratios=ratios,
        weights=weights,
        w_grid=grid,
        generator_error=sim,
        theory_generator_error=th_at,
        theory_curve=th_grid,
        optimum=best,
        T0_over_d=sizes,
        optimum_vs_T0_over_d=w_size,
        lam=lams,
        generator_error_vs_lam=sim_lam,
        optimum_vs_lam=w_lam_theory,
        simulated_optimum_vs_lam=w_lam,
    )
    axes = dict(
        ratios=["ratio"],
        weights=["weight"],
        w_grid=["w"],
        generator_error=["ratio", "weight", "seed"],
        theory_generator_error=["ratio", "weight"],
        theory_curve=["ratio", "w"],
        optimum=["ratio"],
        T0_over_d=["size"],
        optimum_vs_T0_over_d=["size"],
        lam=["lam"],
        generator_error_vs_lam=["lam", "weight", "seed"],
        optimum_vs_lam=["lam"],
        simulated_optimum_vs_lam=["lam"],
    )
    return ExperimentOutput(arrays, axes, rows, summary, fig)


def _curve(ax, n, sim, theory_line, label):
    """Theory as a line and the seed mean +- 1 s.e. as markers of its colour; (mean, sem, z for n >= 1)."""
    mean, sem = mean_sem(sim)
    (line,) = ax.plot(n, theory_line, label=label)
    ax.errorbar(n, mean, yerr=sem, fmt="o", color=line.get_color(), mfc="white")
    return mean, sem, (mean[1:] - theory_line[1:]) / sem[1:]


@register("weighted_strategies")
def _strategies(exp, progress):
    from collapse_jax.distributions import gaussian_chain
    from collapse_jax.distributions import theory as dt

    G = checks.size("scan.generations", exp.scan.get("generations", 20), lo=1)
    pi = checks.fraction("scan.real_fraction", exp.scan.get("real_fraction", 0.5))
    M = checks.size("scan.M", exp.scan.get("M", 20), lo=2)
    n = np.arange(G + 1)
    gen = dataclasses.replace(exp.gen, real_fraction=pi, real_weight=None)
    w_star = float(optimize.real_weight(exp.spec, gen, exp.down).params["gen.real_weight"])
    n_r = float(np.round(pi * exp.gen.T0))
    layouts = {"pooled": None, f"weighted (w* = {w_star:.3f})": w_star}
    fig, axs = plotting.panels(2, sharey=False)
    rows = [f"regression: d = {exp.spec.d}, T0 = {exp.gen.T0}, pi = {pi}; pooled w = {n_r / exp.gen.T0:.3f}"]
    sims, ths, zs = [], [], []
    for label, w in layouts.items():
        g = dataclasses.replace(gen, real_weight=w)
        res = simulate(exp.spec, g, exp.down, G, exp.seeds, key=exp.key)
        th = theory.compiled_metrics(exp.spec, g, exp.down, n).test_error  # one program, not one per operation
        mean, sem, z = _curve(axs[0], n, res.test_error, th, f"{label}: {theory.formula_kind(exp.spec, g, exp.down)}")
        zs += list(np.abs(z))
        rows.append(
            f"{label:>24}: error at n = {G}: sim {mean[-1]:.4g} +- {sem[-1]:.2g}, theory {th[-1]:.4g}, max |z| {np.max(np.abs(z)):.2f}"
        )
        sims.append(res.test_error)
        ths.append(th)
    axs[0].set(xlabel="generation n", ylabel="downstream test error", title="regression chain")
    axs[0].legend(fontsize=8)
    r = round(pi * M)
    g_sims, g_ths = [], []
    for label, w in (("pooled", r / M), (r"weighted ($w = 1/\varphi$)", 1 / PHI)):
        out = gaussian_chain(key=exp.key, M=M, generations=G, seeds=exp.seeds, real_fraction=pi, real_weight=w)
        e, _ = dt.gaussian_weighted_moments(M, n, pi, w)
        sim = (out.mean - out.mean[:, :1]) ** 2
        mean, sem, z = _curve(axs[1], n, sim, e, f"{label}: exact")
        zs += list(np.abs(z))
        rows.append(
            f"Gaussian M = {M}, {label}: E(mu_n - mu_0)^2 at n = {G}: sim {mean[-1]:.4g}, exact {e[-1]:.4g}, max |z| {np.max(np.abs(z)):.2f}"
        )
        g_sims.append(sim)
        g_ths.append(e)
    axs[1].set(xlabel="generation n", ylabel=r"$E(\mu_n - \mu_0)^2$", title=f"Gaussian chain, M = {M}")
    axs[1].legend(fontsize=8)
    fig.suptitle(exp.description or "Weighted against pooled mixing of real data")
    # DE for the regression curves, exact for the Gaussian: the looser criterion judges both
    summary = Summary("DE", max_abs_z=float(max(zs)), d=exp.spec.d, details=dict(w_star=w_star))
    arrays = dict(
        n=n,
        test_error=np.stack(sims),
        theory_test_error=np.stack(ths),
        gaussian_mean_sq=np.stack(g_sims),
        theory_gaussian_mean_sq=np.stack(g_ths),
    )
    axes = dict(
        n=["n"],
        test_error=["layout", "seed", "n"],
        theory_test_error=["layout", "n"],
        gaussian_mean_sq=["layout", "seed", "n"],
        theory_gaussian_mean_sq=["layout", "n"],
    )
    return ExperimentOutput(arrays, axes, rows, summary, fig)
