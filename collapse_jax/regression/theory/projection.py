"""Ridge on random projections, the width-m downstream model: a deterministic equivalent (theory/projection.md).

The model f(x) = v'Sx, S (m x d) with i.i.d. N(0, 1/d) entries, v ridge on z = Sx. Given S it is ordinary ridge in
R^m with covariance K = S Sigma S', a teacher theta(w) (the best linear predictor of x'w from z) and an extra label
noise, the part of x'w that z cannot see. Two coupled fixed points then give the error:

* the data (ridge in R^m):        kappa - lam = kappa df_1(nu) / T,
* the projection (S, in R^d):     nu (1 - df_1(nu) / m) = kappa d / m,

with df_k the degrees of freedom of Sigma (`ridge.df`). nu is the effective ridge of the whole model in x-space;
kappa that of the fit in R^m. Eliminating kappa = nu (m - df_1(nu)) / d leaves one equation in nu,

    nu (m - df_1(nu)) (T - df_1(nu)) / (d T) = lam,

whose left side increases from 0 once df_1(nu) < min(m, T). At lam = 0, nu solves df_1(nu) = min(m, T) when that is
below d, else nu = 0, and m = T is the interpolation threshold, where the error diverges. [DE]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from collapse_jax.regression.theory.fixed_point import _kappa, df
from collapse_jax.regression.theory.moments import Moments, along_last

_BISECTIONS = 80  # as in ridge.kappa: a log-bracket of width < 80 halved to float64 resolution


def _projection_residual(nu, eigenvalues, lam, T, m):
    f1 = df(eigenvalues, nu, 1)
    d = eigenvalues.shape[-1]
    return nu * (m - f1) * (T - f1) / (d * T) - lam


def nu(eigenvalues, lam, T, m):
    """The model's effective ridge nu in x-space: the root of nu (m - df_1)(T - df_1)/(d T) = lam with
    df_1(nu) < min(m, T) (theory/projection.md). nu = 0 when lam = 0 and d < min(m, T).

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(nu(jnp.ones(100), 0.0, 400.0, 50.0)), 6)  # lam = 0, m < d: df_1(nu) = 100/(1 + nu) = m
        1.0
    """
    return _nu(jnp.asarray(eigenvalues), jnp.asarray(lam), jnp.asarray(T), jnp.asarray(m, jnp.asarray(T).dtype))


@jax.custom_jvp
def _nu(eigenvalues, lam, T, m):
    tiny = 1e-12 * jnp.min(eigenvalues)
    lo = jnp.where(lam > 0, jnp.minimum(lam, tiny), tiny)
    # df_1 <= tr Sigma / nu, so past hi = 2 (tr Sigma + lam d) the residual is positive
    hi = 2 * (jnp.sum(eigenvalues) + lam * eigenvalues.shape[-1]) + jnp.sum(eigenvalues) * 4 / jnp.minimum(m, T)
    cap = jnp.minimum(m, T)

    def below(x):  # left of the root: df_1 still above min(m, T), or the residual negative
        return (df(eigenvalues, x, 1) > cap) | (_projection_residual(x, eigenvalues, lam, T, m) < 0)

    def halve(_, bracket):
        a, b = bracket
        mid = 0.5 * (a + b)
        left = below(jnp.exp(mid))
        return jnp.where(left, mid, a), jnp.where(left, b, mid)

    a, b = jax.lax.fori_loop(0, _BISECTIONS, halve, (jnp.log(lo), jnp.log(hi)))
    return jnp.where(below(lo), jnp.exp(0.5 * (a + b)), 0.0)


@_nu.defjvp
def _nu_jvp(primals, tangents):
    eigenvalues, lam, T, m = primals
    root = _nu(eigenvalues, lam, T, m)
    # implicit function theorem on the residual (exact for the solved root away from the threshold m = T)
    _, r_dot = jax.jvp(lambda e, lm, t, mm: _projection_residual(root, e, lm, t, mm), primals, tangents)
    slope = jax.grad(_projection_residual)(root, eigenvalues, lam, T, m)
    return root, -r_dot / jnp.where(slope == 0, jnp.inf, slope)


def operators(eigenvalues, lam, T, m):
    """The diagonal operators (in Sigma's eigenbasis) the error is made of, after averaging over S and X:

    proj = Sigma(Sigma + nu0)^-1 (E of the projection Pi onto what z sees; nu0 = nu at kappa = 0),
    shrink1 = kappa H1 = nu (Sigma + nu)^-1 - nu0 (Sigma + nu0)^-1,
    shrink2 = kappa^2 H2 = nu (Sigma + nu)^-1 - rho nu Sigma (Sigma + nu)^-2 - nu0 (Sigma + nu0)^-1,
    and df2K, the degrees of freedom df_2 of the fit in R^m. Returns (proj, shrink1, shrink2, df2K, nu).
    """
    d = eigenvalues.shape[-1]
    v = _nu(eigenvalues, lam, T, m)
    v0 = _kappa(eigenvalues, jnp.zeros_like(lam), jnp.minimum(m, d + 1.0))  # df_1(nu0) = m below d, else 0
    f1, f2 = df(eigenvalues, v, 1), df(eigenvalues, v, 2)
    gap = m - f2
    rho = jnp.where(gap > 0, (m - f1) / jnp.where(gap > 0, gap, 1.0), 0.5)  # the limit 1/2 at m = d, nu = 0
    r, r0 = v / (eigenvalues + v), v0 / (eigenvalues + v0)
    shrink1 = r - r0
    shrink2 = r - rho * v * eigenvalues / (eigenvalues + v) ** 2 - r0
    df2K = f1 - (f1 - f2) * rho
    return eigenvalues / (eigenvalues + v0), shrink1, shrink2, df2K, v


@jax.jit
def test_error(eigenvalues, w0, mom: Moments, T, sigma, lam, m, synthetic=None):
    """Deterministic equivalent of the width-m model's error (theory/projection.md) from the generators' moments,
    with `synthetic` of the T rows labelled by w_n and the rest by w0 (None: all T). T, lam, sigma, m may be traced.

    With e = w_n - w0, P = Sigma proj, A1 = Sigma shrink1, A2 = Sigma shrink2 (see `operators`), s = shrink of the
    fit in R^m (1 - df2K/T), tau = df2K/(T - df2K) and the noise sigma^2 plus the part of each row's label z
    cannot see, the real/synthetic exchangeability argument of `ridge.mixture_test_error` carries over in R^m.

    Example:
        >>> import jax.numpy as jnp
        >>> from collapse_jax.regression.theory.moments import Moments
        >>> w0 = jnp.full(100, 0.1)
        >>> mom = Moments(w0**2, w0**2)  # clean labels
        >>> bool(test_error(jnp.ones(100), w0, mom, 400.0, 0.0, 0.0, 50.0) > 0.5)  # m = d/2 sees half the signal
        True
    """
    proj, shrink1, shrink2, df2K, _ = operators(eigenvalues, lam, T, m)
    nd = mom.M_diag.ndim
    ev, w0_sq = along_last(eigenvalues, nd), along_last(w0**2, nd)
    P, A1, A2 = (ev * along_last(o, nd) for o in (proj, shrink1, shrink2))
    blind = ev - P  # Sigma (I - proj): what z cannot see acts as label noise
    s = T if synthetic is None else synthetic
    one, pair = s / T, s * (s - 1) / (T * (T - 1))
    shrink = 1 - df2K / T
    tau = df2K / (T - df2K)
    e2 = mom.M_diag - 2 * mom.w0_m + w0_sq
    e1 = mom.w0_m - w0_sq
    blind0 = jnp.sum(blind * w0_sq, axis=-1)
    noise = sigma**2 + one * jnp.sum(blind * mom.M_diag, axis=-1) + (1 - one) * blind0
    gen_err = jnp.sum(P * e2, axis=-1)
    quad = jnp.sum(e2 * (P - 2 * A1 + A2 / shrink), axis=-1)
    cross = -jnp.sum(e1 * (A1 - A2 / shrink), axis=-1)
    clean = jnp.sum(A2 * w0_sq, axis=-1) / shrink + noise * tau
    return clean + one * tau * gen_err + pair * (quad - tau * gen_err) + 2 * one * cross + blind0


def ols_features_error(eigenvalues, w0, mom: Moments, T: int, sigma, m: int, synthetic, carry_over):
    """lam = 0 with m < d and T >= m + 2: given S the fit is OLS on m features, so, with Pi the projection onto
    what z sees, E = gamma(s, T, m) E||Pi e||^2 + (sigma^2 + label parts z cannot see) m/(T - m - 1) + what z cannot
    see of w0, exactly; only E Pi is then replaced by its equivalent Sigma(Sigma + nu0)^-1, which is exactly
    (m/d) I for an isotropic Sigma (theory/projection.md). carry_over: `strategies.carry_over`."""
    d = eigenvalues.shape[-1]
    v0 = _nu0(eigenvalues, float(m))
    nd = mom.M_diag.ndim
    ev, w0_sq = along_last(eigenvalues, nd), along_last(w0**2, nd)
    P = ev * along_last(eigenvalues / (eigenvalues + v0) if m < d else jnp.ones(d), nd)
    blind = ev - P
    s = T if synthetic is None else synthetic
    blind0 = jnp.sum(blind * w0_sq, axis=-1)
    noise = sigma**2 + s / T * jnp.sum(blind * mom.M_diag, axis=-1) + (1 - s / T) * blind0
    gen_err = jnp.sum(P * (mom.M_diag - 2 * mom.w0_m + w0_sq), axis=-1)
    return carry_over(s, T, m) * gen_err + noise * m / (T - m - 1) + blind0


@jax.jit
def _nu0(eigenvalues, m):
    """nu at kappa = 0: df_1(nu0) = m below d (compiled once: the bisection loop would be traced on every call)."""
    return _kappa(eigenvalues, jnp.zeros(()), jnp.asarray(m, eigenvalues.dtype))
