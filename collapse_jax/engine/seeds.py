"""Seeds for every family: one key per seed, vmapped batches, host-side chunks, sharding over devices.

Seed i always uses the key fold_in(root, i), so a seed's numbers do not depend on the chunk size, the number
of devices or which slice of seeds a process runs. The regression simulator, the distribution chains and the
kernel chains all draw their seeds here.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from collapse_jax.engine import agreement, checks, compile_options
from collapse_jax.engine.compilation_cache import Stored
from collapse_jax.engine.progress import reporter


def seed_mean(metrics):
    """Mean over the seed axis (the second to last) of every array of a named tuple of metrics."""
    return type(metrics)(*(agreement.mean_sem(a, axis=-2)[0] for a in metrics))


def seed_sem(metrics):
    """Standard error of the seed mean (ddof 1)."""
    return type(metrics)(*(agreement.mean_sem(a, axis=-2)[1] for a in metrics))


def chunk_size_for(seeds: int, requested: int | None, default: int) -> int:
    """Seeds per compiled call: the request (or the default), at most `seeds`, spread evenly over the chunks that
    size needs, and rounded up to a multiple of the local device count so every device gets the same share.

    The last chunk is padded to the others' shape (one program), so uneven chunks compute seeds that are thrown
    away: validate's KRR check ran 618 seeds in chunks of 256, computing 768; in chunks of 206 it computes 618.
    The number of chunks, and so the memory bound the size was chosen for, is kept; a seed's numbers do not
    depend on its chunk (tests/test_inputs.py). Applied to its own result it returns the same size.

    Example:
        >>> chunk_size_for(618, 256, default=1000)  # three chunks of 206, where 256 left 150 padded seeds
        206
        >>> chunk_size_for(618, None, default=1000)  # the default, at most the seeds: one chunk
        618
    """
    chunk = checks.size("chunk_size", default if requested is None else requested, lo=1)
    n = jax.local_device_count()
    pieces = math.ceil(seeds / min(chunk, seeds))
    return math.ceil(math.ceil(seeds / pieces) / n) * n


def two_chunks(seeds: int, bytes_per_seed: int = 0, smallest: int = 256, budget: int = 8 * 2**20) -> int:
    """Seeds per chunk for a chain whose per-step work is too small to spread over the cores (the 1-D Gaussian's
    scan adds one number per seed and step): half the seeds (all of them below 2 x `smallest`), so that
    `run_chunks` keeps two chunks in flight and their sequential parts run side by side; and no more than keeps a
    chunk's output within `budget` bytes (at least 64 seeds). Larger chunks have arrays that the C allocator maps
    afresh at every call (it serves blocks over 32 MB, and some smaller ones, from new pages), and each new page
    costs a fault: the 1-D Gaussian chain (1,000 generations, 16 kB of output per seed) at 10,000 seeds took
    about 2,070 page faults per call in chunks of 250-1,000 seeds against 61,000-65,000 in chunks of 2,000 and
    99,000 in halves, and ran at 1.3x the rate of halves (benchmarks/README.md).

    Example:
        >>> two_chunks(2000), two_chunks(300), two_chunks(10_000, bytes_per_seed=16_016)
        (1000, 300, 523)
    """
    seeds = checks.size("seeds", seeds, lo=1)
    bytes_per_seed = checks.size("bytes_per_seed", bytes_per_seed, lo=0)
    half = seeds if seeds < 2 * smallest else math.ceil(seeds / 2)
    return min(half, max(64, budget // bytes_per_seed)) if bytes_per_seed else half


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


def run_chunks(call, seeds: int, chunk: int, seed_offset: int = 0, progress: bool = False, ahead: bool = False):
    """Concatenate call(seed_ids) over chunks of `chunk` seed ids, sharded over the local devices.

    call maps a uint32 array of seed ids to a pytree of arrays with the seed on axis 0. The last chunk is
    padded to keep one compiled shape, and the padding is dropped. Returns the pytree as numpy arrays.

    With `ahead`, the next chunk is dispatched before this one is read back (JAX dispatches asynchronously), so
    two chunks are in flight: a chain's sequential part (the scan over generations) runs beside the other
    chunk's instead of alone (the 1-D Gaussian chain, `two_chunks`), and peak memory is up to two chunks'. The
    regression chain does not use it: its chunks fill a memory budget, and two at once ran 6% slower.
    """
    if seed_offset + seeds > 2**32:
        raise ValueError(
            f"seed_offset + seeds must be <= 2**32 (seed ids are uint32), got {seed_offset + seeds}: "
            "larger ids would wrap around and reuse seeds"
        )
    sharding = seed_sharding()
    starts = range(0, seeds, chunk)
    t0, say = time.perf_counter(), reporter(progress)

    def dispatch(start: int):
        ids = np.arange(seed_offset + start, seed_offset + start + chunk, dtype=np.uint32)
        return call(jax.device_put(ids, sharding)), min(chunk, seeds - start)

    queue: collections.deque = collections.deque()  # dispatched, not yet read back
    result = None
    for i, start in enumerate(starts):
        while len(queue) < 1 + ahead and i + len(queue) < len(starts):
            queue.append(dispatch(starts[i + len(queue)]))
        out, take = queue.popleft()
        if result is None:  # the arrays for every seed, filled chunk by chunk (while the next one computes)
            result = jax.tree.map(lambda a: np.empty((seeds, *a.shape[1:]), a.dtype), out)

        def fill(whole, part, start=start, take=take):
            whole[start : start + take] = np.asarray(part)[:take]

        jax.tree.map(fill, result, out)
        rate = (start + take) / (time.perf_counter() - t0)
        say(
            f"chunk {i + 1}/{len(starts)}: {start + take}/{seeds} seeds, {rate:.0f} seeds/s, "
            f"ETA {(seeds - start - take) / rate:.0f}s"
        )
    return result


def map_seeds(
    one_seed, key, seeds: int, *, data=(), chunk_size: int | None = None, seed_offset: int = 0, progress: bool = False
):
    """Run one_seed(key, *data) -> pytree for `seeds` seeds (seed i gets fold_in(key, seed_offset + i)), vmapped
    and jit-compiled, in chunks of chunk_size seeds (default: all; two chunks are in flight at a time). `data`
    (arrays shared by every seed, such as a kernel matrix) are passed as arguments rather than captured, so that
    they are not compiled in as constants. Returns the pytree stacked on axis 0, as numpy.

    Example:
        >>> import jax
        >>> from collapse_jax.engine.seeds import map_seeds
        >>> map_seeds(lambda k: jax.random.normal(k, (3,)), key=0, seeds=5).shape
        (5, 3)
    """
    seeds = checks.size("seeds", seeds, lo=1)
    root = root_key(key)
    batch = _seed_batch(one_seed)
    chunk = chunk_size_for(seeds, chunk_size, seeds)
    data = tuple(jnp.asarray(a) for a in data)
    return run_chunks(
        lambda ids: batch(root, ids, data),
        seeds,
        chunk,
        checks.size("seed_offset", seed_offset, lo=0),
        progress,
        ahead=True,
    )


def builder_cache(maxsize: int = 32):
    """functools.lru_cache for the builders of a chain's one_seed, keyed also by the precision (jax_enable_x64):
    a builder's closure holds arrays made at build time, so one built under float64 and reused under float32
    mixed dtypes inside the scan (a TypeError or a lowering error at the smallest sizes).

    Example:
        >>> @builder_cache(4)
        ... def build(n):
        ...     return jnp.zeros(n).dtype
        >>> with jax.enable_x64(False):
        ...     str(build(2))
        'float32'
    """

    def wrap(fn):
        cached = functools.lru_cache(maxsize=maxsize)(lambda x64, *args: fn(*args))

        @functools.wraps(fn)
        def inner(*args):
            one_seed = cached(jax.dtypes.canonicalize_dtype(np.float64) == np.float64, *args)
            if callable(one_seed) and _spelled_out(args):  # what `_seed_batch` names a stored program by
                one_seed.recipe = f"{fn.__module__}.{fn.__qualname__}{args!r}"
            return one_seed

        inner.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
        return inner

    return wrap


def wide_vectors(one_seed):
    """Decorator for a chain's one_seed that computes every number lane by lane (element-wise draws and arithmetic,
    running sums over a scan; no sum across a vector, no matrix product): its program is compiled with 512-bit
    vectors (`compile_options.WIDE_VECTORS`), which leave such a program's numbers as they are.

    Example:
        >>> @wide_vectors
        ... def one_seed(key):
        ...     return jax.random.normal(key, (3,)) ** 2
        >>> map_seeds(one_seed, key=0, seeds=2).shape
        (2, 3)
    """
    one_seed.wide_vectors = True
    return one_seed


def _spelled_out(value) -> bool:
    """Whether repr(value) says all of it: numbers, strings, None, and tuples and dataclasses of them (an array's
    repr elides its middle, an object's names its address)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, tuple):
        return all(map(_spelled_out, value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return all(_spelled_out(getattr(value, f.name)) for f in dataclasses.fields(value))
    return False


@functools.lru_cache(maxsize=64)
def _seed_batch(one_seed):
    """The jit-compiled batch of one_seed over seed ids, kept per function: chains build their one_seed
    through cached builders, so calling a chain again with the same config does not compile again. A one_seed
    from `builder_cache` is named by its recipe, so its program can be kept on disk (`Stored`); one marked
    `wide_vectors` by its builder is computed lane by lane (`compile_options.WIDE_VECTORS`)."""

    def batch(root, ids, data):
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(root, ids)
        return jax.vmap(one_seed, in_axes=(0,) + (None,) * len(data))(keys, *data)

    recipe = getattr(one_seed, "recipe", None)  # set by `builder_cache`: the builder and its arguments
    wide = getattr(one_seed, "wide_vectors", False)  # set by `wide_vectors`
    if recipe is None:
        return jax.jit(batch, compiler_options=compile_options.WIDE_VECTORS if wide else None)
    return Stored(batch, name=recipe, wide_vectors=wide)


def physical_memory() -> int | None:
    """This machine's memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def working_memory() -> int:
    """Bytes one chunk of seeds may use by default: 1/16 of this machine's memory, within [256 MiB, 2 GiB].

    A fixed 256 MiB gave a sweep of 60 data points at d = 150 one seed per chunk (2,000 chunks, each too small to
    keep two cores busy); the share keeps chunks large where memory allows, and depends only on the machine, so
    a sweep resumed on it chooses the same chunks (a sweep folder also keeps its own, `regression.sweep`).

    Example:
        >>> 256 * 2**20 <= working_memory() <= 2 * 2**30
        True
    """
    total = physical_memory()
    return 256 * 2**20 if total is None else min(max(total // 16, 256 * 2**20), 2 * 2**30)


def fits_in_memory(nbytes: int, what: str):
    """Refuse up front what could not be held in this machine's memory, saying how much it would need."""
    total = physical_memory()
    if total is not None and nbytes > total:
        raise ValueError(
            f"{what} would need {nbytes / 2**30:.1f} GiB, more than this machine's "
            f"{total / 2**30:.1f} GiB; use fewer seeds, or run slices with seed_offset"
        )


def describe(cfg) -> dict:
    """A JSON-friendly view of a config dataclass."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        out[f.name] = np.asarray(v).tolist() if v is not None and not isinstance(v, (bool, str)) else v
    return out
