"""Experiments on distribution chains: TOML -> chains -> closed forms -> table, arrays and figure.

Kinds (`kind = ...` at the top of the file), each with a [chain] table and a [simulation] table (seeds, key):

* "gaussian_chain": Shumailov's figure, root-mean-square |mu_n - mu_0| and |sigma_n - sigma_0| against
  generation for several M (chain.M = [...], chain.estimator), log x.
* "gaussian_w2": E W2^2 against generation for the MLE and the unbiased fit, for several M.
* "kde_chain": Borji's KDE chains: densities at chosen generations, and the variance, W2^2 and KL against
  generation for several bandwidths (chain.bandwidths), on a Gaussian and on a Gaussian-plus-uniform start.
* "bootstrap": distinct original values and collision probability against generation for several M.
* "discrete": ||p^(m) - p^(1)||^2 and total variation with and without real data mixed in (chain.synthetic).
* "gaussian_strategies": Kazdan et al.'s Gaussian: E||mu_G - mu_0||^2 and E tr Sigma_G / tr Sigma_0 against the
  samples per generation M, one panel per dimension (chain.d), a colour per data strategy (chain.strategies,
  chain.real_fraction).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from collapse_jax.distributions import distances, theory
from collapse_jax.distributions.bootstrap import bootstrap_chain
from collapse_jax.distributions.discrete import discrete_chain
from collapse_jax.distributions.gaussian import gaussian_chain
from collapse_jax.distributions.kde import Mixture, kde_chain
from collapse_jax.engine import checks, plotting
from collapse_jax.engine.header import Header, read_header
from collapse_jax.engine.strategies import STRATEGIES
from collapse_jax.engine.strategies import strategy as declared

# the [chain] table of each kind: every key a runner reads, with its type (collapse_jax.engine.checks.table)
CHAIN_KEYS = {
    "gaussian_chain": {"M": "ints", "generations": "int", "estimator": "str"},
    "gaussian_w2": {"M": "ints", "generations": "int"},
    "kde_chain": {"M": "int", "generations": "int", "bandwidths": "list", "keep": "ints"},
    "bootstrap": {"M": "ints", "generations": "int"},
    "discrete": {"p": "reals", "N": "int", "generations": "int", "synthetic": "ints"},
    "gaussian_strategies": {
        "d": "ints",
        "M": "ints",
        "generations": "int",
        "estimator": "str",
        "strategies": "strs",
        "real_fraction": "reals",
        "chunk_size": "int",
    },
}
KINDS = tuple(CHAIN_KEYS)


@dataclasses.dataclass(frozen=True)
class DistributionExperiment(Header):
    chain: dict


def from_config(cfg: dict, default_name: str) -> DistributionExperiment:
    head = read_header(cfg, default_name, {"chain"}, seeds=1000)
    return DistributionExperiment(**head, chain=checks.table(cfg.get("chain", {}), CHAIN_KEYS[cfg["kind"]], "[chain]"))


def runner(kind: str):
    return {
        "gaussian_chain": _gaussian_chain,
        "gaussian_w2": _gaussian_w2,
        "kde_chain": _kde_chain,
        "bootstrap": _bootstrap,
        "discrete": _discrete,
        "gaussian_strategies": _gaussian_strategies,
    }[kind]


def _log_grid(G, points=40):
    """Generations 0..G, log-spaced above 1 (the figures use a log x axis)."""
    return np.unique(np.concatenate([[0, 1], np.geomspace(1, G, points).round().astype(int)]))


def _mean_sem(x):
    return x.mean(0), x.std(0, ddof=1) / np.sqrt(x.shape[0])


def _zmax(x, th):
    """Largest |z| of the seed mean against theory. A constant column (every chain fixed, say) has no standard
    error; it counts as agreeing when the difference is below one seed's share of the mean."""
    m, s = _mean_sem(x)
    resolution = np.where(s > 0, s, (1 + np.abs(th)) / x.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(np.abs(m - th) <= 1e-12 * (1 + np.abs(th)), 0.0, (m - th) / resolution)
    return float(np.abs(z).max())


def _rms(x):
    """sqrt(mean x^2) and its standard error (delta method)."""
    m, s = _mean_sem(x**2)
    r = np.sqrt(m)
    return r, s / (2 * np.where(r > 0, r, 1))


def _reliable(M, ns, estimator):
    """Where the seed mean of sigma_n^2 can be trusted: the spread of log sigma_n^2 below 1. Beyond it the mean
    is carried by rare paths and falls below the expectation (the typical sigma_n collapses, the mean does not),
    so z-scores there measure the heavy tail, not the formula. Returns (mask, spread at the last n)."""
    spread = np.sqrt(theory.gaussian_log_var(M, ns, estimator)[1])
    return spread < 1, spread[-1]


def _gaussian_chain(exp, progress):
    c = exp.chain
    Ms, G, est = (
        [int(m) for m in c.get("M", [100, 500, 1000, 10000])],
        int(c.get("generations", 1000)),
        c.get("estimator", "unbiased"),
    )
    ns = _log_grid(G)
    arrays, rows, zs = (
        dict(n=ns, M=np.asarray(Ms)),
        [
            f"{'M':>6} {'max |z| E(mu_n-mu0)^2':>23} "
            f"{'max |z| E(sigma_n-sigma0)^2':>28} {'(all n)':>8} "
            f"{'sd log sigma_G^2':>17} {'sigma_G median':>15}"
        ],
        [],
    )
    fig, axs = plotting.panels(2, sharey=False)
    lines: dict[str, list] = dict(mu=[], sd=[])
    for i, M in enumerate(Ms):
        out = gaussian_chain(M, G, exp.seeds, key=exp.key + i, estimator=est, progress=progress)
        dmu, dsd = out.mean[:, ns], np.sqrt(out.var[:, ns]) - 1.0
        th_mu = theory.gaussian_mean_var(M, ns, est)
        th_sd = theory.gaussian_var_mean(M, ns, est) - 2 * theory.gaussian_sd_mean(M, ns, est) + 1
        ok, spread = _reliable(M, ns, est)
        z = (_zmax(dmu[:, ok] ** 2, th_mu[ok]), _zmax(dsd[:, ok] ** 2, th_sd[ok]))
        zs += list(z)
        rows.append(
            f"{M:>6} {z[0]:>23.2f} {z[1]:>28.2f} {_zmax(dsd**2, th_sd):>8.2f} {spread:>17.2f} "
            f"{np.median(np.sqrt(out.var[:, -1])):>15.3g}"
        )
        arrays |= {f"mu_M{M}": out.mean[:, ns], f"sigma_M{M}": np.sqrt(out.var[:, ns])}
        for key, x, th in (("mu", dmu, th_mu), ("sd", dsd, th_sd)):
            lines[key].append((np.sqrt(th), *_rms(x)))
    for ax, key, label in zip(
        axs, ("mu", "sd"), (r"$|\mu_n - \mu_0|$ (rms)", r"$|\sigma_n - \sigma_0|$ (rms)"), strict=True
    ):
        th, m, s = (np.stack([ln[j] for ln in lines[key]]) for j in range(3))
        plotting.theory_vs_simulation(
            ns[1:],
            th[:, 1:],
            ns[1:],
            m[:, 1:],
            s[:, 1:],
            [f"M = {M}" for M in Ms],
            xlabel="generation n",
            ylabel=label,
            title=label,
            ax=ax,
        )
    fig.suptitle(exp.description or f"Gaussian fit-and-resample ({est})")
    axes = {k: (["M"] if k == "M" else ["n"] if k == "n" else ["seed", "n"]) for k in arrays}
    return arrays, axes, rows, dict(max_abs_z=max(zs)), fig


def _gaussian_w2(exp, progress):
    c = exp.chain
    Ms, G = [int(m) for m in c.get("M", [20, 100])], int(c.get("generations", 200))
    ns = _log_grid(G)
    fig, ax = plotting.panels(1)
    ax = ax[0]
    # z where the seed mean is reliable (see _reliable), and over all n
    rows, zs, pairs, curves = (
        [
            f"{'M':>5} {'estimator':>10} {'max |z| (sd<1)':>15} {'max |z| all n':>14} "
            f"{'sd log sigma_G^2':>17} {'E W2^2 at n = G':>16} {'theory':>8}"
        ],
        [],
        [],
        [],
    )
    for i, M in enumerate(Ms):
        for est in ("mle", "unbiased"):
            out = gaussian_chain(M, G, exp.seeds, key=exp.key + i, estimator=est, progress=progress)
            w2 = np.asarray(distances.w2sq_gaussian(0.0, 1.0, out.mean[:, ns], out.var[:, ns]))
            th = theory.gaussian_w2(M, ns, est)
            ok, spread = _reliable(M, ns, est)
            zs.append(_zmax(w2[:, ok], th[ok]))
            rows.append(
                f"{M:>5} {est:>10} {zs[-1]:>15.2f} {_zmax(w2, th):>14.2f} {spread:>17.2f} "
                f"{w2[:, -1].mean():>16.4g} {th[-1]:>8.4g}"
            )
            pairs.append((w2, th))
            curves.append((f"M = {M}, {est}", th, *_mean_sem(w2)))
    labels, th, m, s = zip(*curves, strict=True)
    plotting.theory_vs_simulation(
        ns[1:],
        np.stack(th)[:, 1:],
        ns[1:],
        np.stack(m)[:, 1:],
        np.stack(s)[:, 1:],
        labels,
        xlabel="generation n",
        ylabel=r"E $W_2^2$",
        title=exp.description or "MLE against unbiased: E W2^2",
        ax=ax,
    )
    shape = (len(Ms), 2)  # (M, estimator), the configuration as axes with coordinates, not in key names
    w2, w2_th = (np.stack(v).reshape(shape + v[0].shape) for v in zip(*pairs, strict=True))
    arrays = dict(w2sq=w2, theory_w2sq=w2_th, n=ns, M=np.asarray(Ms), estimator=np.array(["mle", "unbiased"]))
    axes = dict(
        w2sq=["M", "estimator", "seed", "n"],
        theory_w2sq=["M", "estimator", "n"],
        n=["n"],
        M=["M"],
        estimator=["estimator"],
    )
    return arrays, axes, rows, dict(max_abs_z=max(zs), formula="exact"), fig


def _bandwidth(b):
    return b if isinstance(b, str) else float(b)


def _kde_chain(exp, progress):
    c = exp.chain
    M, G = int(c.get("M", 500)), int(c.get("generations", 200))
    bws = [_bandwidth(b) for b in c.get("bandwidths", [0.05, 0.2, "silverman"])]
    keep = tuple(int(k) for k in c.get("keep", [0, 10, 50, G]))
    starts = {"Gaussian": Mixture.gaussian(), "Gaussian + uniform": Mixture.gaussian_uniform()}
    measure = _log_grid(G, 25)
    import matplotlib.pyplot as plt

    with plotting.style():
        fig, axs = plt.subplots(2, 4, figsize=(16, 7.5))
    rows = [f"{'start':>18} {'bandwidth':>10} {'max |z| E s_n^2':>16} {'W2^2 at n=G':>12} {'KL at n=G':>10}"]
    zs, stats = [], dict[str, list](var=[], w2sq=[], kl=[])
    for r, (start_name, init) in enumerate(starts.items()):
        for i, bw in enumerate(bws):
            out = kde_chain(
                M,
                G,
                exp.seeds,
                key=exp.key + 10 * r + i,
                bandwidth=bw,
                init=init,
                keep=keep,
                measure=measure,
                progress=progress,
            )
            n = out.generations
            th = theory.kde_var(M, n, init.var()[0], bw)
            zs.append(_zmax(out.var[:, :, 0], th))
            rows.append(
                f"{start_name:>18} {bw!s:>10} {zs[-1]:>16.2f} {out.w2sq[:, -1].mean():>12.4g} "
                f"{out.kl[:, -1].mean():>10.4g}"
            )
            for k, v in (("var", out.var[:, :, 0]), ("w2sq", out.w2sq), ("kl", out.kl)):
                stats[k].append(v)
            colour = f"C{i}"
            for ax, y, name in (
                (axs[r, 1], out.var[:, :, 0], "variance"),
                (axs[r, 2], out.w2sq, r"$W_2^2$"),
                (axs[r, 3], out.kl, "KL (nearest neighbour)"),
            ):
                m, s = _mean_sem(y)
                ax.errorbar(n[1:], m[1:], yerr=s[1:], fmt="o", color=colour, mfc="white", ms=4, label=f"h = {bw}")
                ax.set(
                    xscale="log",
                    yscale="log" if name != "KL (nearest neighbour)" else "linear",
                    xlabel="generation n",
                    ylabel=name,
                    title=f"{start_name}: {name.split(' (')[0]}",
                )
            axs[r, 1].plot(n[1:], th[1:], color=colour)
            if i == 0:  # one chain's sample at the kept generations, for the first bandwidth (Borji's picture)
                x = out.samples[0, :, :, 0]
                grid = np.linspace(x.min(), x.max(), 60)
                for j, g in enumerate(keep):
                    axs[r, 0].hist(x[j], bins=grid, density=True, histtype="step", label=f"n = {g}")
                axs[r, 0].set(xlabel="x", ylabel="density", title=f"{start_name}: one chain, h = {bw}")
                axs[r, 0].legend(fontsize=7)
        axs[r, 1].plot([], [], "k-", label="theory")
        for ax in axs[r, 1:]:  # every panel with markers says what they are
            ax.legend(fontsize=7)
    fig.suptitle(exp.description or "KDE chains")
    fig.tight_layout()
    # one array per statistic over (start, bandwidth, seed, n); n holds every generation measured or kept
    arrays = {k: np.stack(v).reshape((len(starts), len(bws)) + v[0].shape) for k, v in stats.items()}
    axes = {k: ["start", "bandwidth", "seed", "n"] for k in arrays}
    arrays |= dict(n=n, start=np.array(list(starts)), bandwidth=np.array([str(b) for b in bws]))
    axes |= dict(n=["n"], start=["start"], bandwidth=["bandwidth"])
    # E s_n^2 is exact for a fixed h and for a rule h = f s alike (the recursion is linear in s^2)
    return arrays, axes, rows, dict(max_abs_z=max(zs), formula="exact"), fig


def _bootstrap(exp, progress):
    c = exp.chain
    Ms, G = [int(m) for m in c.get("M", [50, 200, 1000])], int(c.get("generations", 1000))
    t = _log_grid(G)
    fig, axs = plotting.panels(2, sharey=False)
    rows = [
        f"{'M':>6} {'max |z| distinct':>17} {'max |z| collision':>18} {'fixed by G':>11} "
        f"{'mean time (fixed chains)':>25} {'2M(1-1/M)':>10}"
    ]
    arrays, zs, curves = dict(t=t), [], dict[str, list](distinct=[], collision=[])
    for i, M in enumerate(Ms):
        out = bootstrap_chain(M, G, exp.seeds, key=exp.key + i, progress=progress)
        th_d, th_c = theory.distinct_mean(M, t), theory.collision_mean(M, t)
        z = (_zmax(out.distinct[:, t], th_d), _zmax(out.collision[:, t], th_c))
        zs += list(z)
        fixed = out.fixation_time > 0
        rows.append(
            f"{M:>6} {z[0]:>17.2f} {z[1]:>18.2f} {fixed.mean():>11.1%} "
            f"{out.fixation_time[fixed].mean() if fixed.any() else float('nan'):>25.1f} "
            f"{theory.fixation_time(M)[0]:>10.1f}"
        )
        arrays |= {f"distinct_M{M}": out.distinct[:, t], f"collision_M{M}": out.collision[:, t]}
        curves["distinct"].append((th_d / M, *(v / M for v in _mean_sem(out.distinct[:, t]))))
        curves["collision"].append((th_c, *_mean_sem(out.collision[:, t])))
    for ax, key, label in zip(axs, curves, ("distinct values / M", r"collision probability $\sum p_i^2$"), strict=True):
        th, m, s = (np.stack([cv[j] for cv in curves[key]]) for j in range(3))
        plotting.theory_vs_simulation(
            t[1:],
            th[:, 1:],
            t[1:],
            m[:, 1:],
            s[:, 1:],
            [f"M = {M}" for M in Ms],
            xlabel="generation t",
            ylabel=label,
            title=label,
            ax=ax,
        )
    axs[0].plot(t[1:], 2 / (t[1:] + 2), color="0.6", lw=1, ls="--", label="2/(t+2)")
    axs[0].legend(fontsize=8)
    fig.suptitle(exp.description or "Resampling the empirical distribution (Wright-Fisher)")
    axes = {k: (["t"] if k == "t" else ["seed", "t"]) for k in arrays}
    return arrays, axes, rows, dict(max_abs_z=max(zs)), fig


def _discrete(exp, progress):
    c = exp.chain
    p = np.asarray(c.get("p", [0.4, 0.25, 0.15, 0.1, 0.05, 0.05]), float)
    N, G = int(c.get("N", 50)), int(c.get("generations", 300))
    options = [None] + [int(s) for s in c.get("synthetic", [25, 50, 200])]
    m = _log_grid(G)
    fig, axs = plotting.panels(2, sharey=False)
    rows = [
        f"{'synthetic':>10} {'max |z|':>8} {'dev at G':>9} {'theory':>9} {'limit':>9} {'TV at G':>8} "
        f"{'categories left':>16}"
    ]
    arrays, zs, curves = dict(m=m), [], []
    for i, s in enumerate(options):
        out = discrete_chain(p, N, G, exp.seeds, key=exp.key + i, synthetic=s, progress=progress)
        dev = np.sum((out.probs[:, m] - out.probs[:, 1:2]) ** 2, -1)
        th = theory.discrete_deviation(p, N, m, s)
        zs.append(_zmax(dev[:, 1:], th[1:]))
        limit = "-" if s is None else f"{theory.discrete_deviation_limit(p, N, s):.3g}"
        rows.append(
            f"{'none' if s is None else s:>10} {zs[-1]:>8.2f} {dev[:, -1].mean():>9.3g} {th[-1]:>9.3g} "
            f"{limit:>9} {out.tv[:, -1].mean():>8.3f} {out.support[:, -1].mean():>16.2f}"
        )
        arrays |= {f"deviation_s{s}": dev, f"tv_s{s}": out.tv[:, m]}
        curves.append(
            (
                "no real data" if s is None else f"N = {N} real + {s} synthetic",
                th,
                *_mean_sem(dev),
                *_mean_sem(out.tv[:, m]),
            )
        )
    labels, th, m_dev, s_dev, m_tv, s_tv = zip(*curves, strict=True)
    plotting.theory_vs_simulation(
        m[2:],
        np.stack(th)[:, 2:],
        m[2:],
        np.stack(m_dev)[:, 2:],
        np.stack(s_dev)[:, 2:],
        labels,
        xlabel="generation m",
        ylabel=r"$\|p^{(m)} - p^{(1)}\|^2$",
        title="deviation from the first fit",
        ax=axs[0],
    )
    for i, label in enumerate(labels):
        axs[1].errorbar(m[1:], m_tv[i][1:], yerr=s_tv[i][1:], fmt="o-", ms=3, mfc="white", label=label)
    axs[1].set(xscale="log", xlabel="generation m", ylabel="total variation to p", title="TV to the true p")
    axs[1].legend(fontsize=8)
    fig.suptitle(exp.description or "Discrete distributions, with and without real data")
    axes = {k: (["m"] if k == "m" else ["seed", "m"]) for k in arrays}
    return arrays, axes, rows, dict(max_abs_z=max(zs)), fig


def _gaussian_strategies(exp, progress):
    c = exp.chain
    dims, Ms = [int(d) for d in c.get("d", [1, 10])], np.asarray([int(m) for m in c.get("M", [10, 100, 1000])])
    G, est = int(c.get("generations", 100)), c.get("estimator", "mle")
    variants: list[tuple[str, float | None]] = [(s, None) for s in c.get("strategies", list(checks.STRATEGIES))]
    variants += [("replace", float(pi)) for pi in c.get("real_fraction", [])]
    label = lambda s, pi: s.replace("_", "-") if pi is None else f"{s}, {pi:.0%} real"
    sim = np.full((len(dims), len(variants), len(Ms), 2, exp.seeds), np.nan)  # metric 0: mean error, 1: var ratio
    th = np.full((len(dims), len(variants), len(Ms), 2), np.nan)
    rows = [
        f"{'d':>3} {'strategy':>22} {'formula':>8} {'max |z| mean':>13} {'max |z| var':>12} "
        f"{'E||mu-mu0||^2 at M_min':>23}"
    ]
    zs = []
    for i, d in enumerate(dims):
        for j, (strategy, pi) in enumerate(variants):
            has = not declared(strategy, "chain.strategies").subsample  # no formula for a subsample of the pool
            for k, M in enumerate(Ms):
                out = gaussian_chain(
                    int(max(M, d + 2)),
                    G,
                    exp.seeds,
                    key=exp.key + 100 * i + k,
                    d=d,
                    estimator=est,
                    strategy=strategy,
                    real_fraction=pi,
                    chunk_size=c.get("chunk_size"),
                    progress=progress,
                )
                mu, var = (
                    (out.mean[:, -1, None], out.var[:, -1, None])
                    if d == 1
                    else (out.mean[:, -1], np.trace(out.var[:, -1], axis1=-2, axis2=-1)[:, None] / d)
                )
                sim[i, j, k] = np.sum(mu**2, -1), var[:, 0]
                if has:
                    dev, s2 = theory.gaussian_strategy_moments(int(max(M, d + 2)), G, est, strategy, pi)
                    th[i, j, k] = dev * d, s2
            # replacing without real points collapses sigma: where log sigma^2 spreads by more than 1 the seed mean
            # no longer estimates E sigma^2 (see _reliable), so those M are left out of the variance's z
            ok = (
                np.ones(len(Ms), bool)
                if (STRATEGIES[strategy].pools or pi is not None)
                else np.array([_reliable(int(max(M, d + 2)), np.asarray([G]), est)[0][0] for M in Ms])
            )
            z = [
                _zmax(sim[i, j, :, 0].T, th[i, j, :, 0]) if has else float("nan"),
                _zmax(sim[i, j, ok, 1].T, th[i, j, ok, 1]) if has and ok.any() else float("nan"),
            ]
            zs += [v for v in z if np.isfinite(v)]
            rows.append(
                f"{d:>3} {label(strategy, pi):>22} {'exact' if has else 'none':>8} {z[0]:>13.2f} "
                f"{z[1]:>12.2f} {sim[i, j, 0, 0].mean():>23.4g}  (var z over M = {Ms[ok].tolist()})"
            )
    mean, sem = sim.mean(-1), sim.std(-1, ddof=1) / np.sqrt(exp.seeds)
    import matplotlib.pyplot as plt

    with plotting.style():
        fig, axs = plt.subplots(2, len(dims), figsize=(4.6 * len(dims), 8.2), squeeze=False, layout="constrained")
    names = (r"$E\|\mu_G - \mu_0\|^2$", r"$E\,\mathrm{tr}\,\Sigma_G / \mathrm{tr}\,\Sigma_0$")
    for i, d in enumerate(dims):
        for m in (0, 1):
            plotting.theory_vs_simulation(
                Ms,
                th[i, :, :, m],
                Ms,
                mean[i, :, :, m],
                sem[i, :, :, m],
                [label(s, pi) + (" (no formula)" if STRATEGIES[s].subsample else "") for s, pi in variants],
                xlabel="samples per generation M",
                ylabel=names[m],
                title=f"d = {d}: {names[m]} at n = {G}",
                logy=m == 0,
                legend_title="strategy",
                ax=axs[m, i],
            )
            axs[m, i].get_legend().remove()  # one legend for the figure, beside the panels: none covers data
    handles, names_ = axs[0, 0].get_legend_handles_labels()
    with plotting.style():
        fig.legend(handles, names_, title="strategy", loc="outside right upper", fontsize=8)
    fig.suptitle(exp.description or f"Gaussian chains under data strategies ({est}, n = {G})")
    arrays = dict(error=sim, theory=th, d=np.asarray(dims), M=Ms)
    axes = dict(
        error=["d", "strategy", "M", "metric", "seed"], theory=["d", "strategy", "M", "metric"], d=["d"], M=["M"]
    )
    return arrays, axes, rows, dict(max_abs_z=max(zs), formula="exact"), fig
