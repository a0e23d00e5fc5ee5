"""One seed's chain (theory/moments.md "Setting"): a lax.scan over generations that returns the metrics of every
generation.

Generation k fits fresh data labelled by generation k-1; after each generation n = 0..N a downstream ridge
model is fitted on data labelled by generation n. So one run gives the whole error curve against n.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax.engine import checks
from collapse_jax.engine.checks import Instance, Int, checked, choice
from collapse_jax.engine.strategies import STRATEGIES, lookup
from collapse_jax.engine.strategies import table as strategy_table
from collapse_jax.engine.wishart import bartlett
from collapse_jax.regression import samplers, strategies
from collapse_jax.regression.metrics import Metrics
from collapse_jax.regression.problem import Downstream, Generators, check_group_sizes
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
    if sampler == "suffstats" and down.width is not None and not exact[1]:
        raise ValueError(
            f"width = {down.width} with sampler='suffstats' needs T >= d (d={d}, T={down.T}) and no "
            "synthetic_fraction: the projected fit then draws the rows; use 'auto' or 'direct'"
        )
    if sampler == "suffstats" and not all(exact):
        raise ValueError(
            f"sampler='suffstats' needs T0 >= d and T >= d (d={d}, T0={gen.T0}, T={down.T}), no real_fraction, no "
            "synthetic_fraction and no accumulate_subsample (they need the rows); use 'auto' or 'direct'"
        )
    if gen.real_weight is not None:
        T_k = np.asarray(gen.T0_tuple, float)
        n = len(T_k) if len(T_k) > 1 else (gen.length or 1)
        check_group_sizes(
            "real_weight",
            gen.real_weights(n),
            gen.real_rows(n),
            gen.per_generation(n)[0],
            d,
            0.0 if gen.lam is None else gen.lam,
        )
    if down.real_weight is not None:
        check_group_sizes(
            "real_weight (downstream)",
            down.real_weight,
            down.T - down.synthetic_rows(),
            down.T,
            d,
            down.lam if checks.is_concrete(down.lam) and not callable(down.lam) and np.ndim(down.lam) == 0 else 1.0,
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
    weighted = gen.real_weight is not None  # n_real is (n_r, w): weighted normal equations on the drawn rows
    if weighted:
        real = lambda w0, n_real: (w0, n_real[0])

        def solve(X, y, T, lam, mask, mixed, n_real):
            return samplers.fit_weighted_rows(X, y, T, lam, samplers.row_weights(X.shape[0], T, *n_real), mixed)

    else:
        solve = lambda X, y, T, lam, mask, mixed, n_real: samplers.fit_rows(X, y, T, lam, mask, mixed)
    if gen.fixed:
        if sampler == "suffstats":
            init = lambda key, sqrt_eig: bartlett(key, d, T0[0])

            def fit(L, key, w, w0, sqrt_eig, T, s, lam, n_real):
                z = jax.random.normal(key, (d,), w.dtype)
                return samplers.ridge_from_bartlett(L, z, w, sqrt_eig, T, s, lam)

            return init, keep(fit)
        init = lambda key, sqrt_eig: samplers.design(key, sqrt_eig, T0[0])
        if weighted:
            return init, keep(
                lambda X, key, w, w0, sqrt_eig, T, s, lam, n_real: solve(
                    X, samplers.labels(X, key, w, s, real(w0, n_real)), T, lam, None, False, n_real
                )
            )
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
        return solve(X, samplers.labels(X, k_e, w, s, real(w0, n_real)), T, lam, mask, mixed, n_real)

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
    shared = jnp.ndim(lam) == 0  # a per-n lambda needs a factor per n, or one reduction for all of them
    if down.width is not None:
        return _projected_fit(down, d, sampler, w0, shared)
    shifts = 1 if shared else jnp.shape(lam)[0]
    if sampler == "suffstats":
        reduced = samplers.shifts_pay(shifts, d, w0.dtype)
        factor = lambda L, sqrt_eig, lam, r=None: samplers.bartlett_factor(L, sqrt_eig, jnp.asarray(T, L.dtype), lam, r)

        def init(key, sqrt_eig, lam):
            L = bartlett(key, d, T)
            if shared:
                return L, factor(L, sqrt_eig, lam)
            return L, (samplers.bartlett_reduced(L, sqrt_eig, jnp.asarray(T, L.dtype)) if reduced else None)

        def fit(state, key, w, sqrt_eig, lam):
            L, f = state
            z = jax.random.normal(key, (d,), w.dtype)
            f = f if shared else factor(L, sqrt_eig, lam, f)
            return samplers.bartlett_solve(L, f, z, w, sqrt_eig, jnp.asarray(T, w.dtype), s, lam)

        return init, fit

    real = None if down.synthetic_fraction is None else (w0, T - down.synthetic_rows())
    reduced = samplers.shifts_pay(shifts, min(T, d), w0.dtype)
    root, live = None, None
    if down.real_weight is not None:  # weighted: the design's rows scaled once by sqrt(T x loss weight)
        n_real = T - down.synthetic_rows()  # real_weight is refused without synthetic_fraction (check_groups)
        root = jnp.sqrt(samplers.row_weights(T, T, n_real, jnp.asarray(down.real_weight, w0.dtype)))
        live = (root > 0).astype(w0.dtype)
    weigh = (lambda a: a) if root is None else (lambda a: a * (root[:, None] if a.ndim == 2 else root))

    def init_direct(key, sqrt_eig, lam):
        X = samplers.design(key, sqrt_eig, T)
        if shared:
            return X, samplers.direct_factor(weigh(X), lam, T, live)
        return X, (samplers.direct_reduced(weigh(X), T, live) if reduced else None)

    def fit_direct(state, key, w, sqrt_eig, lam):
        X, f = state
        f = f if shared else samplers.direct_factor(weigh(X), lam, T, live, f)
        return samplers.direct_solve(weigh(X), f, weigh(samplers.labels(X, key, w, s, real)), T)

    return init_direct, fit_direct


def _projected_fit(down: Downstream, d: int, sampler: str, w0, shared: bool):
    """(init, fit) of `_downstream_fit` for a width-m model f(x) = v'Sx (theory/projection.md); fit returns S'v.

    S is drawn once per seed, beside the design: one model retrained on every generation's data. With sufficient
    statistics (T >= d) the fit needs only the Bartlett factor L and B = S Sigma^1/2 L, O(m d^2 + min(m, d)^3)
    per seed; otherwise (T < d, or a real/synthetic mixture) it draws X and fits on Z = XS' directly.
    """
    T, s, m = down.T, down.sigma, down.width
    assert m is not None  # only called for a projected downstream
    if sampler == "suffstats":
        factor = lambda B, lam: samplers.projected_bartlett_factor(B, jnp.asarray(T, B.dtype), lam)

        def init_suff(key, sqrt_eig, lam):  # the design from the same key as width=None: m >= d, lam = 0 is OLS
            L = samplers.bartlett(key, d, T)
            k_s = jax.random.fold_in(key, 1)
            S = samplers.projection(k_s, m, d, L.dtype)
            B = (S * sqrt_eig[None, :]) @ L
            return S, B, L, (factor(B, lam) if shared else None)

        def fit_suff(state, key, w, sqrt_eig, lam):
            S, B, L, f = state
            z = jax.random.normal(key, (d,), w.dtype)
            f = f if shared else factor(B, lam)
            return samplers.projected_bartlett_solve(S, B, L, f, z, w, sqrt_eig, jnp.asarray(T, w.dtype), s)

        return init_suff, fit_suff

    real = None if down.synthetic_fraction is None else (w0, T - down.synthetic_rows())
    deficient = d < min(T, m)  # Z = XS' has rank d < min(T, m): at lam = 0 its least-squares fit is OLS on x

    def init(key, sqrt_eig, lam):
        X, k_s = samplers.design(key, sqrt_eig, T), jax.random.fold_in(key, 1)
        S = samplers.projection(k_s, m, d, X.dtype)
        Z = X @ S.T
        return X, S, Z, (samplers.direct_factor(Z, lam, T) if shared else None)

    def fit(state, key, w, sqrt_eig, lam):
        X, S, Z, f = state
        y = samplers.labels(X, key, w, s, real)
        f = f if shared else samplers.direct_factor(Z, lam, T)
        out = S.T @ samplers.direct_solve(Z, f, y, T)  # primal (T >= m) or dual (T < m) normal equations in R^m
        if deficient:  # the minimum-norm v then has S'v = (X'X)^-1 X'y (theory/projection.md, section 4)
            out = jnp.where(lam == 0, samplers.ridge_direct(X, y, 0.0, T), out)
        return out

    return init, fit


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
        n_real.astype(dtype) if gen.real_weight is None else (n_real.astype(dtype), gen.real_weights(generations)),
    )
    _, ws = jax.lax.scan(generation, (w0, state), xs)
    ws = jnp.concatenate([w0[None], ws])
    # The downstream fits do not feed the chain: all generations are solved after the scan, as one batch of
    # right-hand sides against the shared factor (matrix-matrix work instead of one matrix-vector solve per step).
    fits = jax.vmap(lambda k, w, lam: down_fit(down_state, k, w, sqrt_eig, lam))(down_keys, ws, lam_n)
    return Metrics(jax.vmap(sq_error)(fits), jax.vmap(sq_error)(ws))
