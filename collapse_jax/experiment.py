"""Experiments of every family: a TOML file -> a registered kind -> simulation and theory -> results -> figure.

A file's `kind` names an experiment kind that its family registered (`collapse_jax.engine.protocol`); every
kind returns an `ExperimentOutput` (arrays with named axes, the printed table, a typed `Summary`, the figure).
`kinds()` lists them with their families (so does `collapse-jax run --help`); experiments/README.md lists the
files. Here, for all of them: reading a file with command-line settings (`read_toml`), running, judging and
saving (`run`, `compute`, `judge`) and sweeping any of their keys over a [grid] (`sweep_file`, on the same
chunk store as the regression sweep: resumable, sharded, merged with typed coordinates).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import time
import tomllib
from pathlib import Path

import jax
import numpy as np

# importing the families' experiment modules registers their kinds
from collapse_jax.distributions import experiments as _distributions  # noqa: F401
from collapse_jax.engine import agreement, checks, grid, io, plotting, protocol, store, timing
from collapse_jax.engine.progress import reporter
from collapse_jax.engine.protocol import ExperimentOutput, Summary
from collapse_jax.kernels import experiments as _kernels  # noqa: F401
from collapse_jax.regression import compare as _compare  # noqa: F401
from collapse_jax.regression import experiments as _regression  # noqa: F401
from collapse_jax.regression import model_size as _model_size  # noqa: F401
from collapse_jax.regression import optimize_experiments as _optimize  # noqa: F401
from collapse_jax.regression import weighted_experiments as _weighted  # noqa: F401

KINDS = tuple(protocol.REGISTRY)
LIST_TYPES = {"ints", "reals", "strs", "list"}


def kinds() -> dict[str, list[str]]:
    """{family: [kind, ...]} of every registered experiment kind.

    Example:
        >>> kinds()["distributions"][:2]
        ['gaussian_chain', 'gaussian_w2']
    """
    out: dict[str, list[str]] = {}
    for k in protocol.REGISTRY.values():
        out.setdefault(k.family, []).append(k.name)
    return out


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
    return protocol.lookup(cfg.get("kind", "lambda_scan")).build(cfg, default_name)


def run(exp, out_dir: str | Path = "results", progress: bool = True) -> Summary:
    """Run the experiment, save results and figure, print the theory-vs-simulation table. Returns the Summary."""
    with plotting.use(**plotting.options(exp.plot)):
        return _run(exp, out_dir, progress)


def compute(exp, progress: bool = False) -> ExperimentOutput:
    """Simulation and theory of one experiment, any family, its summary judged."""
    reporter(progress)(f"[{exp.name}] {exp.kind}: {exp.chain}, {exp.seeds} seeds")
    output = protocol.lookup(exp.kind).run(exp, progress)
    return dataclasses.replace(output, summary=judge(output.summary))


def judge(summary: Summary) -> Summary:
    """The summary with its verdict: exact formulas by |z|, deterministic equivalents by |z| or their finite-size
    gap (the lab's agreement rule, called here and nowhere else in the experiment layer).

    Example:
        >>> judge(Summary("exact", max_abs_z=1.5)).agrees
        True
    """
    if summary.formula == "none" or not np.isfinite(summary.max_abs_z):
        return dataclasses.replace(summary, agrees=True, verdict="no closed form checked")
    rel = summary.max_rel_gap if np.isfinite(summary.max_rel_gap) else None
    band = summary.band if np.isfinite(summary.band) else None
    ok, sentence = agreement.agreement(
        summary.formula, summary.max_abs_z, rel, summary.d, band=band, seeds=summary.seeds
    )
    return dataclasses.replace(summary, agrees=bool(ok), verdict=sentence)


def sweep_file(cfg: dict, out: str | Path, progress: bool = True, shard=None, _fail_after=None):
    """Sweep an experiment of any family over a [grid] of its own keys ("chain.M", "kernel.lengthscale",
    "spectrum.beta", ...): every combination runs the experiment with those values set (a scalar value of a
    list key, chain.M = 10, runs that one value), one chunk per point on the sweep store (resumable; shard =
    (i, N) runs every N-th point, then `collapse-jax merge`; the default None is one process, or under jax.distributed splits the points
    over the processes, which exchange them through JAX's collectives, process 0 writing and merging). Writes out/sweep.npz and out/sweep.json (arrays
    with the grid axes in front, typed coordinates, each point's summary and the sweep's verdict). Returns the
    `engine.grid.GridSweep`, or None while other shards are unfinished.

    Example TOML:
        kind = "kde_chain"
        [chain]
        generations = 20
        [grid]
        "chain.M" = [50, 100]
    """
    cfg = dict(cfg)
    table = cfg.pop("grid", None)
    if not isinstance(table, dict) or not table:
        raise ValueError('a sweep file needs a [grid] table of experiment keys, e.g. "chain.M" = [50, 100]')
    names = list(table)
    for name in names:
        if not isinstance(table[name], list) or not table[name]:
            raise ValueError(f"grid.{name} must be a non-empty list of values, got {table[name]!r}")
    kind = protocol.lookup(cfg.get("kind", "lambda_scan"))
    # every point is built (and so checked) before anything runs or is written
    exps = [
        from_config(_at_point(cfg, kind, zip(names, vs, strict=True)), "sweep")
        for vs in itertools.product(*table.values())
    ]
    manifest = dict(kind=kind.name, config=cfg, axes=names, grid=table, x64=bool(jax.config.read("jax_enable_x64")))

    def point(p):
        output = compute(exps[p])
        plotting.close(output.figure)
        return output

    return grid.run(out, manifest, len(exps), point, shard=shard, progress=progress, _fail_after=_fail_after)


def _at_point(cfg: dict, kind, values) -> dict:
    """The config with the grid point's values set; a scalar for a key whose schema is a list becomes [value]."""
    cfg = copy.deepcopy(cfg)
    for name, value in values:
        section, _, key = name.partition(".")
        if not key or not isinstance(cfg.get(section, {}), dict):
            raise ValueError(f'grid key {name!r} must name a key of a table, like "chain.M"')
        listed = kind.options.get(section, {}).get(key) in LIST_TYPES or isinstance(cfg.get(section, {}).get(key), list)
        cfg.setdefault(section, {})[key] = [value] if listed and not isinstance(value, list) else value
    return cfg


def _run(exp, out_dir, progress: bool) -> Summary:
    store.not_a_sweep(out_dir, "an experiment's results")  # before anything runs
    t0 = time.perf_counter()
    output = compute(exp, progress)
    summary = dataclasses.replace(output.summary, seconds=time.perf_counter() - t0)
    out = Path(out_dir) / checks.name(exp.name)
    record = dict(config=exp.config, root_seed=exp.key, summary=summary.as_dict())
    with timing.stage("save"):
        npz, sidecar = io.save(out, output.arrays, output.axes, record)
    with timing.stage("figure"):
        figs = plotting.save(output.figure, out)
    print(f"{exp.name}: theory vs simulation ({exp.seeds} seeds per point, {summary.seconds:.1f}s)")
    for row in output.rows:
        print(row)
    print(summary.verdict if summary.formula != "none" else "no closed form checked (the table says why)")
    print(f"wrote {npz}, {sidecar}, {', '.join(map(str, figs))}")
    return summary
