"""One seed's chain (MATH §1.1): a lax.scan over generations that returns the metrics of every generation.

Generation k fits fresh data labelled by generation k-1; after each generation n = 0..N a downstream ridge
model is fitted on data labelled by generation n. So one run gives the whole error curve against n.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from collapse_jax import samplers
from collapse_jax._checks import choice
from collapse_jax.problem import Downstream, Generators
from collapse_jax.spectra import Spectrum

SAMPLERS = ("auto", "direct", "suffstats")


class Metrics(NamedTuple):
    """Per-generation quantities, shared by simulation (per seed, mean, sem) and theory."""

    test_error: jax.Array  # (w_pred - w0)' Sigma (w_pred - w0) of the downstream model on generation-n data
    generator_error: jax.Array  # (w_n - w0)' Sigma (w_n - w0) of generation n itself (0 at n = 0)


def resolve_sampler(sampler: str, d: int, gen: Generators, down: Downstream) -> tuple[str, str]:
    """The sampler used for (generators, downstream). 'auto' takes sufficient statistics wherever T >= d."""
    choice("sampler", sampler, SAMPLERS)
    exact = (min(gen.T0_tuple) >= d, down.T >= d)
    if sampler == "suffstats" and not all(exact):
        raise ValueError(
            f"sampler='suffstats' needs T0 >= d and T >= d (d={d}, T0={gen.T0}, T={down.T}); use 'auto' or 'direct'"
        )
    return tuple("suffstats" if ok and sampler != "direct" else "direct" for ok in exact)


def _generator_fit(gen: Generators, d: int, sampler: str):
    """(init, step) for the generators: init(key) draws what stays fixed, step(state, key, w, T, s, lam) -> w."""
    T0 = gen.T0_tuple
    ridge = gen.lam is not None
    if gen.fixed:
        if sampler == "suffstats":
            init = lambda key, sqrt_eig: samplers.bartlett(key, d, T0[0])

            def step(L, key, w, sqrt_eig, T, s, lam):
                z = jax.random.normal(key, (d,), w.dtype)
                return samplers.ridge_from_bartlett(L, z, w, sqrt_eig, T, s, lam)

            return init, step
        init = lambda key, sqrt_eig: samplers.design(key, sqrt_eig, T0[0])
        return init, lambda X, key, w, sqrt_eig, T, s, lam: samplers.ridge_direct_labels(X, key, w, T, s, lam)

    init = lambda key, sqrt_eig: None
    if sampler == "suffstats":
        if ridge:
            return init, lambda _, key, w, sqrt_eig, T, s, lam: samplers.ridge_step(key, w, sqrt_eig, T, s, lam)
        return init, lambda _, key, w, sqrt_eig, T, s, lam: samplers.ols_step(key, w, sqrt_eig, T, s)

    rows = max(T0)
    varying = len(set(T0)) > 1
    mixed = not ridge and min(T0) < d <= rows  # some OLS, some min-norm: neither normal equations fits all

    def step(_, key, w, sqrt_eig, T, s, lam):
        mask = (jnp.arange(rows) < T).astype(w.dtype) if varying else None
        if mixed:
            k_x, k_e = jax.random.split(key)
            return samplers.min_norm_padded(samplers.design(k_x, sqrt_eig, rows), k_e, w, T, s, mask)
        return samplers.ridge_direct_fresh(key, w, sqrt_eig, rows, T, s, lam, mask)

    return init, step


def _downstream_fit(down: Downstream, d: int, sampler: str):
    """(init, fit) for the downstream model: init(key, sqrt_eig, lam) draws one design per seed (and factors
    it when lam is the same for every n), fit(state, key, w, sqrt_eig, lam) labels it by w plus fresh noise
    and solves, in O(d^2) with a shared factor.

    One design serves every generation n: each n's error is still exact in distribution, because that
    design is independent of w_n. Errors of one seed at different n share it (common random numbers),
    which leaves each n's mean and standard error over seeds unchanged.
    """
    T, s = down.T, down.sigma
    shared = jnp.ndim(down.lam) == 0  # a per-n lambda needs a factor per n
    if sampler == "suffstats":
        factor = lambda L, sqrt_eig, lam: samplers.bartlett_factor(L, sqrt_eig, jnp.asarray(T, L.dtype), lam)

        def init(key, sqrt_eig, lam):
            L = samplers.bartlett(key, d, T)
            return L, (factor(L, sqrt_eig, lam) if shared else None)

        def fit(state, key, w, sqrt_eig, lam):
            L, f = state
            z = jax.random.normal(key, (d,), w.dtype)
            f = f if shared else factor(L, sqrt_eig, lam)
            return samplers.bartlett_solve(L, f, z, w, sqrt_eig, jnp.asarray(T, w.dtype), s, lam)

        return init, fit

    def init(key, sqrt_eig, lam):
        X = samplers.design(key, sqrt_eig, T)
        return X, (samplers.direct_factor(X, lam, T) if shared else None)

    def fit(state, key, w, sqrt_eig, lam):
        X, f = state
        f = f if shared else samplers.direct_factor(X, lam, T)
        return samplers.direct_solve(X, f, X @ w + s * jax.random.normal(key, (T,), w.dtype), T)

    return init, fit


def run_chain(key, spec: Spectrum, gen: Generators, down: Downstream, generations: int, sampler: str = "auto"):
    """Metrics of one seed for n = 0..generations, each an array of shape (generations + 1,).

    Example:
        >>> import jax, collapse_jax as cj
        >>> from collapse_jax.chain import run_chain
        >>> m = run_chain(jax.random.key(0), cj.Spectrum.isotropic(20), cj.Generators(T0=60),
        ...               cj.Downstream(T=60), generations=3)
        >>> m.test_error.shape
        (4,)
    """
    d = spec.d
    gen_sampler, down_sampler = resolve_sampler(sampler, d, gen, down)
    init, gen_step = _generator_fit(gen, d, gen_sampler)
    down_init, down_fit = _downstream_fit(down, d, down_sampler)
    T_k, sigma_k, lam_k = gen.per_generation(generations)
    down = down.resolved(generations)

    dtype = jnp.zeros(()).dtype
    sqrt_eig = jnp.sqrt(jnp.asarray(spec.eigenvalues, dtype))
    w0 = jnp.asarray(spec.w0, dtype)
    sq_error = lambda w: jnp.sum((sqrt_eig * (w - w0)) ** 2)

    k_design, k_gen, k_down_design, k_down = jax.random.split(key, 4)
    state = init(k_design, sqrt_eig)
    lam_n = jnp.asarray(down.lam, dtype)
    lam_n = jnp.broadcast_to(lam_n, (generations + 1,)) if lam_n.ndim == 0 else lam_n[: generations + 1]
    down_state = down_init(k_down_design, sqrt_eig, down.lam if jnp.ndim(down.lam) == 0 else None)
    down_keys = jax.random.split(k_down, generations + 1)

    def generation(w, xs):
        k_g, k_d, T, s, lam, lam_down = xs
        w = gen_step(state, k_g, w, sqrt_eig, T, s, lam)
        return w, Metrics(sq_error(down_fit(down_state, k_d, w, sqrt_eig, lam_down)), sq_error(w))

    first = Metrics(sq_error(down_fit(down_state, down_keys[0], w0, sqrt_eig, lam_n[0])), jnp.zeros((), dtype))
    xs = (jax.random.split(k_gen, generations), down_keys[1:], jnp.asarray(T_k, dtype), sigma_k.astype(dtype),
          lam_k.astype(dtype), lam_n[1:])
    _, rest = jax.lax.scan(generation, w0, xs)
    return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, rest)
