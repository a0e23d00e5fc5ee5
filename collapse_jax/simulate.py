"""Many seeds of a chain: vmap over seeds, host-side chunks for bounded memory, sharding over devices.

Seed i always uses the key fold_in(root, i), so a seed's numbers do not depend on the chunk size, the number
of devices or which slice of seeds a process runs.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from collapse_jax import _checks, io
from collapse_jax._checks import Instance, Int, Key, OneOf, Optional, checked
from collapse_jax.chain import Metrics, resolve_sampler, run_chain, working_rows
from collapse_jax.problem import Downstream, Generators
from collapse_jax.spectra import Spectrum

DEFAULT_MEMORY = 256 * 2**20  # bytes of working memory a chunk may use


@dataclasses.dataclass(frozen=True)
class Result:
    """Per-seed metrics of a simulation, arrays of shape (seeds, generations + 1), and the config that made them.

    Example:
        >>> import collapse_jax as cj
        >>> res = cj.simulate(cj.Spectrum.isotropic(10), cj.Generators(T0=40), cj.Downstream(T=40),
        ...                   generations=2, seeds=64, key=0)
        >>> res.test_error.shape, res.mean().test_error.shape
        ((64, 3), (3,))
    """

    test_error: np.ndarray
    generator_error: np.ndarray
    config: dict

    @property
    def metrics(self) -> Metrics:
        return Metrics(self.test_error, self.generator_error)

    def mean(self) -> Metrics:
        """Mean over seeds, per generation."""
        return seed_mean(self.metrics)

    def _variables(self):
        seeds, n = self.test_error.shape
        first = self.config.get("seed_offset", 0)
        return ({k: (("seed", "n"), v) for k, v in self.metrics._asdict().items()},
                dict(seed=np.arange(first, first + seeds), n=np.arange(n)))

    def to_xarray(self):
        """The metrics as an xarray.Dataset with dimensions (seed, n) (needs the `analysis` extra)."""
        return io.to_xarray(*self._variables())

    def to_dataframe(self):
        """One row per (seed, n) with columns test_error, generator_error (needs the `analysis` extra)."""
        return io.to_dataframe(*self._variables())

    def sem(self) -> Metrics:
        """Standard error of that mean (ddof 1)."""
        return seed_sem(self.metrics)

    def zscore(self, theory: Metrics) -> Metrics:
        """(mean - theory) / sem per generation; 0 where the sem vanishes and so does the difference, up to
        float64 roundoff of the theory (the generator error at n = 0)."""

        def z(m, s, t):
            diff = m - np.asarray(t)
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where((s == 0) & (np.abs(diff) <= 1e-12 * (1 + np.abs(m))), 0.0, diff / s)

        return Metrics(*map(z, self.mean(), self.sem(), theory))


def seed_mean(metrics: Metrics) -> Metrics:
    """Mean over the seed axis (the second to last)."""
    return Metrics(*(np.mean(a, axis=-2) for a in metrics))


def seed_sem(metrics: Metrics) -> Metrics:
    """Standard error of the seed mean (ddof 1)."""
    return Metrics(*(np.std(a, axis=-2, ddof=1) / math.sqrt(np.shape(a)[-2]) for a in metrics))


def default_chunk(d: int, rows: int, memory: int = DEFAULT_MEMORY, generations: int = 0) -> int:
    """Seeds per chunk so that the working arrays (a few d x d and rows x d matrices per seed, and the
    generations' weights and downstream right-hand sides, solved as one batch after the scan) fit in memory."""
    per_seed = 8 * (6 * d * d + 3 * rows * d + 4 * (generations + 1) * d + 64)
    return max(1, memory // per_seed)


def seed_batch(root, seed_ids, spec, gen, down, generations, sampler):
    """Metrics of the seeds `seed_ids` (axis 0 of every output), each with the key fold_in(root, seed)."""
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(root, seed_ids)
    one_seed = functools.partial(run_chain, generations=generations, sampler=sampler)
    return jax.vmap(one_seed, in_axes=(0, None, None, None))(keys, spec, gen, down)


_chunk = jax.jit(seed_batch, static_argnames=("generations", "sampler"))


def chunk_size_for(seeds: int, requested: int | None, default: int) -> int:
    """Seeds per compiled call: the request (or the default), at most `seeds`, rounded up to a multiple of
    the local device count so every device gets the same share."""
    chunk = _checks.size("chunk_size", default if requested is None else requested, lo=1)
    n = jax.local_device_count()
    return math.ceil(min(chunk, seeds) / n) * n


def seed_sharding() -> NamedSharding:
    """The seed axis split over this process's devices. Local devices only: in a multi-process run each
    process computes its own slice of seeds or grid points, with no collective between processes."""
    devices = jax.local_devices()
    mesh = jax.make_mesh((len(devices),), ("seeds",), axis_types=(AxisType.Auto,), devices=devices)
    return NamedSharding(mesh, PartitionSpec("seeds"))


def root_key(key):
    """A typed PRNG key from an int seed or an existing key."""
    if isinstance(key, (int, np.integer)):
        return jax.random.key(int(key))
    if jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(key)


def run_chunks(call, seeds: int, chunk: int, seed_offset: int = 0, progress: bool = False):
    """Concatenate call(seed_ids) over chunks of `chunk` seed ids, sharded over the local devices.

    call maps a uint32 array of seed ids to a pytree of arrays with the seed on axis 0. The last chunk is
    padded to keep one compiled shape, and the padding is dropped. Returns the pytree as numpy arrays.
    """
    if seed_offset + seeds > 2**32:
        raise ValueError(f"seed_offset + seeds must be <= 2**32 (seed ids are uint32), got {seed_offset + seeds}: "
                         "larger ids would wrap around and reuse seeds")
    sharding = seed_sharding()
    parts, start, t0 = [], 0, time.perf_counter()
    n_chunks = math.ceil(seeds / chunk)
    for i in range(n_chunks):
        ids = np.arange(seed_offset + start, seed_offset + start + chunk, dtype=np.uint32)
        out = call(jax.device_put(ids, sharding))
        take = min(chunk, seeds - start)
        parts.append(jax.tree.map(lambda a: np.asarray(a)[:take], out))
        start += take
        if progress:
            rate = start / (time.perf_counter() - t0)
            print(f"chunk {i + 1}/{n_chunks}: {start}/{seeds} seeds, {rate:.0f} seeds/s, "
                  f"ETA {(seeds - start) / rate:.0f}s", file=sys.stderr)
    return jax.tree.map(lambda *a: np.concatenate(a), *parts)


def map_seeds(one_seed, key, seeds: int, *, data=(), chunk_size: int | None = None, seed_offset: int = 0,
              progress: bool = False):
    """Run one_seed(key, *data) -> pytree for `seeds` seeds (seed i gets fold_in(key, seed_offset + i)), vmapped
    and jit-compiled, in chunks of chunk_size seeds (default: all). `data` (arrays shared by every seed, such as
    a kernel matrix) are passed as arguments rather than captured, so that they are not compiled in as
    constants. Returns the pytree stacked on axis 0, as numpy.

    Example:
        >>> import jax
        >>> from collapse_jax.simulate import map_seeds
        >>> map_seeds(lambda k: jax.random.normal(k, (3,)), key=0, seeds=5).shape
        (5, 3)
    """
    seeds = _checks.size("seeds", seeds, lo=1)
    root = root_key(key)
    batch = _seed_batch(one_seed)
    chunk = chunk_size_for(seeds, chunk_size, seeds)
    data = tuple(jnp.asarray(a) for a in data)
    return run_chunks(lambda ids: batch(root, ids, data), seeds, chunk,
                      _checks.size("seed_offset", seed_offset, lo=0), progress)


@functools.lru_cache(maxsize=64)
def _seed_batch(one_seed):
    """The jit-compiled batch of one_seed over seed ids, kept per function: chains build their one_seed
    through cached builders, so calling a chain again with the same config does not compile again."""

    @jax.jit
    def batch(root, ids, data):
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(root, ids)
        return jax.vmap(one_seed, in_axes=(0,) + (None,) * len(data))(keys, *data)

    return batch


@checked(spec=Instance(Spectrum), gen=Instance(Generators), down=Instance(Downstream),
         generations=Int(0, _checks.MAX_GENERATIONS), seeds=Int(1), key=Key(),
         sampler=OneOf("auto", "direct", "suffstats"), chunk_size=Optional(Int(1)), seed_offset=Int(0),
         progress=OneOf(True, False))
def simulate(
    spec: Spectrum,
    gen: Generators,
    down: Downstream,
    generations: int = 20,
    seeds: int = 1000,
    key=0,
    *,
    sampler: str = "auto",
    chunk_size: int | None = None,
    seed_offset: int = 0,
    progress: bool = False,
) -> Result:
    """Simulate `seeds` independent chains and return per-seed metrics for n = 0..generations.

    Args:
        spec, gen, down: the problem (see `Spectrum`, `Generators`, `Downstream`).
        generations: N >= 0; every n = 0..N is measured.
        seeds: number of independent chains.
        key: int or PRNG key; seed i uses fold_in(key, seed_offset + i).
        sampler: 'auto' (sufficient statistics wherever T >= d, exact and fast), 'direct' or 'suffstats'.
        chunk_size: seeds per compiled call (default: fits DEFAULT_MEMORY); never changes the numbers.
        seed_offset: first seed index, so that slices of one run can be computed apart and merged.
        progress: print one line per chunk to stderr.

    Example:
        >>> import collapse_jax as cj
        >>> res = cj.simulate(cj.Spectrum.isotropic(10), cj.Generators(T0=40), cj.Downstream(T=40),
        ...                   generations=5, seeds=200, key=1)
        >>> res.mean().generator_error.shape
        (6,)
    """
    generations = _checks.size("generations", generations, lo=0)
    seeds = _checks.size("seeds", seeds, lo=1)
    seed_offset = _checks.size("seed_offset", seed_offset, lo=0)
    fits_in_memory(2 * seeds * (generations + 1) * 8, "the result arrays (seeds x (generations + 1) x 2 metrics)")
    d = spec.d
    sampler_used = resolve_sampler(sampler, d, gen, down)
    gen.per_generation(generations)  # checks generations against a per-generation config
    down = down.resolved(generations)  # a lambda schedule becomes one lambda per generation
    chunk = chunk_size_for(seeds, chunk_size, default_chunk(d, working_rows(gen, down, generations),
                                                                  generations=generations))

    root = root_key(key)
    call = lambda ids: _chunk(root, ids, spec, gen, down, generations, sampler)  # noqa: E731
    metrics = Metrics(*run_chunks(call, seeds, chunk, seed_offset, progress))
    config = dict(
        spectrum=dict(d=d), generators=describe(gen), downstream=describe(down), generations=generations,
        seeds=seeds, seed_offset=seed_offset, key=key if isinstance(key, int) else "custom",
        sampler=sampler, sampler_used=dict(generators=sampler_used[0], downstream=sampler_used[1]),
        chunk_size=chunk, devices=jax.local_device_count(), x64=bool(jax.config.jax_enable_x64),
    )
    return Result(*metrics, config=config)


def fits_in_memory(nbytes: int, what: str):
    """Refuse up front what could not be held in this machine's memory, saying how much it would need."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if nbytes > total:
        raise ValueError(f"{what} would need {nbytes / 2**30:.1f} GiB, more than this machine's "
                         f"{total / 2**30:.1f} GiB; use fewer seeds, or run slices with seed_offset")


def describe(cfg) -> dict:
    """A JSON-friendly view of a config dataclass."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        out[f.name] = np.asarray(v).tolist() if v is not None and not isinstance(v, (bool, str)) else v
    return out
