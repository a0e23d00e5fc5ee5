"""An experiment: a TOML file -> problem -> simulation and theory on a (lambda x n) grid -> results -> figure.

Example TOML (experiments/default.toml is the full one):

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
import sys
import time
import tomllib
from pathlib import Path

import jax
import numpy as np

from collapse_jax import io, plotting, theory
from collapse_jax.problem import Downstream, Generators
from collapse_jax.simulate import simulate
from collapse_jax.spectra import Spectrum


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    spec: Spectrum
    gen: Generators
    down: Downstream
    lams: np.ndarray  # downstream lambda grid (simulated and predicted)
    ns: tuple[int, ...]  # generations shown in the figure and the table
    seeds: int
    key: int
    sampler: str
    x_axis: str  # "lam": curves over lambda, one per n; "n": curves over n, one per lambda
    config: dict  # the resolved TOML, recorded beside the results


def load(path: str | Path, **overrides) -> Experiment:
    """Read an experiment file; overrides (e.g. seeds=100) replace [simulation] entries."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"experiment file {str(path)!r} does not exist")
    cfg = tomllib.loads(path.read_text())
    cfg.setdefault("simulation", {}).update({k: v for k, v in overrides.items() if v is not None})
    return from_config(cfg, default_name=path.stem)


def from_config(cfg: dict, default_name: str = "experiment") -> Experiment:
    """Build an Experiment from a parsed TOML dict, with clear errors for unknown or missing entries."""
    known = {"name", "description", "spectrum", "generators", "downstream", "scan", "simulation", "plot"}
    unknown = set(cfg) - known
    if unknown:
        raise ValueError(f"unknown section(s) {sorted(unknown)} in experiment; allowed: {sorted(known)}")
    scan, sim, plot = cfg.get("scan", {}), cfg.get("simulation", {}), cfg.get("plot", {})
    gen_cfg = dict(cfg.get("generators", {}))
    for k in ("T0", "sigma0", "lam"):
        if isinstance(gen_cfg.get(k), list):
            gen_cfg[k] = tuple(gen_cfg[k])
    lams = _grid("scan.lam", scan.get("lam", [cfg.get("downstream", {}).get("lam", 0.0)]))
    down_cfg = {k: v for k, v in cfg.get("downstream", {}).items() if k != "lam"}
    ns = tuple(int(n) for n in scan.get("n", [0, 1, 2, 5, 10]))
    if plot.get("x", "lam") == "lam" and np.any(lams <= 0):
        raise ValueError("scan.lam must be > 0 with plot.x = 'lam' (a log axis); use plot.x = 'n' to include 0")
    return Experiment(
        name=cfg.get("name", default_name), description=cfg.get("description", ""),
        spec=spectrum_from_config(cfg.get("spectrum", {})), gen=Generators(**gen_cfg),
        down=Downstream(**down_cfg, lam=float(lams[0])), lams=lams, ns=ns,
        seeds=int(sim.get("seeds", 400)), key=int(sim.get("key", 0)), sampler=sim.get("sampler", "auto"),
        x_axis=plot.get("x", "lam"), config=cfg,
    )


def spectrum_from_config(cfg: dict) -> Spectrum:
    cfg = dict(cfg)
    kind = cfg.pop("kind", "isotropic")
    if kind == "isotropic":
        return Spectrum.isotropic(**cfg)
    if kind == "power_law":
        return Spectrum.power_law(**cfg)
    if kind == "custom":
        return Spectrum(np.asarray(cfg["eigenvalues"], float), np.asarray(cfg["w0"], float))
    raise ValueError(f"spectrum.kind must be 'isotropic', 'power_law' or 'custom', got {kind!r}")


def _grid(name, spec) -> np.ndarray:
    if isinstance(spec, dict) and "logspace" in spec:
        a, b, num = spec["logspace"]
        return np.logspace(a, b, int(num))
    arr = np.atleast_1d(np.asarray(spec, dtype=float))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty list or {{logspace = [a, b, num]}}, got {spec!r}")
    return arr


def theory_grid(exp: Experiment, lams: np.ndarray, ns) -> theory.Metrics:
    """Theory metrics of shape (len(lams), len(ns)), vmapped over lambda (one compiled evaluation)."""
    ns = np.asarray(ns)
    one = lambda lam: theory.metrics(exp.spec, exp.gen, dataclasses.replace(exp.down, lam=lam), ns)
    return jax.tree.map(np.asarray, jax.vmap(one)(jax.numpy.asarray(lams)))


def run(exp: Experiment, out_dir: str | Path = "results", progress: bool = True) -> dict:
    """Simulate and predict on the grid, save results and figure, print the theory-vs-simulation table."""
    generations = max(exp.ns)
    say = (lambda *a: print(*a, file=sys.stderr)) if progress else (lambda *a: None)
    say(f"[{exp.name}] d={exp.spec.d}, T0={exp.gen.T0}, T={exp.down.T}, {len(exp.lams)} lambdas x "
        f"{exp.seeds} seeds x {generations} generations")
    t0 = time.perf_counter()
    sims = []
    for i, lam in enumerate(exp.lams):
        # Same key for every lambda (common random numbers): smoother curves, each point still exact.
        res = simulate(exp.spec, exp.gen, dataclasses.replace(exp.down, lam=float(lam)), generations, exp.seeds,
                       exp.key, sampler=exp.sampler)
        sims.append(res)
        say(f"  lambda {i + 1}/{len(exp.lams)} = {lam:.3g}: {time.perf_counter() - t0:.1f}s")
    test = np.stack([r.test_error for r in sims])  # (lam, seed, n)
    gen_err = np.stack([r.generator_error for r in sims])
    th = theory_grid(exp, exp.lams, np.arange(generations + 1))  # (lam, n)
    mean, sem = test.mean(1), test.std(1, ddof=1) / np.sqrt(exp.seeds)
    z = (mean - th.test_error) / sem
    rel = mean / th.test_error - 1
    elapsed = time.perf_counter() - t0

    out = Path(out_dir) / exp.name
    arrays = dict(test_error=test, generator_error=gen_err, theory_test_error=th.test_error,
                  theory_generator_error=th.generator_error, lam=exp.lams, n=np.arange(generations + 1))
    axes = dict(test_error=["lam", "seed", "n"], generator_error=["lam", "seed", "n"],
                theory_test_error=["lam", "n"], theory_generator_error=["lam", "n"], lam=["lam"], n=["n"])
    summary = dict(max_abs_z=float(np.abs(z[:, list(exp.ns)]).max()),
                   max_abs_rel_error=float(np.abs(rel[:, list(exp.ns)]).max()), seconds=elapsed)
    npz, sidecar = io.save(out, arrays, axes, dict(config=exp.config, root_seed=exp.key, summary=summary,
                                                   simulation=sims[0].config))
    figs = plotting.save(figure(exp, mean, sem), out)

    print(f"{exp.name}: theory vs simulation ({exp.seeds} seeds per point, {elapsed:.1f}s)")
    print(f"{'n':>4} {'max |z|':>8} {'max |rel err|':>14}   over {len(exp.lams)} lambdas")
    for n in exp.ns:
        print(f"{n:>4} {np.abs(z[:, n]).max():>8.2f} {np.abs(rel[:, n]).max():>14.2%}")
    print(f"largest |z| = {summary['max_abs_z']:.2f}; wrote {npz}, {sidecar}, {', '.join(map(str, figs))}")
    return summary


def figure(exp: Experiment, mean: np.ndarray, sem: np.ndarray):
    """Test error against lambda (one colour per n) or against n (one colour per lambda)."""
    title = exp.description or exp.name
    if exp.x_axis == "lam":
        fine = np.logspace(np.log10(exp.lams.min()), np.log10(exp.lams.max()), 200)
        th = theory_grid(exp, fine, exp.ns).test_error.T  # (n, lam)
        ns = list(exp.ns)
        return plotting.theory_vs_simulation(
            fine, th, exp.lams, mean[:, ns].T, sem[:, ns].T, [f"n = {n}" for n in ns], xlabel=r"$\lambda$",
            ylabel="test error", title=title, legend_title="generation")
    if exp.x_axis == "n":
        n_all = np.arange(max(exp.ns) + 1)
        th = theory_grid(exp, exp.lams, n_all).test_error  # (lam, n)
        return plotting.theory_vs_simulation(
            n_all, th, n_all, mean, sem, [rf"$\lambda$ = {lam:.3g}" for lam in exp.lams], xlabel="generation n",
            ylabel="test error", title=title, logx=False, legend_title="downstream")
    raise ValueError(f"plot.x must be 'lam' or 'n', got {exp.x_axis!r}")
