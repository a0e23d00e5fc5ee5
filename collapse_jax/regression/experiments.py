"""Regression experiment kinds: a TOML file -> problem -> simulation and theory on a grid (`scans`) -> figure.

* "lambda_scan" (default): error for every (lambda, n); figure against lambda (one colour per n) or n.
* "T_scan": error against T for lambda rules (a number, "crit", "naive", "adaptive", {power_law = [c, ell]}),
  log-log, with fitted slopes printed beside the exponents theory/powerlaw.md predicts.
* "optimal_lambda": lambda*(T, n) from the theory, with the argmin of the simulated error as markers.

The regression kinds "compare" (`compare`) and "joint_regularisation", "schedule_fit", "real_data_budget"
(`optimize_experiments`) share `problem` below. Example TOML (a lambda scan):

    name = "demo"
    [spectrum]
    kind = "isotropic"   # or "power_law" (d, beta, r, signal), or "custom" (eigenvalues, w0)
    d = 50
    [generators]
    T0 = 150
    [downstream]
    T = 150
    [scan]
    lam = [0.01, 0.1, 1.0]  # or {logspace = [-2, 0, 5]}
    n = [0, 1, 5]
    [simulation]
    seeds = 200
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from collapse_jax.engine import agreement, checks, plotting, protocol
from collapse_jax.engine.agreement import mean_sem
from collapse_jax.engine.header import Header, read_header
from collapse_jax.engine.protocol import ExperimentOutput, Summary
from collapse_jax.regression import regularization, scans, theory
from collapse_jax.regression.problem import Downstream, Generators
from collapse_jax.regression.spectra import Spectrum

PROBLEM = {"spectrum", "generators", "downstream"}


@dataclasses.dataclass(frozen=True)
class Experiment(Header):
    spec: Spectrum
    gen: Generators
    down: Downstream
    scan: dict  # the [scan] table, grids resolved to arrays
    ns: tuple[int, ...]  # generations shown in the figure and the table
    sampler: str

    @property
    def beta_r(self):
        """(beta, r) of a power-law spectrum, else (None, None)."""
        s = self.config.get("spectrum", {})
        return (s["beta"], s["r"]) if s.get("kind") == "power_law" else (None, None)

    @property
    def chain(self) -> dict:
        return dict(d=self.spec.d, T0=self.gen.T0, T=self.down.T)


def problem(
    cfg: dict, generators: dict | None = None, downstream: dict | None = None
) -> tuple[Spectrum, Generators, Downstream]:
    """(Spectrum, Generators, Downstream) from the file's [spectrum], [generators] and [downstream] tables
    (or the given replacements of the last two), each checked and named in its errors."""
    gen_cfg = {
        k: tuple(v) if isinstance(v, list) else v
        for k, v in (cfg.get("generators", {}) if generators is None else generators).items()
    }
    return (
        Spectrum.from_config(cfg.get("spectrum", {})),
        checks.build(Generators, gen_cfg, "[generators]"),
        checks.build(Downstream, cfg.get("downstream", {}) if downstream is None else downstream, "[downstream]"),
    )


def from_config(cfg: dict, default_name: str = "experiment") -> Experiment:
    """Build an Experiment from a parsed TOML dict, with clear errors for unknown or missing entries."""
    head = read_header(
        cfg,
        default_name,
        PROBLEM | {"scan"},
        seeds=400,
        simulation={"sampler": "str"},
        plot={"x", "mark_crossover", "reference_slope"},
    )
    kind = head.pop("kind") or "lambda_scan"
    checks.choice("kind", kind, ("lambda_scan", "T_scan", "optimal_lambda"))
    scan, plot = dict(cfg.get("scan", {})), head["plot"]
    checks.sections(scan, {"lam", "T", "n", "rules"}, "[scan]")
    down_cfg = dict(cfg.get("downstream", {}))
    for key in ("T", "lam"):  # a setting the run would not use is refused, naming what overrides it
        if key in scan and key in down_cfg and (kind == "lambda_scan" or key == "T"):
            raise ValueError(
                f"downstream.{key} = {down_cfg[key]!r} is overridden by scan.{key} = {scan[key]!r}, which this "
                f"{kind} runs instead; set scan.{key} (e.g. scan.{key}=[{down_cfg[key]!r}]) or drop downstream.{key}"
            )
    if "n" in scan:
        checks.Int(0, checks.MAX_GENERATIONS, many=True)("scan.n", scan["n"])
    if kind == "lambda_scan":
        scan["lam"] = grid_values("scan.lam", scan.get("lam", [down_cfg.get("lam", 0.0)]))
        if plot.get("x", "lam") == "lam" and np.any(scan["lam"] <= 0):
            raise ValueError("scan.lam must be > 0 with plot.x = 'lam' (a log axis); use plot.x = 'n' to include 0")
        down_cfg["lam"] = float(scan["lam"][0])
    else:
        scan["T"] = grid_values("scan.T", scan.get("T", [down_cfg.get("T", 300)]))
        checks.Int(1, checks.MAX_SIZE, many=True)("scan.T", [int(t) if t == int(t) else float(t) for t in scan["T"]])
        scan["T"] = scan["T"].astype(int)
        down_cfg["T"] = int(scan["T"][0])
        down_cfg.setdefault("lam", 0.0)
        scan.setdefault("rules", ["adaptive"])
    spec, gen, down = problem(cfg, downstream=down_cfg)
    return Experiment(
        **head,
        kind=kind,
        spec=spec,
        gen=gen,
        down=down,
        scan=scan,
        ns=tuple(int(n) for n in scan.get("n", [0, 1, 2, 5, 10])),
        sampler=cfg.get("simulation", {}).get("sampler", "auto"),
    )


register = protocol.family("regression", from_config)


MAX_GRID = 10_000  # values on one axis of a scan or sweep: more is a typo, not an experiment


def grid_values(name, spec) -> np.ndarray:
    """A TOML grid: a list of numbers, or {logspace = [a, b, num]}, as a 1-D float array (at most MAX_GRID)."""
    if isinstance(spec, dict):
        checks.sections(spec, {"logspace"}, name)
        ends = spec.get("logspace")
        if not isinstance(ends, list) or len(ends) != 3:
            raise ValueError(f"{name}.logspace must be [a, b, num] (10^a to 10^b, num values), got {ends!r}")
        checks.real_array(f"{name}.logspace ends", ends[:2], lo=-300.0, hi=300.0, ndim=(1,))
        checks.Int(1, MAX_GRID)(f"{name}.logspace num", ends[2])
        return np.logspace(ends[0], ends[1], ends[2])
    checks.real_array(name, spec, ndim=(0, 1))
    if np.size(spec) > MAX_GRID:
        raise ValueError(f"{name} has {np.size(spec)} values, more than {MAX_GRID}")
    arr = np.atleast_1d(np.asarray(spec, dtype=float))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty list or {{logspace = [a, b, num]}}, got {spec!r}")
    return arr


def _kind(exp, downs) -> str:
    """ "exact" when every point of the scan has an exact formula, else "DE" (some point is a deterministic
    equivalent; the looser of the two criteria then applies to the whole scan)."""
    kinds = {
        theory.formula_kind(exp.spec, exp.gen, dataclasses.replace(d, lam=float(lam)))
        for d in downs
        for lam in exp.scan["lam"]
    }
    return "exact" if kinds == {"exact"} else "DE"


def _z_and_rel(sim, th):
    """(z, relative error) of the seed mean (axis -2 of sim) against theory."""
    mean, sem = mean_sem(sim, axis=-2)
    return agreement.zscore(mean, sem, th), mean / th - 1, mean, sem


@register("lambda_scan")
def _run_lambda_scan(exp, progress):
    """The error for every (lambda, n), with its exact formula or deterministic equivalent."""
    lams, ns = exp.scan["lam"], list(exp.ns)
    Ts = [int(t) for t in exp.scan.get("T", [exp.down.T])]
    downs = [dataclasses.replace(exp.down, T=T) for T in Ts]
    runs = [
        scans.lambda_scan(exp.spec, exp.gen, d, lams, max(ns), exp.seeds, exp.key, exp.sampler, progress) for d in downs
    ]
    arrays = {k: np.stack([r[0][k] for r in runs]) for k in runs[0][0] if k not in ("lam", "n")}
    arrays |= dict(lam=lams, n=runs[0][0]["n"], T=np.asarray(Ts))
    axes = {k: ["T"] + v for k, v in runs[0][1].items() if k not in ("lam", "n")} | dict(lam=["lam"], n=["n"], T=["T"])
    z, rel, mean, sem = _z_and_rel(arrays["test_error"], arrays["theory_test_error"])  # (T, lam, n)
    rows = [f"{'T':>5} {'n':>4} {'max |z|':>8} {'max |rel err|':>14}   over {len(lams)} lambdas"]
    rows += [
        f"{T:>5} {n:>4} {np.abs(z[i, :, n]).max():>8.2f} {np.abs(rel[i, :, n]).max():>14.2%}"
        for i, T in enumerate(Ts)
        for n in ns
    ]
    summary = Summary(
        _kind(exp, downs),
        max_abs_z=float(np.abs(z[..., ns]).max()),
        max_rel_gap=float(np.abs(rel[..., ns]).max()),
        d=exp.spec.d,
        band=agreement.band(mean[..., ns], sem[..., ns]),
        details=dict(simulation=runs[0][2]),
    )
    fig = _lambda_scan_figure(exp, downs, lams, ns, mean, sem, arrays["theory_test_error"])
    return ExperimentOutput(arrays, axes, rows, summary, fig)


def _lambda_scan_figure(exp, downs, lams, ns, mean, sem, theory_grid):
    """One panel per T: error against lambda (a colour per n) or against n (a colour per lambda)."""
    title = exp.description or exp.name
    fig, axs = plotting.panels(len(downs))
    for i, (d, ax) in enumerate(zip(downs, axs, strict=True)):
        panel = title if len(downs) == 1 else f"T = {d.T}"
        if exp.plot.get("x", "lam") == "lam":
            fine = np.geomspace(lams.min(), lams.max(), 200)
            th = scans.theory_over_lambda(exp.spec, exp.gen, d, fine, ns).test_error.T
            plotting.theory_vs_simulation(
                fine,
                th,
                lams,
                mean[i][:, ns].T,
                sem[i][:, ns].T,
                [f"n = {n}" for n in ns],
                xlabel=r"$\lambda$",
                ylabel="test error",
                title=panel,
                legend_title="generation",
                ordered=True,
                ax=ax,
            )
        else:
            n_all = np.arange(max(ns) + 1)
            plotting.theory_vs_simulation(
                n_all,
                theory_grid[i],
                n_all,
                mean[i],
                sem[i],
                [rf"$\lambda$ = {lam:.3g}" for lam in lams],
                xlabel="generation n",
                ylabel="test error",
                title=panel,
                logx=False,
                legend_title="downstream",
                ordered=True,
                ax=ax,
            )
        if i > 0:
            ax.get_legend().remove()
    if len(downs) > 1:
        fig.suptitle(title)
    return fig


@register("T_scan")
def _run_T_scan(exp, progress):
    """The error against T for lambda rules, log-log, with fitted slopes beside the predicted exponents (DE)."""
    rules, ns, Ts = exp.scan["rules"], list(exp.ns), exp.scan["T"]
    beta, r = exp.beta_r
    arrays, axes = scans.T_scan(
        exp.spec, exp.gen, exp.down, Ts, rules, max(ns), exp.seeds, exp.key, exp.sampler, beta, r, progress
    )
    z, rel, mean, sem = _z_and_rel(arrays["test_error"], arrays["theory_test_error"])
    fine = np.unique(np.geomspace(Ts.min(), Ts.max(), 40).round().astype(int))
    lines = [scans.theory_over_T(exp.spec, exp.gen, exp.down, rule, fine, ns, beta, r) for rule in rules]
    rows = [
        f"{'rule':>18} {'n':>3} {'max |z|':>8} {'max |rel|':>9} {'slope sim':>10} {'slope theory':>13} "
        f"{'predicted':>10}"
    ]
    slopes = []
    for i, rule in enumerate(rules):
        for n in ns:
            noisy = float(exp.down.sigma) > 0 or (n > 0 and bool(np.any(np.asarray(exp.gen.sigma0) > 0)))
            pred = scans.predicted_exponent(rule, beta, r, noisy)
            s_sim = scans.loglog_slope(Ts, mean[i, :, n])
            s_th = scans.loglog_slope(Ts, arrays["theory_test_error"][i, :, n])
            slopes.append(dict(rule=str(rule), n=n, sim=s_sim, theory=s_th, predicted=pred))
            rows.append(
                f"{rule!s:>18} {n:>3} {np.abs(z[i, :, n]).max():>8.2f} "
                f"{np.abs(rel[i, :, n]).max():>9.2%} {s_sim:>10.3f} {s_th:>13.3f} "
                f"{'-' if pred is None else f'{pred:.3f}':>10}"
            )
    details: dict[str, Any] = dict(slopes=slopes)
    marks = {}
    if exp.plot.get("mark_crossover") and beta is not None:
        phi0 = exp.spec.d / min(exp.gen.T0_tuple)
        for n in ns:
            s2 = theory.sigma_eff2(exp.down.sigma, np.max(exp.gen.sigma0), n, phi0)
            if s2 > 0:
                marks[n] = float(theory.crossover_T(s2, beta, r))
    details["crossover_T"] = marks
    for n, T_star in marks.items():  # beyond the crossover the slow rate applies
        above = Ts >= 2 * T_star
        if above.sum() >= 2:
            i = 0
            s_sim = scans.loglog_slope(Ts[above], mean[i, above, n])
            s_th = scans.loglog_slope(Ts[above], arrays["theory_test_error"][i, above, n])
            pred = float(theory.slow_exponent(beta, r))
            slopes.append(dict(rule=f"{rules[i]} T >= 2T*", n=n, sim=s_sim, theory=s_th, predicted=pred))
            rows.append(
                f"{'T >= 2T* = ' + format(2 * T_star, '.0f'):>18} {n:>3} {'':>8} {'':>9} {s_sim:>10.3f} "
                f"{s_th:>13.3f} {pred:>10.3f}"
            )
    ref = exp.plot.get("reference_slope")
    ref = float(theory.slow_exponent(beta, r)) if ref == "slow" and beta is not None else ref
    fig = plotting.curves_against_T(
        fine,
        lines,
        Ts,
        mean[..., ns],
        sem[..., ns],
        ns,
        [scans.rule_label(rule) for rule in rules],
        exp.description or exp.name,
        marks,
        reference_slope=ref,
    )
    summary = Summary(
        "DE",
        max_abs_z=float(np.abs(z[..., ns]).max()),
        max_rel_gap=float(np.abs(rel[..., ns]).max()),
        d=exp.spec.d,
        details=details,
    )
    return ExperimentOutput(arrays, axes, rows, summary, fig)


@register("optimal_lambda")
def _run_optimal_lambda(exp, progress):
    """lambda*(T, n) from the theory against the argmin of the simulated error (DE: ridge downstream)."""
    ns, Ts = list(exp.ns), exp.scan["T"]
    beta, r = exp.beta_r
    arrays, axes = scans.optimal_lambda_scan(
        exp.spec, exp.gen, exp.down, Ts, ns, exp.seeds, exp.key, sampler=exp.sampler, progress=progress
    )
    # like with like: the simulated argmin against the same parabola fitted to the theory on the same grid
    z = np.log(arrays["lam_sim"] / arrays["lam_theory_grid"]) / arrays["log_lam_sim_sem"]
    bias = arrays["lam_theory_grid"] / arrays["lam_theory"] - 1
    pred = None if beta is None else float(-theory.ell_crit(beta, r))
    rows = [
        f"{'n':>4} {'max |z| (log lambda*)':>22} {'estimator bias':>15} {'slope sim':>10} {'slope theory':>13} "
        f"{'predicted':>10}"
    ]
    slopes = []
    for j, n in enumerate(ns):
        s_sim, s_th = (
            scans.loglog_slope(Ts, arrays["lam_sim"][:, j]),
            scans.loglog_slope(Ts, arrays["lam_theory"][:, j]),
        )
        slopes.append(dict(n=n, sim=s_sim, theory=s_th, predicted=pred))
        rows.append(
            f"{n:>4} {np.abs(z[:, j]).max():>22.2f} {np.abs(bias[:, j]).max():>15.1%} {s_sim:>10.3f} "
            f"{s_th:>13.3f} "
            f"{'-' if pred is None else f'{pred:.3f}':>10}"
        )
    # ridge downstream: a deterministic equivalent; the gap is that of log lambda*, i.e. lambda*'s relative gap
    summary = Summary(
        "DE",
        max_abs_z=float(np.abs(z).max()),
        max_rel_gap=float(np.abs(arrays["lam_sim"] / arrays["lam_theory_grid"] - 1).max()),
        d=exp.spec.d,
        details=dict(slopes=slopes),
    )
    fine = np.unique(np.geomspace(Ts.min(), Ts.max(), 30).round())
    lines = np.stack(
        [np.asarray(regularization.optimal_lambda(exp.spec, exp.gen, exp.down, np.asarray(ns), T=t)) for t in fine],
        axis=1,
    )  # (n, T)
    # +-1 standard error of log lambda*, drawn on a log axis: asymmetric bars (lower, upper)
    lam, s_log = arrays["lam_sim"].T, arrays["log_lam_sim_sem"].T
    bars = np.stack([lam * (1 - np.exp(-s_log)), lam * (np.exp(s_log) - 1)])
    fig = plotting.theory_vs_simulation(
        fine,
        lines,
        Ts,
        lam,
        bars,
        [f"n = {n}" for n in ns],
        xlabel="T",
        ylabel=r"optimal $\lambda$",
        title=exp.description or exp.name,
        legend_title="generation",
        reference_slope=pred,
    )
    return ExperimentOutput(arrays, axes, rows, summary, fig)
