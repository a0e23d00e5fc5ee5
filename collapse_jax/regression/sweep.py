"""Sweeps: a Cartesian grid over config fields times seeds, chunked, sharded, resumable, written to disk.

Grid axes name config fields: "spec.d", "spec.beta", "spec.r", "spec.signal" (the parameters of a spectrum
made by `Spectrum.isotropic` or `Spectrum.power_law`, rebuilt at every point), "gen.T0", "gen.sigma0",
"gen.lam", "gen.fixed", "gen.strategy", "gen.real_fraction", "gen.real_weight", "down.T", "down.sigma", "down.lam",
"down.synthetic_fraction", "down.real_weight". Static fields (sizes, d, fixed, strategy) are looped over on the
host, one compilation each; data fields (spectrum exponents, noise levels, lambdas) are stacked and vmapped, so one
compiled function serves all their combinations.

Every grid point uses seed i's key fold_in(root, i): a point's numbers are those `cj.simulate` gives for
that config and key, whatever the chunking, the devices, or how the work was split over processes.

On disk (`out`): `manifest.json` (the resolved config, a different config refused, and the hash of every chunk's
numbers), one file per finished chunk of seeds in `chunks/` (written atomically under a per-process name;
verified and skipped when a run resumes, recomputed when damaged), and, once every chunk is there,
`sweep.npz` + `sweep.json` (arrays with named axes: grid axes..., seed, n; theory on the same grid).

Example:
    >>> import collapse_jax as cj, tempfile
    >>> res = cj.sweep(cj.Spectrum.isotropic(10), cj.Generators(T0=40), cj.Downstream(T=40),
    ...                grid={"down.lam": [0.0, 0.1, 1.0], "gen.sigma0": [0.5, 1.0]}, generations=2, seeds=16,
    ...                key=0, out=tempfile.mkdtemp(), progress=False)
    >>> res.test_error.shape, res.axes
    ((3, 2, 16, 3), ('down.lam', 'gen.sigma0', 'seed', 'n'))
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax.engine import agreement, checks, grid, io, store
from collapse_jax.engine.compilation_cache import Stored
from collapse_jax.engine.fields import grid_fields
from collapse_jax.engine.progress import reporter
from collapse_jax.engine.seeds import (
    chunk_size_for,
    describe,
    root_key,
    seed_mean,
    seed_sem,
    seed_sharding,
    working_memory,
)
from collapse_jax.engine.strategies import STRATEGIES
from collapse_jax.regression import theory
from collapse_jax.regression.chain import Metrics, resolve_sampler
from collapse_jax.regression.problem import Downstream, Generators
from collapse_jax.regression.simulate import default_chunk, seed_batch
from collapse_jax.regression.spectra import Spectrum

# Grid axes and which of them are static, read off the configs' own declarations: a dataclass field's metadata
# (static=True; sweep=False keeps a field off the grid) and the parameters of the Spectrum recipes.
_OWNERS = {"spec": Spectrum, "gen": Generators, "down": Downstream}
FIELDS = {owner: tuple(grid_fields(cls)) for owner, cls in _OWNERS.items()}
STATIC = {f"{owner}.{name}" for owner, cls in _OWNERS.items() for name, static in grid_fields(cls).items() if static}


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """Arrays of shape (*grid, seeds, generations + 1); theory (*grid, generations + 1), NaN where invalid."""

    test_error: np.ndarray
    generator_error: np.ndarray
    theory_test_error: np.ndarray
    theory_generator_error: np.ndarray
    axes: tuple[str, ...]
    grid: dict
    invalid: dict  # {"i,j,...": reason} for grid points that could not be simulated
    no_theory: dict  # {"i,j,...": reason} for grid points without a formula
    formula: np.ndarray  # (*grid,) "exact", "DE" or "none": the kind of prediction at each point
    d: int  # the spectrum's dimension, the smallest on the grid (sets the DEs' finite-size bound)

    def mean(self) -> Metrics:
        return seed_mean(Metrics(self.test_error, self.generator_error))

    def sem(self) -> Metrics:
        return seed_sem(Metrics(self.test_error, self.generator_error))

    def _variables(self):
        names = tuple(self.axes[:-2])
        seeds, n = self.test_error.shape[-2:]
        variables = {k: (self.axes, getattr(self, k)) for k in ("test_error", "generator_error")}
        variables |= {k: ((*names, "n"), getattr(self, k)) for k in ("theory_test_error", "theory_generator_error")}
        variables["formula"] = (names, self.formula)
        coords = {a: np.asarray(self.grid[a]) for a in names} | dict(seed=np.arange(seeds), n=np.arange(n))
        return variables, coords

    def to_xarray(self):
        """An xarray.Dataset: simulated metrics over (*grid, seed, n), theory over (*grid, n), the formula kind over
        the grid, with the grid values as coordinates (needs the `analysis` extra)."""
        return io.to_xarray(*self._variables())

    def to_dataframe(self):
        """Tidy long format: one row per (grid point, seed, n), theory and formula kind beside the simulation."""
        return io.to_dataframe(*self._variables())

    def agreement(self) -> list[str]:
        """One sentence per kind of formula on the grid (exact, DE): the largest |z| and relative gap of the test
        error over those points and generations, judged as `theory.agreement` does."""
        mean, sem = self.mean().test_error, self.sem().test_error
        out = []
        for kind in ("exact", "DE"):
            mask = self.formula == kind
            if mask.any() and np.isfinite(self.theory_test_error[mask]).any():
                ok = np.isfinite(self.theory_test_error[mask])
                gap = agreement.de_gap(self.d) if kind == "DE" else 0.0
                m, s, t = (a[mask][ok] for a in (mean, sem, self.theory_test_error))
                out.append(agreement.judge_moments(kind, m, s, t, gap=gap).sentence)
        return out

    def zscore(self) -> Metrics:
        """(mean - theory) / sem at every grid point and generation (NaN where either is missing)."""
        theory_ = (self.theory_test_error, self.theory_generator_error)
        return Metrics(*map(agreement.zscore, self.mean(), self.sem(), theory_))


@checks.checked(
    spec=checks.Instance(Spectrum),
    gen=checks.Instance(Generators),
    down=checks.Instance(Downstream),
    grid=checks.Instance(dict),
    out=checks.PathLike(),
    max_memory=checks.Optional(checks.Int(1)),
    progress=checks.OneOf(True, False),
)
def sweep(
    spec: Spectrum,
    gen: Generators,
    down: Downstream,
    grid: dict,
    generations: int,
    seeds: int,
    key=0,
    *,
    out: str | Path,
    sampler: str = "auto",
    chunk_size: int | None = None,
    max_memory: int | None = None,
    shard: tuple[int, int] | None = None,
    progress: bool = True,
    _fail_after: int | None = None,
):
    """Run (or resume) a sweep; returns a SweepResult when every chunk is on disk, else None (other shards).

    Args:
        spec: the base spectrum (its recipe lets spec.* fields vary on the grid).
        gen: the base generators.
        down: the base downstream model.
        grid: {field: values}, e.g. {"down.lam": np.logspace(-3, 1, 9), "down.T": [100, 300]}.
        generations: N >= 0; every n = 0..N is measured.
        seeds: seeds per grid point.
        key: an int root seed; seed i of every point uses fold_in(key, i), as `simulate` does.
        out: the folder for the manifest, the chunks and the merged sweep.
        sampler: 'auto', 'direct' or 'suffstats' (see `simulate`).
        chunk_size: seeds per chunk (default: the chunk size of the sweep already in `out`, resumed; else what fits
            `max_memory` bytes for all data points at once).
        shard: (i, N): this process runs the chunks whose index is i mod N; `merge(out)` joins them. By default
            (None), one process runs them all; under `jax.distributed.initialize` (several processes) the processes
            split the missing chunks and exchange them through JAX's collectives, process 0 alone writes the
            folder and merges (no shared filesystem needed; `engine/collective.py`), bit-identical to one process.
        max_memory: bytes one chunk may use, all data points together (sets the default chunk_size; default
            `engine.seeds.working_memory()`, 1/16 of this machine's memory within [256 MiB, 2 GiB]).
        progress: print one line per chunk to stderr.
        _fail_after: raise after writing that many chunks (tests inject an interruption with it).

    Returns:
        SweepResult (per-seed metrics with the grid axes in front, theory and formula kind at every point), or
        None in a shard process that does not merge.

    Raises:
        ValueError: an unknown grid field, a folder holding a different sweep, or a bad size or shard.

    Example:
        >>> import tempfile, collapse_jax as cj
        >>> out = tempfile.mkdtemp()
        >>> res = cj.sweep(cj.Spectrum.isotropic(6), cj.Generators(T0=20), cj.Downstream(T=20), {"down.lam": [0, 1.0]},
        ...                generations=1, seeds=8, out=out, progress=False)
        >>> res.test_error.shape, cj.sweep_load(out).formula.tolist()
        ((2, 8, 2), ['exact', 'DE'])
    """
    checks.Int(0, checks.MAX_GENERATIONS)("generations", generations)  # as `simulate` refuses them
    checks.Int(1, checks.MAX_SIZE)("seeds", seeds)
    generations = checks.size("generations", generations, lo=0)
    seeds = checks.size("seeds", seeds, lo=1)
    key = checks.size("key (an int seed for sweeps)", key, lo=0)
    store.shard_of(shard)  # checked before anything runs
    names, values = _check_grid(grid, spec)
    static_names = [n for n in names if n in STATIC]
    data_names = [n for n in names if n not in STATIC]
    n_data = _count(values, data_names)
    out = Path(out)
    recorded = store.recorded_chunk_size(out) if chunk_size is None else None
    memory = working_memory() if max_memory is None else max_memory
    chunk = recorded or chunk_size_for(  # a sweep resumed keeps its chunks, whatever this machine or version chooses
        seeds, chunk_size, _default_chunk(spec, gen, down, values, generations, n_data, memory)
    )
    checks.choice("sampler", sampler, ("auto", "direct", "suffstats"))  # before anything is written

    manifest = _manifest(spec, gen, down, names, values, generations, seeds, key, sampler, chunk)
    jobs = list(itertools.product(range(_count(values, static_names)), range(math.ceil(seeds / chunk))))
    say = reporter(progress)
    shape_of = lambda c: (n_data, min(chunk, seeds - c * chunk), generations + 1)
    done = lambda j: store.read_chunk(out, j[0], j[1], shape_of(j[1]), Metrics._fields, say) is not None
    describe = lambda on_disk, total: (
        f"[sweep] {out}: {len(names)} axes, {_count(values, names)} points x {seeds} seeds, {len(jobs)} chunks "
        f"({on_disk} of the {total} to run here already on disk)"
    )
    root, t0, here = root_key(key), time.perf_counter(), []
    point_seeds = lambda js: sum(n_data * shape_of(c)[1] for _, c in js)

    def compute(job):
        s_idx, c_idx = job
        args = (values, static_names, data_names, s_idx, c_idx * chunk, chunk, shape_of(c_idx), generations)
        return _compute_chunk(root, spec, gen, down, *args, sampler)

    def report(job, written, left):
        here.append(job)
        finished = point_seeds(here)
        rate = finished / (time.perf_counter() - t0)
        say(
            f"[sweep] chunk {written} (static {job[0] + 1}, seeds {job[1] * chunk}..): {finished} point-seeds "
            f"done here, {point_seeds(left)} left, {rate:.0f}/s, ETA {point_seeds(left) / rate:.0f}s"
        )

    merged = lambda o: merge(o, progress=progress)
    hooks = dict(on_written=report, fail_after=_fail_after)
    return store.execute(out, manifest, jobs, compute, done, merged, say, describe, shard=shard, **hooks)


def _default_chunk(spec, gen, down, values, generations, n_data, max_memory) -> int:
    """Seeds per chunk that fit max_memory for all data points at once, at the largest sizes on the grid."""
    sizes = [max(gen.T0_tuple), down.T] + [max(np.atleast_1d(values[n])) for n in ("gen.T0", "down.T") if n in values]
    pooled = any(STRATEGIES[s].subsample for s in [gen.strategy] + values.get("gen.strategy", []) if s in STRATEGIES)
    rows = max(sizes) * (generations + 1 if pooled else 1)  # a subsample draws from a pool of every generation
    d_max = max([spec.d] + values.get("spec.d", []))
    width = max([w for w in [down.width] + values.get("down.width", []) if w is not None], default=0)
    return default_chunk(d_max, int(rows), max(1, max_memory // n_data), generations, width)


def _manifest(spec, gen, down, names, values, generations, seeds, key, sampler, chunk) -> dict:
    return dict(
        spectrum=dict(
            eigenvalues=np.asarray(spec.eigenvalues).tolist(), w0=np.asarray(spec.w0).tolist(), recipe=spec.recipe
        ),
        generators=describe(gen),
        downstream=describe(down),
        axes=names,
        grid={n: list(values[n]) for n in names},
        generations=generations,
        seeds=seeds,
        key=key,
        sampler=sampler,
        chunk_size=chunk,
        x64=bool(jax.config.read("jax_enable_x64")),
    )


@checks.checked(out=checks.PathLike(), progress=checks.OneOf(True, False))
def merge(out: str | Path, progress: bool = True):
    """Assemble the chunk files of a finished sweep (all shards) into sweep.npz/.json, with theory. A folder of
    an experiment sweep of any family (`collapse_jax.experiment.sweep_file`) is merged by `engine.grid.merge`.

    Args:
        out: the sweep's folder, where every shard wrote its chunks.
        progress: say on stderr which grid points have no formula or are invalid.

    Returns:
        The SweepResult (an `engine.grid.GridSweep` for an experiment sweep), also written to out/sweep.npz and
        out/sweep.json.

    Raises:
        ValueError: chunks are missing (it names one and the shard to re-run).

    Example:
        >>> import tempfile, collapse_jax as cj
        >>> out = tempfile.mkdtemp()
        >>> _ = cj.sweep(cj.Spectrum.isotropic(6), cj.Generators(T0=20), cj.Downstream(T=20), {"down.lam": [0, 1.0]},
        ...              generations=1, seeds=8, out=out, shard=(0, 1), progress=False)
        >>> cj.merge(out, progress=False).test_error.shape
        (2, 8, 2)
    """
    out = Path(out)
    m = store.read_manifest(out)
    if m is None:
        raise ValueError(f"cannot merge {str(out)!r}: it is not a sweep folder (no manifest.json in it)")
    if "kind" in m:
        return grid.merge(out, progress)
    needed = {"spectrum", "generators", "downstream", "axes", "grid", "generations", "seeds", "chunk_size", "key"}
    lacking = sorted(needed - set(m))
    if lacking or not isinstance(m["spectrum"], dict) or not isinstance(m["grid"], dict):
        raise ValueError(f"{out / 'manifest.json'} is not a sweep manifest (lacks {lacking or 'tables'})")
    store.clean_stale_temporaries(out)
    names = m["axes"]  # the grid's axis order (the manifest's keys are sorted)
    values = {n: m["grid"][n] for n in names}
    spec, gen, down = _manifest_configs(m)
    arrays = _read_chunks(out, m, names, values)
    th, formula, invalid, no_theory, d = _theory_on_grid(spec, gen, down, names, values, m["generations"], arrays)
    res = SweepResult(
        arrays["test_error"],
        arrays["generator_error"],
        th[0],
        th[1],
        axes=tuple(names) + ("seed", "n"),
        grid=values,
        invalid=invalid,
        no_theory=no_theory,
        formula=formula,
        d=d,
    )
    axes = {k: list(res.axes) for k in Metrics._fields} | {f"theory_{k}": names + ["n"] for k in Metrics._fields}
    coords = {n: grid.coordinate(values[n]) for n in names}
    coords |= {"seed": np.arange(m["seeds"]), "n": np.arange(m["generations"] + 1)}
    saved = arrays | {f"theory_{k}": t for k, t in zip(Metrics._fields, th, strict=True)} | {"formula": formula}
    meta = dict(config=m, grid=values, invalid=invalid, no_theory=no_theory, root_seed=m["key"], d=d)
    io.save(out / "sweep", saved, axes | {"formula": names}, meta, coords=coords)
    say = reporter(progress)
    say(f"[sweep] merged {out}: {len(invalid)} invalid point(s), {len(no_theory)} without theory")
    for label, why in invalid.items():
        say(f"  invalid point ({label}): {why}")
    return res


def _manifest_configs(m: dict):
    """(Spectrum, Generators, Downstream) of a sweep's manifest."""
    recipe = m["spectrum"].get("recipe")
    s = m["spectrum"]
    spec = Spectrum.from_config(recipe) if recipe else Spectrum(np.asarray(s["eigenvalues"]), np.asarray(s["w0"]))
    return spec, _config(Generators, m["generators"]), _config(Downstream, m["downstream"])


def _read_chunks(out: Path, m: dict, names: list, values: dict) -> dict:
    """{metric: (*grid, seed, n)} from every chunk file; a missing or damaged one is refused by name."""
    static_names = [n for n in names if n in STATIC]
    data_names = [n for n in names if n not in STATIC]
    n_chunks, n_data, size = math.ceil(m["seeds"] / m["chunk_size"]), _count(values, data_names), m["chunk_size"]
    per_static = []
    for s in range(_count(values, static_names)):
        parts = []
        for c in range(n_chunks):
            shape = (n_data, min(size, m["seeds"] - c * size), m["generations"] + 1)
            part = store.read_chunk(out, s, c, shape, Metrics._fields)
            if part is None:
                why = "is damaged or does not match the sweep's config; rerun the sweep, which recomputes it"
                if not store.chunk_path(out, s, c).exists():
                    why = "is missing; run the remaining shards first"
                raise ValueError(f"cannot merge {out}: chunk file {store.chunk_path(out, s, c)} {why}")
            parts.append(part)
        per_static.append({k: np.concatenate([p[k] for p in parts], axis=1) for k in Metrics._fields})
    return {
        k: _to_grid(np.stack([p[k] for p in per_static]), names, static_names, data_names, values)
        for k in Metrics._fields
    }


def _theory_on_grid(spec, gen, down, names, values, generations, arrays):
    """Theory (test, generator error) on the grid, the formula kind at every point, the invalid points (their
    simulated arrays set to NaN here) and those without a formula, and the smallest d on the grid."""
    shape = tuple(len(values[n]) for n in names)
    th = np.full((2,) + shape + (generations + 1,), np.nan)
    formula, invalid, no_theory, dims = np.full(shape, "none", dtype="<U5"), {}, {}, [spec.d]
    for point in np.ndindex(shape):
        label = ",".join(map(str, point))
        try:
            sp, g, d = _point_configs(spec, gen, down, {n: values[n][i] for n, i in zip(names, point, strict=True)})
        except ValueError as err:
            invalid[label] = str(err)
            for a in arrays.values():
                a[point] = np.nan
            continue
        dims.append(sp.d)
        formula[point] = theory.formula_kind(sp, g, d)
        try:
            t = theory.metrics(sp, g, d, np.arange(generations + 1))
            th[(0,) + point], th[(1,) + point] = np.asarray(t.test_error), np.asarray(t.generator_error)
        except ValueError as err:
            no_theory[label] = str(err)
    return (th[0], th[1]), formula, invalid, no_theory, min(dims)


@checks.checked(out=checks.PathLike())
def load(out: str | Path):
    """Read a merged sweep back (`cj.sweep_load`), of any family.

    Args:
        out: the folder holding sweep.npz and sweep.json.

    Returns:
        The SweepResult that `sweep` or `merge` returned; for an experiment sweep of any family an
        `engine.grid.GridSweep` (arrays over the grid axes and the experiment's own, typed coordinates, each
        point's summary and the sweep's verdict).

    Example:
        >>> import tempfile, collapse_jax as cj
        >>> out = tempfile.mkdtemp()
        >>> _ = cj.sweep(cj.Spectrum.isotropic(6), cj.Generators(T0=20), cj.Downstream(T=20), {"down.lam": [0, 1.0]},
        ...              generations=1, seeds=8, out=out, progress=False)
        >>> cj.sweep_load(out).axes
        ('down.lam', 'seed', 'n')
    """
    arrays, meta = io.load(Path(out) / "sweep")
    if "kind" in meta:
        return grid.from_loaded(arrays, meta)
    names = meta["axes"]["test_error"][:-2]
    where = Path(out) / "sweep.json"
    table = meta.get("grid")
    if not isinstance(table, dict) or set(table) != set(names):
        raise ValueError(f"{where}: its grid {table!r} does not hold the axes {names}")
    expected = tuple(len(table[n]) for n in names)
    for k in ("test_error", "generator_error", "theory_test_error", "theory_generator_error"):
        if k not in arrays or arrays[k].shape[: len(names)] != expected:
            raise ValueError(
                f"{where}: array {k!r} should have the grid's shape {expected} in front, got "
                f"{arrays[k].shape if k in arrays else 'no such array'}"
            )
    return SweepResult(
        arrays["test_error"],
        arrays["generator_error"],
        arrays["theory_test_error"],
        arrays["theory_generator_error"],
        tuple(names) + ("seed", "n"),
        meta["grid"],
        meta["invalid"],
        meta["no_theory"],
        arrays["formula"],
        meta["d"],
    )


def _points_batch(root, seed_ids, spec, gen, down, generations, sampler):
    """(data points, seeds, n) metrics: the simulator's batch over seeds, vmapped over stacked data points."""
    batch = functools.partial(seed_batch, generations=generations, sampler=sampler)
    return jax.vmap(batch, in_axes=(None, None, 0, 0, 0))(root, seed_ids, spec, gen, down)


_chunk = Stored(_points_batch, static_argnames=("generations", "sampler"))  # kept on disk where the CLI enables it


def _compute_chunk(
    root, spec, gen, down, values, static_names, data_names, s_idx, start, chunk, shape, generations, sampler
) -> dict:
    """The metrics of one chunk, shaped `shape`: every data point of static combination s_idx, seeds from start
    (computed `chunk` at a time, one compiled shape for every chunk, then cut to shape[1])."""
    static_vals = _nth(values, static_names, s_idx)
    spec_s, gen_s, down_s, bad = _stacked(
        spec, gen, down, dict(zip(static_names, static_vals, strict=True)), data_names, values
    )
    if bad is not None:  # the whole static combination is invalid: NaNs, so that the sweep can complete
        return {k: np.full(shape, np.nan) for k in Metrics._fields}
    ids = np.arange(start, start + chunk, dtype=np.uint32)
    ids = jax.device_put(ids, seed_sharding())
    metrics = _chunk(root, ids, spec_s, gen_s, down_s, generations=generations, sampler=sampler)
    return {k: np.asarray(v)[:, : shape[1]] for k, v in metrics._asdict().items()}


def _check_grid(grid: dict, spec: Spectrum):
    if not grid:
        raise ValueError("grid must name at least one field, e.g. {'down.lam': [0.01, 0.1]}")
    names, values = list(grid), {}
    for name in names:
        owner, _, field = name.partition(".")
        if field not in FIELDS.get(owner, ()):
            allowed = [f"{o}.{f}" for o, fs in FIELDS.items() for f in fs]
            raise ValueError(f"grid field {name!r} is not one of {allowed}")
        vals = list(np.asarray(grid[name]).tolist()) if not isinstance(grid[name], list) else list(grid[name])
        if not vals:
            raise ValueError(f"grid field {name!r} has no values")
        vals = [_check_value(name, v) for v in vals]
        if owner == "spec" and field not in (spec.recipe or {}):
            made = (
                f"spectrum kind {spec.recipe['kind']!r} has no {field!r}"
                if spec.recipe
                else "the spectrum was not made by Spectrum.isotropic or Spectrum.power_law"
            )
            raise ValueError(f"grid field {name!r}: {made}, so it cannot be rebuilt with other values")
        if owner == "spec" and not spec.matches_recipe():
            raise ValueError(
                f"grid field {name!r}: the spectrum's arrays no longer match its recipe {dict(spec.recipe or {})} (changed "
                "by dataclasses.replace or jax.tree.map?), so it cannot be rebuilt; build it with "
                "Spectrum.from_config or pass recipe=None"
            )
        values[name] = vals
    return names, values


GRID_KINDS = {"gen.fixed": "bool", "gen.strategy": "str"}  # every other field takes numbers
POSITIVE = {"gen.lam"}  # lam = 0 is OLS/min-norm, a different (static) chain: Generators(lam=None)


def _check_value(name: str, v):
    """One grid value of field `name`, refused by name when it is of the wrong type (a value of the right type
    out of its field's range makes an invalid point, reported at merge)."""
    kind = GRID_KINDS.get(name, "real")
    if kind == "bool":
        if not isinstance(v, (bool, np.bool_)):
            raise ValueError(f"grid field {name!r} takes true or false, got {v!r}")
        return bool(v)
    if kind == "str":
        return checks.choice(f"grid field {name!r}", v, checks.STRATEGIES)
    if isinstance(v, (list, tuple, np.ndarray)):  # stacking needs one shape: per-generation values sweep apart
        raise ValueError(
            f"grid field {name!r} takes single values, got {v!r}: sweep per-generation settings in separate runs"[:300]
        )
    if name in STATIC:  # sizes: integers, never rounded
        v = v.item() if isinstance(v, np.generic) else v
        if isinstance(v, float) and v.is_integer():  # a TOML grid read as floats (grid_values): 200.0 is 200
            v = int(v)
        checks.Int(-checks.MAX_SIZE, checks.MAX_SIZE)(f"grid field {name!r}", v)  # < 1: an invalid point
        return v
    checks.real_array(f"grid field {name!r}", v, ndim=(0,))
    if name in POSITIVE and v == 0:
        raise ValueError(
            f"grid field {name!r} must not be 0 (ridge generators), got {v!r}: lam = 0 is OLS/min-norm, "
            "Generators(lam=None), a different chain; sweep it in a separate run"
        )
    return v.item() if isinstance(v, np.generic) else v


def _count(values, names) -> int:
    return int(np.prod([len(values[n]) for n in names], dtype=int))


def _nth(values, names, index):
    """The index-th combination (C order) of the values of `names`."""
    if not names:
        return ()
    idx = np.unravel_index(index, tuple(len(values[n]) for n in names))
    return tuple(values[n][i] for n, i in zip(names, idx, strict=True))


def _point_configs(spec, gen, down, cfg: dict):
    """(Spectrum, Generators, Downstream) at one grid point; ValueError if the point is invalid."""
    sp, g, d = ({k.split(".", 1)[1]: v for k, v in cfg.items() if k.startswith(owner + ".")} for owner in FIELDS)
    if "T0" in g and isinstance(g["T0"], list):
        g["T0"] = tuple(g["T0"])
    spec = Spectrum.from_config(spec.recipe | sp) if sp else spec
    return spec, dataclasses.replace(gen, **g), dataclasses.replace(down, **d)


def _stacked(spec, gen, down, static_cfg, data_names, values):
    """Configs whose data leaves carry a leading axis over the data points (invalid points replaced by a valid
    one, their results overwritten with NaN at merge). Returns (spec, gen, down, reason) with reason set when
    the static combination itself is invalid."""
    try:
        s0, g0, d0 = _point_configs(spec, gen, down, static_cfg)
        resolve_sampler("auto", s0.d, g0, d0)
    except ValueError as err:
        return spec, gen, down, str(err)
    points = [
        dict(zip(data_names, combo, strict=True)) for combo in itertools.product(*(values[n] for n in data_names))
    ]
    configs, fallback = [], None
    for p in points:
        try:
            configs.append(_point_configs(s0, g0, d0, p))
            fallback = fallback or configs[-1]
        except ValueError:
            configs.append(None)
    if fallback is None:
        return spec, gen, down, "every data point of this combination is invalid"
    configs = [c or fallback for c in configs]
    dtype = jnp.zeros(()).dtype
    stack = lambda i: jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x, dtype) for x in xs]), *[c[i] for c in configs])
    return Spectrum.stack([c[0] for c in configs], dtype), stack(1), stack(2), None


def _to_grid(stacked, names, static_names, data_names, values):
    """(static, data, seed, n) arrays -> (*grid in `names` order, seed, n)."""
    shape = tuple(len(values[n]) for n in static_names) + tuple(len(values[n]) for n in data_names)
    arr = stacked.reshape(shape + stacked.shape[2:])
    order = [(static_names + data_names).index(n) for n in names]
    return np.transpose(arr, order + [len(names), len(names) + 1])


def _config(cls, described: dict):
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in described.items()}
    return cls(**kwargs)
