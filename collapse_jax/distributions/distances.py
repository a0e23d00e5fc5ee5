"""Distances between distributions: closed forms between Gaussians, estimators between samples.

All are pure jax.numpy functions of one pair (vmap them over seeds and generations). W2 is returned squared.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from collapse_jax.engine.checks import SCALE_MAX, Probabilities, Real, RealArray, checked, is_concrete

_MEAN = Real(lo=-SCALE_MAX, hi=SCALE_MAX, ndim=(0, 1, 2, 3))  # squared differences stay finite
_VAR = _MEAN  # scalar variances (broadcast over seeds and generations) or covariance matrices


def _variances(var1, var2):
    """As arrays; in 1-D (var1 a scalar) both must be > 0, else both square covariance matrices."""
    var1, var2 = jnp.asarray(var1), jnp.asarray(var2)
    if jnp.ndim(var1) > 0:
        for name, v in (("var1", var1), ("var2", var2)):
            if v.ndim != 2 or v.shape[0] != v.shape[1] or v.shape != var1.shape:
                raise ValueError(
                    f"{name} must be a scalar variance (var1; var2 may then be an array of them) or, "
                    f"in d dimensions, a d x d covariance like var1, got shape {v.shape}"
                )
    else:
        for name, v in (("var1", var1), ("var2", var2)):
            if is_concrete(v) and not bool(jnp.all(v > 0)):
                raise ValueError(f"{name} must be > 0 (variances), got {v!r}")
    return var1, var2


@checked(x=RealArray(ndim=(1, 2), finite=False))
def sort(x):
    """jnp.sort of a 1-D float array, 3-4 times faster on CPU: XLA sorts integers much faster than floats (whose
    comparator orders NaNs), and flipping the magnitude bits of negative floats maps float order to integer
    order one-to-one, so sorting those integers and mapping back is exact."""
    bits = jnp.int64 if x.dtype == jnp.float64 else jnp.int32
    flip = jnp.iinfo(bits).max
    i = jax.lax.bitcast_convert_type(x, bits)
    keys = jnp.where(i < 0, i ^ flip, i)
    keys = jax.lax.sort(keys, is_stable=False)
    return jax.lax.bitcast_convert_type(jnp.where(keys < 0, keys ^ flip, keys), x.dtype)


@checked(mean1=_MEAN, var1=_VAR, mean2=_MEAN, var2=_VAR)
def w2sq_gaussian(mean1, var1, mean2, var2):
    """W2^2 between N(mean1, var1) and N(mean2, var2): scalars (1-D variances) or vectors and covariances,
    |m1 - m2|^2 + tr S1 + tr S2 - 2 tr (S2^1/2 S1 S2^1/2)^1/2 (the Bures term).

    Example:
        >>> from collapse_jax.distributions import distances
        >>> float(distances.w2sq_gaussian(0.0, 1.0, 1.0, 4.0))
        2.0
    """
    mean1, mean2 = jnp.asarray(mean1), jnp.asarray(mean2)
    var1, var2 = _variances(var1, var2)
    if jnp.ndim(var1) == 0:
        return (mean1 - mean2) ** 2 + (jnp.sqrt(var1) - jnp.sqrt(var2)) ** 2
    r2 = _psd_sqrt(var2)
    cross = jnp.sum(jnp.sqrt(jnp.clip(jnp.linalg.eigvalsh(r2 @ var1 @ r2), 0)))
    return jnp.sum((mean1 - mean2) ** 2) + jnp.trace(var1) + jnp.trace(var2) - 2 * cross


def _psd_sqrt(S):
    w, V = jnp.linalg.eigh(S)
    return (V * jnp.sqrt(jnp.clip(w, 0))[None, :]) @ V.T


@checked(mean1=_MEAN, var1=_VAR, mean2=_MEAN, var2=_VAR)
def kl_gaussian(mean1, var1, mean2, var2):
    """KL(N(mean1, var1) || N(mean2, var2)), 1-D or with covariance matrices.

    Example:
        >>> from collapse_jax.distributions import distances
        >>> round(float(distances.kl_gaussian(0.0, 1.0, 0.0, 2.0)), 4)
        0.0966
    """
    mean1, mean2 = jnp.asarray(mean1), jnp.asarray(mean2)
    var1, var2 = _variances(var1, var2)
    if jnp.ndim(var1) == 0:
        return 0.5 * (jnp.log(var2 / var1) + (var1 + (mean1 - mean2) ** 2) / var2 - 1)
    d = var1.shape[-1]
    L2 = jnp.linalg.cholesky(var2)
    A = jnp.linalg.solve(L2, var1)
    A = jnp.linalg.solve(L2, A.T)  # L2^-1 S1 L2^-T, whose trace is tr(S2^-1 S1)
    u = jnp.linalg.solve(L2, mean1 - mean2)
    logdet = 2 * jnp.sum(jnp.log(jnp.diag(L2))) - jnp.linalg.slogdet(var1)[1]
    return 0.5 * (jnp.trace(A) + u @ u - d + logdet)


@checked(x=RealArray(lo=-SCALE_MAX, hi=SCALE_MAX, ndim=(1, 2)), y=RealArray(lo=-SCALE_MAX, hi=SCALE_MAX, ndim=(1, 2)))
def w2sq_samples(x, y):
    """W2^2 between the empirical distributions of two 1-D samples, exactly: the integral over u in (0, 1) of
    (F_x^-1(u) - F_y^-1(u))^2, both quantile functions being step functions (any two sample sizes).

    Example:
        >>> import jax.numpy as jnp
        >>> from collapse_jax.distributions import distances
        >>> float(distances.w2sq_samples(jnp.array([0.0, 1.0]), jnp.array([1.0, 2.0, 3.0])))
        2.5
    """
    return w2sq_sorted(sort(x), sort(y))


@checked(x=RealArray(lo=-SCALE_MAX, hi=SCALE_MAX, ndim=(1, 2)), y=RealArray(lo=-SCALE_MAX, hi=SCALE_MAX, ndim=(1, 2)))
def w2sq_sorted(x, y):
    """`w2sq_samples` for samples already sorted (chains that sort once and measure several distances)."""
    n, m = x.shape[0], y.shape[0]
    if n == m:
        return jnp.mean((x - y) ** 2)
    breaks = jnp.sort(jnp.concatenate([jnp.arange(1, n + 1) / n, jnp.arange(1, m + 1) / m]))
    width = jnp.diff(breaks, prepend=0.0)
    mid = breaks - width / 2
    xi = jnp.minimum((mid * n).astype(int), n - 1)
    yi = jnp.minimum((mid * m).astype(int), m - 1)
    return jnp.sum(width * (x[xi] - y[yi]) ** 2)


@checked(x=RealArray(lo=-SCALE_MAX, hi=SCALE_MAX, ndim=(1, 2)), y=RealArray(lo=-SCALE_MAX, hi=SCALE_MAX, ndim=(1, 2)))
def kl_samples(x, y):
    """Nearest-neighbour estimate of KL(P || Q) from 1-D samples x ~ P (n points) and y ~ Q (m points).

    Wang, Kulkarni and Verdu (2009), k = 1: (1/n) sum_i log(nu_i / rho_i) + log(m / (n - 1)), where rho_i is the
    distance from x_i to its nearest other x and nu_i to its nearest y. Consistent for continuous densities
    (it needs distinct points: ties give infinities) and biased at small n; compare it across generations at
    a fixed n, and read its n = 0 value (P = Q) as the estimator's floor.
    """
    return kl_sorted(sort(x), sort(y))


@checked(x=RealArray(lo=-SCALE_MAX, hi=SCALE_MAX, ndim=(1, 2)), y=RealArray(lo=-SCALE_MAX, hi=SCALE_MAX, ndim=(1, 2)))
def kl_sorted(x, y):
    """`kl_samples` for samples already sorted."""
    n, m = x.shape[0], y.shape[0]
    gaps = jnp.diff(x)
    rho = jnp.minimum(jnp.concatenate([jnp.array([jnp.inf]), gaps]), jnp.concatenate([gaps, jnp.array([jnp.inf])]))
    j = jnp.searchsorted(y, x)
    nu = jnp.minimum(jnp.abs(x - y[jnp.clip(j - 1, 0, m - 1)]), jnp.abs(y[jnp.clip(j, 0, m - 1)] - x))
    return jnp.mean(jnp.log(nu / rho)) + jnp.log(m / (n - 1))


@checked(p=Probabilities(), q=Probabilities())
def tv(p, q):
    """Total variation between two probability vectors: half the L1 distance."""
    p, q = jnp.asarray(p), jnp.asarray(q)
    return 0.5 * jnp.sum(jnp.abs(p - q), axis=-1)


@checked(p=Probabilities(), q=Probabilities())
def kl_discrete(p, q):
    """KL(p || q) for probability vectors (infinite where q loses a category that p has)."""
    p, q = jnp.asarray(p), jnp.asarray(q)
    return jnp.sum(jnp.where(p > 0, p * (jnp.log(p) - jnp.log(q)), 0.0), axis=-1)
