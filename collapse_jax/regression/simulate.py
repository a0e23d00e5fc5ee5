"""Many seeds of a regression chain: `simulate` and its `Result`, on the engine's seeds (`engine.seeds`).

Seed i always uses the key fold_in(root, i), so a seed's numbers do not depend on the chunk size, the number
of devices or which slice of seeds a process runs.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax.engine import agreement, checks, io
from collapse_jax.engine.calls import key_moved
from collapse_jax.engine.checks import Instance, Int, Key, OneOf, Optional, checked
from collapse_jax.engine.compilation_cache import Stored
from collapse_jax.engine.seeds import (
    chunk_size_for,
    describe,
    fits_in_memory,
    root_key,
    run_chunks,
    seed_mean,
    seed_sem,
)
from collapse_jax.regression.chain import Metrics, resolve_sampler, run_chain, working_rows
from collapse_jax.regression.problem import Downstream, Generators
from collapse_jax.regression.spectra import Spectrum

DEFAULT_MEMORY = 256 * 2**20  # bytes of working memory a chunk may use
REUSED_SCRATCH = 24 * 2**20  # a chunk's scratch memory the C allocator hands back at the next call (`reused_chunk`)


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
        return (
            {k: (("seed", "n"), v) for k, v in self.metrics._asdict().items()},
            dict(seed=np.arange(first, first + seeds), n=np.arange(n)),
        )

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
        float64 roundoff of the theory (the generator error at n = 0).

        Raises:
            ValueError: with one seed (a standard error needs two).
        """
        if self.test_error.shape[0] < 2:
            raise ValueError(
                f"seeds must be >= 2 for a z-score (a standard error needs two), got {self.test_error.shape[0]}"
            )
        return Metrics(*map(agreement.zscore, self.mean(), self.sem(), theory))


def default_chunk(d: int, rows: int, memory: int = DEFAULT_MEMORY, generations: int = 0, width: int = 0) -> int:
    """Seeds per chunk so that the working arrays (a few d x d and rows x d matrices per seed, and the
    generations' weights and downstream right-hand sides, solved as one batch after the scan) fit in memory.
    A width-m downstream model adds its projection S and B (m x d), and the features Z (rows x m) and their SVD."""
    per_seed = 8 * (6 * d * d + 3 * rows * d + 4 * (generations + 1) * d + 64)
    per_seed += 8 * (3 * width * d + 3 * rows * width + 2 * width * width) if width else 0
    return max(1, memory // per_seed)


def reused_chunk(d: int, generations: int, lambdas: int = 1, smallest: int = 16) -> int | None:
    """Seeds per chunk whose scratch memory the C allocator reuses from call to call, or None where that would be
    fewer than `smallest` seeds (there the chain's arithmetic outweighs what reuse saves).

    XLA:CPU allocates one scratch buffer per call of a program. glibc serves a block over 32 MiB from pages
    mapped afresh, and each new page costs a fault: at d = 100, 20 generations and the default chunks of 200
    seeds, 142,000 faults per call of 2,000 seeds, and the chain ran at 0.71x the rate it has in chunks of 100
    (0 faults; benchmarks/README.md). The scratch per seed, from XLA's memory analysis of the compiled chain, is
    3 d^2 + 3 (generations + 1) d float64 numbers with OLS generators (d = 50-300, 10-200 generations; up to
    1.25x that with ridge generators or a data strategy), and each further lambda of `simulate_lambdas` adds
    2 d^2 + (generations + 1) d (tests/test_simulate.py); chunks are sized to keep it within REUSED_SCRATCH,
    3/4 of the ceiling.

    Example:
        >>> reused_chunk(100, 20), reused_chunk(100, 20, lambdas=4), reused_chunk(300, 10)
        (86, 30, None)
    """
    per_seed = 3 * d * d + 3 * (generations + 1) * d + (lambdas - 1) * (2 * d * d + (generations + 1) * d)
    chunk = REUSED_SCRATCH // (8 * per_seed)
    return chunk if chunk >= smallest else None


def width_fits(d: int, rows: int, width: int | None):
    """Refuse up front a width whose one-seed arrays (S, B, the features Z and their SVD) exceed this machine's
    memory, naming `width`."""
    if width is not None:
        nbytes = 8 * (3 * width * d + 3 * rows * min(width, rows) + 2 * min(width, rows) ** 2)
        fits_in_memory(nbytes, f"width = {width} (one seed's projection S and features Z = XS', d = {d}, T = {rows})")


def seed_batch(root, seed_ids, spec, gen, down, generations, sampler):
    """Metrics of the seeds `seed_ids` (axis 0 of every output), each with the key fold_in(root, seed)."""
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(root, seed_ids)
    one_seed = functools.partial(run_chain, generations=generations, sampler=sampler)
    return jax.vmap(one_seed, in_axes=(0, None, None, None))(keys, spec, gen, down)


_chunk = Stored(seed_batch, static_argnames=("generations", "sampler"))  # kept on disk where the CLI enables it

# the argument rules of `simulate` and `simulate_lambdas` (checked once, at the door)
RULES = dict(
    spec=Instance(Spectrum),
    gen=Instance(Generators),
    down=Instance(Downstream),
    generations=Int(0, checks.MAX_GENERATIONS),
    seeds=Int(1),
    key=Key(),
    sampler=OneOf("auto", "direct", "suffstats"),
    chunk_size=Optional(Int(1)),
    progress=OneOf(True, False),
)


@key_moved("spec", "gen", "down", "generations", "seeds", "key")
@checked(**RULES, seed_offset=Int(0))
def simulate(
    spec: Spectrum,
    gen: Generators,
    down: Downstream,
    generations: int = 20,
    seeds: int = 1000,
    *,
    key=0,
    sampler: str = "auto",
    chunk_size: int | None = None,
    seed_offset: int = 0,
    progress: bool = False,
) -> Result:
    """Simulate `seeds` independent chains and return per-seed metrics for n = 0..generations.

    Args:
        spec: the covariance spectrum and teacher (`Spectrum`).
        gen: the generators' chain (`Generators`).
        down: the downstream ridge model (`Downstream`); a lambda schedule is resolved per generation.
        generations: N >= 0; every n = 0..N is measured.
        seeds: number of independent chains.
        key: int or PRNG key; seed i uses fold_in(key, seed_offset + i). Keyword-only, as in every chain (the
            older positional call simulate(spec, gen, down, generations, seeds, key) still works, with a
            DeprecationWarning).
        sampler: 'auto' (sufficient statistics wherever T >= d, exact and fast), 'direct' or 'suffstats'.
        chunk_size: seeds per compiled call (default: fits DEFAULT_MEMORY, and where chunks of 16 seeds or more
            allow it, keeps the scratch memory one the allocator reuses, `reused_chunk`); never changes the
            numbers.
        seed_offset: first seed index, so that slices of one run can be computed apart and merged.
        progress: print one line per chunk to stderr.

    Returns:
        Result with per-seed `test_error` and `generator_error` arrays of shape (seeds, generations + 1) and the
        config that made them.

    Raises:
        ValueError: a bad size, sampler or key, a config the sampler cannot draw exactly, or result arrays that
            would not fit in memory; each names the argument and its allowed range.

    Example:
        >>> import collapse_jax as cj
        >>> res = cj.simulate(cj.Spectrum.isotropic(10), cj.Generators(T0=40), cj.Downstream(T=40),
        ...                   generations=5, seeds=200, key=1)
        >>> res.mean().generator_error.shape
        (6,)
    """
    generations = checks.size("generations", generations, lo=0)
    seeds = checks.size("seeds", seeds, lo=1)
    seed_offset = checks.size("seed_offset", seed_offset, lo=0)
    down, described, used = _plan(spec, gen, down, generations, seeds, sampler)
    rows = working_rows(gen, down, generations)
    fits = default_chunk(spec.d, rows, generations=generations, width=down.width or 0)
    chunk = chunk_size_for(seeds, chunk_size, min(fits, reused_chunk(spec.d, generations) or fits))
    root = root_key(key)
    call = lambda ids: _chunk(root, ids, spec.values(), gen, down, generations=generations, sampler=sampler)
    test_error, generator_error = run_chunks(call, seeds, chunk, seed_offset, progress)
    run = dict(
        generations=generations, seeds=seeds, seed_offset=seed_offset, key=key, sampler=sampler, chunk_size=chunk
    )
    return _result(test_error, generator_error, spec, gen, down, described, used, run)


@checked(**RULES)
def simulate_lambdas(
    spec: Spectrum,
    gen: Generators,
    down: Downstream,
    lams,
    generations: int = 20,
    seeds: int = 1000,
    *,
    key=0,
    sampler: str = "auto",
    chunk_size: int | None = None,
    progress: bool = False,
) -> list[Result]:
    """`simulate` at every downstream lambda of `lams`, in one program: a list of Results, each the Result of
    `simulate(spec, gen, replace(down, lam=lam), ...)` with the same key: the same draws, the same numbers to
    rounding (bit for bit where the downstream uses sufficient statistics; the batched solves of a drawn design
    may differ in the last bits, at most 3e-15 relative as measured).

    Why: with one key for every lambda (common random numbers), the generators' chain and each seed's downstream
    design do not depend on lambda; vmapped over lambda they are drawn once per seed and only the factor and the
    solves are repeated per lambda, where separate runs would redo everything (the lambda scans' shape).

    Args:
        spec, gen, down, generations, seeds, key, sampler, chunk_size, progress: as in `simulate` (down.lam is
            replaced by each lambda).
        lams: the downstream lambdas, a 1-D array of numbers >= 0.

    Returns:
        One Result per lambda, in the order of `lams`.

    Example:
        >>> import collapse_jax as cj
        >>> from collapse_jax.regression.simulate import simulate_lambdas
        >>> spec, gen, down = cj.Spectrum.isotropic(10), cj.Generators(T0=40), cj.Downstream(T=40)
        >>> runs = simulate_lambdas(spec, gen, down, [0.0, 0.1], generations=2, seeds=8, key=1)
        >>> alone = cj.simulate(spec, gen, cj.Downstream(T=40, lam=0.1), generations=2, seeds=8, key=1)
        >>> bool((runs[1].test_error == alone.test_error).all())
        True
    """
    lams = np.asarray(checks.real_array("lams", lams, lo=0.0, hi=checks.SCALE_MAX, ndim=(1,)), float)
    if lams.size == 0:
        raise ValueError("lams must hold at least one lambda")
    generations = checks.size("generations", generations, lo=0)
    seeds = checks.size("seeds", seeds, lo=1)
    plans = [_plan(spec, gen, dataclasses.replace(down, lam=float(lam)), generations, seeds, sampler) for lam in lams]
    down = plans[0][0]
    rows = working_rows(gen, down, generations)
    memory = max(1, DEFAULT_MEMORY // len(lams))  # the per-lambda factors and solves of every seed at once
    fits = default_chunk(spec.d, rows, memory, generations, down.width or 0)
    chunk = chunk_size_for(seeds, chunk_size, min(fits, reused_chunk(spec.d, generations, len(lams)) or fits))
    root = root_key(key)
    call = lambda ids: _lambda_chunk(
        root, ids, spec.values(), gen, down, jnp.asarray(lams), generations=generations, sampler=sampler
    )
    test_error, generator_error = run_chunks(call, seeds, chunk, 0, progress)  # (seed, lambda, n)
    run = dict(generations=generations, seeds=seeds, seed_offset=0, key=key, sampler=sampler, chunk_size=chunk)
    return [
        _result(test_error[:, i], generator_error[:, i], spec, gen, d, described, used, run)
        for i, (d, described, used) in enumerate(plans)
    ]


def _lambda_batch(root, seed_ids, spec, gen, down, lams, generations, sampler):
    """`seed_batch` vmapped over the downstream lambda, with the seed on axis 0: (seed, lambda, n)."""
    at = lambda lam: seed_batch(root, seed_ids, spec, gen, dataclasses.replace(down, lam=lam), generations, sampler)
    return jax.tree.map(lambda a: jnp.moveaxis(a, 0, 1), jax.vmap(at)(lams))


_lambda_chunk = Stored(_lambda_batch, static_argnames=("generations", "sampler"))


def _plan(spec: Spectrum, gen: Generators, down: Downstream, generations: int, seeds: int, sampler: str):
    """`simulate`'s checks of one config, before anything runs: (down as the chain takes it, its description for
    the results, the samplers used)."""
    fits_in_memory(2 * seeds * (generations + 1) * 8, "the result arrays (seeds x (generations + 1) x 2 metrics)")
    d = spec.d
    # the d x d and rows x d arrays of one seed, at least: a d of 10^5 is refused here, not by the allocator
    fits_in_memory(8 * (2 * d * d + 2 * working_rows(gen, down, generations) * d), f"one seed at d = {d}")
    used = resolve_sampler(sampler, d, gen, down)
    gen.per_generation(generations)  # checks generations against a per-generation config
    down = down.resolved(generations)  # a lambda schedule becomes one lambda per generation
    width_fits(d, down.T, down.width)
    return one_lambda(down, generations), describe(down), used


def _result(test_error, generator_error, spec, gen, down, described, used, run: dict) -> Result:
    """A Result with the config that made it; a warning where its means estimate an infinite expectation."""
    config = dict(
        spectrum=dict(d=spec.d),
        generators=describe(gen),
        downstream=described,
        generations=run["generations"],
        seeds=run["seeds"],
        seed_offset=run["seed_offset"],
        key=run["key"] if isinstance(run["key"], int) else "custom",
        sampler=run["sampler"],
        sampler_used=dict(generators=used[0], downstream=used[1]),
        chunk_size=run["chunk_size"],
        devices=jax.local_device_count(),
        x64=bool(jax.config.read("jax_enable_x64")),
    )
    notes = infinite_expectations(spec.d, gen, down, run["generations"])
    if notes:  # the means are finite numbers, but they estimate nothing: say so, in the result and on stderr
        config["infinite_expectation"] = notes
        warnings.warn("; ".join(notes), RuntimeWarning, stacklevel=3)
    return Result(test_error, generator_error, config=config)


def one_lambda(down: Downstream, generations: int) -> Downstream:
    """`down` with a per-generation lambda that is the same for every n = 0..generations replaced by that number
    (what the schedules of a T scan give, lam(T) without n): the chain then factors one system per seed instead
    of one per n. The same numbers, one program fewer to pay for."""
    lam = down.lam
    if not callable(lam) and checks.is_concrete(lam) and np.ndim(lam) == 1:
        used = np.asarray(lam)[: generations + 1]
        if np.all(used == used[0]):
            return dataclasses.replace(down, lam=float(used[0]))
    return down


def infinite_expectations(d: int, gen: Generators, down: Downstream, generations: int) -> list[str]:
    """Sentences naming the sizes at which an OLS or min-norm fit has an infinite expected error (T in
    {d-1, d, d+1}, theory/overparam.md): the simulated means there are finite but estimate nothing."""
    notes = []
    if generations > 0 and gen.lam is None and gen.strategy == "replace":
        near = sorted({t for t in gen.T0_tuple[: generations if gen.length else 1] if d - 1 <= t <= d + 1})
        if near:
            notes.append(
                f"T0 = {near} is within 1 of d = {d}: the OLS/min-norm generators' expected error is infinite, "
                "so the simulated means of generations >= 1 do not estimate an expectation"
            )
    lam = down.lam
    if d - 1 <= down.T <= d + 1 and checks.is_concrete(lam) and np.any(np.asarray(lam) == 0):
        notes.append(
            f"T = {down.T} is within 1 of d = {d} with lam = 0: the downstream OLS/min-norm fit's expected error "
            "is infinite, so the simulated test_error means do not estimate an expectation"
        )
    return notes
