"""Scaling laws under power-law spectra (MATH §1.6). Derivation: theory/powerlaw.md.

Capacity lambda_j = j^-beta (beta > 1), source lambda_j w0_j^2 ∝ j^-(1 + 2 beta r), ridge saturating at r = 1
(r_ = min(r, 1)). With lambda = c T^-ell and d >> T:

    E_test ≍ T^(-2 ell r_) + sigma_eff^2 T^-(1 - ell/beta),   sigma_eff^2 = sigma^2 + n sigma0^2 phi0/(1 - phi0).

These are rates: only exponents are claimed, and tests check them by log-log slopes of the deterministic
equivalent deep in the asymptotic range.
"""

from __future__ import annotations

import numpy as np

from collapse_jax.engine import checks


def _check(beta, r):
    checks.real_array("beta", beta, lo=1.0, lo_open=True)  # a summable power-law spectrum
    checks.real_array("r", r, lo=0.0, lo_open=True)


def capped_r(r):
    """r_ = min(r, 1): ridge cannot use source smoothness beyond r = 1."""
    return np.minimum(r, 1.0)


def ell_crit(beta, r):
    """The regularisation exponent ell_crit = beta / (1 + 2 beta r_) that balances bias and variance.

    Args:
        beta: the capacity exponent (> 1).
        r: the source exponent (> 0; capped at 1).

    Returns:
        ell_crit, with the broadcast shape of beta and r.

    Raises:
        ValueError: beta <= 1 or r <= 0.

    Example:
        >>> round(float(ell_crit(2.0, 0.5)), 6)
        0.666667
    """
    _check(beta, r)
    return beta / (1 + 2 * beta * capped_r(r))


def error_exponent(beta, r, ell, noisy: bool = True):
    """Predicted exponent a in E_test ≍ T^a for lambda ∝ T^-ell (a <= 0).

    kappa tracks lambda while ell < beta and saturates near T^-beta beyond, so ell is capped at beta. The
    bias decays as T^(-2 ell r_); with label noise or fake data (noisy) the variance decays as
    T^-(1 - ell/beta), and the slower of the two wins.

    Args:
        beta: the capacity exponent (> 1).
        r: the source exponent (> 0; capped at 1).
        ell: the exponent of lambda = c T^-ell (>= 0).
        noisy: whether label noise or fake data add variance.

    Returns:
        The exponent a (<= 0).

    Raises:
        ValueError: beta <= 1, r <= 0 or ell < 0.

    Example:
        >>> float(error_exponent(2.0, 0.5, 3.0, noisy=False))  # clean, noiseless, tiny lambda: fast rate
        -2.0
    """
    _check(beta, r)
    checks.real_array("ell", ell, lo=0.0)
    ell = np.minimum(ell, beta)
    bias = -2 * ell * capped_r(r)
    return np.maximum(bias, -(1 - ell / beta)) if noisy else bias


def fast_exponent(beta, r):
    """Exponent of the clean noiseless rate T^(-2 beta r_).

    Args:
        beta: the capacity exponent (> 1).
        r: the source exponent (> 0; capped at 1).

    Returns:
        -2 beta r_.

    Example:
        >>> float(fast_exponent(2.0, 0.5))
        -2.0
    """
    _check(beta, r)
    return -2 * beta * capped_r(r)


def slow_exponent(beta, r):
    """Exponent of the tuned noisy rate T^(-2 beta r_ / (2 beta r_ + 1)) (reached at ell = ell_crit).

    Args:
        beta: the capacity exponent (> 1).
        r: the source exponent (> 0; capped at 1).

    Returns:
        -2 beta r_ / (2 beta r_ + 1).

    Example:
        >>> round(float(slow_exponent(2.0, 0.5)), 6)
        -0.666667
    """
    _check(beta, r)
    b = 2 * beta * capped_r(r)
    return -b / (b + 1)


def sigma_eff2(sigma, sigma0, n, phi0):
    """Effective label noise: fake data act as extra noise n sigma0^2 phi0 / (1 - phi0) (phi0 = d/T0 < 1).

    Args:
        sigma: the downstream label noise.
        sigma0: the generators' label noise.
        n: the generation.
        phi0: d / T0, in (0, 1).

    Returns:
        sigma^2 + n sigma0^2 phi0 / (1 - phi0).

    Raises:
        ValueError: a negative or non-finite argument, or phi0 outside (0, 1).

    Example:
        >>> float(sigma_eff2(1.0, 1.0, 2, 0.5))
        3.0
    """
    for arg, value in (("sigma", sigma), ("sigma0", sigma0), ("n", n), ("phi0", phi0)):
        checks.real_array(arg, value, lo=0.0, hi=checks.SCALE_MAX, ndim=(0, 1))
    phi0 = np.asarray(phi0, dtype=float)
    if np.any((phi0 <= 0) | (phi0 >= 1)):
        raise ValueError(f"phi0 = d/T0 must be in (0, 1) (under-parameterised generators), got {phi0}")
    return np.asarray(sigma, float) ** 2 + np.asarray(n) * np.asarray(sigma0, float) ** 2 * phi0 / (1 - phi0)


def crossover_T(sigma_eff2_, beta, r):
    """T* ≍ sigma_eff^(-2/(2 beta r_)) where the tuned error switches from the fast to the slow rate.

    Args:
        sigma_eff2_: the effective noise sigma_eff^2 (> 0; see `sigma_eff2`).
        beta: the capacity exponent (> 1).
        r: the source exponent (> 0; capped at 1).

    Returns:
        T*, a rate's crossover (up to a constant).

    Example:
        >>> float(crossover_T(0.01, 2.0, 0.5))  # sigma_eff = 0.1: T* = 10
        10.0
    """
    _check(beta, r)
    checks.real_array("sigma_eff2_", sigma_eff2_, lo=0.0, lo_open=True)
    return np.asarray(sigma_eff2_, float) ** (-1 / (2 * beta * capped_r(r)))
