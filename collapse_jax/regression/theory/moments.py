"""First two moments of the generators' output w_n (MATH §1.3 composition rule).

The downstream model sees the generators only through m = E w_n and M = E w_n w_n', and its deterministic
equivalent only through traces of M and m against diagonal matrices in the eigenbasis of Sigma. So
`Moments(w0_m, M_diag)` keeps w0_j m_j and M_jj, two (..., d) arrays, whatever the generators did:

* OLS generators (any Sigma, exact): m = w0, M = w0 w0' + c_n Sigma^-1, c_n = sum_k sigma_k^2/(T_k - d - 1).
* Over-parameterised generators (isotropic Sigma, exact, MATH §1.5): only a_n = E||w_n||^2 and b_n = w0'm
  matter, spread evenly over the coordinates.
* Data strategies (accumulate, real rows mixed in; OLS generators, exact): see `theory.strategies`.
* Ridge generators (any Sigma, deterministic equivalent, theory/ridge.md): m = (prod_k S_k) w0 with
  S_k = Sigma (Sigma + kappa_k)^-1, and M_jj = (m_j)^2 + v_j, where v is the diagonal of the accumulated
  fit noise, v_k = S_k^2 v_{k-1} + c_k Sigma (Sigma + kappa_k)^-2,
  c_k = (kappa_k^2 tr(M_{k-1} Sigma (Sigma + kappa_k)^-2) + sigma_k^2) / (T_k - df_2(kappa_k)).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax.regression.problem import Generators
from collapse_jax.regression.spectra import Spectrum
from collapse_jax.regression.theory import overparam, strategies
from collapse_jax.regression.theory._common import NoFormulaError
from collapse_jax.regression.theory.fixed_point import df, kappa


class Moments(NamedTuple):
    w0_m: jax.Array  # (..., d): w0_j (E w_n)_j
    M_diag: jax.Array  # (..., d): (E w_n w_n')_jj


def generations_array(n, gen: Generators) -> np.ndarray:
    """Check n (an int or array of ints >= 0, within a per-generation config) and return it as an int array."""
    arr = np.asarray(n)
    if arr.size == 0 or not np.issubdtype(arr.dtype, np.integer) or np.any(arr < 0):
        raise ValueError(f"n must be an integer or array of integers >= 0, got {n!r}")
    if gen.length is not None and arr.max() > gen.length:
        raise ValueError(f"n must be <= {gen.length}, the length of the per-generation config, got {arr.max()}")
    return arr


def generator_moments(spec: Spectrum, gen: Generators, n: np.ndarray) -> Moments:
    """Moments of w_n for each entry of n (a concrete int array), in float64."""
    return generator_moments_and_kind(spec, gen, n)[0]


def generator_moments_and_kind(spec: Spectrum, gen: Generators, n: np.ndarray) -> tuple[Moments, str]:
    """(moments of w_n, their kind): "exact", or "DE" for ridge generators; the kind is set by the branch that
    computes the moments, so it cannot drift from them. Raises NoFormulaError where no branch applies."""
    d = spec.d
    T, sigma, lam = gen.per_generation(int(n.max()))
    eig = jnp.asarray(spec.eigenvalues, jnp.float64)
    w0_sq = along_last(jnp.asarray(spec.w0, jnp.float64) ** 2, n.ndim + 1)
    # every strategy but plain replace goes through the strategy table (theory/strategies.py); plain replace has the
    # general formulas below (ridge and min-norm generators, fixed designs)
    if gen.strategy != "replace" or gen.real_fraction is not None:
        c = strategies.ols_moments_scale(gen, d, T, sigma, gen.real_rows(int(n.max())))[n]
        return Moments(w0_sq + 0 * c[..., None], w0_sq + c[..., None] / along_last(eig, c.ndim + 1)), "exact"
    if gen.lam is not None:
        if gen.fixed:
            raise NoFormulaError(
                "lam (generators) with fixed=True: ridge generators on one fixed design have no "
                "formula in the lab; simulate instead"
            )
        return ridge_generator_moments(eig, jnp.asarray(spec.w0, jnp.float64), T, sigma, lam, n), "DE"
    if np.all(T >= d + 2):
        # OLS generators, fresh or fixed design alike: each adds noise with covariance sigma_k^2 Sigma^-1/(T_k-d-1).
        steps = sigma.astype(jnp.float64) ** 2 / (T - d - 1)
        c = jnp.concatenate([jnp.zeros(1), jnp.cumsum(steps)])[n]
        return Moments(w0_sq + 0 * c[..., None], w0_sq + c[..., None] / along_last(eig, c.ndim + 1)), "exact"
    near = T[(T >= d - 1) & (T <= d + 1)]
    if near.size:
        raise ValueError(
            f"T0 must be >= d+2 = {d + 2} (OLS) or <= d-2 = {d - 2} (min-norm) for a finite expected "
            f"error, got T0 = {int(near[0])}"
        )
    if not spec.is_isotropic:
        raise NoFormulaError(
            f"T0 <= d-2 = {d - 2}: over-parameterised generators have an exact formula only for "
            f"isotropic spectra (MATH §1.5); use T0 >= d+2 = {d + 2} here, or simulate"
        )
    a, b = overparam.norm_moments(
        float(np.asarray(spec.eigenvalues)[0]), d, float((np.asarray(spec.w0) ** 2).sum()), T, sigma, gen.fixed
    )
    ones = jnp.ones(n.shape + (d,))
    return Moments(b[n][..., None] / d * ones, a[n][..., None] / d * ones), "exact"


def ridge_generator_moments(eig, w0, T, sigma, lam, n) -> Moments:
    """Deterministic equivalent of the moments after ridge generators with per-generation (T_k, sigma_k, lam_k)."""
    w0_m, M_diag = _ridge_recursion(
        eig, w0, jnp.asarray(T, jnp.float64), jnp.asarray(sigma, jnp.float64), jnp.asarray(lam, jnp.float64)
    )
    return Moments(w0_m[n], M_diag[n])


@jax.jit
def _ridge_recursion(eig, w0, T, sigma, lam):
    def step(carry, xs):
        shrink, noise, M_prev = carry
        T_k, s_k, l_k = xs
        k = kappa(eig, l_k, T_k)
        s, g = eig / (eig + k), eig / (eig + k) ** 2
        c = (k**2 * jnp.sum(g * M_prev) + s_k**2) / (T_k - df(eig, k, 2))
        shrink, noise = s * shrink, s**2 * noise + c * g
        M = (shrink * w0) ** 2 + noise
        return (shrink, noise, M), (shrink * w0**2, M)

    init = (jnp.ones_like(eig), jnp.zeros_like(eig), w0**2)
    _, (w0_m, M_diag) = jax.lax.scan(step, init, (T, sigma, lam))
    return jnp.concatenate([w0[None] ** 2, w0_m]), jnp.concatenate([w0[None] ** 2, M_diag])


def generator_error(spec: Spectrum, mom: Moments):
    """E (w_n - w0)' Sigma (w_n - w0) = tr(Sigma M) - 2 w0' Sigma m + w0' Sigma w0."""
    eig = along_last(jnp.asarray(spec.eigenvalues, jnp.float64), mom.M_diag.ndim)
    w0_sq = along_last(jnp.asarray(spec.w0, jnp.float64) ** 2, mom.M_diag.ndim)
    return jnp.sum(eig * (mom.M_diag - 2 * mom.w0_m + w0_sq), axis=-1)


def along_last(v, ndim: int):
    """A (d,) vector shaped (1, ..., 1, d) to meet ndim-dimensional arrays without implicit rank promotion."""
    return jnp.reshape(v, (1,) * (ndim - 1) + (-1,))
