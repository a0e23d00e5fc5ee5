"""Categorical distributions re-estimated from counts (theory/distributions.md "Discrete distributions with real data
mixed in"), with real data optionally mixed in.

Generation 1 is the frequency vector of N real samples from p. Without mixing, every later generation is the
frequency vector of N samples from the previous one (categories die out, and the chain ends on one). With
`synthetic = s`, every later generation is fitted to the same N real samples plus s fresh samples from the
previous fit, p^(m+1) = (1 - alpha) p^(1) + alpha q_m with alpha = s / (N + s), and stays near p^(1).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax.distributions import distances
from collapse_jax.engine import checks
from collapse_jax.engine.calls import key_moved
from collapse_jax.engine.checks import Int, Optional, checked
from collapse_jax.engine.seeds import builder_cache, map_seeds
from collapse_jax.engine.strategies import strategy as strategy_named


class DiscreteChain(NamedTuple):
    """probs: (seeds, generations + 1, K), index 0 the true p and index 1 the fit to the real samples.
    tv: total variation to the true p; support: categories with positive probability (both (seeds, gens + 1))."""

    probs: np.ndarray
    tv: np.ndarray
    support: np.ndarray


def check_probabilities(p) -> np.ndarray:
    """p as a float vector of at least 2 non-negative probabilities summing to 1, else a ValueError naming p."""
    checks.real_array("p", p, ndim=(1,))  # numbers (a string is named); the range is checked below
    p = np.asarray(p, float)
    if p.ndim != 1 or p.size < 2:
        raise ValueError(f"p must be a vector of at least 2 probabilities, got shape {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or not np.isclose(p.sum(), 1.0, atol=1e-9):
        raise ValueError(f"p must be non-negative and sum to 1, got sum {p.sum()!r}")
    return p


@key_moved("key", "p", "N", "generations", "seeds")
@checked(
    **checks.chain_rules(),
    N=Int(1, checks.MAX_SIZE),
    synthetic=Optional(Int(1, checks.MAX_SIZE)),
)
def discrete_chain(
    p,
    N: int,
    generations: int,
    seeds: int,
    *,
    key=0,
    seed_offset: int = 0,
    synthetic: int | None = None,
    real_fraction: float | None = None,
    real_weight=None,
    strategy: str = "replace",
    chunk_size: int | None = None,
    progress: bool = False,
) -> DiscreteChain:
    """Re-estimate a categorical distribution from counts, `generations` times, for `seeds` chains.

    Args:
        p: the true probabilities (sum to 1).
        N: real samples behind generation 1 (and reused in every later fit when synthetic is given).
        synthetic: samples drawn from the current fit in each later generation; None: N synthetic samples and
            no real data after generation 1.
        real_fraction: the same choice in the lab's words: the share pi of each later fit that is the N real
            samples, i.e. synthetic = round(N (1 - pi) / pi) (0 < pi < 1). Give one of the two.
        real_weight: the weight w of the real samples' counts in each later fit (None: counts pooled, w =
            N/(N + s)): p^(m+1) = w p^(1) + (1 - w) q_m; a number or one per generation (data: one compiled
            program serves every weight; generation 1, the real samples alone, ignores its entry); needs synthetic
            or real_fraction and strategy "replace" (theory/weighted.md §7).
        strategy: "replace" (each later fit: the real samples, if mixed in, plus the newest synthetic draw) or
            "accumulate" (every sample so far: the N real ones and all synthetic draws).
        key: int or PRNG key; seed i uses fold_in(key, seed_offset + i). (The key used to be the first positional
            argument; that call still works, with a DeprecationWarning.)
        seed_offset: first seed index, so that slices of one run can be computed apart and joined.

    Returns:
        DiscreteChain: the fitted probabilities, their total variation to p and the support per generation.

    Example:
        >>> from collapse_jax.distributions import discrete_chain
        >>> out = discrete_chain([0.5, 0.3, 0.2], N=20, generations=200, seeds=100, key=0)
        >>> out.probs.shape, int(out.support[:, -1].max())
        ((100, 201, 3), 1)
    """
    p = check_probabilities(p)
    N, generations = int(N), int(generations)  # checked above
    if real_fraction is not None:
        if synthetic is not None:
            raise ValueError("give synthetic or real_fraction, not both")
        pi = checks.fraction("real_fraction", real_fraction)
        if not 0 < pi < 1 or np.ndim(pi):
            raise ValueError(f"real_fraction must be one number in (0, 1), got {real_fraction!r}")
        synthetic = max(1, round(N * (1 - pi) / pi))
    pooled = strategy_named(strategy, allowed=("replace", "accumulate")).pools  # no subsample of counts (yet)
    s = N if synthetic is None else int(synthetic)
    weight = real_weight
    data: tuple = ()
    real_weight = 0.0 if synthetic is None else N / (N + s)
    if weight is not None:  # weighted counts (theory/weighted.md): the weights enter as data, one per generation
        w = np.broadcast_to(checks.fraction("real_weight", weight), (generations,))
        if np.ndim(weight) == 1 and np.shape(weight) != (generations,):
            raise ValueError(f"real_weight must be a number or one per generation ({generations}), got {weight!r}")
        if synthetic is None or pooled:
            raise ValueError(
                "real_weight needs real data mixed in (synthetic or real_fraction) and strategy='replace', got "
                f"synthetic={synthetic!r}, strategy={strategy!r}"
            )
        real_weight, data = None, (np.array(w[1:], float),)  # generation 1 is the real samples alone
    if pooled:
        real_weight = -1.0  # marks the pooled chain below
    one_seed = _discrete_seed(tuple(p.tolist()), N, s, real_weight, generations)
    return DiscreteChain(
        *map_seeds(one_seed, key, seeds, data=data, chunk_size=chunk_size, seed_offset=seed_offset, progress=progress)
    )


@builder_cache(32)
def _discrete_seed(p, N, s, real_weight, generations):

    def frequencies(key, probs, n):
        return jax.random.multinomial(key, n, probs) / n

    def one_seed(key, weights=None):  # weights (real_weight None): generations 2.. as data
        p_true = jnp.asarray(np.asarray(p))
        k1, k2 = jax.random.split(key)
        p1 = frequencies(k1, p_true, float(N))

        def step(q, key):
            q = real_weight * p1 + (1 - real_weight) * frequencies(key, q, float(s))
            return q, q

        def weighted(q, inputs):
            key, w = inputs
            q = w * p1 + (1 - w) * frequencies(key, q, float(s))
            return q, q

        def pooled(carry, key):  # accumulate: counts of every sample so far, the N real ones first
            counts, n = carry
            counts, n = counts + s * frequencies(key, counts / n, float(s)), n + s
            return (counts, n), counts / n

        keys = jax.random.split(k2, generations - 1)
        if real_weight is None:
            _, qs = jax.lax.scan(weighted, p1, (keys, weights))
        elif real_weight < 0:
            _, qs = jax.lax.scan(pooled, (N * p1, jnp.asarray(float(N))), keys)
        else:
            _, qs = jax.lax.scan(step, p1, keys)
        probs = jnp.concatenate([p_true[None], p1[None], qs])
        return probs, distances.tv(probs, p_true[None]), jnp.sum(probs > 0, axis=-1)

    return one_seed
