"""An experiment: a TOML file -> problem -> simulation and theory on a grid (`scans`) -> results -> figure.

Regression kinds (`kind = ...` at the top of the file; experiments/README.md lists the files):

* "lambda_scan" (default): error for every (lambda, n); figure against lambda (one colour per n) or n.
* "T_scan": error against T for lambda rules (a number, "crit", "naive", "adaptive", {power_law = [c, ell]}),
  log-log, with fitted slopes printed beside the exponents MATH §1.6 predicts.
* "optimal_lambda": lambda*(T, n) from the theory, with the argmin of the simulated error as markers.
* "compare": variants of one chain side by side (data strategies, mixtures), against n or T
  (`collapse_jax.compare`).

Distribution-chain kinds ("gaussian_chain", "gaussian_w2", "kde_chain", "bootstrap", "discrete") are described
in `collapse_jax.distributions.experiments`, kernel-chain kinds ("krr_chain", "krr_spectrum") in
`collapse_jax.kernels.experiments`.

Example TOML (a lambda scan):

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

import copy
import dataclasses
import itertools
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

from collapse_jax import _checks, io, plotting, regularization, scans, theory
from collapse_jax.problem import Downstream, Generators
from collapse_jax.spectra import Spectrum

from collapse_jax import compare, optimize_experiments
from collapse_jax.distributions import experiments as distribution_experiments
from collapse_jax.kernels import experiments as kernel_experiments

# other families of experiments: each module has KINDS, from_config(cfg, name) and runner(kind)
FAMILIES = (compare, optimize_experiments, distribution_experiments, kernel_experiments)
KINDS = ("lambda_scan", "T_scan", "optimal_lambda") + sum((f.KINDS for f in FAMILIES), ())


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    kind: str
    description: str
    spec: Spectrum
    gen: Generators
    down: Downstream
    scan: dict  # the [scan] table, grids resolved to arrays
    ns: tuple[int, ...]  # generations shown in the figure and the table
    seeds: int
    key: int
    sampler: str
    plot: dict
    config: dict  # the resolved TOML, recorded beside the results

    @property
    def beta_r(self):
        """(beta, r) of a power-law spectrum, else (None, None)."""
        s = self.config.get("spectrum", {})
        return (s["beta"], s["r"]) if s.get("kind") == "power_law" else (None, None)


def load(path: str | Path, settings=(), **overrides) -> Experiment:
    """Read an experiment file. settings: "section.key=value" strings (values parsed as TOML) applied to the
    file before it is validated; overrides (e.g. seeds=100) replace [simulation] entries."""
    cfg = read_toml(path, settings, "experiment file")
    cfg.setdefault("simulation", {}).update({k: v for k, v in overrides.items() if v is not None})
    return from_config(cfg, default_name=Path(path).stem)


def read_toml(path: str | Path, settings=(), what: str = "file") -> dict:
    """Parse a TOML file and apply command-line settings such as `downstream.T=500` or `grid."down.lam"=[0.1]`.

    A value is parsed as TOML (numbers, booleans, lists, quoted strings); a bare word is taken as a string.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "e.toml"
        >>> _ = p.write_text("[downstream]" + chr(10) + "T = 300")
        >>> read_toml(p, ["downstream.T=500", "simulation.sampler=direct"])
        {'downstream': {'T': 500}, 'simulation': {'sampler': 'direct'}}
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} {str(path)!r} does not exist")
    try:
        cfg = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{what} {str(path)!r} is not valid TOML: {err}") from None
    for item in settings:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"a setting must look like section.key=value, got {item!r}")
        try:  # a dotted TOML key parses quoted parts too: grid."down.lam"
            parsed = tomllib.loads(f"{key.strip()} = {text.strip()}")
        except tomllib.TOMLDecodeError:
            if not text.strip().replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"setting {item!r}: {text.strip()!r} is not a TOML value (quote strings)") from None
            parsed = tomllib.loads(f"{key.strip()} = {text.strip()!r}".replace("'", '"'))
        _merge(cfg, parsed, item)
    return cfg


def _merge(cfg: dict, parsed: dict, item: str):
    for k, v in parsed.items():
        if k in cfg and isinstance(cfg[k], dict) and not isinstance(v, dict):
            raise ValueError(f"setting {item!r}: {k!r} is a table in the file; set its keys (e.g. {k}.key=value)")
        if isinstance(v, dict):
            if k in cfg and not isinstance(cfg[k], dict):
                raise ValueError(f"setting {item!r}: {k!r} is a value in the file, not a table")
            _merge(cfg.setdefault(k, {}), v, item)
        else:
            cfg[k] = v


def from_config(cfg: dict, default_name: str = "experiment") -> Experiment:
    """Build an Experiment from a parsed TOML dict, with clear errors for unknown or missing entries."""
    for family in FAMILIES:
        if cfg.get("kind") in family.KINDS:
            return family.from_config(cfg, default_name)
    _checks.sections(cfg, {"name", "kind", "description", "spectrum", "generators", "downstream", "scan",
                           "simulation", "plot"})
    kind = cfg.get("kind", "lambda_scan")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    scan, sim, plot = dict(cfg.get("scan", {})), cfg.get("simulation", {}), cfg.get("plot", {})
    _checks.sections(scan, {"lam", "T", "n", "rules"}, "[scan]")
    _checks.sections(sim, {"seeds", "key", "sampler"}, "[simulation]")
    _checks.sections(plot, {"x", "mark_crossover", "reference_slope"} | set(plotting.PLOT_KEYS), "[plot]")
    gen_cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.get("generators", {}).items()}
    down_cfg = dict(cfg.get("downstream", {}))
    if kind == "lambda_scan":
        scan["lam"] = _grid("scan.lam", scan.get("lam", [down_cfg.get("lam", 0.0)]))
        if plot.get("x", "lam") == "lam" and np.any(scan["lam"] <= 0):
            raise ValueError("scan.lam must be > 0 with plot.x = 'lam' (a log axis); use plot.x = 'n' to include 0")
        down_cfg["lam"] = float(scan["lam"][0])
    else:
        scan["T"] = _grid("scan.T", scan.get("T", [down_cfg.get("T", 300)])).round().astype(int)
        down_cfg["T"] = int(scan["T"][0])
        down_cfg.setdefault("lam", 0.0)
        scan.setdefault("rules", ["adaptive"])
    ns = tuple(int(n) for n in scan.get("n", [0, 1, 2, 5, 10]))
    return Experiment(
        name=_checks.name(cfg.get("name", default_name)), kind=kind, description=cfg.get("description", ""),
        spec=spectrum_from_config(cfg.get("spectrum", {})), gen=_checks.build(Generators, gen_cfg, "[generators]"),
        down=_checks.build(Downstream, down_cfg, "[downstream]"), scan=scan, ns=ns,
        seeds=_checks.size("simulation.seeds", sim.get("seeds", 400)),
        key=_checks.size("simulation.key", sim.get("key", 0), lo=0),
        sampler=sim.get("sampler", "auto"), plot=plot, config=cfg,
    )


spectrum_from_config = Spectrum.from_config  # the name experiment files and sweeps used first


def _grid(name, spec) -> np.ndarray:
    if isinstance(spec, dict) and "logspace" in spec:
        a, b, num = spec["logspace"]
        return np.logspace(a, b, int(num))
    arr = np.atleast_1d(np.asarray(spec, dtype=float))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty list or {{logspace = [a, b, num]}}, got {spec!r}")
    return arr


def run(exp: Experiment, out_dir: str | Path = "results", progress: bool = True) -> dict:
    """Run the scan, save results and figure, print the theory-vs-simulation table. Returns the summary."""
    with plotting.use(**plotting.options(exp.config.get("plot", {}))):
        return _run(exp, out_dir, progress)


def compute(exp, progress: bool = False):
    """Simulation and theory of one experiment, any family: (arrays, axes, rows, summary, figure, extra)."""
    family = next((f for f in FAMILIES if exp.kind in f.KINDS), None)
    if family is not None:
        if progress:
            print(f"[{exp.name}] {exp.kind}: {getattr(exp, 'chain', '')}, {exp.seeds} seeds", file=sys.stderr)
        return family.runner(exp.kind)(exp, progress) + ({},)
    if progress:
        print(f"[{exp.name}] {exp.kind}: d={exp.spec.d}, T0={exp.gen.T0}, {exp.seeds} seeds", file=sys.stderr)
    runner = {"lambda_scan": _run_lambda_scan, "T_scan": _run_T_scan, "optimal_lambda": _run_optimal_lambda}
    return runner[exp.kind](exp, progress)


def sweep_file(cfg: dict, out: str | Path, progress: bool = True) -> tuple[dict, dict]:
    """Sweep an experiment of any family over a [grid] of its own keys ("chain.M", "kernel.lengthscale",
    "spectrum.beta", ...): every combination runs the experiment with those values set (one compilation per
    value of a size), and each of its arrays gains the grid axes in front. Writes out/sweep.npz (with coordinate
    arrays) and out/sweep.json (the resolved config, the grid, each point's summary). Returns (arrays, meta).

    Example TOML:
        kind = "kde_chain"
        [chain]
        generations = 20
        [grid]
        "chain.M" = [50, 100]
    """
    cfg = dict(cfg)
    grid = cfg.pop("grid", None)
    if not isinstance(grid, dict) or not grid:
        raise ValueError("a sweep file needs a [grid] table of experiment keys, e.g. \"chain.M\" = [50, 100]")
    names = list(grid)
    for name in names:
        if not isinstance(grid[name], list) or not grid[name]:
            raise ValueError(f"grid.{name} must be a non-empty list of values, got {grid[name]!r}")
    points, per_point, summaries = list(itertools.product(*(grid[n] for n in names))), [], []
    for i, values in enumerate(points):
        point_cfg = copy.deepcopy(cfg)
        for name, value in zip(names, values):
            section, _, key = name.partition(".")
            if not key or not isinstance(point_cfg.get(section, {}), dict):
                raise ValueError(f"grid key {name!r} must name a key of a table, like \"chain.M\"")
            point_cfg.setdefault(section, {})[key] = value
        exp = from_config(point_cfg, default_name="sweep")
        if progress:
            print(f"[sweep] point {i + 1}/{len(points)}: {dict(zip(names, values))}", file=sys.stderr)
        arrays, axes, _, summary, fig, _ = compute(exp, progress=False)
        plotting.close(fig)
        per_point.append((arrays, axes))
        summaries.append(summary)
    arrays0, axes0 = per_point[0]
    shape = tuple(len(grid[n]) for n in names)
    stacked, axes = {}, {}
    for k in arrays0:
        parts = [np.asarray(a[k]) for a, _ in per_point]
        if any(p.shape != parts[0].shape for p in parts):  # e.g. a grid over a size that shapes this array
            raise ValueError(f"array {k!r} changes shape across the grid ({sorted({p.shape for p in parts})}); "
                             "sweep that key in separate runs")
        stacked[k] = np.stack(parts).reshape(shape + parts[0].shape)
        axes[k] = names + list(axes0[k])
    out = Path(out)
    io.save(out / "sweep", stacked, axes, dict(config=cfg, grid=grid, summaries=summaries),
            coords={n: np.asarray(grid[n]) for n in names})
    return stacked, dict(axes=axes, grid=grid, summaries=summaries)


def _run(exp: Experiment, out_dir, progress: bool) -> dict:
    t0 = time.perf_counter()
    arrays, axes, rows, summary, fig, extra = compute(exp, progress)
    summary["seconds"] = time.perf_counter() - t0
    out = Path(out_dir) / _checks.name(exp.name)
    npz, sidecar = io.save(out, arrays, axes, dict(config=exp.config, root_seed=exp.key, summary=summary, **extra))
    figs = plotting.save(fig, out)
    print(f"{exp.name}: theory vs simulation ({exp.seeds} seeds per point, {summary['seconds']:.1f}s)")
    for row in rows:
        print(row)
    if "max_abs_z" in summary and summary.get("formula") in ("exact", "DE"):
        d = exp.spec.d if hasattr(exp, "spec") else np.inf  # distribution chains: exact formulas only
        ok, sentence = theory.agreement(summary["formula"], summary["max_abs_z"], summary.get("max_abs_rel_error"), d)
        summary["agrees"] = ok
        print(sentence)
    elif "max_abs_z" in summary:
        print(f"largest |z| = {summary['max_abs_z']:.2f} (each row above says which formula it checks)")
    print(f"wrote {npz}, {sidecar}, {', '.join(map(str, figs))}")
    return summary


def _kind(exp, downs) -> str:
    """"exact" when every point of the scan has an exact formula, else "DE" (some point is a deterministic
    equivalent; the looser of the two criteria then applies to the whole scan)."""
    kinds = {theory.formula_kind(exp.spec, exp.gen, dataclasses.replace(d, lam=float(lam)))
             for d in downs for lam in exp.scan["lam"]}
    return "exact" if kinds == {"exact"} else "DE"


def _z_and_rel(sim, th):
    """(z, relative error) of the seed mean (axis -2 of sim) against theory."""
    mean, sem = sim.mean(-2), sim.std(-2, ddof=1) / np.sqrt(sim.shape[-2])
    return (mean - th) / sem, mean / th - 1, mean, sem


def _run_lambda_scan(exp, progress):
    lams, ns = exp.scan["lam"], list(exp.ns)
    Ts = [int(t) for t in exp.scan.get("T", [exp.down.T])]
    downs = [dataclasses.replace(exp.down, T=T) for T in Ts]
    runs = [scans.lambda_scan(exp.spec, exp.gen, d, lams, max(ns), exp.seeds, exp.key, exp.sampler, progress)
            for d in downs]
    arrays = {k: np.stack([r[0][k] for r in runs]) for k in runs[0][0] if k not in ("lam", "n")}
    arrays |= dict(lam=lams, n=runs[0][0]["n"], T=np.asarray(Ts))
    axes = {k: ["T"] + v for k, v in runs[0][1].items() if k not in ("lam", "n")} | dict(lam=["lam"], n=["n"], T=["T"])
    z, rel, mean, sem = _z_and_rel(arrays["test_error"], arrays["theory_test_error"])  # (T, lam, n)
    rows = [f"{'T':>5} {'n':>4} {'max |z|':>8} {'max |rel err|':>14}   over {len(lams)} lambdas"]
    rows += [f"{T:>5} {n:>4} {np.abs(z[i, :, n]).max():>8.2f} {np.abs(rel[i, :, n]).max():>14.2%}"
             for i, T in enumerate(Ts) for n in ns]
    summary = dict(max_abs_z=float(np.abs(z[..., ns]).max()), max_abs_rel_error=float(np.abs(rel[..., ns]).max()),
                   formula=_kind(exp, downs))
    fig = _lambda_scan_figure(exp, downs, lams, ns, mean, sem, arrays["theory_test_error"])
    return arrays, axes, rows, summary, fig, dict(simulation=runs[0][2])


def _lambda_scan_figure(exp, downs, lams, ns, mean, sem, theory_grid):
    """One panel per T: error against lambda (a colour per n) or against n (a colour per lambda)."""
    title = exp.description or exp.name
    fig, axs = plotting.panels(len(downs))
    for i, (d, ax) in enumerate(zip(downs, axs)):
        panel = title if len(downs) == 1 else f"T = {d.T}"
        if exp.plot.get("x", "lam") == "lam":
            fine = np.geomspace(lams.min(), lams.max(), 200)
            th = scans.theory_over_lambda(exp.spec, exp.gen, d, fine, ns).test_error.T
            plotting.theory_vs_simulation(fine, th, lams, mean[i][:, ns].T, sem[i][:, ns].T,
                                          [f"n = {n}" for n in ns], xlabel=r"$\lambda$", ylabel="test error",
                                          title=panel, legend_title="generation", ax=ax)
        else:
            n_all = np.arange(max(ns) + 1)
            plotting.theory_vs_simulation(n_all, theory_grid[i], n_all, mean[i], sem[i],
                                          [rf"$\lambda$ = {lam:.3g}" for lam in lams], xlabel="generation n",
                                          ylabel="test error", title=panel, logx=False, legend_title="downstream",
                                          ax=ax)
        if i > 0:
            ax.get_legend().remove()
    if len(downs) > 1:
        fig.suptitle(title)
    return fig


def _run_T_scan(exp, progress):
    rules, ns, Ts = exp.scan["rules"], list(exp.ns), exp.scan["T"]
    beta, r = exp.beta_r
    arrays, axes = scans.T_scan(exp.spec, exp.gen, exp.down, Ts, rules, max(ns), exp.seeds, exp.key, exp.sampler,
                                beta, r, progress)
    z, rel, mean, sem = _z_and_rel(arrays["test_error"], arrays["theory_test_error"])
    fine = np.unique(np.geomspace(Ts.min(), Ts.max(), 40).round().astype(int))
    lines = [scans.theory_over_T(exp.spec, exp.gen, exp.down, rule, fine, ns, beta, r) for rule in rules]
    rows = [f"{'rule':>18} {'n':>3} {'max |z|':>8} {'max |rel|':>9} {'slope sim':>10} {'slope theory':>13} "
            f"{'predicted':>10}"]
    slopes = []
    for i, rule in enumerate(rules):
        for j, n in enumerate(ns):
            noisy = float(exp.down.sigma) > 0 or (n > 0 and np.any(np.asarray(exp.gen.sigma0) > 0))
            pred = scans.predicted_exponent(rule, beta, r, noisy)
            s_sim = scans.loglog_slope(Ts, mean[i, :, n])
            s_th = scans.loglog_slope(Ts, arrays["theory_test_error"][i, :, n])
            slopes.append(dict(rule=str(rule), n=n, sim=s_sim, theory=s_th, predicted=pred))
            rows.append(f"{str(rule):>18} {n:>3} {np.abs(z[i, :, n]).max():>8.2f} "
                        f"{np.abs(rel[i, :, n]).max():>9.2%} {s_sim:>10.3f} {s_th:>13.3f} "
                        f"{'-' if pred is None else f'{pred:.3f}':>10}")
    summary = dict(max_abs_z=float(np.abs(z[..., ns]).max()), max_abs_rel_error=float(np.abs(rel[..., ns]).max()),
                   formula="DE",
                   slopes=slopes)
    marks = {}
    if exp.plot.get("mark_crossover") and beta is not None:
        phi0 = exp.spec.d / min(exp.gen.T0_tuple)
        for n in ns:
            s2 = theory.sigma_eff2(exp.down.sigma, np.max(exp.gen.sigma0), n, phi0)
            if s2 > 0:
                marks[n] = float(theory.crossover_T(s2, beta, r))
    summary["crossover_T"] = marks
    for n, T_star in marks.items():  # beyond the crossover the slow rate applies
        above = Ts >= 2 * T_star
        if above.sum() >= 2:
            i = 0
            s_sim = scans.loglog_slope(Ts[above], mean[i, above, n])
            s_th = scans.loglog_slope(Ts[above], arrays["theory_test_error"][i, above, n])
            pred = float(theory.slow_exponent(beta, r))
            slopes.append(dict(rule=f"{rules[i]} T >= 2T*", n=n, sim=s_sim, theory=s_th, predicted=pred))
            rows.append(f"{'T >= 2T* = ' + format(2 * T_star, '.0f'):>18} {n:>3} {'':>8} {'':>9} {s_sim:>10.3f} "
                        f"{s_th:>13.3f} {pred:>10.3f}")
    ref = exp.plot.get("reference_slope")
    ref = float(theory.slow_exponent(beta, r)) if ref == "slow" and beta is not None else ref
    fig = plotting.curves_against_T(fine, lines, Ts, mean[..., ns], sem[..., ns], ns,
                                    [scans.rule_label(rule) for rule in rules], exp.description or exp.name, marks,
                                    reference_slope=ref)
    return arrays, axes, rows, summary, fig, {}


def _run_optimal_lambda(exp, progress):
    ns, Ts = list(exp.ns), exp.scan["T"]
    beta, r = exp.beta_r
    arrays, axes = scans.optimal_lambda_scan(exp.spec, exp.gen, exp.down, Ts, ns, exp.seeds, exp.key,
                                             sampler=exp.sampler, progress=progress)
    # like with like: the simulated argmin against the same parabola fitted to the theory on the same grid
    z = np.log(arrays["lam_sim"] / arrays["lam_theory_grid"]) / arrays["log_lam_sim_sem"]
    bias = arrays["lam_theory_grid"] / arrays["lam_theory"] - 1
    pred = None if beta is None else float(-theory.ell_crit(beta, r))
    rows = [f"{'n':>4} {'max |z| (log lambda*)':>22} {'estimator bias':>15} {'slope sim':>10} {'slope theory':>13} "
            f"{'predicted':>10}"]
    slopes = []
    for j, n in enumerate(ns):
        s_sim, s_th = scans.loglog_slope(Ts, arrays["lam_sim"][:, j]), scans.loglog_slope(Ts, arrays["lam_theory"][:, j])
        slopes.append(dict(n=n, sim=s_sim, theory=s_th, predicted=pred))
        rows.append(f"{n:>4} {np.abs(z[:, j]).max():>22.2f} {np.abs(bias[:, j]).max():>15.1%} {s_sim:>10.3f} "
                    f"{s_th:>13.3f} "
                    f"{'-' if pred is None else f'{pred:.3f}':>10}")
    summary = dict(max_abs_z=float(np.abs(z).max()), slopes=slopes)
    fine = np.unique(np.geomspace(Ts.min(), Ts.max(), 30).round())
    lines = np.stack([np.asarray(regularization.optimal_lambda(exp.spec, exp.gen, exp.down, np.asarray(ns), T=t))
                      for t in fine], axis=1)  # (n, T)
    # +-1 standard error of log lambda*, drawn on a log axis: asymmetric bars (lower, upper)
    lam, s_log = arrays["lam_sim"].T, arrays["log_lam_sim_sem"].T
    bars = np.stack([lam * (1 - np.exp(-s_log)), lam * (np.exp(s_log) - 1)])
    fig = plotting.theory_vs_simulation(fine, lines, Ts, lam, bars,
                                        [f"n = {n}" for n in ns], xlabel="T", ylabel=r"optimal $\lambda$",
                                        title=exp.description or exp.name, legend_title="generation",
                                        reference_slope=pred)
    return arrays, axes, rows, summary, fig, {}
