"""Ridge regression on Gaussian data: deterministic equivalents (MATH §1.3, §1.4). Derivation: theory/ridge.md.

kappa(lam, T), the effective regularisation, is solved in `theory.fixed_point` (re-exported here).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from collapse_jax.engine import checks
from collapse_jax.regression.theory.fixed_point import df, kappa
from collapse_jax.regression.theory.moments import Moments, along_last


def test_error(eigenvalues, w0, mom: Moments, T, sigma, lam):
    """Deterministic equivalent of the downstream ridge error given the generators' moments (MATH §1.3):

    E[D'SD] - 2 k E[D'S(S+k)^-1 w_n] + k^2 tr(S(S+k)^-2 M)/(1 - df_2/T) + sigma^2 df_2/(T - df_2),
    with D = w_n - w0, S = Sigma and k = kappa(lam, T). T may be a float (vmappable).
    """
    k = kappa(eigenvalues, lam, T)
    df2 = df(eigenvalues, k, 2)
    ev, w0_sq = along_last(eigenvalues, mom.M_diag.ndim), along_last(w0**2, mom.M_diag.ndim)
    r1 = ev / (ev + k)
    r2 = ev / (ev + k) ** 2
    gen_err = jnp.sum(ev * (mom.M_diag - 2 * mom.w0_m + w0_sq), axis=-1)
    cross = jnp.sum(r1 * (mom.M_diag - mom.w0_m), axis=-1)
    quad = jnp.sum(r2 * mom.M_diag, axis=-1)
    return gen_err - 2 * k * cross + k**2 * quad / (1 - df2 / T) + sigma**2 * df2 / (T - df2)


def mixture_test_error(eigenvalues, w0, mom: Moments, T, sigma, lam, synthetic):
    """Deterministic equivalent for a downstream ridge whose T rows hold `synthetic` rows labelled by w_n and the
    rest by w0 (theory/strategies.md). With e = w_n - w0 and the exchangeability of rows,

    E = clean bias + sigma^2 tau + (s/T) tau E||e||^2 + s(s-1)/(T(T-1)) (Q - tau E||e||^2) + 2 (s/T) cross,
    tau = df_2/(T - df_2), Q = E e'(I - lam R)' Sigma (I - lam R) e, the one-row (diagonal) part of Q being
    tau E||e||^2. At s = T it is `test_error`.
    """
    k = kappa(eigenvalues, lam, T)
    df2 = df(eigenvalues, k, 2)
    shrink = 1 - df2 / T
    tau = df2 / (T - df2)
    ev, w0_sq = along_last(eigenvalues, mom.M_diag.ndim), along_last(w0**2, mom.M_diag.ndim)
    r1, r2 = ev / (ev + k), ev / (ev + k) ** 2
    e2 = mom.M_diag - 2 * mom.w0_m + w0_sq  # E e_j^2
    e1 = mom.w0_m - w0_sq  # w0_j E e_j
    gen_err = jnp.sum(ev * e2, axis=-1)
    quad = jnp.sum(e2 * (ev - 2 * k * r1 + k**2 * r2 / shrink), axis=-1)
    cross = -jnp.sum(e1 * (k * r1 - k**2 * r2 / shrink), axis=-1)
    clean = k**2 * jnp.sum(r2 * w0_sq, axis=-1) / shrink + sigma**2 * tau
    one, pair = synthetic / T, synthetic * (synthetic - 1) / (T * (T - 1))
    return clean + one * tau * gen_err + pair * (quad - tau * gen_err) + 2 * one * cross


def isotropic_test_error(d, T, lam, signal, sigma, n=0, T0=None, sigma0=0.0):
    """Closed form for Sigma = I with OLS generators (MATH §1.4), phi = d/T:

    kappa = [lam + phi - 1 + sqrt((lam + phi - 1)^2 + 4 lam)] / 2,
    E = (kappa^2 signal + sigma^2 phi) / ((1+kappa)^2 - phi)
        + n sigma0^2 d/(T0-d-1) [(1+kappa) - phi (1-kappa)] / [(1+kappa)((1+kappa)^2 - phi)].

    Example:
        >>> round(float(isotropic_test_error(d=100, T=200, lam=0.0, signal=1.0, sigma=1.0)), 6)  # phi/(1-phi)
        1.0
    """
    for arg, value, lo, lo_open in (
        ("d", d, 0.0, True),
        ("T", T, 0.0, True),
        ("lam", lam, 0.0, False),
        ("signal", signal, 0.0, False),
        ("sigma", sigma, 0.0, False),
        ("n", n, 0.0, False),
        ("sigma0", sigma0, 0.0, False),
    ):
        checks.real_array(arg, value, lo=lo, lo_open=lo_open, hi=checks.SCALE_MAX, ndim=(0, 1))
    d, T, lam, signal, sigma, n, sigma0 = (jnp.asarray(v, float) for v in (d, T, lam, signal, sigma, n, sigma0))
    if (
        checks.is_concrete(lam)
        and checks.is_concrete(T)
        and np.any((np.asarray(lam) == 0) & (np.asarray(d) == np.asarray(T)))
    ):
        raise ValueError(f"lam = 0 at T = d = {d}: the interpolating fit's error is infinite; use lam > 0 or T != d")
    if T0 is not None:
        checks.real_array("T0", T0, ndim=(0, 1))
        if checks.is_concrete(T0) and np.any(np.asarray(T0) < np.asarray(d) + 2):
            raise ValueError(
                f"T0 must be >= d + 2 = {np.max(np.asarray(d)) + 2} (OLS generators with a finite error), got {T0}"
            )
    phi = d / T
    u = lam + phi - 1
    k = 0.5 * (u + jnp.sqrt(u**2 + 4 * lam))
    gap = (1 + k) ** 2 - phi
    clean = (k**2 * signal + sigma**2 * phi) / gap
    if T0 is None:
        return clean
    fake = n * sigma0**2 * d / (T0 - d - 1) * ((1 + k) - phi * (1 - k)) / ((1 + k) * gap)
    return clean + fake
