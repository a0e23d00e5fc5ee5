"""Kernel ridge regression chains (theory/kernels.md), vectorised over seeds by gathering sub-matrices of one
precomputed kernel matrix.

Generation 1 is a KRR fitted on T0 pool points with the real targets plus sigma0 noise; generation k is fitted
on T0 fresh pool points labelled by generation k-1's predictions plus sigma0 noise. The downstream KRR is
fitted on T pool points labelled by generation n (n = 0: the real targets) plus sigma noise, and scored on the
held-out points against the real targets. Points are drawn from the pool with replacement, i.e. i.i.d. from
its empirical distribution, which is the distribution the empirical-spectrum theory describes.

Lambda follows the linear convention: alpha = (K_SS + T lam I)^-1 y, i.e. ridge on (K/T + lam I). Each seed
draws one downstream sample and factors its kernel once: eigendecomposed, so that a whole grid of lambdas (or one
lambda per generation) costs one matrix product each, or, with one lambda throughout, as one Cholesky factor.
Label noise is fresh for every n, as in the linear chain.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax.engine import checks
from collapse_jax.engine.checks import Int, Key, OneOf, Optional, Real, checked
from collapse_jax.engine.rng import subset
from collapse_jax.engine.seeds import builder_cache, map_seeds
from collapse_jax.engine.strategies import check_takes, lookup
from collapse_jax.engine.strategies import table as strategy_table
from collapse_jax.regression.samplers import row_weights


class KRRChain(NamedTuple):
    """test_error, accuracy: (seeds, len(lam), generations + 1); generator_error: (seeds, generations + 1);
    lam: (len(lam), generations + 1), the downstream lambda of each row and generation."""

    test_error: np.ndarray
    accuracy: np.ndarray | None
    generator_error: np.ndarray
    lam: np.ndarray


def resolve_lambdas(lam, T: int, generations: int) -> np.ndarray:
    """lam: a number, a schedule lam(T, n), a sequence of them, or an array (rows, generations + 1) already
    resolved -> an array (rows, generations + 1), all > 0."""
    ns = np.arange(generations + 1)
    if isinstance(lam, np.ndarray) and lam.ndim == 2:
        if lam.shape[1] != ns.size:
            raise ValueError(f"a lam table must have generations + 1 = {ns.size} columns, got shape {lam.shape}")
        out = lam.astype(float)
    else:
        items = list(lam) if isinstance(lam, (list, tuple, np.ndarray)) else [lam]
        for f in items:
            if not callable(f):
                checks.real_array("lam", f, ndim=(0,))
        out = np.stack(
            [np.array([float(f(T, n)) for n in ns]) if callable(f) else np.full(ns.size, float(f)) for f in items]
        )
    if not np.all(np.isfinite(out)) or np.any(out <= 0):
        raise ValueError(
            f"lam must be > 0 for kernel chains (draws are with replacement, so a kernel sub-matrix can "
            f"be singular), got {out.min()!r}"
        )
    return out


@checked(
    key=Key(),
    seed_offset=Int(0),
    T0=Int(1, checks.MAX_SIZE),
    T=Int(1, checks.MAX_SIZE),
    generations=Int(1, checks.MAX_GENERATIONS),
    seeds=Int(1),
    sigma=Real(lo=0.0, hi=checks.SCALE_MAX, ndim=(0,)),
    chunk_size=Optional(Int(1)),
    progress=OneOf(True, False),
)
def krr_chain(
    K,
    Y,
    pool,
    test,
    *,
    T0: int,
    T: int,
    generations: int,
    seeds: int,
    key=0,
    seed_offset: int = 0,
    sigma0=0.0,
    sigma=0.0,
    lam=1e-3,
    lam_gen=1e-3,
    labels=None,
    strategy: str = "replace",
    real_fraction=None,
    real_weight=None,
    synthetic_fraction=None,
    chunk_size: int | None = None,
    progress: bool = False,
) -> KRRChain:
    """Simulate `seeds` KRR chains on a precomputed kernel matrix.

    Args:
        K: (N, N) kernel matrix of all points (pool and test).
        Y: (N, C) real targets.
        pool: index array into K of the points the chain trains on (see `kernels.split`).
        test: index array into K of the held-out points, never trained on.
        T0: points per generator.
        T: points for the downstream model.
        sigma0: label noise added by the generators (a number or one per generation).
        sigma: label noise for the downstream model.
        lam: downstream lambda(s): a number, a schedule lam(T, n), or a sequence of them (a grid).
        lam_gen: the generators' lambda, a number or one per generation (> 0).
        labels: (N,) integer classes, to report the accuracy of argmax predictions beside the squared error.
        strategy: "replace" (each generator fits its own T0 points), "accumulate" (every point so far, each
            labelled when drawn; a KRR on up to generations x T0 points) or "accumulate_subsample" (T0 points
            drawn without replacement from that pool).
        real_fraction: of each generator's T0 points, round(pi T0) carry the real targets (plus sigma0 noise).
        real_weight: the loss weight w of the real points in each generator's fit from generation 2 on (None: all
            points alike): w (mean loss on the real points) + (1 - w) (mean loss on the synthetic ones) + the
            penalty; a number or one per generation; needs real_fraction and strategy "replace" (theory/weighted.md).
        synthetic_fraction: of the downstream's T points, round(p T) are labelled by generation n, the rest by
            the real targets (None: all of them).
        key: int or PRNG key; seed i uses fold_in(key, seed_offset + i).
        seed_offset: first seed index, so that slices of one run can be computed apart and joined.

    Returns:
        KRRChain: held-out test error (and accuracy) per seed, lambda and generation, the generators' errors
        on the pool, and the lambdas used.

    Example:
        >>> import numpy as np
        >>> from collapse_jax.kernels import kernel_matrix, krr_chain, split, synthetic_power_law
        >>> data = synthetic_power_law(400, 20, beta=1.5, r=0.5)
        >>> K = kernel_matrix("linear", data.X)
        >>> pool, test = split(data, test=100)
        >>> out = krr_chain(K, data.Y, pool, test, T0=60, T=60, generations=3, seeds=50, lam=[0.01, 0.1])
        >>> out.test_error.shape, out.lam.shape
        ((50, 2, 4), (2, 4))
    """
    checks.real_array("K", K, ndim=(2,))
    checks.real_array("Y", Y, ndim=(2,))
    K, Y = np.asarray(K, float), np.asarray(Y, float)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"K must be a square kernel matrix, got shape {K.shape}")
    if Y.ndim != 2 or len(Y) != len(K):
        raise ValueError(f"Y must be (N, C) with N = {len(K)} rows like K, got shape {Y.shape}")
    _check_psd(K)
    for name, idx in (("pool", pool), ("test", test)):  # indices: integers, not floats rounded down
        checks.Int(0, len(K) - 1, many=True)(name, list(idx) if isinstance(idx, (list, tuple)) else idx)
    pool, test = np.asarray(pool, int), np.asarray(test, int)
    for name, idx in (("pool", pool), ("test", test)):
        if idx.ndim != 1 or idx.size == 0 or idx.min() < 0 or idx.max() >= len(K):
            raise ValueError(f"{name} must be a non-empty array of indices in 0..{len(K) - 1}")
    T0, T, G = int(T0), int(T), int(generations)  # checked above
    lams = resolve_lambdas(lam, T, G)
    gen_noise = _per_generation("sigma0", sigma0, G, lo=0.0, hi=checks.SCALE_MAX)
    gen_lam = _per_generation("lam_gen", lam_gen, G, lo=0.0, lo_open=True, hi=checks.SCALE_MAX)
    if labels is not None:  # one integer class per point, each a column of Y (else accuracy would be 0)
        checks.Int(0, Y.shape[1] - 1, many=True)(
            "labels", list(labels) if isinstance(labels, (list, tuple)) else labels
        )
        if np.ndim(labels) != 1 or len(labels) != len(K):
            raise ValueError(f"labels must hold one class per point of K ({len(K)}), got shape {np.shape(labels)}")
    classes = np.zeros(len(test), int) if labels is None else np.asarray(labels, int)[test]
    check_takes(strategy, real_fraction=real_fraction)
    n_syn = (
        None
        if synthetic_fraction is None
        else int(round(checks.fraction("synthetic_fraction", synthetic_fraction) * T))  # noqa: RUF046 - round() of a NumPy scalar
    )
    if n_syn is not None and np.ndim(synthetic_fraction):
        raise ValueError("synthetic_fraction must be one number")
    one_lam = lams.shape[0] == 1 and bool(np.all(lams == lams[0, 0]))  # one factor per seed serves every n
    if strategy == "replace" and real_fraction is None:  # plain replace: the fast path; else the strategy table
        one_seed = _krr_seed(T0, T, G, float(sigma), labels is not None, n_syn, one_lam)
    else:
        pi = np.broadcast_to(0.0 if real_fraction is None else checks.fraction("real_fraction", real_fraction), (G,))
        n_real = (T0,) + tuple(int(v) for v in np.round(pi[1:] * T0))  # generation 1 fits the real targets
        weights = _real_weights(real_weight, real_fraction, strategy, n_real, T0, G)
        one_seed = _krr_seed_strategy(
            T0, T, G, float(sigma), labels is not None, n_syn, strategy, n_real, weights is not None, one_lam
        )
    if real_weight is not None and real_fraction is None:
        raise ValueError("real_weight needs real_fraction (the real points it weighs), got None")
    data: tuple = (K[np.ix_(pool, pool)], K[np.ix_(pool, test)], Y[pool], Y[test], classes, lams, gen_noise, gen_lam)
    if real_weight is not None:
        data = (*data, weights)
    with jax.enable_x64(True):
        err, acc, gen_err = map_seeds(
            one_seed, key, seeds, data=data, chunk_size=chunk_size, seed_offset=seed_offset, progress=progress
        )
    return KRRChain(np.moveaxis(err, 1, 2), None if labels is None else np.moveaxis(acc, 1, 2), gen_err, lams)


def _real_weights(real_weight, real_fraction, strategy, n_real, T0, G):
    """Per-generation loss weights of the real points (generation 1, all real, weighs them alike), checked."""
    if real_weight is None:
        return None
    w = _per_generation("real_weight", real_weight, G, lo=0.0, hi=1.0)
    if real_fraction is None or strategy != "replace":
        raise ValueError(f"real_weight needs real_fraction and strategy='replace', got strategy={strategy!r}")
    from collapse_jax.regression.problem import check_groups

    check_groups("real_weight", w[1:], np.asarray(n_real[1:]), T0)
    return np.concatenate([[1.0], w[1:]])


def _check_psd(K: np.ndarray):
    """A kernel matrix is symmetric positive semi-definite; else KRR's solves return NaN or nonsense silently."""
    scale = max(float(np.abs(K).max()), 1e-300)
    if not np.allclose(K, K.T, rtol=1e-10, atol=1e-12 * scale):
        raise ValueError("K must be a symmetric kernel matrix (K = K.T), got an asymmetric one")
    d = np.sqrt(np.clip(np.diag(K), 0.0, None))
    if np.any(np.diag(K) < -1e-12 * scale) or np.any(np.abs(K) > d[:, None] * d[None, :] * (1 + 1e-8) + 1e-12 * scale):
        raise ValueError("K must be positive semi-definite (a kernel matrix): |K_ij| <= sqrt(K_ii K_jj) fails")
    if len(K) <= 1000:  # an eigendecomposition costs O(N^3): checked in full where it is cheap
        low = float(np.linalg.eigvalsh(K)[0])
        if low < -1e-8 * scale * len(K):
            raise ValueError(
                f"K must be positive semi-definite (a kernel matrix), its smallest eigenvalue is {low:.3g}"
            )


def _per_generation(name, value, generations, **bounds) -> np.ndarray:
    arr = np.asarray(checks.real_array(name, value, ndim=(0, 1), **bounds), float)
    if arr.ndim == 0:
        return np.full(generations, float(arr))
    if arr.shape != (generations,):
        raise ValueError(f"{name} must be a number or one value per generation ({generations}), got {arr.size}")
    return arr


# The held-out points' kernel block is kept as K_PQ (pool x held out), so that a model on pool points idx predicts
# them from gathered rows, K_PQ[idx] (contiguous), where it gathered the columns K_QP[:, idx]: 2-3x faster
# (benchmarks/bench_krr_predictions.py). Scattering the coefficients onto the pool and one matrix product for all
# seeds was faster still at small pools, but a product shared by the seeds rounds each seed's numbers by the
# batch's size: a seed's result would then depend on its chunk, and it must not (tests/test_inputs.py).


def _predict(K_PQ, idx, coef):
    """K_QP[:, idx] @ coef, shape (Q, ...), for coefficients (len(idx), ...) on the pool points idx."""
    return jnp.tensordot(K_PQ[idx], coef, (0, 0))


def _downstream(T, sigma, with_labels, n_syn, key, K_PP, K_PQ, Y_P, Y_Q, classes, lam=None):
    """One downstream sample D of T pool points per seed, factored once: returns (D, fit), where
    fit(y_D, lam_n, key) scores the KRR on labels y_D (the first n_syn rows kept, the rest real when n_syn is
    set) for every lambda of the grid row lam_n: (squared error, accuracy) on the held-out points.

    A grid is served by one eigendecomposition K_DD = U diag(e) U' (each lambda then costs a product); with
    `lam`, the one lambda of every generation, by one Cholesky factor of K_DD + T lam I instead: the same
    predictions K_QD (K_DD + T lam I)^-1 y for far less: T^3/3 flops for the factor, where the eigenvectors
    cost several T^3 and K_QD U another 2 Q T^2."""
    kD, k_eps = jax.random.split(key)
    D = jax.random.randint(kD, (T,), 0, K_PP.shape[0])
    K_DD = K_PP[D[:, None], D[None, :]]
    if lam is None:
        e, U = jnp.linalg.eigh(K_DD)
        KQU = _predict(K_PQ, D, U)
        predict = lambda y, lam_n: jnp.einsum(
            "qt,ltc->lqc", KQU, (U.T @ y)[None] / (e[None, :, None] + T * lam_n[:, None, None])
        )
    else:
        factor = (jnp.linalg.cholesky(K_DD + T * lam * jnp.eye(T)), True)
        predict = lambda y, lam_n: _predict(K_PQ, D, jax.scipy.linalg.cho_solve(factor, y))[None]

    def fit(y_D, lam_n, key):
        if n_syn is not None:
            y_D = jnp.where((jnp.arange(T) < n_syn)[:, None], y_D, Y_P[D])
        pred = predict(y_D + sigma * jax.random.normal(key, y_D.shape), lam_n)
        err = jnp.mean(jnp.sum((pred - Y_Q[None]) ** 2, -1), -1)
        acc = jnp.zeros_like(err) if not with_labels else jnp.mean(jnp.argmax(pred, -1) == classes[None], -1)
        return err, acc

    return D, k_eps, fit


def _generator_error(K_PQ, S, alpha, Y_Q):
    """The generator's squared error on the held-out points."""
    return jnp.mean(jnp.sum((_predict(K_PQ, S, alpha) - Y_Q) ** 2, -1))


@builder_cache(16)
def _krr_seed_strategy(T0, T, G, sigma, with_labels, n_syn, strategy, n_real, weighted=False, one_lam=False):
    """One seed's KRR chain under a data strategy. A model is (S, alpha): pool indices and coefficients. The
    pool of labelled points (capacity G T0) holds every point drawn so far with the labels it got then."""
    cap = G * T0

    def one_seed(key, K_PP, K_PQ, Y_P, Y_Q, classes, lam_grid, noise, lam_g, weights=None):
        k_down, k_chain = jax.random.split(key)
        lam = lam_grid[0, 0] if one_lam else None
        D, k_eps, downstream = _downstream(T, sigma, with_labels, n_syn, k_down, K_PP, K_PQ, Y_P, Y_Q, classes, lam)

        def solve_weighted(S, y, lam_k, r, w):
            """Weighted KRR: (R K R + T0 lam) b = R y with R = diag(sqrt(T0 x loss weight)), alpha = R b."""
            root = jnp.sqrt(row_weights(T0, T0, r, w))
            A = root[:, None] * K_PP[S[:, None], S[None, :]] * root[None, :] + T0 * lam_k * jnp.eye(T0)
            return root[:, None] * jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(A), True), y * root[:, None])

        def solve(S, y, lam_k, live):
            """KRR on the live rows (live: 0/1 weights): dead rows get a unit diagonal and zero labels."""
            A = live[:, None] * K_PP[S[:, None], S[None, :]] * live[None, :]
            A = A + jnp.diag(jnp.sum(live) * lam_k * live + (1 - live))
            return jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(A), True), y * live[:, None])

        def replace(S, y, S_pool, y_pool, count, lam_k, k_pick):  # the newest T0 points
            return S, solve(S, y, lam_k, jnp.ones(T0))

        def accumulate(S, y, S_pool, y_pool, count, lam_k, k_pick):  # every point so far
            return S_pool, solve(S_pool, y_pool, lam_k, (jnp.arange(cap) < count).astype(y.dtype))

        def accumulate_subsample(S, y, S_pool, y_pool, count, lam_k, k_pick):  # T0 of them, without replacement
            pick = subset(k_pick, count, cap, T0)
            return S_pool[pick], solve(S_pool[pick], y_pool[pick], lam_k, jnp.ones(T0))

        # the model (S, alpha) each strategy fits, one entry per strategy (engine/strategies.py)
        fit_model = lookup(
            strategy_table(
                "kernels",
                {"replace": replace, "accumulate": accumulate, "accumulate_subsample": accumulate_subsample},
            ),
            strategy,
            "kernels",
        )

        def generation(carry, xs):
            (S_model, alpha), (S_pool, y_pool, count) = carry
            key, lam_n, noise_k, lam_k, r = xs[:5]
            kS, k_fit, k_d, k_pick = jax.random.split(key, 4)
            S = jax.random.randint(kS, (T0,), 0, K_PP.shape[0], dtype=jnp.int32)
            y = jnp.where((jnp.arange(T0) < r)[:, None], Y_P[S], K_PP[S[:, None], S_model[None, :]] @ alpha)
            y = y + noise_k * jax.random.normal(k_fit, y.shape)
            S_pool = jax.lax.dynamic_update_slice(S_pool, S, (count,))
            y_pool = jax.lax.dynamic_update_slice(y_pool, y, (count, jnp.zeros((), jnp.int32)))
            count = count + T0
            if weighted:
                S_m, a_m = S, solve_weighted(S, y, lam_k, r.astype(y.dtype), xs[5])
            else:
                S_m, a_m = fit_model(S, y, S_pool, y_pool, count, lam_k, k_pick)
            gen_err = _generator_error(K_PQ, S_m, a_m, Y_Q)
            # the model's coefficients are padded to the pool's size so that the carry keeps one shape
            S_keep = jnp.zeros(cap, S_m.dtype).at[: S_m.shape[0]].set(S_m)
            a_keep = jnp.zeros((cap, a_m.shape[1])).at[: a_m.shape[0]].set(a_m)
            out = downstream(K_PP[D[:, None], S_m[None, :]] @ a_m, lam_n, k_d) + (gen_err,)
            return ((S_keep, a_keep), (S_pool, y_pool, count)), out

        C = Y_P.shape[1]
        clean = downstream(Y_P[D], lam_grid[:, 0], jax.random.fold_in(k_eps, 0)) + (jnp.zeros(()),)
        init = (
            (jnp.zeros(cap, jnp.int32), jnp.zeros((cap, C))),
            (jnp.zeros(cap, jnp.int32), jnp.zeros((cap, C)), jnp.zeros((), jnp.int32)),
        )
        xs: tuple = (jax.random.split(k_chain, G), lam_grid[:, 1:].T, noise, lam_g, jnp.asarray(n_real))
        if weighted:
            xs = (*xs, jnp.asarray(weights))
        _, rest = jax.lax.scan(generation, init, xs)
        return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), clean, rest)

    return one_seed


@builder_cache(16)
def _krr_seed(T0, T, G, sigma, with_labels, n_syn=None, one_lam=False):
    """One seed's KRR chain for given sizes (cached: the same sizes compile once; the matrices are arguments)."""

    def one_seed(key, K_PP, K_PQ, Y_P, Y_Q, classes, lam_grid, noise, lam_g):
        k_down, k_first, k_chain = jax.random.split(key, 3)
        lam = lam_grid[0, 0] if one_lam else None
        D, k_eps, downstream = _downstream(T, sigma, with_labels, n_syn, k_down, K_PP, K_PQ, Y_P, Y_Q, classes, lam)

        def fit(key, S, y, noise_k, lam_k):
            y = y + noise_k * jax.random.normal(key, y.shape)
            chol = jnp.linalg.cholesky(K_PP[S[:, None], S[None, :]] + T0 * lam_k * jnp.eye(T0))
            return jax.scipy.linalg.cho_solve((chol, True), y)

        def generation(carry, xs):
            S_prev, alpha_prev = carry
            key, lam_n, noise_k, lam_k = xs
            kS, k_fit, k_d = jax.random.split(key, 3)
            S = jax.random.randint(kS, (T0,), 0, K_PP.shape[0])
            alpha = fit(k_fit, S, K_PP[S[:, None], S_prev[None, :]] @ alpha_prev, noise_k, lam_k)
            return (S, alpha), measure(S, alpha, lam_n, k_d)

        def measure(S, alpha, lam_n, key):
            gen_err = _generator_error(K_PQ, S, alpha, Y_Q)
            return downstream(K_PP[D[:, None], S[None, :]] @ alpha, lam_n, key) + (gen_err,)

        clean = downstream(Y_P[D], lam_grid[:, 0], jax.random.fold_in(k_eps, 0)) + (jnp.zeros(()),)
        kS, k_fit, k_d = jax.random.split(k_first, 3)
        S1 = jax.random.randint(kS, (T0,), 0, K_PP.shape[0])
        alpha1 = fit(k_fit, S1, Y_P[S1], noise[0], lam_g[0])
        first = measure(S1, alpha1, lam_grid[:, 1], k_d)
        _, rest = jax.lax.scan(
            generation, (S1, alpha1), (jax.random.split(k_chain, G - 1), lam_grid[:, 2:].T, noise[1:], lam_g[1:])
        )
        return jax.tree.map(lambda a, b, c: jnp.concatenate([a[None], b[None], c]), clean, first, rest)

    return one_seed
