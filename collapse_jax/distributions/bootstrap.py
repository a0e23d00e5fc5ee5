"""Resampling the empirical distribution (theory/distributions.md "Wright-Fisher resampling"): each generation draws M
points with replacement from the
previous M. The labels of the original points follow the neutral Wright-Fisher model, so the chain is tracked
through the labels alone: the points' values never matter.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax.engine import checks
from collapse_jax.engine.calls import key_moved
from collapse_jax.engine.checks import Int, checked
from collapse_jax.engine.rng import uniform_index
from collapse_jax.engine.seeds import builder_cache, map_seeds


class BootstrapChain(NamedTuple):
    """distinct, collision: (seeds, generations + 1); fixation_time, winner: (seeds,).

    distinct: number of original values still present; collision: sum_i p_i^2 over the original values;
    fixation_time: first generation with one value left (-1 if not reached); winner: the label of the value
    present at the last generation with the most copies (the fixed one if fixation happened).
    """

    distinct: np.ndarray
    collision: np.ndarray
    fixation_time: np.ndarray
    winner: np.ndarray


@key_moved("key", "M", "generations", "seeds")
@checked(
    **checks.chain_rules(),
    M=Int(2, checks.MAX_SIZE),
)
def bootstrap_chain(
    M: int,
    generations: int,
    seeds: int,
    *,
    key=0,
    seed_offset: int = 0,
    initial=None,
    chunk_size: int | None = None,
    progress: bool = False,
) -> BootstrapChain:
    """Resample M points with replacement `generations` times, for `seeds` chains.

    Args:
        initial: labels of the M starting points (ints in 0..M-1; repeats mean repeated values). Default:
            M distinct values.
        key: int or PRNG key; seed i uses fold_in(key, seed_offset + i). (The key used to be the first positional
            argument; that call still works, with a DeprecationWarning.)
        seed_offset: first seed index, so that slices of one run can be computed apart and joined.

    Returns:
        BootstrapChain: distinct values and collision probability per generation, fixation time and winner.

    Example:
        >>> from collapse_jax.distributions import bootstrap_chain
        >>> out = bootstrap_chain(M=100, generations=400, seeds=200, key=0)
        >>> int(out.distinct[0, 0]), out.distinct.shape, bool((out.fixation_time > 0).mean() > 0.5)
        (100, (200, 401), True)
    """
    M, generations = int(M), int(generations)  # checked above
    labels0 = np.arange(M) if initial is None else np.asarray(initial)
    if labels0.shape != (M,) or not np.issubdtype(labels0.dtype, np.integer) or labels0.min() < 0 or labels0.max() >= M:
        raise ValueError(f"initial must be {M} integer labels in 0..{M - 1}, got shape {labels0.shape}")

    one_seed = _bootstrap_seed(M, generations, tuple(labels0.tolist()))
    return BootstrapChain(
        *map_seeds(one_seed, key, seeds, chunk_size=chunk_size, seed_offset=seed_offset, progress=progress)
    )


@builder_cache(32)
def _bootstrap_seed(M, generations, labels0):
    def summary(labels):
        counts = jnp.zeros(M, jnp.int32).at[labels].add(1)  # an int32 scatter: half the bytes of int64
        c = counts.astype(jnp.zeros(()).dtype)  # squares summed in floats: no overflow, exact below 2^53
        return jnp.sum(counts > 0), jnp.sum(c * c) / M**2, counts

    def step(labels, key):
        labels = labels[uniform_index(key, (M,), M)]
        distinct, collision, _ = summary(labels)
        return labels, (distinct, collision)

    def one_seed(key):
        labels = jnp.asarray(labels0)
        last, (distinct, collision) = jax.lax.scan(step, labels, jax.random.split(key, generations))
        d0, c0, _ = summary(labels)
        distinct = jnp.concatenate([d0[None], distinct])
        collision = jnp.concatenate([c0[None], collision])
        fixed = distinct == 1
        fixation = jnp.where(fixed.any(), jnp.argmax(fixed), -1)
        return distinct, collision, fixation, jnp.argmax(summary(last)[2])

    return one_seed
