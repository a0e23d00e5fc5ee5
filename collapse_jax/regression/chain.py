"""One seed's chain (MATH §1.1): a lax.scan over generations that returns the metrics of every generation.

Generation k fits fresh data labelled by generation k-1; after each generation n = 0..N a downstream ridge
model is fitted on data labelled by generation n. So one run gives the whole error curve against n.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from collapse_jax.engine import checks
from collapse_jax.engine.checks import Instance, Int, checked, choice
from collapse_jax.engine.strategies import STRATEGIES, lookup
from collapse_jax.engine.strategies import table as strategy_table
from collapse_jax.engine.wishart import bartlett
from collapse_jax.regression import samplers, strategies
from collapse_jax.regression.metrics import Metrics
from collapse_jax.regression.problem import Downstream, Generators
from collapse_jax.regression.spectra import Spectrum

SAMPLERS = ("auto", "direct", "suffstats")


def resolve_sampler(sampler: str, d: int, gen: Generators, down: Downstream) -> tuple[str, str]:
    """The sampler used for (generators, downstream). 'auto' takes sufficient statistics wherever they are exact:
    T >= d, and every row labelled by one model (no real rows mixed in, no subsample of kept rows)."""
    choice("sampler", sampler, SAMPLERS)
    exact = (
        min(gen.T0_tuple) >= d and gen.real_fraction is None and not STRATEGIES[gen.strategy].subsample,
        down.T >= d and down.synthetic_fraction is None,
    )
    if sampler == "suffstats" and not all(exact):
        raise ValueError(
            f"sampler='suffstats' needs T0 >= d and T >= d (d={d}, T0={gen.T0}, T={down.T}), no real_fraction, no "
            "synthetic_fraction and no accumulate_subsample (they need the rows); use 'auto' or 'direct'"
        )
    pick = lambda ok: "suffstats" if ok and sampler != "direct" else "direct"
    return pick(exact[0]), pick(exact[1])


def working_rows(gen: Generators, down: Downstream, generations: int) -> int:
    """Rows of data one seed holds at once: the largest design, or the pool of accumulate_subsample."""
    rows = max(max(gen.T0_tuple), down.T)
    if STRATEGIES[gen.strategy].subsample:  # the pool's rows themselves are kept
        T = gen.per_generation(generations)[0]
        rows = max(rows, int(T.sum()) + max(gen.T0_tuple))
    return rows


def _generator_fit(gen: Generators, d: int, sampler: str, generations: int):
    """(init, step) for the generators: init(key, sqrt_eig) draws what a seed keeps (a fixed design, a pool);
    step(state, key, w, w0, sqrt_eig, T, s, lam, n_real) -> (w, state) fits generation k."""
    return lookup(GENERATOR_STEPS, gen.strategy, "regression")(gen, d, sampler, generations)


def _replace(gen: Generators, d: int, sampler: str, generations: int):
    """Generation k fits its own fresh rows (or relabels one fixed design)."""
    T0 = gen.T0_tuple
    ridge = gen.lam is not None
    mixes_real = gen.real_fraction is not None

    def keep(fit):  # a replace step keeps its state (a fixed design, or nothing) unchanged
        return lambda state, key, w, w0, sqrt_eig, T, s, lam, n_real: (
            fit(state, key, w, w0, sqrt_eig, T, s, lam, n_real),
            state,
        )

    real = (lambda w0, n_real: (w0, n_real)) if mixes_real else (lambda w0, n_real: None)
    if gen.fixed:
        if sampler == "suffstats":
            init = lambda key, sqrt_eig: bartlett(key, d, T0[0])

            def fit(L, key, w, w0, sqrt_eig, T, s, lam, n_real):
                z = jax.random.normal(key, (d,), w.dtype)
                return samplers.ridge_from_bartlett(L, z, w, sqrt_eig, T, s, lam)

            return init, keep(fit)
        init = lambda key, sqrt_eig: samplers.design(key, sqrt_eig, T0[0])
        return init, keep(
            lambda X, key, w, w0, sqrt_eig, T, s, lam, n_real: samplers.ridge_direct_labels(
                X, key, w, T, s, lam, real=real(w0, n_real)
            )
        )

    init = lambda key, sqrt_eig: None
    if sampler == "suffstats":
        if ridge:
            return init, keep(
                lambda _, key, w, w0, sqrt_eig, T, s, lam, n_real: samplers.ridge_step(key, w, sqrt_eig, T, s, lam)
            )
        return init, keep(lambda _, key, w, w0, sqrt_eig, T, s, lam, n_real: samplers.ols_step(key, w, sqrt_eig, T, s))

    rows = max(T0)
    varying = len(set(T0)) > 1
    mixed = not ridge and min(T0) < d <= rows  # some OLS, some min-norm: neither normal equations fits all

    def fit_rows(_, key, w, w0, sqrt_eig, T, s, lam, n_real):
        mask = (jnp.arange(rows) < T).astype(w.dtype) if varying else None
        k_x, k_e = jax.random.split(key)
        X = samplers.design(k_x, sqrt_eig, rows)
        return samplers.fit_rows(X, samplers.labels(X, k_e, w, s, real(w0, n_real)), T, lam, mask, mixed)

    return init, keep(fit_rows)


# One entry per declared strategy (engine/strategies.py): its generator step (init, step), built from
# (gen, d, sampler, generations). The pooled steps live in regression/strategies.py.
GENERATOR_STEPS = strategy_table(
    "regression",
    {
        "replace": _replace,
        "accumulate": lambda gen, d, sampler, generations: strategies.accumulate(
            d, gen.T0_tuple, gen.fixed, sampler, gen.real_fraction is not None
        ),
        "accumulate_subsample": lambda gen, d, sampler, generations: strategies.accumulate_subsample(
            d, gen.T0_tuple, generations, gen.lam is not None, gen.real_fraction is not None
        ),
    },
)


def _downstream_fit(down: Downstream, d: int, sampler: str, w0):
    """(init, fit) for the downstream model: init(key, sqrt_eig, lam) draws one design per seed (and factors
    it when lam is the same for every n), fit(state, key, w, sqrt_eig, lam) labels it by w plus fresh noise
    and solves, in O(d^2) with a shared factor. With a synthetic_fraction p, T - round(p T) rows are labelled
    by w0 instead.

    One design serves every generation n: each n's error is still exact in distribution, because that
    design is independent of w_n. Errors of one seed at different n share it (common random numbers),
    which leaves each n's mean and standard error over seeds unchanged.
    """
    T, s, lam = down.T, down.sigma, down.lam
    assert not callable(lam), "resolve a lambda schedule first (Downstream.resolved)"
    shared = jnp.ndim(lam) == 0  # a per-n lambda needs a factor per n
    if sampler == "suffstats":
        factor = lambda L, sqrt_eig, lam: samplers.bartlett_factor(L, sqrt_eig, jnp.asarray(T, L.dtype), lam)

        def init(key, sqrt_eig, lam):
            L = bartlett(key, d, T)
            return L, (factor(L, sqrt_eig, lam) if shared else None)

        def fit(state, key, w, sqrt_eig, lam):
            L, f = state
            z = jax.random.normal(key, (d,), w.dtype)
            f = f if shared else factor(L, sqrt_eig, lam)
            return samplers.bartlett_solve(L, f, z, w, sqrt_eig, jnp.asarray(T, w.dtype), s, lam)

        return init, fit

    real = None if down.synthetic_fraction is None else (w0, T - down.synthetic_rows())

    def init_direct(key, sqrt_eig, lam):
        X = samplers.design(key, sqrt_eig, T)
        return X, (samplers.direct_factor(X, lam, T) if shared else None)

    def fit_direct(state, key, w, sqrt_eig, lam):
        X, f = state
        f = f if shared else samplers.direct_factor(X, lam, T)
        return samplers.direct_solve(X, f, samplers.labels(X, key, w, s, real), T)

    return init_direct, fit_direct


@checked(
    spec=Instance(Spectrum),
    gen=Instance(Generators),
    down=Instance(Downstream),
    generations=Int(0, checks.MAX_GENERATIONS),
)
def run_chain(key, spec: Spectrum, gen: Generators, down: Downstream, generations: int, sampler: str = "auto"):
    """Metrics of one seed for n = 0..generations: the chain `simulate` vmaps over seeds.

    Args:
        key: a PRNG key (`jax.random.key`) for this seed.
        spec: the covariance spectrum and teacher.
        gen: the generators' chain.
        down: the downstream ridge model; a lambda schedule is resolved per generation.
        generations: N >= 0; every n = 0..N is measured.
        sampler: 'auto', 'direct' or 'suffstats' (see `simulate`).

    Returns:
        Metrics whose fields are arrays of shape (generations + 1,).

    Raises:
        ValueError: a sampler that is not one of the three, or 'suffstats' where it is not exact.

    Example:
        >>> import jax, collapse_jax as cj
        >>> from collapse_jax.regression.chain import run_chain
        >>> m = run_chain(jax.random.key(0), cj.Spectrum.isotropic(20), cj.Generators(T0=60),
        ...               cj.Downstream(T=60), generations=3)
        >>> m.test_error.shape
        (4,)
    """
    d = spec.d
    gen_sampler, down_sampler = resolve_sampler(sampler, d, gen, down)
    dtype = jnp.zeros(()).dtype
    sqrt_eig = jnp.sqrt(jnp.asarray(spec.eigenvalues, dtype))
    w0 = jnp.asarray(spec.w0, dtype)
    down = down.resolved(generations)  # a lambda schedule becomes one lambda per n, before the fits read it
    init, gen_step = _generator_fit(gen, d, gen_sampler, generations)
    down_init, down_fit = _downstream_fit(down, d, down_sampler, w0)
    T_k, sigma_k, lam_k = gen.per_generation(generations)
    n_real = gen.real_rows(generations)
    sq_error = lambda w: jnp.sum((sqrt_eig * (w - w0)) ** 2)

    k_design, k_gen, k_down_design, k_down = jax.random.split(key, 4)
    state = init(k_design, sqrt_eig)
    lam = down.lam
    assert not callable(lam)  # resolved above
    lam_n = jnp.asarray(lam, dtype)
    lam_n = jnp.broadcast_to(lam_n, (generations + 1,)) if lam_n.ndim == 0 else lam_n[: generations + 1]
    down_state = down_init(k_down_design, sqrt_eig, lam if jnp.ndim(lam) == 0 else None)
    down_keys = jax.random.split(k_down, generations + 1)

    def generation(carry, xs):
        w, state = carry
        k_g, T, s, lam, n_r = xs
        w, state = gen_step(state, k_g, w, w0, sqrt_eig, T, s, lam, n_r)
        return (w, state), w

    xs = (
        jax.random.split(k_gen, generations),
        jnp.asarray(T_k, dtype),
        sigma_k.astype(dtype),
        lam_k.astype(dtype),
        n_real.astype(dtype),
    )
    _, ws = jax.lax.scan(generation, (w0, state), xs)
    ws = jnp.concatenate([w0[None], ws])
    # The downstream fits do not feed the chain: all generations are solved after the scan, as one batch of
    # right-hand sides against the shared factor (matrix-matrix work instead of one matrix-vector solve per step).
    fits = jax.vmap(lambda k, w, lam: down_fit(down_state, k, w, sqrt_eig, lam))(down_keys, ws, lam_n)
    return Metrics(jax.vmap(sq_error)(fits), jax.vmap(sq_error)(ws))
