"""Closed forms for the distribution chains (theory/distributions.md).

Every function takes the generation index n (an int or an array of them) and returns an array of the same
shape, evaluated in float64 with numpy. Index 0 is the true distribution (or the real data), as in the chains.
"""

from __future__ import annotations

import math

import numpy as np
from jax.scipy import special as jsp

from collapse_jax.distributions.gaussian import ESTIMATORS, sample_sizes
from collapse_jax.engine import checks
from collapse_jax.engine.checks import Int, OneOf, Optional, Real, checked
from collapse_jax.engine.strategies import strategy as strategy_named


def _special(name, x):
    import jax

    with jax.enable_x64(True):
        return np.asarray(getattr(jsp, name)(np.asarray(x, float)))


def _digamma(x):
    return _special("digamma", x)


def _trigamma(x):
    import jax

    with jax.enable_x64(True):
        return np.asarray(jsp.polygamma(1, np.asarray(x, float)))


def _gammaln(x):
    """log Gamma by the C library's lgamma, element by element: as exact as JAX's and no program to compile
    (JAX's eager gammaln compiled one per argument shape, about 0.4 s each; validate met two)."""
    return _lgamma(np.asarray(x, float))


_lgamma = np.vectorize(math.lgamma, otypes=[float])


@checked(k=Real(lo=0.0, lo_open=True))
def chi_mean(k):
    """c_k = E sqrt(chi^2_k / k) = sqrt(2/k) Gamma((k+1)/2) / Gamma(k/2)."""
    k = np.asarray(k, float)
    return np.sqrt(2 / k) * np.exp(_gammaln((k + 1) / 2) - _gammaln(k / 2))


def _steps(M, n, estimator):
    """(n array, per-generation M and divisor c), with M covering generations 1..max(n)."""
    checks.choice("estimator", estimator, ESTIMATORS)
    n = np.asarray(n)
    if np.any(n < 0) or not np.issubdtype(n.dtype, np.integer):
        raise ValueError(f"n must be integers >= 0, got {n!r}")
    Ms = sample_sizes(M, max(int(n.max()), 1)).astype(float)
    return n, Ms, Ms - (estimator == "unbiased")


def _cumulative(step_values, n, op=np.cumprod, empty=1.0):
    """op over the first n steps, for every n (n = 0 gives `empty`)."""
    return np.concatenate([[empty], op(step_values)])[n]


@checked(
    M=Int(2, checks.MAX_SIZE, many=True),
    n=Int(0, checks.MAX_GENERATIONS, many=True),
    estimator=OneOf("mle", "unbiased"),
    sigma0=Real(lo=0.0, lo_open=True, hi=checks.SCALE_MAX, ndim=(0,)),
)
def gaussian_var_mean(M, n, estimator="mle", sigma0=1.0):
    """E sigma_n^2: sigma0^2 prod_k (M_k - 1)/c_k; sigma0^2 a^n for the MLE, sigma0^2 for the unbiased fit."""
    n, Ms, c = _steps(M, n, estimator)
    return sigma0**2 * _cumulative((Ms - 1) / c, n)


@checked(
    M=Int(2, checks.MAX_SIZE, many=True),
    n=Int(0, checks.MAX_GENERATIONS, many=True),
    estimator=OneOf("mle", "unbiased"),
    sigma0=Real(lo=0.0, lo_open=True, hi=checks.SCALE_MAX, ndim=(0,)),
)
def gaussian_mean_var(M, n, estimator="mle", sigma0=1.0):
    """Var mu_n = sum_k E sigma_{k-1}^2 / M_k: sigma0^2 (1 - a^n) for the MLE, n sigma0^2 / M unbiased."""
    n, Ms, c = _steps(M, n, estimator)
    ev = sigma0**2 * _cumulative((Ms - 1) / c, np.arange(Ms.size))  # E sigma^2 before each step
    return _cumulative(ev / Ms, n, np.cumsum, 0.0)


@checked(
    M=Int(2, checks.MAX_SIZE, many=True),
    n=Int(0, checks.MAX_GENERATIONS, many=True),
    estimator=OneOf("mle", "unbiased"),
    sigma0=Real(lo=0.0, lo_open=True, hi=checks.SCALE_MAX, ndim=(0,)),
)
def gaussian_log_var(M, n, estimator="mle", sigma0=1.0):
    """(mean, variance) of log sigma_n^2: a random walk with steps psi((M-1)/2) + ln 2 - ln c, psi'((M-1)/2)."""
    n, Ms, c = _steps(M, n, estimator)
    drift = _digamma((Ms - 1) / 2) + math.log(2) - np.log(c)
    return (
        math.log(sigma0**2) + _cumulative(drift, n, np.cumsum, 0.0),
        _cumulative(_trigamma((Ms - 1) / 2), n, np.cumsum, 0.0),
    )


@checked(
    M=Int(2, checks.MAX_SIZE, many=True),
    n=Int(0, checks.MAX_GENERATIONS, many=True),
    estimator=OneOf("mle", "unbiased"),
    sigma0=Real(lo=0.0, lo_open=True, hi=checks.SCALE_MAX, ndim=(0,)),
)
def gaussian_sd_mean(M, n, estimator="mle", sigma0=1.0):
    """E sigma_n = sigma0 prod_k c_{M_k - 1} sqrt((M_k - 1) / c_k)."""
    n, Ms, c = _steps(M, n, estimator)
    return sigma0 * _cumulative(chi_mean(Ms - 1) * np.sqrt((Ms - 1) / c), n)


@checked(
    M=Int(2, checks.MAX_SIZE, many=True),
    n=Int(0, checks.MAX_GENERATIONS, many=True),
    estimator=OneOf("mle", "unbiased"),
    sigma0=Real(lo=0.0, lo_open=True, hi=checks.SCALE_MAX, ndim=(0,)),
)
def gaussian_w2(M, n, estimator="mle", sigma0=1.0):
    """E W2^2(N(mu0, sigma0^2), N(mu_n, sigma_n^2)) = Var mu_n + E sigma_n^2 - 2 sigma0 E sigma_n + sigma0^2.

    MLE: 2 sigma0^2 (1 - (c_{M-1} sqrt(a))^n), bounded; unbiased: n sigma0^2/M + 2 sigma0^2 (1 - c_{M-1}^n).

    Example:
        >>> from collapse_jax.distributions import theory
        >>> [round(float(v), 4) for v in theory.gaussian_w2(100, [1, 1000], "unbiased")]
        [0.015, 11.8399]
    """
    args = (M, n, estimator, sigma0)
    return gaussian_mean_var(*args) + gaussian_var_mean(*args) - 2 * sigma0 * gaussian_sd_mean(*args) + sigma0**2


@checked(
    M=Int(2, checks.MAX_SIZE, many=True),
    n=Int(0, checks.MAX_GENERATIONS, many=True),
    sigma0=Real(lo=0.0, lo_open=True, hi=checks.SCALE_MAX, ndim=(0,)),
)
def gaussian_w2_first_order(M, n, sigma0=1.0):
    """(3/2) sigma0^2 sum_{k <= n} 1/M_k: bounded over generations iff sum 1/M_k converges."""
    n, Ms, _ = _steps(M, n, "mle")
    return 1.5 * sigma0**2 * _cumulative(1 / Ms, n, np.cumsum, 0.0)


@checked(
    M=Int(2, checks.MAX_SIZE, many=True),
    n=Int(0, checks.MAX_GENERATIONS, many=True),
    sigma0=Real(lo=0.0, lo_open=True, hi=checks.SCALE_MAX, ndim=(0,)),
)
def gaussian_weighted_moments(M, n, real_fraction, real_weight, sigma0=1.0):
    """(E (mu_n - mu0)^2, E sigma_n^2) of the weighted Gaussian chain, exactly (theory/weighted.md §6).

    Generation k draws r = round(pi M) real and s = M - r synthetic points and fits the weighted ML mean
    mu_k = w (real mean) + (1 - w) (synthetic mean) and variance sum_i p_i (x_i - mu_k)^2 (p_i = w/r or
    (1 - w)/s). With e = E (mu - mu0)^2 and v = E sigma^2 of the previous generation [exact]:

        e_k = w^2 sigma0^2/r + (1 - w)^2 (e + v/s)
        v_k = w sigma0^2 (r - 1)/r + (1 - w) v (s - 1)/s + w (1 - w) (sigma0^2/r + v/s + e)

    Example:
        >>> e, v = gaussian_weighted_moments(20, [0, 1], 0.5, 0.5)
        >>> round(float(e[1]), 12), round(float(v[1]), 12)  # w = r/M is the pooled fit: 1/M and (M - 1)/M
        (0.05, 0.95)
    """
    n, Ms, _ = _steps(M, n, "mle")
    pi = np.broadcast_to(checks.fraction("real_fraction", real_fraction), Ms.shape)
    w = np.broadcast_to(checks.fraction("real_weight", real_weight), Ms.shape)
    from collapse_jax.regression.problem import check_groups

    check_groups("real_weight", w, np.round(pi * Ms), Ms)
    e, v = 0.0, 1.0  # per unit sigma0^2
    es, vs = [e], [v]
    for M_k, p_k, w_k in zip(Ms, pi, w, strict=True):
        r = float(np.round(p_k * M_k))
        s = M_k - r
        inv_r, inv_s = (1 / r if r else 0.0), (1 / s if s else 0.0)  # an empty group has weight 0 (checked)
        e, v = (
            w_k**2 * inv_r + (1 - w_k) ** 2 * (e + v * inv_s),
            w_k * (1 - inv_r) * (r > 0)
            + (1 - w_k) * v * (1 - inv_s) * (s > 0)
            + w_k * (1 - w_k) * (inv_r + v * inv_s + e),
        )
        es.append(e)
        vs.append(v)
    return sigma0**2 * np.asarray(es)[n], sigma0**2 * np.asarray(vs)[n]


@checked(
    M=Int(2, checks.MAX_SIZE, many=True),
    n=Int(0, checks.MAX_GENERATIONS, many=True),
    estimator=OneOf("mle", "unbiased"),
    sigma0=Real(lo=0.0, lo_open=True, hi=checks.SCALE_MAX, ndim=(0,)),
)
def gaussian_strategy_moments(M, n, estimator="mle", strategy="replace", real_fraction=None, sigma0=1.0):
    """(E (mu_n - mu0)^2, E sigma_n^2) of the Gaussian chain under a data strategy, exactly (theory/distributions.md).

    Generation k draws M_k points, r_k = round(pi_k M_k) of them from the truth, and fits the newest block
    (replace) or the pool of every block so far (accumulate). Both moments follow one linear recursion,
    because every draw's noise is independent of the past: with delta = mu - mu0, s2 = E sigma^2, a pool of
    N points before the block (N = 0 for replace) and s = M - r synthetic points,

        E delta_k^2 = ((N + s)/N_k)^2 E delta^2 + (r sigma0^2 + s s2) / N_k^2,
        E Q_k = [accumulate] E Q_{k-1} + E Q_block + (N M / N_k) E (mu_{k-1} - block mean)^2,

    and s2_k = E Q_k / (N_k or N_k - 1). In d dimensions the same numbers multiply Sigma_0: E (mu_n - mu0)(.)' =
    delta^2 Sigma_0 and E Sigma_n = s2 Sigma_0 (per unit sigma0^2). accumulate_subsample has no formula.

    Example:
        >>> mse, var = gaussian_strategy_moments(20, [0, 1], "mle", "accumulate")
        >>> float(mse[1]), float(var[1])  # one generation: 1/M and (M-1)/M
        (0.05, 0.95)
    """
    pooled = strategy_named(strategy).pools  # refuses an undeclared strategy by name
    if strategy_named(strategy).subsample:
        from collapse_jax.regression.theory._common import NoFormulaError

        raise NoFormulaError(
            "accumulate_subsample Gaussian chains have no formula in the lab (points picked "
            "again bring back their old noise); simulate instead"
        )
    n, Ms, _ = _steps(M, n, estimator)
    pi = np.broadcast_to(0.0 if real_fraction is None else checks.fraction("real_fraction", real_fraction), Ms.shape)
    unbiased = estimator == "unbiased"
    dev, q, s2, N = 0.0, 0.0, 1.0, 0.0  # per unit sigma0^2; q = E Q of the pool
    devs, s2s = [0.0], [1.0]
    for M_k, p_k in zip(Ms, pi, strict=True):
        r = float(np.round(p_k * M_k))
        s = M_k - r
        prev = N if pooled else 0.0
        total = prev + M_k
        q_block = max(r - 1, 0) + s2 * max(s - 1, 0) + (r * s / M_k) * dev + (s + r * s2) / M_k * (r >= 1 and s >= 1)
        gap = (r / M_k) ** 2 * dev + (r + s * s2) / M_k**2  # E (mu_{k-1} - block mean)^2
        q = (q if pooled else 0.0) + q_block + (prev * M_k / total) * gap
        dev = ((prev + s) / total) ** 2 * dev + (r + s * s2) / total**2
        N = total
        s2 = q / (total - unbiased)
        devs.append(dev)
        s2s.append(s2)
    return sigma0**2 * np.asarray(devs)[n], sigma0**2 * np.asarray(s2s)[n]


@checked(
    M=Int(2, checks.MAX_SIZE, many=True),
    n=Int(0, checks.MAX_GENERATIONS, many=True),
    d=Int(1, 10**4),
    estimator=OneOf("mle", "unbiased"),
)
def gaussian_cov_mean(M, n, d, estimator="mle"):
    """E Sigma_n = factor * Sigma_0; returns the factor prod_k (M_k - 1)/c_k (a^n for the MLE), as in 1-D."""
    return gaussian_var_mean(M, n, estimator)


@checked(
    M=Int(2, checks.MAX_SIZE, many=True),
    n=Int(0, checks.MAX_GENERATIONS, many=True),
    d=Int(1, 10**4),
    estimator=OneOf("mle", "unbiased"),
)
def gaussian_logdet_drift(M, n, d, estimator="mle"):
    """E[log det Sigma_n - log det Sigma_0] = sum over steps of sum_{k=1}^{d} [psi((M-k)/2) + ln 2] - d ln c."""
    n, Ms, c = _steps(M, n, estimator)
    ks = np.arange(1, d + 1)
    step = (_digamma((Ms[:, None] - ks) / 2) + math.log(2)).sum(1) - d * np.log(c)
    return _cumulative(step, n, np.cumsum, 0.0)


# --- KDE chains (theory/distributions.md "KDE chains") ----------------------------------------------------------------


def _bandwidth(name, h):
    """A fixed bandwidth h > 0, or the name of a rule."""
    if isinstance(h, str):
        checks.choice(name, h, ("scott", "silverman"))
    else:
        checks.real_array(name, h, lo=0.0, lo_open=True, hi=checks.SCALE_MAX, ndim=(0,))


@checked(
    M=Int(2, checks.MAX_SIZE),
    n=Int(0, checks.MAX_GENERATIONS, many=True),
    var0=Real(lo=0.0, hi=checks.SCALE_MAX, ndim=(0,)),
    bandwidth=_bandwidth,
    d=Int(1, 10**4),
)
def kde_var(M, n, var0, bandwidth, d=1):
    """E s_n^2, the within-sample variance (ddof 0, per coordinate) after n refits of a Gaussian KDE.

    s_0^2 is that of M points from the true distribution (variance var0 per coordinate): E s_0^2 = a var0,
    a = (M-1)/M. Fixed h: E s_{n+1}^2 = a (E s_n^2 + h^2). Rule h = f s_unbiased: E s_{n+1}^2 = rho E s_n^2 with
    rho = a (1 + f^2 M / (M - 1)); 1-D Scott (f = M^{-1/5}) gives a (1 + M^{3/5} / (M - 1)).
    """
    n = np.asarray(n)
    a = (M - 1) / M
    if isinstance(bandwidth, str):
        rho = a * (1 + bandwidth_factor(bandwidth, M, d) ** 2 * M / (M - 1))
        return a * var0 * rho**n
    h2 = float(bandwidth) ** 2
    return a ** (n + 1) * var0 + h2 * (M - 1) * (1 - a**n)


@checked(
    M=Int(2, checks.MAX_SIZE),
    n=Int(0, checks.MAX_GENERATIONS, many=True),
    var0=Real(lo=0.0, hi=checks.SCALE_MAX),
    bandwidth=_bandwidth,
    d=Int(1, 10**4),
)
def kde_pooled_var(M, n, var0, bandwidth, d=1):
    """Variance of one point of generation n pooled over runs: var0 + sum_{k<n} E h_k^2 (var0 + n h^2 if fixed)."""
    n = np.asarray(n)
    if not isinstance(bandwidth, str):
        return var0 + n * float(bandwidth) ** 2
    f2 = bandwidth_factor(bandwidth, M, d) ** 2 * M / (M - 1)
    steps = f2 * kde_var(M, np.arange(int(n.max()) + 1), var0, bandwidth, d)
    return var0 + _cumulative(steps, n, np.cumsum, 0.0)


@checked(
    M=Int(2, checks.MAX_SIZE),
    n=Int(0, checks.MAX_GENERATIONS, many=True),
    var0=Real(lo=0.0, hi=checks.SCALE_MAX),
    bandwidth=_bandwidth,
)
def kde_pooled_var_strategy(M, n, var0, bandwidth, strategy="replace", real_fraction=None):
    """Variance of one point of generation n pooled over runs, fixed bandwidth h, under a data strategy.

    A new point is real with probability pi' = round(pi M)/M (variance var0), else a point picked uniformly from
    what the KDE was fitted to, plus N(0, h^2). A uniform subsample of the pool picks a uniform pool point too, so
    accumulate and accumulate_subsample share P_g = pi' var0 + (1 - pi') (mean_{i<g} P_i + h^2); replace uses
    P_{g-1} alone. Exact (the recursion is linear). Bandwidth rules have no such formula (h depends on the sample).
    """
    pooled = strategy_named(strategy).pools  # a subsample of the pool picks a uniform pool point too
    if isinstance(bandwidth, str):
        from collapse_jax.regression.theory._common import NoFormulaError

        raise NoFormulaError("the pooled-variance recursion under a data strategy needs a fixed bandwidth")
    n = np.asarray(n)
    share = 0.0 if real_fraction is None else round(checks.fraction("real_fraction", real_fraction) * M) / M
    h2, P = float(bandwidth) ** 2, [float(var0)]
    total = float(var0)  # a running sum: the mean over i < g in O(1) per generation (np.mean was O(g), quadratic)
    for _ in range(int(n.max())):
        prev = total / len(P) if pooled else P[-1]
        P.append(share * var0 + (1 - share) * (prev + h2))
        total += P[-1]
    return np.asarray(P)[n]


def kde_weighted_var(M, n, var0, bandwidth, real_fraction, real_weight):
    """Pooled variance of one point of generation n of a weighted KDE chain (fixed h, replace), exactly
    (theory/weighted.md §8): a synthetic point picks a real point (variance var0) with probability w, else a
    synthetic one, and adds N(0, h^2): S_1 = var0 + h^2, S_g = w var0 + (1 - w) S_{g-1} + h^2, and a point of
    generation g is real with probability pi' = round(pi M)/M: P_g = pi' var0 + (1 - pi') S_g.

    Example:
        >>> [round(float(v), 6) for v in kde_weighted_var(100, [0, 1], 1.0, 0.3, 0.2, 0.5)]
        [1.0, 1.072]
    """
    checks.real_array("bandwidth", bandwidth, lo=0.0, lo_open=True, ndim=(0,))
    checks.real_array("real_weight", real_weight, lo=0.0, hi=1.0, ndim=(0,))
    n = np.asarray(n)
    share = round(checks.fraction("real_fraction", real_fraction) * M) / M
    h2, w = float(bandwidth) ** 2, float(real_weight)
    S, P = float(var0) + h2, [float(var0)]
    for g in range(1, int(n.max()) + 1):
        if g > 1:
            S = w * var0 + (1 - w) * S + h2
        P.append(share * var0 + (1 - share) * S)
    return np.asarray(P)[n]


def bandwidth_factor(rule: str, M: int, d: int = 1) -> float:
    """h = factor * (unbiased std): Scott M^{-1/(d+4)}, Silverman (M (d+2)/4)^{-1/(d+4)} (scipy's conventions)."""
    checks.choice("bandwidth", rule, ("scott", "silverman"))
    base = M if rule == "scott" else M * (d + 2) / 4
    return base ** (-1 / (d + 4))


# --- Wright-Fisher resampling (theory/distributions.md "Wright-Fisher resampling") ------------------------------------


def _wright_fisher_matrix(M):
    """P[k, j] = P(j copies next generation | k copies now) = Binomial(M, k/M) pmf at j."""
    k, j = np.arange(M + 1)[:, None], np.arange(M + 1)[None, :]
    p = k / M
    with np.errstate(divide="ignore", invalid="ignore"):
        logpmf = (
            _gammaln(M + 1)
            - _gammaln(j + 1)
            - _gammaln(M - j + 1)
            + np.where(j > 0, j * np.log(p), 0.0)
            + np.where(j < M, (M - j) * np.log1p(-p), 0.0)
        )
    return np.where(np.isfinite(logpmf), np.exp(logpmf), 0.0)


def _sums_to_one(p) -> np.ndarray:
    p = np.asarray(p, float)
    if p.size < 2 or not np.isclose(p.sum(), 1.0, atol=1e-9):
        raise ValueError(f"p must hold at least 2 probabilities summing to 1, got sum {p.sum()!r} over {p.size}")
    return p


@checked(M=Int(2, checks.MAX_SIZE), t=Int(0, checks.MAX_GENERATIONS, many=True))
def distinct_mean(M, t, counts=None):
    """E (number of distinct original values) after t resamplings, exactly.

    Each value survives independently in expectation: E D_t = sum_v P(a value with k_v copies is not lost by t),
    from the one-value Wright-Fisher chain on {0..M}. counts: initial copies of each value (default: M distinct).
    About M (1 - (1 - 1/M)^M) after one generation and 2M/(t + 2) later.
    """
    t = np.asarray(t)
    work = (int(t.max()) + 1) * (M + 1) ** 2  # t matrix-vector products with the (M + 1) x (M + 1) matrix
    if (M + 1) ** 2 * 8 * 4 > 2**31 or work > 10**11:
        raise ValueError(
            f"M = {M} and t = {int(t.max())}: the exact Wright-Fisher recursion needs an (M + 1)^2 matrix "
            f"({(M + 1) ** 2 * 8 / 2**30:.1f} GiB) and {work:.1e} operations; take M <= 8000 and t M^2 <= 1e11"
        )
    if counts is not None:
        checks.Int(1, M, many=True)("counts", counts)
        if int(np.sum(counts)) > M:
            raise ValueError(f"counts must add up to at most M = {M}, got {int(np.sum(counts))}")
    counts = np.ones(M, int) if counts is None else np.asarray(counts)
    P = _wright_fisher_matrix(M)
    lost = np.zeros(M + 1)
    lost[0] = 1.0  # P(lost by step s | k copies now), built up backwards one step at a time
    by_t = [lost]
    for _ in range(int(t.max())):
        lost = P @ lost
        by_t.append(lost)
    return (counts.size - np.stack(by_t)[:, counts].sum(1))[t]


@checked(
    M=Int(2, checks.MAX_SIZE), t=Int(0, checks.MAX_GENERATIONS, many=True), s0=Optional(Real(lo=0.0, hi=1.0, ndim=(0,)))
)
def collision_mean(M, t, s0=None):
    """E S_t = E sum_i p_i^2 = 1 - (1 - 1/M)^t (1 - S_0); S_0 = 1/M for M distinct values."""
    s0 = 1 / M if s0 is None else s0
    return 1 - (1 - 1 / M) ** np.asarray(t) * (1 - s0)


@checked(M=Int(2, 10**4))
def fixation_time(M):
    """(mean, sd) of the time until one value remains, from M distinct values: 2M(1 - 1/M) and about 1.08 M.

    An approximation, not an exact formula: the coalescent limit of the discrete Wright-Fisher chain, which
    differs from it by O(1) generations out of about 2M (theory/distributions.md "Wright-Fisher resampling").
    Judge it with kind "approximation" and the relative bound `fixation_time_gap(M)`.

    Example:
        >>> fixation_time(50)
        (98.0, 54.0)
    """
    return 2 * M * (1 - 1 / M), 1.08 * M


FIXATION_TIME_GAP_C = 2.0  # O(1) generations out of 2M: 2/M relative covers up to 4 generations of difference


@checked(M=Int(2, 10**4))
def fixation_time_gap(M):
    """The relative accuracy stated for the coalescent `fixation_time`: FIXATION_TIME_GAP_C / M.

    Example:
        >>> fixation_time_gap(40)
        0.05
    """
    return FIXATION_TIME_GAP_C / M


# --- Discrete distributions with real data mixed in (theory/distributions.md "Discrete distributions with real data mix


@checked(
    p=Real(lo=0.0, hi=1.0, ndim=(1,)),
    N=Int(1, checks.MAX_SIZE),
    n=Int(0, checks.MAX_GENERATIONS, many=True),
    synthetic=Optional(Int(0, checks.MAX_SIZE)),
)
def discrete_deviation(p, N, n, synthetic=None, strategy="replace", real_weight=None):
    """E ||p^(m) - p^(1)||^2 at generations m = n (array), with p^(1) fitted to N real samples.

    Each later fit uses the N real samples again plus `synthetic` samples of the current fit (alpha =
    s/(N + s)); synthetic=None refits to N synthetic samples only (alpha = 1). Exactly,
    e_{m+1} = alpha^2 G / s + alpha^2 (1 - 1/s) e_m with e_1 = 0 and E G = (1 - 1/N) sum p_i (1 - p_i).
    Generation 0 (the true p) has no deviation from p^(1) defined: it returns E ||p - p^(1)||^2 there.
    real_weight w (weighted counts, theory/weighted.md §6): the same recursion with alpha = 1 - w.
    strategy="accumulate" (every sample kept, n_m = N + (m - 1) s of them): a martingale whose steps have
    E ||step||^2 = (s / n_m^2)(G - e_{m-1}), so e_m = e_{m-1} + s (G - e_{m-1}) / n_m^2, exactly.
    """
    pooled = strategy_named(strategy, allowed=("replace", "accumulate")).pools  # as discrete_chain
    p = _sums_to_one(p)
    s = N if synthetic is None else synthetic
    if s == 0:
        raise ValueError("synthetic must be >= 1 (0 synthetic samples leave p^(1) unchanged: no chain)")
    alpha = 1.0 if synthetic is None else s / (N + s)
    if real_weight is not None:
        checks.real_array("real_weight", real_weight, lo=0.0, hi=1.0, ndim=(0,))
        if synthetic is None or strategy != "replace":
            raise ValueError("real_weight needs synthetic samples mixed with the real ones and strategy='replace'")
        alpha = 1.0 - float(real_weight)
    G = (1 - 1 / N) * np.sum(p * (1 - p))
    n = np.asarray(n)
    e = [np.sum(p * (1 - p)) / N, 0.0]
    for m in range(2, int(n.max()) + 1):
        if pooled:
            e.append(e[-1] + s * (G - e[-1]) / (N + (m - 1) * s) ** 2)
        else:
            e.append(alpha**2 * G / s + alpha**2 * (1 - 1 / s) * e[-1])
    return np.asarray(e)[n]


@checked(p=Real(lo=0.0, hi=1.0, ndim=(1,)), N=Int(1, checks.MAX_SIZE), synthetic=Optional(Int(0, checks.MAX_SIZE)))
def discrete_deviation_limit(p, N, synthetic):
    """The stationary E ||p - p^(1)||^2 with real data mixed in: G s / (N^2 + 2 N s + s) ~ sum p(1-p) s/(N(N+2s))."""
    p = _sums_to_one(p)
    G = (1 - 1 / N) * np.sum(p * (1 - p))
    return G * synthetic / (N**2 + 2 * N * synthetic + synthetic)
