"""Experiments of every family: a TOML file -> a family's experiment -> simulation and theory -> results -> figure.

A file's `kind` picks its family, and each family's `experiments` module has KINDS, from_config(cfg, name) and
runner(kind); experiments/README.md lists the files.

* regression (`collapse_jax.regression.experiments`, `.compare`, `.optimize_experiments`): "lambda_scan"
  (the default), "T_scan", "optimal_lambda", "compare", "joint_regularisation", "schedule_fit",
  "real_data_budget";
* distribution chains (`collapse_jax.distributions.experiments`): "gaussian_chain", "gaussian_w2", "kde_chain",
  "bootstrap", "discrete";
* kernel chains (`collapse_jax.kernels.experiments`): "krr_chain", "krr_spectrum".

Here, for all of them: reading a file with command-line settings (`read_toml`), running and saving (`run`,
`compute`) and sweeping any of their keys over a [grid] (`sweep_file`).
"""

from __future__ import annotations

import copy
import itertools
import time
import tomllib
from pathlib import Path

import numpy as np

from collapse_jax.distributions import experiments as distribution_experiments
from collapse_jax.engine import checks, io, plotting, store
from collapse_jax.engine.progress import reporter
from collapse_jax.kernels import experiments as kernel_experiments
from collapse_jax.regression import compare, optimize_experiments, theory
from collapse_jax.regression import experiments as regression_experiments

FAMILIES = (regression_experiments, compare, optimize_experiments, distribution_experiments, kernel_experiments)
KINDS = sum((f.KINDS for f in FAMILIES), ())


def load(path: str | Path, settings=(), **overrides):
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
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError, OSError) as err:
        raise ValueError(f"{what} {str(path)!r} is not valid TOML: {type(err).__name__}: {err}"[:500]) from None
    for item in settings:
        if not isinstance(item, str) or not item.isprintable():  # a newline would smuggle in another key
            raise ValueError(f"a setting must be one printable line section.key=value, got {item!r}"[:300])
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
        if k in cfg and isinstance(cfg[k], dict) and set(cfg[k]) == {"logspace"}:  # a grid written as a logspace
            cfg[k] = v
            continue
        if k in cfg and isinstance(cfg[k], dict) and not isinstance(v, dict):
            raise ValueError(f"setting {item!r}: {k!r} is a table in the file; set its keys (e.g. {k}.key=value)")
        if isinstance(v, dict):
            if k in cfg and not isinstance(cfg[k], dict):
                raise ValueError(f"setting {item!r}: {k!r} is a value in the file, not a table")
            _merge(cfg.setdefault(k, {}), v, item)
        else:
            cfg[k] = v


def from_config(cfg: dict, default_name: str = "experiment"):
    """The experiment of the file's kind (lambda_scan when it has none), checked by its family."""
    kind = cfg.get("kind", "lambda_scan")
    family = next((f for f in FAMILIES if kind in f.KINDS), None)
    if family is None:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return family.from_config(cfg, default_name)


def run(exp, out_dir: str | Path = "results", progress: bool = True) -> dict:
    """Run the scan, save results and figure, print the theory-vs-simulation table. Returns the summary."""
    with plotting.use(**plotting.options(exp.plot)):
        return _run(exp, out_dir, progress)


def compute(exp, progress: bool = False):
    """Simulation and theory of one experiment, any family: (arrays, axes, rows, summary, figure)."""
    family = next(f for f in FAMILIES if exp.kind in f.KINDS)
    reporter(progress)(f"[{exp.name}] {exp.kind}: {exp.chain}, {exp.seeds} seeds")
    return family.runner(exp.kind)(exp, progress)


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
    store.not_a_sweep(out, "an experiment sweep")  # before any point runs
    if not isinstance(grid, dict) or not grid:
        raise ValueError('a sweep file needs a [grid] table of experiment keys, e.g. "chain.M" = [50, 100]')
    names = list(grid)
    for name in names:
        if not isinstance(grid[name], list) or not grid[name]:
            raise ValueError(f"grid.{name} must be a non-empty list of values, got {grid[name]!r}")
    points, per_point, summaries = list(itertools.product(*(grid[n] for n in names))), [], []
    for i, values in enumerate(points):
        point_cfg = copy.deepcopy(cfg)
        for name, value in zip(names, values, strict=True):
            section, _, key = name.partition(".")
            if not key or not isinstance(point_cfg.get(section, {}), dict):
                raise ValueError(f'grid key {name!r} must name a key of a table, like "chain.M"')
            point_cfg.setdefault(section, {})[key] = value
        exp = from_config(point_cfg, default_name="sweep")
        reporter(progress)(f"[sweep] point {i + 1}/{len(points)}: {dict(zip(names, values, strict=True))}")
        arrays, axes, _, summary, fig = compute(exp, progress=False)
        plotting.close(fig)
        per_point.append((arrays, axes))
        summaries.append(summary)
    arrays0, axes0 = per_point[0]
    shape = tuple(len(grid[n]) for n in names)
    stacked, axes = {}, {}
    for k in arrays0:
        parts = [np.asarray(a[k]) for a, _ in per_point]
        if any(p.shape != parts[0].shape for p in parts):  # e.g. a grid over a size that shapes this array
            raise ValueError(
                f"array {k!r} changes shape across the grid ({sorted({p.shape for p in parts})}); "
                "sweep that key in separate runs"
            )
        stacked[k] = np.stack(parts).reshape(shape + parts[0].shape)
        axes[k] = names + list(axes0[k])
    out = Path(out)
    io.save(
        out / "sweep",
        stacked,
        axes,
        dict(config=cfg, grid=grid, summaries=summaries),
        coords={n: io.coordinate(grid[n]) for n in names},
    )
    return stacked, dict(axes=axes, grid=grid, summaries=summaries)


def _run(exp, out_dir, progress: bool) -> dict:
    store.not_a_sweep(out_dir, "an experiment's results")  # before anything runs
    out = Path(out_dir) / checks.name(exp.name)
    t0 = time.perf_counter()
    arrays, axes, rows, summary, fig = compute(exp, progress)
    summary["seconds"] = time.perf_counter() - t0
    npz, sidecar = io.save(out, arrays, axes, dict(config=exp.config, root_seed=exp.key, summary=summary))
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
