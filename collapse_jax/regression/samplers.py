"""Exact samplers for one fit on fresh Gaussian data (theory/samplers.md).

A fit draws T samples x ~ N(0, Sigma), labels them y = x'w + N(0, s^2), and returns the ridge estimate
(X'X/T + lam I)^-1 X'y/T (lam = 0: OLS for T >= d, min-norm for T < d). Two samplers give the same
distribution:

* direct: draw X itself. O(T d) random numbers; works for every T, and for fixed designs.
* sufficient statistics: the fit sees the data only through X'X and X'eps. X'X = S W S with S = Sigma^1/2 and
  W = L L' Wishart(I, T) from a Bartlett factor L, and X'eps = s S L z with z ~ N(0, I). O(d^2) random
  numbers whatever T is, but it needs T >= d. For OLS the error is exactly multivariate t (`ols_step`): d
  normals and one chi-square per fit.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_factor, cho_solve

from collapse_jax.engine.rng import chi_square
from collapse_jax.engine.wishart import bartlett, strictly_lower  # noqa: F401 (this module's names since 0.1)


def design(key, sqrt_eig, rows: int):
    """X = Z Sigma^1/2 with Z a (rows, d) standard normal matrix."""
    return jax.random.normal(key, (rows, sqrt_eig.shape[0]), sqrt_eig.dtype) * sqrt_eig[None, :]


def ols_step(key, w, sqrt_eig, T, s):
    """OLS on T >= d fresh samples labelled by w: exactly w + s Sigma^-1/2 g / sqrt(c), c ~ chi2(T - d + 1)."""
    k_g, k_c = jax.random.split(key)
    d = w.shape[0]
    g = jax.random.normal(k_g, (d,), w.dtype)
    c = chi_square(k_c, jnp.asarray(T, w.dtype) - d + 1)
    return w + s * g / (jnp.sqrt(c) * sqrt_eig)


class Reduced(NamedTuple):
    """A symmetric system reduced once for every shift: K = Q T Q' with T tridiagonal (`diag`, `off`), standing
    for diag(scale)^-1 (K + shift I) diag(scale)^-1. Solving it (`solve`) costs O(m^2) whatever the shift, where
    a Cholesky costs O(m^3) per shift: a lambda that changes with n then costs one reduction per seed, not one
    factor per n (theory/samplers.md "One design, many lambdas"). Q is kept as its Householder reflectors
    (row i of `reflectors` is v_i, Q = H_0 ... H_{m-2} with H_i = I - taus[i] v_i v_i'), never formed."""

    reflectors: jax.Array
    taus: jax.Array
    diag: jax.Array
    off: jax.Array
    scale: jax.Array

    def shifted(self, shift):
        return self._replace(diag=self.diag + shift)


def reduce(K, scale=None) -> Reduced:
    """Householder reduction of a symmetric K to tridiagonal form (LAPACK's sytrd), its reflectors unpacked."""
    m = K.shape[0]
    scale = jnp.ones(m, K.dtype) if scale is None else scale
    if m == 1:
        return Reduced(jnp.zeros((0, 1), K.dtype), jnp.zeros(0, K.dtype), K[0], jnp.zeros(0, K.dtype), scale)
    packed, diag, off, taus = jax.lax.linalg.tridiagonal(K, lower=True)
    # sytrd with lower=True stores v_i below the subdiagonal of column i: v_i is 0 above entry i + 1, 1 at it.
    # Kept as rows, so that each reflection reads one contiguous row.
    i, j = jnp.arange(m - 1)[:, None], jnp.arange(m)[None, :]
    reflectors = jnp.where(j > i + 1, packed[:, :-1].T, 0.0) + (j == i + 1)
    return Reduced(reflectors, taus, diag, off, scale)


REFLECTORS_PER_SEGMENT = 200


def _reflect(reduced: Reduced, b, transpose: bool):
    """Q'b (transpose) or Qb, one reflector at a time, Q never formed: jaxlib offers Q only formed (LAPACK's orgtr),
    which with the products by it cost about 17 ms per seed at m = 800, against 5-6 ms for the reflections, each an
    elementwise product and a sum that XLA fuses across every right-hand side of a batch (benchmarks/README.md,
    "A per-generation lambda").

    v_i is zero above entry i + 1, so the reflectors run in segments, each on the entries its first reflector
    reaches (static slices): one segment per 200 reflectors, since each costs XLA about 0.1 s of compile; at
    m = 800 three of them cut the reflections from about 7.8 to 5.5 ms per seed."""
    V, taus = reduced.reflectors, reduced.taus
    count = taus.shape[0]
    segments = max(1, count // REFLECTORS_PER_SEGMENT)
    bounds = sorted({count * k // segments for k in range(segments + 1)})
    runs = list(itertools.pairwise(bounds))
    for lo, hi in runs if transpose else runs[::-1]:  # Q' = H_{m-2} ... H_0 applies H_0 first; Q applies it last
        rows = V[lo:hi, lo + 1 :]

        def reflect(j, x, lo=lo, hi=hi, rows=rows):
            i = j if transpose else hi - lo - 1 - j
            v = jax.lax.dynamic_index_in_dim(rows, i, axis=0, keepdims=False)
            return x - taus[lo + i] * jnp.sum(v * x) * v

        b = b.at[lo + 1 :].set(jax.lax.fori_loop(0, hi - lo, reflect, b[lo + 1 :]))
    return b


def shifts_pay(shifts: int, m: int, dtype) -> bool:
    """Whether one reduction (`reduce`) beats a Cholesky per shift for `shifts` systems of size m.

    Measured on 2 CPU cores, per seed, the solves included (benchmarks/README.md, "A per-generation lambda"): at
    m = 200 the reduction wins from 2 shifts (0.88 ms against 1.26), at m = 100 from about 5 (6: 0.25 against
    0.47; 4: 0.18 against 0.17), at m = 50 from about 6 (11: 0.07 against 0.10): about where shifts x m reaches
    SHIFTS_MIN_WORK. In the chain a Cholesky per shift also forms its Gram matrix again, so this leans towards the
    Cholesky: whole chains with one OpenBLAS thread (as the CLI runs), 400 seeds, took less with the reduction at
    every point tried, down to m = 100 with 2 shifts (0.49 against 0.59 ms per seed) and m = 30 with 11 (0.08
    against 0.16), but below shifts x m = 400 by under 0.1 ms per seed, which a thousand seeds do not repay for
    the reduction's extra compile (about 0.14 s at m = 50), so the rule stays. float32 keeps a Cholesky per
    shift: the whitened Bartlett system below stays well conditioned there, the reduced one (Sigma^1/2 W
    Sigma^1/2) does not.
    """
    return jnp.dtype(dtype) == jnp.float64 and shifts >= SHIFTS_MIN and shifts * m >= SHIFTS_MIN_WORK


SHIFTS_MIN, SHIFTS_MIN_WORK = 2, 400


def solve(factor, b):
    """factor^-1 b for a Cholesky factor (cho_factor's pair) or a shifted `Reduced`."""
    if not isinstance(factor, Reduced):
        return cho_solve(factor, b)
    zero = jnp.zeros(1, factor.off.dtype)
    rotated = _reflect(factor, factor.scale * b, transpose=True)
    y = jax.lax.linalg.tridiagonal_solve(
        jnp.concatenate([zero, factor.off]), factor.diag, jnp.concatenate([factor.off, zero]), rotated[:, None]
    )
    return factor.scale * _reflect(factor, y[:, 0], transpose=False)


def bartlett_factor(L, sqrt_eig, T, lam, reduced: Reduced | None = None):
    """Cholesky factor of W/T + lam Sigma^-1, the whitened ridge system of a Bartlett draw (see below); with
    `reduced` (`bartlett_reduced`), that system at this lambda from the one reduction instead.

    At lam = 0 the Cholesky factor is L / sqrt(T) itself: taking it avoids refactoring L L', whose condition number
    (the square of L's) breaks a float32 Cholesky near T = d, where chi2(T - d + 1) diagonals get tiny.
    """
    if reduced is not None:
        return reduced.shifted(lam)
    c, lower = cho_factor(L @ L.T / T + jnp.diag(lam / sqrt_eig**2), lower=True)
    return jnp.where(lam == 0, L / jnp.sqrt(T), c), lower


def bartlett_reduced(L, sqrt_eig, T) -> Reduced:
    """W/T + lam Sigma^-1 = S^-1 (S W S / T + lam I) S^-1 (S = Sigma^1/2): one reduction of S W S / T, the
    sample covariance, serves every lambda."""
    SL = sqrt_eig[:, None] * L
    return reduce(SL @ SL.T / T, scale=sqrt_eig)


def bartlett_solve(L, factor, z, w, sqrt_eig, T, s, lam):
    """Ridge fit from the sufficient statistics X'X = S L L' S, X'eps = s S L z (S = Sigma^1/2).

    Solved in whitened coordinates, (W/T + lam Sigma^-1) v = s L z / T - lam Sigma^-1/2 w, with the fit
    w + Sigma^-1/2 v: that system stays well conditioned when Sigma has tiny eigenvalues, because lam
    Sigma^-1 only adds to its diagonal. lam = 0 gives OLS.
    """
    rhs = s * (L @ z) / T - lam * w / sqrt_eig
    return w + solve(factor, rhs) / sqrt_eig


def ridge_from_bartlett(L, z, w, sqrt_eig, T, s, lam):
    """Factor and solve in one go (a design used once, or with a lambda that changes)."""
    T = jnp.asarray(T, w.dtype)
    return bartlett_solve(L, bartlett_factor(L, sqrt_eig, T, lam), z, w, sqrt_eig, T, s, lam)


def ridge_step(key, w, sqrt_eig, T, s, lam):
    """Ridge fit on T >= d fresh samples labelled by w, from a fresh Bartlett draw."""
    k_w, k_z = jax.random.split(key)
    d = w.shape[0]
    L = bartlett(k_w, d, T)
    return ridge_from_bartlett(L, jax.random.normal(k_z, (d,), w.dtype), w, sqrt_eig, T, s, lam)


def direct_factor(X, lam, n, mask=None, reduced: Reduced | None = None):
    """Cholesky factor of the ridge system of X: primal (X'X/n + lam) when X has at least d rows, else
    dual (XX' + n lam); lam = 0 then gives OLS or the minimum-norm interpolator. With `reduced`
    (`direct_reduced(X, n, mask)`), that system at this lambda from the one reduction instead.

    Padded rows (mask false) have X = 0 and y = 0: they add nothing to the primal system, and in the dual
    system a unit diagonal keeps their (zero) coefficients determined.
    """
    rows, d = X.shape
    n = jnp.asarray(n, X.dtype)
    if reduced is not None:
        return reduced.shifted(lam if rows >= d else n * lam)
    if rows >= d:
        return cho_factor(X.T @ X / n + lam * jnp.eye(d, dtype=X.dtype))
    pad = 0.0 if mask is None else (1.0 - mask)
    return cho_factor(X @ X.T + jnp.diag((n * lam + pad) * jnp.ones(rows, X.dtype)))


def direct_reduced(X, n, mask=None) -> Reduced:
    """The ridge system of `direct_factor` without its lambda, reduced once for every lambda."""
    rows, d = X.shape
    if rows >= d:
        return reduce(X.T @ X / jnp.asarray(n, X.dtype))
    pad = 0.0 if mask is None else (1.0 - mask)
    return reduce(X @ X.T + jnp.diag(pad * jnp.ones(rows, X.dtype)))


def direct_solve(X, factor, y, n):
    """The ridge fit (X'X/n + lam)^-1 X'y/n from a factor of `direct_factor`."""
    rows, d = X.shape
    if rows >= d:
        return solve(factor, X.T @ y / jnp.asarray(n, X.dtype))
    return X.T @ solve(factor, y)


def ridge_direct(X, y, lam, n, mask=None):
    """Ridge (X'X/n + lam)^-1 X'y/n on the live rows of X (factor and solve in one go)."""
    return direct_solve(X, direct_factor(X, lam, n, mask), y, n)


def labels(X, key, w, s, real=None):
    """Labels X w + N(0, s^2) of a design; with real = (w0, n_real) the first n_real rows are labelled by w0.

    Which rows are real does not matter: the rows are exchangeable.
    """
    signal = X @ w
    if real is not None:
        w0, n_real = real
        signal = jnp.where(jnp.arange(X.shape[0]) < n_real, X @ w0, signal)
    return signal + s * jax.random.normal(key, (X.shape[0],), X.dtype)


def fit_rows(X, y, T, lam, mask=None, min_norm_either=False):
    """Ridge (or OLS / min-norm at lam = 0) on the live rows of X (mask true; all rows without a mask).

    min_norm_either: the live row count T is data and may fall on either side of d, so solve both normal
    equations and keep the non-singular one (see `min_norm_padded`).
    """
    if mask is not None:
        X, y = X * mask[:, None], y * mask
    if min_norm_either:
        return min_norm_padded(X, y, T, mask)
    return ridge_direct(X, y, lam, T, mask)


def ridge_direct_fresh(key, w, sqrt_eig, rows: int, T, s, lam, mask=None, real=None):
    """Draw X (rows x d, the first T rows live when masked), label it by w plus noise, and fit ridge."""
    k_x, k_e = jax.random.split(key)
    X = design(k_x, sqrt_eig, rows)
    return ridge_direct_labels(X, k_e, w, T, s, lam, mask, real)


def ridge_direct_labels(X, key, w, T, s, lam, mask=None, real=None):
    """Label a given design by w plus fresh noise and fit ridge (used for fixed designs too)."""
    return fit_rows(X, labels(X, key, w, s, real), T, lam, mask)


def min_norm_padded(X, y, T, mask):
    """Minimum-norm least squares on the first T rows of a padded design (rows past T zero), whether T >= d or
    T < d.

    Both normal-equation forms are solved and the one that is non-singular for this T is kept (T is data,
    so the choice is a select, not a branch).
    """
    rows, d = X.shape
    pad = 1.0 - (jnp.ones(rows, X.dtype) if mask is None else mask)
    primal = cho_solve(cho_factor(X.T @ X), X.T @ y)
    dual = X.T @ cho_solve(cho_factor(X @ X.T + jnp.diag(pad)), y)
    return jnp.where(T >= d, primal, dual)


def row_weights(rows: int, T, n_real, weight):
    """T times each row's loss weight in a weighted fit (theory/weighted.md): T w/n_r on the first n_r rows (real),
    T (1 - w)/n_s on the next n_s = T - n_r (synthetic), 0 past T. All rows equal to 1 when w = n_r/T (pooled).

    A zero count goes with a zero weight (the configs refuse anything else), so its rows get weight 0.
    """
    i = jnp.arange(rows)
    T = jnp.asarray(T, weight.dtype)
    real = T * weight / jnp.maximum(n_real, 1)
    synthetic = T * (1 - weight) / jnp.maximum(T - n_real, 1)
    return jnp.where(i < n_real, real, jnp.where(i < T, synthetic, 0.0))


def fit_weighted_rows(X, y, T, lam, weights, min_norm_either=False):
    """Weighted ridge: minimises sum_i weights_i (y_i - x_i'b)^2 / T + lam ||b||^2, i.e. ridge on the rows scaled by
    sqrt(weights). Rows of weight 0 (a group weighted 0, padding) drop out of the fit, also in the dual system."""
    root = jnp.sqrt(weights)
    return fit_rows(X * root[:, None], y * root, T, lam, (weights > 0).astype(X.dtype), min_norm_either)


# Random-projection downstream model (theory/projection.md): f(x) = v'Sx, v ridge on z = Sx in R^m.


def projection(key, m: int, d: int, dtype):
    """S, an (m x d) matrix of i.i.d. N(0, 1/d) entries: the random features of a width-m model."""
    return jax.random.normal(key, (m, d), dtype) / jnp.sqrt(jnp.asarray(d, dtype))


def projected_bartlett_factor(B, T, lam):
    """Cholesky factor of the width-m ridge system from B = S Sigma^1/2 L (m x d), solved in min(m, d) dimensions:
    B'B/T + lam I_d when m >= d (push-through), else BB'/T + lam I_m. Both are non-singular at lam = 0 (T >= d)."""
    m, d = B.shape
    G = B.T @ B if m >= d else B @ B.T
    return cho_factor(G / T + lam * jnp.eye(min(m, d), dtype=B.dtype), lower=True)


def projected_bartlett_solve(S, B, L, factor, z, w, sqrt_eig, T, s):
    """S'v for the width-m ridge fit from sufficient statistics (T >= d): Z'Z = B B' and Z'y = B c with
    c = L'Sigma^1/2 w + s z, since X'X = Sigma^1/2 L L' Sigma^1/2 and X'eps = s Sigma^1/2 L z. Then
    v = (BB'/T + lam)^-1 B c/T = B (B'B/T + lam)^-1 c/T. O(m d^2 + min(m, d)^3) per seed, whatever T is."""
    m, d = B.shape
    c = L.T @ (sqrt_eig * w) + s * z
    v = B @ cho_solve(factor, c) / T if m >= d else cho_solve(factor, B @ c / T)
    return S.T @ v
