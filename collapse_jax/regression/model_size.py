"""Model-size experiments (theory/projection.md): does a bigger model save you from collapse?

* "model_size": the downstream error after n generations against the width ratio m/T (log axis) at fixed T, one
  colour per synthetic fraction p, one panel per lambda rule ("ridgeless" = 0, or "tuned": the theory's optimal
  lambda for each width and p); the interpolation threshold m = T is marked.
* "model_size_scaling": the error against T for several widths (one colour each), one p, one panel per rule.

TOML:

    kind = "model_size"
    [spectrum] / [generators] / [downstream]      the chain (downstream.T is the fixed T of model_size)
    [scan]
    width_ratio = [0.1, 0.5, 2.0]    # model_size: m/T; model_size_scaling: width = [...] and T = [...]
    p = [0.0, 0.1]                   # synthetic fractions (model_size_scaling: the first one)
    lam = ["ridgeless", "tuned"]     # or numbers
    n = 1                            # the generation whose data the downstream model sees
    [simulation]
    seeds = 200

Arrays: test_error (rule, p or width, x, seed), theory_test_error (rule, p or width, x), lam (rule, p or width, x).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from collapse_jax.engine import checks, plotting, protocol
from collapse_jax.engine.header import Header, read_header
from collapse_jax.engine.protocol import ExperimentOutput, Summary
from collapse_jax.regression import regularization, theory
from collapse_jax.regression.experiments import PROBLEM, problem
from collapse_jax.regression.problem import Downstream, Generators
from collapse_jax.regression.simulate import simulate
from collapse_jax.regression.spectra import Spectrum


@dataclasses.dataclass(frozen=True)
class ModelSize(Header):
    spec: Spectrum
    gen: Generators
    down: Downstream
    xs: np.ndarray  # widths m (model_size) or sample sizes T (model_size_scaling)
    series: tuple  # synthetic fractions p (model_size) or widths (model_size_scaling)
    rules: tuple  # "ridgeless", "tuned" or a number
    n: int
    sampler: str

    @property
    def chain(self) -> str:
        return f"d={self.spec.d}, T0={self.gen.T0}, {len(self.xs)} x {len(self.series)} points x {len(self.rules)}"


def from_config(cfg: dict, default_name: str) -> ModelSize:
    head = read_header(cfg, default_name, PROBLEM | {"scan"}, seeds=200, simulation={"sampler": "str"})
    scan = dict(cfg.get("scan", {}))
    checks.sections(scan, {"width_ratio", "width", "T", "p", "lam", "n"}, "[scan]")
    spec, gen, down = problem(cfg)
    ps = tuple(checks.fraction("scan.p", p) for p in checks.listed("scan.p", scan.get("p", [0.1])))
    rules = tuple(checks.listed("scan.lam", scan.get("lam", ["ridgeless", "tuned"])))
    for r in rules:
        if not (r in ("ridgeless", "tuned") or (isinstance(r, (int, float)) and not isinstance(r, bool) and r >= 0)):
            raise ValueError(f"scan.lam entries must be 'ridgeless', 'tuned' or a number >= 0, got {r!r}")
    if head["kind"] == "model_size":
        ratios = checks.real_array(
            "scan.width_ratio",
            checks.listed("scan.width_ratio", scan.get("width_ratio", [0.25, 0.5, 2.0, 4.0])),
            lo=0.0,
            lo_open=True,
            hi=1e6,
            ndim=(1,),
        )
        ratios = np.asarray(ratios, float)
        xs = np.unique(np.maximum(1, np.round(ratios * down.T)).astype(int))
        series = ps
    else:
        xs = np.asarray(checks.size("scan.T", checks.listed("scan.T", scan.get("T", [down.T]))))
        series = checks.size("scan.width", checks.listed("scan.width", scan.get("width", [spec.d])))
        series = tuple(series)
    return ModelSize(
        **head,
        spec=spec,
        gen=gen,
        down=dataclasses.replace(down, synthetic_fraction=ps[0]),
        xs=xs,
        series=series,
        rules=rules,
        n=checks.size("scan.n", scan.get("n", 1), lo=0),
        sampler=cfg.get("simulation", {}).get("sampler", "auto"),
    )


def _point(exp, x, s):
    """The downstream config at one (x, series) point, lambda still the base's."""
    if exp.kind == "model_size":
        return dataclasses.replace(exp.down, width=int(x), synthetic_fraction=float(s))
    return dataclasses.replace(exp.down, T=int(x), width=int(s))


def _lam(exp, down, rule) -> float:
    if rule == "ridgeless":
        return 0.0
    if rule == "tuned":  # the theory's optimal lambda for this width, p and T
        return float(regularization.optimal_lambda(exp.spec, exp.gen, down, exp.n))
    return float(rule)


def _theory(exp, down):
    try:
        return float(theory.test_error(exp.spec, exp.gen, down, exp.n))
    except ValueError:  # on the interpolation threshold with lam = 0: no finite value
        return np.nan


register = protocol.family("regression", from_config)


def _run(exp, progress):
    """Error against the width ratio m/T (model_size) or against T for several widths (model_size_scaling)."""
    shape = (len(exp.rules), len(exp.series), len(exp.xs))
    sim = np.full(shape + (exp.seeds,), np.nan)
    th, lams = np.full(shape, np.nan), np.full(shape, np.nan)
    fine = np.unique(np.geomspace(exp.xs.min(), exp.xs.max(), 40).round().astype(int))
    lines = np.full(shape[:2] + (len(fine),), np.nan)
    for r, rule in enumerate(exp.rules):
        for j, s in enumerate(exp.series):
            for i, x in enumerate(exp.xs):
                down = _point(exp, x, s)
                down = dataclasses.replace(down, lam=_lam(exp, down, rule))
                lams[r, j, i], th[r, j, i] = down.lam, _theory(exp, down)
                if np.isfinite(th[r, j, i]):
                    res = simulate(exp.spec, exp.gen, down, exp.n, exp.seeds, exp.key, sampler=exp.sampler)
                    sim[r, j, i] = res.test_error[:, exp.n]
            for i, x in enumerate(fine):
                down = _point(exp, x, s)
                lines[r, j, i] = _theory(exp, dataclasses.replace(down, lam=_lam(exp, down, rule)))
    mean, sem = sim.mean(-1), sim.std(-1, ddof=1) / np.sqrt(exp.seeds)
    z, rel = (mean - th) / sem, mean / th - 1
    what = "p" if exp.kind == "model_size" else "width"
    xname = "width" if exp.kind == "model_size" else "T"
    rows = [f"{'lam':>10} {what:>6} {xname:>6} {'lambda':>9} {'sim':>9} {'+-sem':>8} {'theory':>9} {'z':>6} {'rel':>7}"]
    rows += [
        f"{rule!s:>10} {s:>6g} {x:>6d} {lams[r, j, i]:>9.3g} {mean[r, j, i]:>9.4f} {sem[r, j, i]:>8.4f} "
        f"{th[r, j, i]:>9.4f} {z[r, j, i]:>6.2f} {rel[r, j, i]:>7.2%}"
        for r, rule in enumerate(exp.rules)
        for j, s in enumerate(exp.series)
        for i, x in enumerate(exp.xs)
    ]
    ok = np.isfinite(z)
    summary = Summary(
        "DE",
        max_abs_z=float(np.abs(z[ok]).max()),
        max_rel_gap=float(np.abs(rel[ok]).max()),
        d=exp.spec.d,
        details=dict(n=exp.n),
    )
    fig = _figure(exp, fine, lines, mean, sem)
    arrays = dict(
        test_error=sim,
        theory_test_error=th,
        lam=lams,
        x=exp.xs,
        series=np.asarray(exp.series, float),
        theory_x=fine,
        theory_line=lines,
    )
    axes = dict(
        test_error=["rule", what, xname, "seed"],
        theory_test_error=["rule", what, xname],
        lam=["rule", what, xname],
        x=[xname],
        series=[what],
        theory_x=["x_fine"],
        theory_line=["rule", what, "x_fine"],
    )
    return ExperimentOutput(arrays, axes, rows, summary, fig)


register("model_size")(_run)
register("model_size_scaling")(_run)


def _figure(exp, fine, lines, mean, sem):
    fig, axs = plotting.panels(len(exp.rules))
    size = exp.kind == "model_size"
    scale = exp.down.T if size else 1.0
    for r, (rule, ax) in enumerate(zip(exp.rules, axs, strict=False)):
        rule_name = {"ridgeless": r"ridgeless ($\lambda \to 0$)", "tuned": r"$\lambda$ tuned per width"}
        plotting.theory_vs_simulation(
            fine / scale,
            lines[r],
            exp.xs / scale,
            mean[r],
            sem[r],
            [f"p = {s:g}" if size else f"m = {s}" for s in exp.series],
            xlabel="m / T" if size else "T",
            ylabel=f"test error after n = {exp.n}",
            title=rule_name.get(rule, rf"$\lambda$ = {rule}"),
            legend_title="synthetic fraction" if size else "width",
            ax=ax,
        )
        if size:
            ax.axvline(1.0, color="0.5", ls="--", lw=1)  # the interpolation threshold m = T
            ax.axvline(exp.spec.d / exp.down.T, color="0.5", ls=":", lw=1)  # m = d
        if r > 0:
            ax.get_legend().remove()
    fig.suptitle(exp.description or exp.name)
    return fig
