"""Kernel density estimate chains (theory/distributions.md "KDE chains", Borji 2024): fit a Gaussian KDE to M points,
draw M new points
from it (pick a point uniformly, add kernel noise), repeat.

The starting data come from a `Mixture` of Gaussians and uniforms. Each generation records the sample's mean
and variance, and in 1-D its W2^2 and nearest-neighbour KL against a reference sample of the starting
distribution (drawn once per seed, independent of the chain), so that both distances share the same floor at
n = 0. Chosen generations keep their samples for plotting.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax.distributions import distances
from collapse_jax.distributions.theory import bandwidth_factor
from collapse_jax.engine import checks
from collapse_jax.engine.calls import key_moved
from collapse_jax.engine.checks import Instance, Int, Optional, Real, checked
from collapse_jax.engine.rng import subset, uniform_index
from collapse_jax.engine.seeds import builder_cache, map_seeds
from collapse_jax.engine.strategies import check_takes, lookup
from collapse_jax.engine.strategies import table as strategy_table


@dataclasses.dataclass(frozen=True)
class Mixture:
    """A mixture of isotropic Gaussians N(loc, scale^2 I) and uniform boxes [loc - scale, loc + scale]^d.

    Example:
        >>> from collapse_jax.distributions import Mixture
        >>> mix = Mixture.gaussian_uniform()
        >>> float(mix.mean()[0]), round(float(mix.var()[0]), 3)
        (2.0, 7.133)
    """

    weights: tuple
    kinds: tuple  # "gaussian" or "uniform", one per component
    loc: tuple  # one d-vector per component
    scale: tuple

    def __post_init__(self):
        for name in ("weights", "kinds", "scale"):  # tuples, so that a Mixture is hashable (chains cache on it)
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "loc", tuple(tuple(np.atleast_1d(v).tolist()) for v in self.loc))
        w = np.asarray(self.weights, float)
        if w.ndim != 1 or len({len(self.weights), len(self.kinds), len(self.loc), len(self.scale)}) != 1:
            raise ValueError("weights, kinds, loc and scale must have one entry per component")
        if np.any(w < 0) or not np.isclose(w.sum(), 1.0, atol=1e-9):
            raise ValueError(f"mixture weights must be >= 0 and sum to 1, got {self.weights} (sum {w.sum()})")
        for k in self.kinds:
            checks.choice("mixture kind", k, ("gaussian", "uniform"))
        checks.real_array("mixture scale", np.asarray(self.scale, float), lo=0, lo_open=True)
        if len({np.size(v) for v in self.loc}) != 1:
            raise ValueError("every component's loc must have the same dimension d")
        checks.real_array("mixture loc", [list(v) for v in self.loc], lo=-checks.SCALE_MAX, hi=checks.SCALE_MAX)

    @classmethod
    @checked(
        d=Int(1, 10**4),
        mean=Real(lo=-checks.SCALE_MAX, hi=checks.SCALE_MAX, ndim=(0,)),
        std=Real(lo=0.0, lo_open=True, hi=checks.SCALE_MAX, ndim=(0,)),
    )
    def gaussian(cls, d: int = 1, mean: float = 0.0, std: float = 1.0) -> Mixture:
        return cls((1.0,), ("gaussian",), (tuple([float(mean)] * d),), (float(std),))

    @classmethod
    @checked(d=Int(1, 10**4))
    def gaussian_uniform(cls, d: int = 1) -> Mixture:
        """0.6 N(0, 1) + 0.4 U[3, 7]^d: a smooth mode next to a flat block with hard edges."""
        return cls((0.6, 0.4), ("gaussian", "uniform"), ((0.0,) * d, (5.0,) * d), (1.0, 2.0))

    @property
    def d(self) -> int:
        return int(np.size(self.loc[0]))

    def _moments(self):
        w = np.asarray(self.weights, float)[:, None]
        loc = np.asarray(self.loc, float).reshape(len(self.weights), self.d)
        s = np.asarray(self.scale, float)[:, None]
        var = np.where(np.asarray(self.kinds)[:, None] == "gaussian", s**2, s**2 / 3)
        return w, loc, var

    def mean(self) -> np.ndarray:
        w, loc, _ = self._moments()
        return (w * loc).sum(0)

    def var(self) -> np.ndarray:
        """Variance of each coordinate (within-component variance plus the spread of the component means)."""
        w, loc, var = self._moments()
        return (w * (var + loc**2)).sum(0) - self.mean() ** 2

    def sample(self, key, M: int) -> jax.Array:
        """M points, shape (M, d)."""
        k1, k2 = jax.random.split(key)
        comp = jax.random.choice(k1, len(self.weights), (M,), p=jnp.asarray(self.weights))
        loc = jnp.asarray(np.asarray(self.loc, float).reshape(-1, self.d))[comp]
        scale = jnp.asarray(self.scale, float)[comp][:, None]
        gauss = jnp.asarray(np.asarray(self.kinds) == "gaussian")[comp][:, None]
        kz, ku = jax.random.split(k2)
        noise = jnp.where(
            gauss, jax.random.normal(kz, (M, self.d)), jax.random.uniform(ku, (M, self.d), minval=-1.0, maxval=1.0)
        )
        return loc + scale * noise


class KDEChain(NamedTuple):
    """Statistics at the measured generations (axis 1 follows `generations`; 0 = the starting data).

    mean, var: (seeds, len(generations), d), the sample mean and variance (ddof 0) of each coordinate.
    w2sq, kl: (seeds, len(generations)), 1-D only (else None): W2^2 and the nearest-neighbour KL(reference ||
        sample), both against an independent reference sample of the starting distribution.
    samples: (seeds, len(keep), M, d), the points of the generations in `keep`.
    """

    generations: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    w2sq: np.ndarray | None
    kl: np.ndarray | None
    samples: np.ndarray
    keep: tuple


@key_moved("key", "M", "generations", "seeds")
@checked(
    **checks.chain_rules(),
    M=Int(2, checks.MAX_SIZE),
    keep=Int(0, checks.MAX_GENERATIONS, many=True),
    measure=Optional(Int(0, checks.MAX_GENERATIONS, many=True)),
    init=Optional(Instance(Mixture)),
)
def kde_chain(
    M: int,
    generations: int,
    seeds: int,
    *,
    key=0,
    seed_offset: int = 0,
    bandwidth="scott",
    init: Mixture | None = None,
    keep=(0,),
    measure=None,
    strategy: str = "replace",
    real_fraction=None,
    real_weight=None,
    chunk_size: int | None = None,
    progress: bool = False,
) -> KDEChain:
    """Refit and resample a Gaussian KDE `generations` times, for `seeds` independent chains.

    Args:
        M: points per generation (>= 2).
        bandwidth: a fixed h > 0 (kernel N(0, h^2 I)), or "scott" / "silverman": the kernel covariance is
            factor^2 times the sample covariance (ddof 1), with scipy's factors M^{-1/(d+4)} and
            (M (d+2)/4)^{-1/(d+4)}.
        init: the starting distribution (default: a standard Gaussian in 1-D); its dimension sets d.
        keep: generations whose samples are returned.
        measure: generations at which statistics and distances are computed (default: every one). Sorting
            for W2 and KL costs more than a resampling step, so long chains measure on a log-spaced grid.
            Generation g always uses the key fold_in(chain key, g): the chain does not depend on `measure`.
        strategy: which points the KDE of generation g is fitted to: "replace" (the newest M), "accumulate" (every
            point so far, the starting data included; a bandwidth rule then uses the pool's size and spread) or
            "accumulate_subsample" (M of them drawn without replacement). Statistics describe the newest M points.
        real_fraction: of each generation's M new points, round(pi M) are drawn from `init` (the true data).
        real_weight: the kernel weight w of the real points in the KDE (None: every point 1/M): a new synthetic
            point picks a real point with probability w, else a synthetic one (uniformly within its group);
            needs real_fraction, strategy "replace" and a fixed bandwidth (theory/weighted.md §8). A number or
            one per generation g = 1..G (data: one compiled program serves every weight): generation g's points
            are drawn from the KDE weighted by w_g; generation 1's come from the starting data (generation 0,
            all real), weighed alike, so it ignores its entry.
        key: int or PRNG key; seed i uses fold_in(key, seed_offset + i). (The key used to be the first positional
            argument; that call still works, with a DeprecationWarning.)
        seed_offset: first seed index, so that slices of one run can be computed apart and joined.

    Returns:
        KDEChain: mean, variance, W2^2 and KL at the measured generations, and the kept samples.

    Example:
        >>> from collapse_jax.distributions import kde_chain
        >>> out = kde_chain(M=200, generations=20, seeds=50, key=0, bandwidth=0.1, keep=(0, 20))
        >>> out.var.shape, out.w2sq.shape, out.samples.shape
        ((50, 21, 1), (50, 21), (50, 2, 200, 1))
    """
    M, G = int(M), int(generations)  # checked above
    init = Mixture.gaussian() if init is None else init
    d = init.d
    if isinstance(bandwidth, str):
        factor = bandwidth_factor(bandwidth, M, d)
    else:
        # the ceiling keeps squared distances over thousands of generations finite in float32
        checks.real_array("bandwidth", bandwidth, lo=0, lo_open=True, hi=1e15, ndim=(0,))
        factor = None
    keep = tuple(checks.size("keep", tuple(keep), lo=0)) if len(keep) else ()
    measure = np.arange(G + 1) if measure is None else np.asarray(checks.size("measure", tuple(measure), lo=0))
    if any(k > G for k in keep) or measure.max() > G:
        raise ValueError(f"keep and measure must list generations in 0..{G}, got {keep} and {measure.max()}")
    gens = tuple(np.unique(np.concatenate([[0], measure, keep])).astype(int).tolist())
    check_takes(strategy, real_fraction=real_fraction)
    data: tuple = ()
    if strategy != "replace" or real_fraction is not None:  # the strategy table; plain replace: the fast path
        n_real = 0 if real_fraction is None else int(round(checks.fraction("real_fraction", real_fraction) * M))  # noqa: RUF046 - round() of a NumPy scalar
        if np.ndim(real_fraction) > 0:
            raise ValueError("real_fraction must be one number for kde_chain")
        if M * (G + 1) > 2**31 - 1:  # pool rows are int32 indices
            raise ValueError(
                f"M * (generations + 1) must be < 2**31 for strategy {strategy!r} (a pool of every "
                f"point drawn), got {M * (G + 1)}"
            )
        if real_weight is not None:  # data: one compiled program serves every weight
            data = (_check_kde_weight(real_weight, real_fraction, strategy, bandwidth, n_real, M, G),)
        one_seed = _kde_seed_strategy(M, G, bandwidth, init, keep, gens, strategy, n_real, real_weight is not None)
    else:
        if real_weight is not None:
            raise ValueError("real_weight needs real_fraction (the real points it weighs), got None")
        one_seed = _kde_seed(M, G, bandwidth if factor is None else None, factor, init, keep, gens)
    stats, samples = map_seeds(
        one_seed, key, seeds, data=data, chunk_size=chunk_size, seed_offset=seed_offset, progress=progress
    )
    return KDEChain(np.asarray(gens), stats["mean"], stats["var"], stats.get("w2sq"), stats.get("kl"), samples, keep)


@builder_cache(32)
def _kde_seed(M, G, bandwidth, factor, init, keep, gens):
    """One seed's KDE chain for a given configuration (cached: the same config compiles once)."""
    d = init.d
    gens = np.asarray(gens)
    is_measured = np.zeros(G + 1, bool)
    is_measured[gens] = True
    slot = np.full(G + 1, -1)  # where each generation's samples go in the kept buffer (-1: nowhere)
    slot[list(keep)] = np.arange(len(keep))

    def resample(key, x):
        k1, k2 = jax.random.split(key)
        picked = x[uniform_index(k1, (M,), M)]
        z = jax.random.normal(k2, (M, d))
        if factor is None:
            return picked + bandwidth * z
        if d == 1:
            return picked + factor * jnp.std(x, ddof=1) * z
        return picked + factor * z @ jnp.linalg.cholesky(jnp.cov(x.T)).T

    def one_seed(key):
        k0, kref, kchain = jax.random.split(key, 3)
        x0 = init.sample(k0, M)
        ref = distances.sort(init.sample(kref, M)[:, 0])

        def measured(x):
            out = dict(mean=x.mean(0), var=x.var(0))
            if d == 1:
                xs = distances.sort(x[:, 0])
                out |= dict(w2sq=distances.w2sq_sorted(xs, ref), kl=distances.kl_sorted(ref, xs))
            return out

        def store(buf, x, i):
            return jnp.where((jnp.arange(len(keep)) == i)[:, None, None], x[None], buf)

        def step(g, carry):
            x, buf, stats = carry
            x = resample(jax.random.fold_in(kchain, g), x)
            # g is the same for every seed, so under vmap this stays a branch: unmeasured generations skip the
            # sort. (A fori_loop writing into carried arrays runs about twice as fast as lax.scan here.)
            new = jax.lax.cond(jnp.asarray(is_measured)[g], measured, lambda x: jax.tree.map(lambda a: a[0], stats), x)
            stats = jax.tree.map(lambda a, v: a.at[g].set(v), stats, new)
            return x, store(buf, x, jnp.asarray(slot)[g]), stats

        first = measured(x0)
        stats0 = jax.tree.map(lambda v: jnp.zeros((G + 1,) + v.shape, v.dtype).at[0].set(v), first)
        buf0 = store(jnp.zeros((len(keep), M, d)), x0, slot[0])
        _, buf, stats = jax.lax.fori_loop(1, G + 1, step, (x0, buf0, stats0))
        stats = jax.tree.map(lambda a: a[gens], stats)
        return stats, buf

    return one_seed


def _measure(x, ref):
    """Mean, variance and (1-D) W2^2 and KL against the reference sample."""
    out = dict(mean=x.mean(0), var=x.var(0))
    if x.shape[1] == 1:
        xs = distances.sort(x[:, 0])
        out |= dict(w2sq=distances.w2sq_sorted(xs, ref), kl=distances.kl_sorted(ref, xs))
    return out


def _check_kde_weight(real_weight, real_fraction, strategy, bandwidth, n_real, M, G):
    """real_weight checked (concrete values) and returned as one weight per generation 1..G."""
    w = np.broadcast_to(checks.fraction("real_weight", real_weight), (G,))
    if np.ndim(real_weight) == 1 and np.shape(real_weight) != (G,):
        raise ValueError(f"real_weight must be a number or one per generation ({G}), got {real_weight!r}")
    if real_fraction is None or strategy != "replace" or isinstance(bandwidth, str):
        raise ValueError(
            "real_weight needs real_fraction, strategy='replace' and a fixed bandwidth, got "
            f"real_fraction={real_fraction!r}, strategy={strategy!r}, bandwidth={bandwidth!r}"
        )
    from collapse_jax.regression.problem import check_groups

    check_groups("real_weight", w, n_real, M)
    return np.array(w, float)


@builder_cache(32)
def _kde_seed_strategy(M, G, bandwidth, init, keep, gens, strategy, n_real, weighted=False):
    """One seed's KDE chain under a data strategy: the KDE is fitted to the first `count` points of a pool
    (capacity M (G + 1)), generation g's M new points are drawn from it, n_real of them from `init` instead."""
    d, cap = init.d, M * (G + 1)
    gens = np.asarray(gens)
    rows = jnp.arange(cap)

    def kernel_scale(fit, count):
        """Per-point kernel factor: h, or the rule's factor at `count` points times the (masked) sample spread."""
        if not isinstance(bandwidth, str):
            return lambda z: bandwidth * z
        base = count if bandwidth == "scott" else count * (d + 2) / 4
        f = base ** (-1.0 / (d + 4))
        w = (rows[: fit.shape[0]] < count).astype(fit.dtype)[:, None]
        mean = jnp.sum(w * fit, 0) / count
        r = w * (fit - mean[None])
        cov = r.T @ r / (count - 1)
        return lambda z: f * z @ jnp.linalg.cholesky(cov).T

    # the points (and how many) the KDE of a generation is fitted to, one entry per strategy (engine/strategies.py)
    fitted_to = lookup(
        strategy_table(
            "distributions (KDE)",
            {
                "replace": lambda x, pool, count, key: (x, M),
                "accumulate": lambda x, pool, count, key: (pool, count),
                "accumulate_subsample": lambda x, pool, count, key: (pool[subset(key, count, cap, M)], M),
            },
        ),
        strategy,
        "distributions (KDE)",
    )

    def one_seed(key, weights=None):  # weighted: weights, one per generation 1..G, are data
        k0, kref, kchain = jax.random.split(key, 3)
        x0 = init.sample(k0, M)
        ref = distances.sort(init.sample(kref, M)[:, 0])
        pool = jnp.zeros((cap, d)).at[:M].set(x0)

        def step(g, carry):
            x, pool, buf, stats = carry
            k_pick, k_noise, k_real, k_sub = jax.random.split(jax.random.fold_in(kchain, g), 4)
            count = g * M  # points in the pool before this generation's
            fit, n_fit = fitted_to(x, pool, count, k_sub)
            if not weighted:
                picked = fit[uniform_index(k_pick, (M,), n_fit)]
            else:  # a real point with probability w, else a synthetic one; generation 0 is all real: uniform
                k_pick, k_group, k_real_i, k_syn_i = jax.random.split(k_pick, 4)
                by_group = jnp.where(
                    jax.random.uniform(k_group, (M,)) < weights[jnp.maximum(g - 1, 0)],
                    uniform_index(k_real_i, (M,), max(n_real, 1)),
                    n_real + uniform_index(k_syn_i, (M,), max(M - n_real, 1)),
                )
                picked = fit[jnp.where(g > 1, by_group, uniform_index(k_pick, (M,), n_fit))]
            new = picked + kernel_scale(fit, n_fit)(jax.random.normal(k_noise, (M, d)))
            x = jnp.where((jnp.arange(M) < n_real)[:, None], init.sample(k_real, M), new)
            pool = jax.lax.dynamic_update_slice(pool, x, (count, 0))
            stats = jax.tree.map(
                lambda a, v: a.at[g].set(v),
                stats,
                jax.lax.cond(
                    jnp.asarray(np.isin(np.arange(G + 1), gens))[g],
                    lambda x: _measure(x, ref),
                    lambda x: jax.tree.map(lambda a: a[0], stats),
                    x,
                ),
            )
            buf = jnp.where((jnp.asarray(_slots(G, keep))[g] == jnp.arange(len(keep)))[:, None, None], x[None], buf)
            return x, pool, buf, stats

        first = _measure(x0, ref)
        stats0 = jax.tree.map(lambda v: jnp.zeros((G + 1,) + v.shape, v.dtype).at[0].set(v), first)
        buf0 = jnp.where(
            (jnp.asarray(_slots(G, keep))[0] == jnp.arange(len(keep)))[:, None, None],
            x0[None],
            jnp.zeros((len(keep), M, d)),
        )
        _, _, buf, stats = jax.lax.fori_loop(1, G + 1, step, (x0, pool, buf0, stats0))
        return jax.tree.map(lambda a: a[gens], stats), buf

    return one_seed


def _slots(G, keep):
    """Where each generation's samples go in the kept buffer (-1: nowhere)."""
    slot = np.full(G + 1, -1)
    slot[list(keep)] = np.arange(len(keep))
    return slot
