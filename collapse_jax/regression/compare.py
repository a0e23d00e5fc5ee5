"""Experiments that compare variants of one regression chain (data strategies, real/synthetic mixtures) side by
side: error against the generation n, or against the downstream size T at one n, with theory where it exists.

TOML (kind = "compare"):

    [spectrum] / [generators] / [downstream]   the base chain
    [scan]        x = "n" and generations = 50, or x = "T", T = [...] and n = 5
    [[panels]]    optional: title, and spectrum / generators / downstream tables that override the base
    [[variants]]  label, and generators / downstream tables that override the panel's
    [simulation]  seeds, key, sampler

Arrays: simulation (panel, variant, x, seed) and theory (panel, variant, x), NaN where the lab has no formula.
The table says for each curve which kind of formula it was checked against (exact, DE, none).
"""

from __future__ import annotations

import dataclasses
import textwrap

import numpy as np

from collapse_jax.engine import checks, plotting, protocol
from collapse_jax.engine.agreement import mean_sem, zscore
from collapse_jax.engine.header import Header, read_header
from collapse_jax.engine.progress import reporter
from collapse_jax.engine.protocol import ExperimentOutput, Summary
from collapse_jax.regression import theory
from collapse_jax.regression.experiments import PROBLEM
from collapse_jax.regression.problem import Downstream, Generators
from collapse_jax.regression.simulate import simulate
from collapse_jax.regression.spectra import Spectrum


@dataclasses.dataclass(frozen=True)
class Comparison(Header):
    panels: tuple  # ((title, Spectrum, ((label, Generators, Downstream), ...)), ...)
    x: str
    xs: np.ndarray  # generations 0..N, or downstream sizes T
    n: int  # the generation measured when x = "T"
    sampler: str

    @property
    def chain(self) -> dict:
        return dict(variants=len(self.panels[0][2]), panels=len(self.panels), x=self.x)


def from_config(cfg: dict, default_name: str) -> Comparison:
    head = read_header(
        cfg,
        default_name,
        PROBLEM | {"scan", "panels", "variants"},
        seeds=400,
        simulation={"sampler": "str"},
        plot={"logy", "legend_title", "sharey", "ordered"},
    )
    if not isinstance(head["plot"].get("ordered", False), bool):
        raise ValueError(f"plot.ordered must be true or false, got {head['plot']['ordered']!r}")
    scan = dict(cfg.get("scan", {}))
    checks.sections(scan, {"x", "generations", "T", "n"}, "[scan]")
    x = checks.choice("scan.x", scan.get("x", "n"), ("n", "T"))
    if x == "n":
        xs, n = np.arange(checks.size("scan.generations", scan.get("generations", 20), lo=0) + 1), 0
    else:
        xs = np.asarray(checks.size("scan.T", list(scan.get("T", [])) or [0], lo=1))
        n = checks.size("scan.n", scan.get("n", 1), lo=0)
        tables = [("", cfg)] + [
            (f"panels[{i}].", p) for i, p in enumerate(checks.listed("panels", cfg.get("panels", [])))
        ]
        tables += [(f"variants[{j}].", v) for j, v in enumerate(cfg.get("variants", []))]
        for where, t in tables:  # a setting the run would not use is refused, naming what overrides it
            if isinstance(t, dict) and isinstance(t.get("downstream"), dict) and "T" in t["downstream"]:
                raise ValueError(
                    f"{where}downstream.T = {t['downstream']['T']!r} is overridden by scan.T (x = 'T' runs every "
                    "T of scan.T); set scan.T or drop downstream.T"
                )
    panels = []
    for i, p in enumerate(checks.listed("panels", cfg.get("panels", [{}]))):
        checks.sections(p, {"title", "spectrum", "generators", "downstream"}, f"[[panels]] entry {i}")
        spec = Spectrum.from_config(p.get("spectrum", cfg.get("spectrum", {})))
        variants = []
        for j, v in enumerate(checks.listed("variants", cfg.get("variants", [{"label": "base"}]))):
            checks.sections(v, {"label", "generators", "downstream"}, f"[[variants]] entry {j}")
            g = cfg.get("generators", {}) | p.get("generators", {}) | v.get("generators", {})
            d = cfg.get("downstream", {}) | p.get("downstream", {}) | v.get("downstream", {})
            where = f"[[variants]] entry {j} (panel {i})"
            variants.append(
                (
                    str(v.get("label", f"variant {j}")),
                    checks.build(Generators, g, f"{where} generators"),
                    checks.build(Downstream, d, f"{where} downstream"),
                )
            )
        panels.append((str(p.get("title", "")), spec, tuple(variants)))
    return Comparison(
        **head, panels=tuple(panels), x=x, xs=xs, n=n, sampler=cfg.get("simulation", {}).get("sampler", "auto")
    )


register = protocol.family("regression", from_config)


def _variant_at(gen, down, x, value):
    return (gen, down) if x == "n" else (gen, dataclasses.replace(down, T=int(value)))


@register("compare")
def run(exp: Comparison, progress: bool = True) -> ExperimentOutput:
    """Variants of one regression chain side by side, each against its exact formula or DE where one exists."""
    say = reporter(progress)
    P, V, X = len(exp.panels), len(exp.panels[0][2]), len(exp.xs)
    sim = np.full((P, V, X, exp.seeds), np.nan)
    th = np.full((P, V, X), np.nan)
    kinds = {}
    generations = int(exp.xs[-1]) if exp.x == "n" else exp.n
    for p, (_, spec, variants) in enumerate(exp.panels):
        for v, (label, gen, down) in enumerate(variants):
            for j, value in enumerate(exp.xs if exp.x == "T" else exp.xs[:1]):
                g, d = _variant_at(gen, down, exp.x, value)
                res = simulate(spec, g, d, generations, exp.seeds, key=exp.key, sampler=exp.sampler)
                kinds[p, v] = theory.formula_kind(spec, g, d)
                if exp.x == "n":
                    sim[p, v] = res.test_error.T
                    if kinds[p, v] != "none":
                        th[p, v] = theory.compiled_metrics(spec, g, d, exp.xs).test_error  # one stored program
                else:
                    sim[p, v, j] = res.test_error[:, exp.n]
                    if kinds[p, v] != "none":
                        th[p, v, j] = float(theory.test_error(spec, g, d, exp.n))
            say(f"  panel {p + 1}/{P}, {label}: done")
    mean, sem = mean_sem(sim, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z, rel = zscore(mean, sem, th), mean / th - 1
    rows = [
        f"{'panel':>24} {'variant':>26} {'formula':>8} {'max |z|':>8} {'max |rel|':>9} {'last sim':>10} "
        f"{'last theory':>11}"
    ]
    checked = []
    for (p, v), kind in kinds.items():
        zz, rr = np.abs(z[p, v][1:] if exp.x == "n" else z[p, v]), np.abs(rel[p, v])
        zmax = float(np.nanmax(zz)) if kind != "none" else float("nan")
        rmax = float(np.nanmax(rr)) if kind != "none" else float("nan")
        checked.append(
            dict(
                panel=exp.panels[p][0],
                variant=exp.panels[p][2][v][0],
                formula=kind,
                max_abs_z=zmax,
                max_abs_rel_error=rmax,
            )
        )
        rows.append(
            f"{exp.panels[p][0][:24]:>24} {exp.panels[p][2][v][0][:26]:>26} {kind:>8} {zmax:>8.2f} {rmax:>9.2%} "
            f"{mean[p, v, -1]:>10.4g} {th[p, v, -1]:>11.4g}"
        )
    exact = [c["max_abs_z"] for c in checked if c["formula"] == "exact"]
    de = [c for c in checked if c["formula"] == "DE"]
    # the looser criterion (DE) judges the whole comparison when some curve is a DE; curves without a formula
    # are listed in details and left out of the verdict
    summary = Summary(
        "DE" if de else "exact" if exact else "none",
        max_abs_z=max([c["max_abs_z"] for c in checked if c["formula"] != "none"], default=float("nan")),
        max_rel_gap=max([c["max_abs_rel_error"] for c in checked if c["formula"] != "none"], default=float("nan")),
        d=min([spec.d for _, spec, _ in exp.panels]),
        details=dict(
            curves=checked,
            max_abs_z_exact=max(exact) if exact else None,
            max_abs_rel_error_DE=max([c["max_abs_rel_error"] for c in de], default=None),
        ),
    )
    axes = dict(
        test_error=["panel", "variant", exp.x, "seed"],
        theory_test_error=["panel", "variant", exp.x],
        **{exp.x: [exp.x]},
    )
    arrays = {"test_error": sim, "theory_test_error": th, exp.x: exp.xs}
    x_line, th_line = theory_lines(exp, th, kinds)
    return ExperimentOutput(arrays, axes, rows, summary, _figure(exp, mean, sem, x_line, th_line, kinds))


def theory_lines(exp: Comparison, th: np.ndarray, kinds: dict) -> tuple[list, np.ndarray]:
    """The theory curves of the figure: at the simulated x when x = n; on a fine grid of T (theory is cheap)
    when x = T, each variant at its own T (see `_whole_rows_grid`). Returns (one x array per variant, values
    (panel, variant, x) padded with NaN)."""
    P, V = th.shape[:2]
    if exp.x != "T":
        return [exp.xs] * V, th
    fine = np.geomspace(exp.xs.min(), exp.xs.max(), 60)
    x_line = [_whole_rows_grid(fine, exp.panels[0][2][v][2].synthetic_fraction) for v in range(V)]
    th_line = np.full((P, V, max(len(x) for x in x_line)), np.nan)
    for (p, v), kind in kinds.items():
        if kind != "none":
            _, gen, down = exp.panels[p][2][v]
            th_line[p, v, : len(x_line[v])] = [
                float(theory.test_error(exp.panels[p][1], gen, dataclasses.replace(down, T=int(t)), exp.n))
                for t in x_line[v]
            ]
    return x_line, th_line


def _whole_rows_grid(fine, p) -> np.ndarray:
    """The sizes T near `fine` at which the theory line is drawn: every T when the downstream rows are all of
    one kind, else only those where p T is a whole number. The simulation labels round(p T) rows synthetic, so
    the theory is a step function of T (a jump wherever round(p T) moves, e.g. from 0 to 1 synthetic row at
    T = 50 for p = 0.01); drawn at whole p T it is the smooth curve through those steps' exact values."""
    if p is None or float(p) in (0.0, 1.0):
        return np.unique(fine.round().astype(int))
    p = float(p)
    rows = np.unique(np.maximum(1, np.round(p * fine)))
    T = np.round(rows / p).astype(int)
    return np.unique(T[np.isclose(p * T, np.round(p * T)) & (T >= fine.min() - 1) & (T <= fine.max() + 1)])


def _figure(exp, mean, sem, x_line, th, kinds):
    fig, axs = plotting.panels(len(exp.panels), sharey=exp.plot.get("sharey", True))
    every = max(1, len(exp.xs) // 12) if exp.x == "n" else 1  # markers: about a dozen per curve
    show = slice(None, None, every)
    for p, ax in enumerate(axs):
        labels = [
            lab + ("" if kinds[p, v] != "none" else " (no formula)") for v, (lab, _, _) in enumerate(exp.panels[p][2])
        ]
        plotting.theory_vs_simulation(
            x_line[0],
            [th[p, v, : len(x_line[v])] for v in range(len(x_line))],
            exp.xs[show],
            mean[p][:, show],
            sem[p][:, show],
            labels,
            xlabel="generation n" if exp.x == "n" else "downstream sample size T",
            ylabel="test error" if exp.x == "T" else "test error of the downstream model",
            title=textwrap.fill(exp.panels[p][0] or exp.description, 48),
            logx=exp.x == "T",
            logy=exp.plot.get("logy", exp.x == "T"),
            legend_title=exp.plot.get("legend_title"),
            ordered=exp.plot.get("ordered", False),
            x_theory_per_curve=x_line,
            ax=ax,
        )
        if p > 0:
            ax.get_legend().remove()
    if len(exp.panels) > 1 and exp.description:
        fig.suptitle(textwrap.fill(exp.description, 90))
    return fig
