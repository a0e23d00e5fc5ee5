"""The Gaussian fit-and-resample chain (theory/distributions.md "Gaussian fit-and-resample"), sampled exactly from its
sufficient statistics.

Fitting N(mu, sigma^2) to M points of N(mu_n, sigma_n^2) depends on the points only through the sample mean and
the scatter, which are independent: mean ~ N(mu_n, sigma_n^2 / M) and scatter ~ sigma_n^2 chi^2_{M-1} (a Wishart
with M - 1 degrees of freedom in d dimensions). One generation therefore costs one normal and one chi-square
(d normals and a Bartlett factor), whatever M is. The direct sampler draws all M points; it is the cross-check.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax.engine import checks
from collapse_jax.engine.calls import key_moved
from collapse_jax.engine.checks import Int, checked
from collapse_jax.engine.rng import log_gamma, subset
from collapse_jax.engine.seeds import builder_cache, map_seeds, two_chunks, wide_vectors
from collapse_jax.engine.strategies import check_takes, lookup
from collapse_jax.engine.strategies import table as strategy_table
from collapse_jax.engine.wishart import bartlett

ESTIMATORS = ("mle", "unbiased")


class GaussianChain(NamedTuple):
    """Fitted parameters per seed and generation; index 0 is the true distribution.

    mean: (seeds, generations + 1) in 1-D, (seeds, generations + 1, d) in d dimensions.
    var: the variance (1-D) or covariance matrix (seeds, generations + 1, d, d).
    log_var: log of the 1-D variance, carried exactly (the variance itself can underflow for small M).
    log_det: in d dimensions, log det of the covariance, likewise.
    """

    mean: np.ndarray
    var: np.ndarray
    log_var: np.ndarray | None = None
    log_det: np.ndarray | None = None  # d dimensions: log det of the covariance, carried exactly (var may underflow)


def sample_sizes(M, generations: int) -> np.ndarray:
    """M as one sample size per generation (int array of length `generations`), checked: every M_k >= 2."""
    generations = checks.size("generations", generations, lo=1)
    Ms = np.asarray(checks.size("M", M, lo=2))
    if Ms.ndim == 0:
        return np.full(generations, int(Ms))
    if Ms.shape != (generations,):
        raise ValueError(
            f"M must be an int or a sequence of {generations} sample sizes (one per generation), got {Ms.size}"
        )
    return Ms


@key_moved("key", "M", "generations", "seeds")
@checked(
    **checks.chain_rules(),
    M=Int(2, checks.MAX_SIZE, many=True),
    d=Int(1, 10**4),
)
def gaussian_chain(
    M,
    generations: int,
    seeds: int,
    *,
    key=0,
    seed_offset: int = 0,
    d: int = 1,
    estimator: str = "mle",
    mu0=0.0,
    sigma0=1.0,
    sampler: str = "suffstats",
    strategy: str = "replace",
    real_fraction=None,
    real_weight=None,
    chunk_size: int | None = None,
    progress: bool = False,
) -> GaussianChain:
    """Fit a Gaussian to M samples of the previous fit, `generations` times, for `seeds` independent chains.

    Args:
        M: samples per fit (>= 2; >= d + 1 in d dimensions), or one per generation (growing sample sizes).
        estimator: "mle" (divide the scatter by M) or "unbiased" (by M - 1).
        mu0: the true mean; in d dimensions a scalar or a d-vector.
        sigma0: the true standard deviation; in d dimensions a scalar (sigma0^2 I) or a d x d covariance matrix.
        sampler: "suffstats" (exact, one chi-square per generation) or "direct" (draws all M points).
        strategy: "replace" (fit the newest M points), "accumulate" (fit every point drawn so far; carried as the
            pool's mean and scatter, O(d^2) per seed) or "accumulate_subsample" (fit M points drawn without
            replacement from the pool, kept point by point). Kazdan et al. 2024's Gaussian setting.
        real_fraction: of each generation's M fresh points, round(pi M) come from the true distribution
            (a number or one per generation). Strategies and real points draw the points themselves.
        real_weight: the weight w of the real points in the fit (None: every point alike): the weighted maximum-
            likelihood mean w (real mean) + (1 - w) (synthetic mean) and variance (the weighted mean square
            about it); a number or one per generation, in [0, 1]; needs real_fraction, strategy "replace" and
            estimator "mle" (theory/weighted.md §6).
        key: int or PRNG key; seed i uses fold_in(key, seed_offset + i). (The key used to be the first positional
            argument; that call still works, with a DeprecationWarning.)
        seed_offset: first seed index, so that slices of one run can be computed apart and joined.
        chunk_size: seeds per compiled call. Default: all of them, except the 1-D chain without a strategy, which
            runs two chunks of half the seeds side by side from 512 seeds on. The draws do not depend on it.

    Returns:
        GaussianChain: the fitted mean and variance (or covariance) of every seed and generation, index 0 the truth.

    Example:
        >>> from collapse_jax.distributions import gaussian_chain
        >>> out = gaussian_chain(M=100, generations=50, seeds=1000, key=0)
        >>> out.mean.shape, out.var.shape, float(out.var[:, 0].max())
        ((1000, 51), (1000, 51), 1.0)
    """
    Ms = sample_sizes(M, generations)
    d = int(d)  # checked above
    checks.choice("estimator", estimator, ESTIMATORS)
    checks.choice("sampler", sampler, ("suffstats", "direct"))
    if d > 1 and Ms.min() < d + 1:
        raise ValueError(f"M must be >= d + 1 = {d + 1} for a non-singular covariance, got {Ms.min()}")
    # mu0 and sigma0 are checked here, once, because their allowed shapes depend on d
    bound = checks.SCALE_MAX
    checks.real_array("mu0", mu0, lo=-bound, hi=bound, ndim=(0,) if d == 1 else (0, 1))
    if np.ndim(mu0) == 1 and np.shape(mu0)[0] != d:
        raise ValueError(f"mu0 must be a scalar or a vector of length d = {d}, got length {np.shape(mu0)[0]}")
    checks.real_array(
        "sigma0",
        sigma0,
        lo=0 if np.ndim(sigma0) == 0 else None,
        lo_open=True,
        hi=bound,
        ndim=(0,) if d == 1 else (0, 2),
    )
    check_takes(strategy, real_fraction=real_fraction)
    # real_fraction = 0 is the replace chain in law: drawn by its exact samplers (the pooled path refits a
    # covariance that underflows at small M, NaN from ~generation 40 at M = 2)
    pooled = strategy != "replace" or (real_fraction is not None and np.any(np.asarray(real_fraction) != 0))
    weights = _real_weights(real_weight, real_fraction, strategy, estimator, Ms)
    if pooled:
        pi = np.broadcast_to(
            0.0 if real_fraction is None else checks.fraction("real_fraction", real_fraction), Ms.shape
        )
        mean0 = np.broadcast_to(np.asarray(mu0, float), (d,))
        cov0 = np.asarray(sigma0, float) ** 2 * np.eye(d) if np.ndim(sigma0) == 0 else np.asarray(sigma0, float)
        _check_cov(cov0, d)
        one_seed = _chain_strategy(
            tuple(mean0.tolist()),
            tuple(map(tuple, cov0.tolist())),
            tuple(Ms.tolist()),
            tuple(np.round(pi * Ms).astype(int).tolist()),
            estimator == "unbiased",
            strategy,
            weights is not None,
        )
        data = () if weights is None else (weights,)  # the weights are data: one program serves every weight
        mean, cov = map_seeds(
            one_seed, key, seeds, data=data, chunk_size=chunk_size, seed_offset=seed_offset, progress=progress
        )
        if d == 1:
            return GaussianChain(mean[..., 0], cov[..., 0, 0], np.log(cov[..., 0, 0]))
        return GaussianChain(mean, cov)
    divisor = Ms - (estimator == "unbiased")
    steps = (tuple(float(m) for m in Ms), tuple(float(c) for c in divisor))  # hashable: builders are cached
    if d == 1:
        one_seed = _chain_1d(float(mu0), float(sigma0), steps, int(Ms.max()), sampler)
        out_bytes = 2 * jax.dtypes.canonicalize_dtype(float).itemsize * (len(Ms) + 1)  # mean and log var per generation
        chunk = two_chunks(seeds, out_bytes) if chunk_size is None else chunk_size  # the same draws for any size
        mean, log_var = map_seeds(one_seed, key, seeds, chunk_size=chunk, seed_offset=seed_offset, progress=progress)
        _warn_if_spread(log_var, "log var")
        return GaussianChain(mean, np.exp(log_var), log_var)
    mean0 = np.broadcast_to(np.asarray(mu0, float), (d,))
    cov0 = np.asarray(sigma0, float) ** 2 * np.eye(d) if np.ndim(sigma0) == 0 else np.asarray(sigma0, float)
    _check_cov(cov0, d)
    one_seed = _chain_nd(tuple(mean0.tolist()), tuple(map(tuple, cov0.tolist())), steps, int(Ms.max()), sampler)
    mean, cov, log_det = map_seeds(
        one_seed, key, seeds, chunk_size=chunk_size, seed_offset=seed_offset, progress=progress
    )
    _warn_if_spread(log_det, "log det")
    return GaussianChain(mean, cov, None, log_det)


def _real_weights(real_weight, real_fraction, strategy, estimator, Ms):
    """real_weight checked against its chain (concrete values), as an array of one weight per generation (None stays
    None): it enters the chain as data."""
    if real_weight is None:
        return None
    w = np.broadcast_to(checks.fraction("real_weight", real_weight), Ms.shape)
    if real_fraction is None or strategy != "replace" or estimator != "mle":
        raise ValueError(
            "real_weight needs real_fraction, strategy='replace' and estimator='mle' (the weighted maximum-"
            f"likelihood fit), got real_fraction={real_fraction!r}, strategy={strategy!r}, estimator={estimator!r}"
        )
    from collapse_jax.regression.problem import check_groups

    n_real = np.round(np.broadcast_to(checks.fraction("real_fraction", real_fraction), Ms.shape) * Ms)
    check_groups("real_weight", w, n_real, Ms)
    return np.array(w, float)


SPREAD_MAX = 1.0  # the seeds' standard deviation of log sigma^2 past which a mean of sigma^2 stops being reliable


def _warn_if_spread(logs: np.ndarray, what: str):
    """Warn when the spread over seeds of log sigma_n^2 (or log det) passes SPREAD_MAX: sigma_n^2 is then close to
    lognormal, its mean is carried by a few seeds and a seed average misses it by many standard errors (E sigma^2
    0.69 +- 0.11 against exactly 1 at M = 20, n = 100). Compare log_var/log_det, or E log, instead."""
    if logs.shape[0] < 2:
        return
    spread = np.std(logs, axis=0, ddof=1)
    bad = np.flatnonzero(spread > SPREAD_MAX)
    if bad.size:
        warnings.warn(
            f"gaussian_chain: the spread of {what} over seeds passes {SPREAD_MAX:g} from generation {bad[0]} "
            f"(largest {spread.max():.2f}): seed means of var/cov there are unreliable (dominated by rare seeds); "
            f"compare {what.replace(' ', '_')} instead",
            RuntimeWarning,
            stacklevel=3,
        )


def _check_cov(cov0, d):
    if cov0.shape != (d, d) or not np.allclose(cov0, cov0.T) or np.linalg.eigvalsh(cov0).min() <= 0:
        raise ValueError(f"sigma0 must be a scalar or a symmetric positive-definite {d}x{d} covariance")


@builder_cache(32)
def _chain_strategy(mean0, cov0, Ms, n_real, unbiased, strategy, weighted=False):
    """One seed's chain under a data strategy, drawing each generation's points: the first n_real[k] of
    generation k's M_k points come from the true N(mean0, cov0), the rest from the current fit. weighted (replace
    only): one_seed(key, weights) takes the real points' loss weight w_k per generation (data, so that one compiled
    program serves every weight) for the weighted maximum-likelihood fit."""
    mean0, L0 = jnp.asarray(mean0), jnp.linalg.cholesky(jnp.asarray(cov0))
    d, M_max, G = mean0.shape[0], max(Ms), len(Ms)
    capacity = sum(Ms) + M_max

    def stats(x, w, count):
        """Mean and scatter of the rows with weight 1."""
        m = jnp.sum(w[:, None] * x, axis=0) / count
        r = w[:, None] * (x - m[None])
        return m, r.T @ r

    def fit(scatter, count):
        return scatter / (count - unbiased)

    def replace(pool, x, w, M, k_pick):
        m, S = stats(x, w, M)
        return (m, fit(S, M)), pool

    def accumulate(pool, x, w, M, k_pick):  # merge the block's mean and scatter into the pool's
        N, pool_mean, pool_scatter = pool
        m, S = stats(x, w, M)
        total = N + M
        delta = m - pool_mean
        pool_mean = pool_mean + (M / total) * delta
        pool_scatter = pool_scatter + S + (N * M / total) * jnp.outer(delta, delta)
        return (pool_mean, fit(pool_scatter, total)), (total, pool_mean, pool_scatter)

    def accumulate_subsample(pool, x, w, M, k_pick):  # keep the points, fit M of them drawn without replacement
        N, points = pool
        points = jax.lax.dynamic_update_slice(points, x, (N.astype(jnp.int32), jnp.zeros((), jnp.int32)))
        N = N + M
        m, S = stats(points[subset(k_pick, N, capacity, M_max)], w, M)
        return (m, fit(S, M)), (N, points)

    # (what a seed carries, built inside the trace; how a generation updates it and fits), one entry per strategy
    # (engine/strategies.py)
    steps = strategy_table(
        "distributions (Gaussian)",
        {
            "replace": (lambda: None, replace),
            "accumulate": (lambda: (jnp.zeros(()), jnp.zeros(d), jnp.zeros((d, d))), accumulate),
            "accumulate_subsample": (lambda: (jnp.zeros(()), jnp.zeros((capacity, d))), accumulate_subsample),
        },
    )
    pool0, update = lookup(steps, strategy, "distributions (Gaussian)")

    def step(carry, inputs):
        (mean, cov), pool = carry
        key, (M, r, w_real) = inputs
        k_x, k_pick = jax.random.split(key)
        z = jax.random.normal(k_x, (M_max, d))
        i = jnp.arange(M_max)
        x = jnp.where((i < r)[:, None], mean0[None] + z @ L0.T, mean[None] + z @ jnp.linalg.cholesky(cov).T)
        if weighted:  # weighted ML: point weights w/r (real), (1 - w)/(M - r) (synthetic), sum 1
            p = jnp.where(i < r, w_real / jnp.maximum(r, 1), jnp.where(i < M, (1 - w_real) / jnp.maximum(M - r, 1), 0))
            m = p @ x
            new = (m, (p[:, None] * (x - m[None])).T @ (x - m[None]))
        else:
            new, pool = update(pool, x, (i < M).astype(x.dtype), M, k_pick)
        return (new, pool), new

    def one_seed(key, weights=None):
        init = (mean0, jnp.asarray(cov0))
        xs = (np.asarray(Ms, float), np.asarray(n_real, float), np.zeros(G) if weights is None else weights)
        _, (means, covs) = jax.lax.scan(step, (init, pool0()), (jax.random.split(key, G), xs))
        return jnp.concatenate([mean0[None], means]), jnp.concatenate([init[1][None], covs])

    return one_seed


@builder_cache(32)
def _chain_1d(mu0, sigma0, steps, M_max, sampler):
    M, c = (np.asarray(v) for v in steps)
    steps = (M, c)
    G = M.shape[0]

    @wide_vectors  # draws and a running sum, lane by lane
    def suffstats(key):
        # The draws do not depend on the state, so all of them are drawn at once and the scan only adds them up
        # (a sequential running sum: XLA:CPU's associative cumsum took twice as long, recomputing its inputs).
        # chi^2_{M-1} = 2 Gamma((M-1)/2) is drawn on the log scale so that sigma_n^2 never underflows, even at M = 2.
        k1, k2 = jax.random.split(key)
        log_steps = jnp.log(2.0) + log_gamma(k2, (M - 1) / 2) - jnp.log(c)
        shifts = jax.random.normal(k1, (G,)) / jnp.sqrt(M)

        def add(state, step):
            mu, log_var = state
            log_step, shift = step
            state = (mu + jnp.exp(0.5 * log_var) * shift, log_var + log_step)
            return state, state

        start = (jnp.asarray(mu0, float), jnp.log(jnp.asarray(sigma0, float) ** 2))
        _, path = jax.lax.scan(add, start, (log_steps, shifts))
        return tuple(jnp.concatenate([first[None], rest]) for first, rest in zip(start, path, strict=True))

    def step(carry, xs):  # the literal chain: draw M points mu + s z from the current fit, refit
        mu, log_var = carry
        key, (M, c) = xs
        z = jax.random.normal(key, (M_max,))
        w = (jnp.arange(M_max) < M).astype(z.dtype)
        z_bar = jnp.sum(w * z) / M
        # in the standardised points z: x - mean(x) = s (z - mean(z)) never underflows to 0 (log 0, then NaN at
        # M = 2 once s fell below mu's rounding), and log s^2 is carried on the log scale
        mu_new = mu + jnp.exp(0.5 * log_var) * z_bar
        log_var_new = log_var + jnp.log(jnp.sum(w * (z - z_bar) ** 2) / c)
        return (mu_new, log_var_new), (mu_new, log_var_new)

    def direct(key):
        init = (jnp.asarray(mu0, float), jnp.log(jnp.asarray(sigma0, float) ** 2))
        _, (mus, log_vars) = jax.lax.scan(step, init, (jax.random.split(key, G), steps))
        return jnp.concatenate([init[0][None], mus]), jnp.concatenate([init[1][None], log_vars])

    return suffstats if sampler == "suffstats" else direct


@builder_cache(32)
def _chain_nd(mean0, cov0, steps, M_max, sampler):
    """d dimensions, carried as the Cholesky factor U diag(e^l) with U unit lower triangular and l the log of
    its diagonal, so that the chain stays finite however far it collapses: the covariance's scale underflows
    and its condition number passes 1e16 within a few hundred generations at M = 10, and the diagonal entries
    drift apart by a factor e^-0.12 per generation (float32 underflow after ~800). A refit's factor needs no
    factorisation: Bartlett's F B is already triangular (suffstats), and F R' with R from a QR of the centred
    points is one (direct); only the logs of the diagonals are added."""
    mean0, cov0, steps = np.asarray(mean0), np.asarray(cov0), tuple(np.asarray(v) for v in steps)
    d = mean0.shape[0]
    below = np.tril(np.ones((d, d), bool), -1)

    def refit(U, l, B):
        """U diag(e^l) B = U V diag(b e^l), b = diag(B), V unit lower with V_ij = B_ij e^(l_i - l_j) / b_j: the
        exponent is evaluated below the diagonal only, where it shrinks as the chain collapses."""
        b = jnp.diagonal(B)
        V = jnp.where(below, B * jnp.exp(jnp.where(below, l[:, None] - l[None, :], 0.0)), 0.0) / b[None, :]
        return U @ (V + jnp.eye(d)), l + jnp.log(b)

    def step(carry, xs):
        mean, U, l = carry
        key, (M, c) = xs
        k1, k2 = jax.random.split(key)
        if sampler == "suffstats":
            mean_new = mean + U @ (jnp.exp(l) * jax.random.normal(k1, (d,))) / jnp.sqrt(M)
            B = bartlett(k2, d, M - 1)
        else:
            # the M points are mean + z (U e^l)'; they are centred as (z - z_bar) (U e^l)', without the mean, so
            # that points far below the mean's float resolution still have a spread
            z = jax.random.normal(k1, (M_max, d))
            w = (jnp.arange(M_max) < M).astype(z.dtype)[:, None]
            z_bar = jnp.sum(w * z, axis=0) / M
            mean_new = mean + U @ (jnp.exp(l) * z_bar)
            # the scatter is F R'R F' with R from a QR of the centred z: its factor is F R', triangular already
            R = jnp.linalg.qr(w * (z - z_bar[None]), mode="r")
            B = (R * jnp.sign(jnp.diagonal(R))[:, None]).T  # rows of R signed: a positive diagonal, same R'R
        U_new, l_new = refit(U, l, B)
        new = (mean_new, U_new, l_new - 0.5 * jnp.log(c))
        return new, new

    def one_seed(key):
        keys = jax.random.split(key, steps[0].shape[0])
        F0 = jnp.linalg.cholesky(jnp.asarray(cov0))
        U0, l0 = F0 / jnp.diagonal(F0)[None, :], jnp.log(jnp.diagonal(F0))
        _, (means, Us, ls) = jax.lax.scan(step, (jnp.asarray(mean0), U0, l0), (keys, steps))
        Us, ls = jnp.concatenate([U0[None], Us]), jnp.concatenate([l0[None], ls])
        Fs = Us * jnp.exp(ls)[:, None, :]
        return jnp.concatenate([jnp.asarray(mean0)[None], means]), Fs @ jnp.swapaxes(Fs, -1, -2), jnp.sum(2 * ls, -1)

    return one_seed
