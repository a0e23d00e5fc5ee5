"""Experiments on kernel ridge chains: TOML -> data -> kernel matrix -> chains and empirical-spectrum theory ->
table, arrays and figure.

Kinds, each with [data] (kind = "digits", "mnist" (path, limit) or "synthetic" (N, p, beta, r); test = held-out
count), [kernel] (name and its parameters), [chain] and [simulation] (seeds, key):

* "krr_chain": test error and accuracy against generation for several downstream lambdas. chain.lam lists
  numbers, {logspace = [a, b, num]}, "naive" (the theory's best lambda for clean data, used at every n) or
  "adaptive" (the theory's best lambda for each n). Each is simulated twice: scored on the held-out points (the
  real-data number) and on the pool itself (the distribution the empirical-spectrum theory describes), and
  the relative gaps of both to the theory are printed.
* "krr_strategies": the chain under data strategies (chain.variants: tables with a label and strategy,
  real_fraction or synthetic_fraction): error on held-out points and on the pool against generation, with the
  empirical-spectrum theory where the linear theory has a formula, and accuracy.
* "krr_spectrum": the empirical spectrum and the target's tail energy with their power-law fits (beta, r),
  and the error against T with lambda = T^-ell_crit(beta, r): theory on the empirical spectrum, simulation,
  and the slopes MATH §1.6 predicts from the fitted exponents.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from collapse_jax.engine import checks, plotting
from collapse_jax.engine.header import Header, read_header
from collapse_jax.engine.progress import reporter
from collapse_jax.kernels import data as datasets
from collapse_jax.kernels import theory
from collapse_jax.kernels.chain import krr_chain, resolve_lambdas
from collapse_jax.kernels.functions import KERNELS, _check_params, kernel_matrix
from collapse_jax.regression import regularization
from collapse_jax.regression import theory as linear_theory

# every key each kind's runner reads, with its type (collapse_jax.engine.checks.table)
_PROBLEM = {"T0": "int", "sigma0": "real", "sigma": "real", "lam_gen": "real", "generations": "int"}
CHAIN_KEYS = {
    "krr_chain": {**_PROBLEM, "T": "int", "lam": "any"},
    "krr_spectrum": {**_PROBLEM, "T": "ints", "n": "ints", "fit_range": "ints"},
    "krr_strategies": {**_PROBLEM, "T": "int", "lam": "real", "variants": "list"},
}
KINDS = tuple(CHAIN_KEYS)
DATA_KEYS = {
    "kind": "str",
    "test": "int",
    "path": "str",
    "limit": "int",
    "N": "int",
    "p": "int",
    "beta": "real",
    "r": "real",
    "key": "int",
    "signal": "real",
}


@dataclasses.dataclass(frozen=True)
class KernelExperiment(Header):
    data: dict
    kernel: dict
    chain: dict


def from_config(cfg: dict, default_name: str) -> KernelExperiment:
    head = read_header(cfg, default_name, {"data", "kernel", "chain"}, seeds=200)
    chain = checks.table(cfg.get("chain", {}), CHAIN_KEYS[cfg["kind"]], "[chain]")
    data = checks.table(cfg.get("data", {"kind": "digits"}), DATA_KEYS, "[data]")
    kernel = dict(cfg.get("kernel", {"name": "rbf"}))
    params = {k: v for k, v in kernel.items() if k != "name"}
    _check_params(checks.choice("kernel.name", kernel.get("name", "rbf"), tuple(KERNELS)), params)
    return KernelExperiment(**head, data=data, kernel=kernel, chain=chain)


def runner(kind: str):
    return {"krr_chain": _krr_chain, "krr_spectrum": _krr_spectrum, "krr_strategies": _krr_strategies}[kind]


def load_data(cfg: dict) -> datasets.Dataset:
    cfg = dict(cfg)
    kind = cfg.pop("kind", "digits")
    cfg.pop("test", None)
    if kind == "digits":
        return datasets.load_digits()
    if kind == "mnist":
        if "path" not in cfg:
            raise ValueError("data.path must name the local MNIST file (.npz, or the IDX images file)")
        return datasets.load_mnist(cfg["path"], cfg.get("limit"))
    if kind == "synthetic":
        return datasets.synthetic_power_law(**cfg)
    raise ValueError(f"data.kind must be 'digits', 'mnist' or 'synthetic', got {kind!r}")


def _setup(exp, progress):
    data = load_data(exp.data)
    kernel = dict(exp.kernel)
    name = kernel.pop("name", "rbf")
    reporter(progress)(f"[{exp.name}] {data.name}: {len(data.X)} points; {name} kernel {kernel}")
    K = kernel_matrix(name, data.X, **kernel)
    pool, test = datasets.split(data, int(exp.data.get("test", max(1, len(data.X) // 6))), exp.key)
    emp = theory.empirical_spectrum(K[np.ix_(pool, pool)], data.Y[pool])
    return data, K, pool, test, emp


def _lam_rules(spec_list, emp, c):
    """chain.lam entries -> (labels, values for krr_chain: numbers or schedules lam(T, n))."""
    if isinstance(spec_list, dict) and "logspace" in spec_list:
        a, b, num = spec_list["logspace"]
        spec_list = list(np.logspace(a, b, int(num)))
    labels, values = [], []
    spec, gen, down = theory.problem(
        emp, c["T0"], c["T"], c.get("sigma0", 0.0), c.get("sigma", 0.0), 1.0, c.get("lam_gen", 1e-3)
    )
    for rule in spec_list:
        if rule == "naive":
            labels.append("naive λ")
            values.append(regularization.naive(spec, gen, down))
        elif rule == "adaptive":
            labels.append("adaptive λ")
            values.append(regularization.adaptive(spec, gen, down))
        else:
            labels.append(f"λ = {float(rule):.3g}")
            values.append(float(rule))
    return labels, values


def _krr_chain(exp, progress):
    c = {"T0": 300, "T": 300, **exp.chain}
    G = int(c.get("generations", 20))
    data, K, pool, test, emp = _setup(exp, progress)
    labels, values = _lam_rules(c.get("lam", [1e-4, 1e-2, "naive", "adaptive"]), emp, c)
    kw = dict(
        T0=int(c["T0"]),
        T=int(c["T"]),
        sigma0=c.get("sigma0", 0.0),
        sigma=c.get("sigma", 0.0),
        lam_gen=c.get("lam_gen", 1e-3),
    )
    lam_table = resolve_lambdas(values, kw["T"], G)  # once: "naive" and "adaptive" come from the theory
    runs = {
        where: krr_chain(
            K,
            data.Y,
            pool,
            idx,
            generations=G,
            seeds=exp.seeds,
            key=exp.key,
            lam=lam_table,
            labels=data.labels,
            progress=progress,
            **kw,
        )
        for where, idx in (("held_out", test), ("pool", pool))
    }
    n = np.arange(G + 1)
    th = np.stack([theory.test_error(emp, n, lam=lam_table[i], **kw) for i in range(len(values))])
    rows = [
        "relative gap of the simulated mean to the theory, at n = 0 and the largest over n >= 1; |z| on the pool",
        f"{'lambda':>16} {'error n=G':>10} {'held-out n=0':>13} {'n>=1':>7} {'pool n=0':>9} {'n>=1':>7} "
        f"{'|z| n>=1':>9} {'acc n=0':>8} {'acc n=G':>8}",
    ]
    summary = dict(rules=labels, gaps=[])
    arrays = dict(n=n, lam=lam_table, theory_test_error=th)
    for where, out in runs.items():
        arrays[f"test_error_{where}"] = out.test_error
        if out.accuracy is not None:
            arrays[f"accuracy_{where}"] = out.accuracy
    for i, label in enumerate(labels):
        gaps = {w: out.test_error[:, i].mean(0) / th[i] - 1 for w, out in runs.items()}
        sem = runs["pool"].test_error[:, i].std(0, ddof=1) / np.sqrt(exp.seeds)
        z = (runs["pool"].test_error[:, i].mean(0) - th[i]) / sem
        acc = runs["held_out"].accuracy
        acc0, accG = (np.nan, np.nan) if acc is None else (acc[:, i, 0].mean(), acc[:, i, -1].mean())
        h, p = gaps["held_out"], gaps["pool"]
        rows.append(
            f"{label:>16} {runs['held_out'].test_error[:, i, -1].mean():>10.4g} {h[0]:>13.1%} "
            f"{np.abs(h[1:]).max():>7.1%} {p[0]:>9.1%} {np.abs(p[1:]).max():>7.1%} {np.abs(z[1:]).max():>9.2f} "
            f"{acc0:>8.3f} {accG:>8.3f}"
        )
        summary["gaps"].append(
            dict(rule=label, held_out=h.tolist(), pool=p.tolist(), max_abs_z_pool=float(np.abs(z).max()))
        )
    fig, axs = plotting.panels(3, sharey=False)
    for ax, where, title in ((axs[0], "held_out", "held-out points"), (axs[1], "pool", "the pool's distribution")):
        err = runs[where].test_error
        plotting.theory_vs_simulation(
            n,
            th,
            n,
            err.mean(0),
            err.std(0, ddof=1) / np.sqrt(exp.seeds),
            labels,
            xlabel="generation n",
            ylabel="test error (squared, summed over outputs)",
            title=f"error on {title}",
            logx=False,
            ax=ax,
        )
    acc = runs["held_out"].accuracy
    if acc is not None:
        for i, label in enumerate(labels):
            axs[2].errorbar(
                n,
                acc[:, i].mean(0),
                yerr=acc[:, i].std(0, ddof=1) / np.sqrt(exp.seeds),
                fmt="o-",
                ms=3,
                mfc="white",
                label=label,
            )
        axs[2].set(xlabel="generation n", ylabel="accuracy (held-out)", title="classification accuracy")
        axs[2].legend(fontsize=8)
    fig.suptitle(exp.description or f"KRR chain on {data.name}")
    axes = {
        k: ["rule", "n"] if k in ("lam", "theory_test_error") else ["n"] if k == "n" else ["seed", "rule", "n"]
        for k in arrays
    }
    summary["max_abs_z_pool"] = max(g["max_abs_z_pool"] for g in summary["gaps"])
    return arrays, axes, rows, summary, fig


def _krr_spectrum(exp, progress):
    c = exp.chain
    data, K, pool, _test, emp = _setup(exp, progress)
    fit = theory.fit_power_law(emp, tuple(c["fit_range"]) if "fit_range" in c else None)
    beta, r = fit.beta, min(fit.r, 1.0)
    ell = float(linear_theory.ell_crit(beta, r))
    Ts = np.asarray(c.get("T", [25, 50, 100, 200, 400, 800]), int)
    ns = [int(v) for v in c.get("n", [0, 5])]
    kw = dict(
        T0=int(c.get("T0", 300)), sigma0=c.get("sigma0", 0.2), sigma=c.get("sigma", 0.0), lam_gen=c.get("lam_gen", 1e-3)
    )
    G = max(ns)
    sims, ths = [], []
    for T in Ts:
        lam = float(T) ** -ell
        out = krr_chain(
            K,
            data.Y,
            pool,
            pool,
            T=int(T),
            generations=max(G, 1),
            seeds=exp.seeds,
            key=exp.key,
            lam=lam,
            progress=progress,
            **kw,
        )
        sims.append(out.test_error[:, 0][:, ns])
        ths.append(theory.test_error(emp, np.asarray(ns), T=int(T), lam=lam, **kw))
    sim, th = np.stack(sims, 1), np.stack(ths)  # (seeds, T, n), (T, n)
    fine = np.unique(np.geomspace(Ts.min(), Ts.max(), 30).astype(int))
    th_fine = np.stack([theory.test_error(emp, np.asarray(ns), T=int(T), lam=float(T) ** -ell, **kw) for T in fine])
    noisy = kw["sigma"] > 0 or kw["sigma0"] > 0
    rows = [
        f"fitted beta = {beta:.3f}, r = {fit.r:.3f} over k in {fit.k_range}; ell_crit = {ell:.3f}",
        f"{'n':>3} {'slope sim':>10} {'slope theory':>13} {'predicted (§1.6)':>17} {'max |rel gap|':>14}",
    ]
    slopes = []
    for j, n in enumerate(ns):
        pred = float(linear_theory.error_exponent(beta, r, ell, noisy=noisy or n > 0))
        s_sim = float(np.polyfit(np.log(Ts), np.log(sim[:, :, j].mean(0)), 1)[0])
        s_th = float(np.polyfit(np.log(Ts), np.log(th[:, j]), 1)[0])
        gap = np.abs(sim[:, :, j].mean(0) / th[:, j] - 1).max()
        slopes.append(dict(n=n, sim=s_sim, theory=s_th, predicted=pred))
        rows.append(f"{n:>3} {s_sim:>10.3f} {s_th:>13.3f} {pred:>17.3f} {gap:>14.1%}")
    import matplotlib.pyplot as plt

    with plotting.style():
        fig, axs = plt.subplots(1, 3, figsize=(15, 4.6))
    k = np.arange(1, len(emp.eigenvalues) + 1)
    kf = np.arange(fit.k_range[0], fit.k_range[1] + 1)
    axs[0].loglog(k, emp.eigenvalues, ".", ms=3, label="eigenvalues of K/N")
    axs[0].loglog(kf, fit.eigen_prefactor * kf**-beta, "k-", label=f"fit k^-{beta:.2f}")
    energy = np.sum(emp.coefficients**2, 1)
    tail = np.cumsum(energy[::-1])[::-1] + emp.residual
    axs[1].loglog(k, tail, ".", ms=3, label="target energy beyond k")
    axs[1].loglog(kf, fit.tail_prefactor * kf ** (-2 * beta * fit.r), "k-", label=f"fit k^-2βr, r = {fit.r:.2f}")
    for ax, title in zip(axs[:2], ("kernel spectrum", "target coefficients"), strict=True):
        ax.set(xlabel="k", title=title)
        ax.legend(fontsize=8)
    plotting.theory_vs_simulation(
        fine,
        th_fine.T,
        Ts,
        sim.mean(0).T,
        (sim.std(0, ddof=1) / np.sqrt(exp.seeds)).T,
        [f"n = {n}" for n in ns],
        xlabel="T",
        ylabel="test error (pool)",
        title=f"λ = T^-{ell:.2f}",
        ax=axs[2],
        reference_slope=slopes[0]["predicted"],
    )
    fig.suptitle(exp.description or f"{data.name}: spectrum, power-law fit and scaling")
    fig.tight_layout()
    arrays = dict(
        eigenvalues=emp.eigenvalues,
        coefficients=emp.coefficients,
        T=Ts,
        n=np.asarray(ns),
        test_error=sim,
        theory_test_error=th,
    )
    axes = dict(
        eigenvalues=["k"],
        coefficients=["k", "output"],
        T=["T"],
        n=["n"],
        test_error=["seed", "T", "n"],
        theory_test_error=["T", "n"],
    )
    summary = dict(beta=beta, r=fit.r, k_range=list(fit.k_range), ell_crit=ell, slopes=slopes)
    return arrays, axes, rows, summary, fig


def _krr_strategies(exp, progress):
    c = {"T0": 300, "T": 300, **exp.chain}
    checks.sections(c, {"T0", "T", "sigma0", "sigma", "lam", "lam_gen", "generations", "variants"}, "[chain]")
    G = int(c.get("generations", 10))
    data, K, pool, test, emp = _setup(exp, progress)
    kw = dict(
        T0=int(c["T0"]),
        T=int(c["T"]),
        sigma0=c.get("sigma0", 0.0),
        sigma=c.get("sigma", 0.0),
        lam_gen=c.get("lam_gen", 1e-3),
        lam=float(c.get("lam", 1e-2)),
    )
    variants = c.get("variants", [{"label": "replace"}])
    n = np.arange(G + 1)
    sims = {w: np.zeros((len(variants), exp.seeds, G + 1)) for w in ("held_out", "pool")}
    acc = np.zeros((len(variants), exp.seeds, G + 1))
    th = np.full((len(variants), G + 1), np.nan)
    rows = [
        f"{'variant':>28} {'formula':>8} {'pool: max |rel gap|':>20} {'held-out error n=G':>19} {'accuracy n=G':>13}"
    ]
    summary: dict[str, Any] = dict(variants=[])
    for v, var in enumerate(variants):
        checks.sections(var, {"label", "strategy", "real_fraction", "synthetic_fraction"}, f"variant {v}")
        opts = {k: var[k] for k in ("strategy", "real_fraction", "synthetic_fraction") if k in var}
        for where, idx in (("held_out", test), ("pool", pool)):
            out = krr_chain(
                K,
                data.Y,
                pool,
                idx,
                generations=G,
                seeds=exp.seeds,
                key=exp.key,
                labels=data.labels,
                progress=progress,
                **kw,
                **opts,
            )
            sims[where][v] = out.test_error[:, 0]
            if where == "held_out":
                acc[v] = out.accuracy[:, 0]
        try:
            th[v] = theory.test_error(emp, n, **kw, **opts)
            kind = "DE"  # KRR generators are ridge fits: deterministic equivalents throughout
        except linear_theory.NoFormulaError:
            kind = "none"
        gap = np.abs(sims["pool"][v].mean(0) / th[v] - 1).max() if kind != "none" else float("nan")
        label = var.get("label", f"variant {v}")
        shown = f"{gap:.1%}" if kind != "none" else "- (no formula)"
        rows.append(
            f"{label:>28} {kind:>8} {shown:>20} {sims['held_out'][v][:, -1].mean():>19.4g} "
            f"{acc[v][:, -1].mean():>13.3f}"
        )
        summary["variants"].append(
            dict(label=label, formula=kind, max_abs_rel_gap_pool=float(gap) if kind != "none" else None)
        )
    labels = [
        var.get("label", f"variant {v}") + ("" if np.isfinite(th[v]).all() else " (no formula)")
        for v, var in enumerate(variants)
    ]
    fig, axs = plotting.panels(3, sharey=False)
    for ax, where, title in ((axs[0], "held_out", "held-out points"), (axs[1], "pool", "the pool's distribution")):
        err = sims[where]
        plotting.theory_vs_simulation(
            n,
            th,
            n,
            err.mean(1),
            err.std(1, ddof=1) / np.sqrt(exp.seeds),
            labels,
            xlabel="generation n",
            ylabel="test error (squared, summed over outputs)",
            title=f"error on {title}",
            logx=False,
            logy=False,
            legend_title="strategy",
            ax=ax,
        )
        if where == "pool":
            ax.get_legend().remove()
    for v, label in enumerate(labels):
        axs[2].errorbar(
            n, acc[v].mean(0), yerr=acc[v].std(0, ddof=1) / np.sqrt(exp.seeds), fmt="o-", ms=3, mfc="white", label=label
        )
    axs[2].set(xlabel="generation n", ylabel="accuracy (held-out)", title="classification accuracy")
    fig.suptitle(exp.description or f"KRR chains on {data.name} under data strategies")
    arrays = dict(
        n=n, test_error_held_out=sims["held_out"], test_error_pool=sims["pool"], accuracy=acc, theory_test_error=th
    )
    axes = dict(
        n=["n"],
        test_error_held_out=["variant", "seed", "n"],
        test_error_pool=["variant", "seed", "n"],
        accuracy=["variant", "seed", "n"],
        theory_test_error=["variant", "n"],
    )
    return arrays, axes, rows, summary, fig
