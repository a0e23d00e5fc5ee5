"""First two moments of the generators' output w_n (MATH §1.3 composition rule).

The downstream model sees the generators only through m = E w_n and M = E w_n w_n'. Every generator scheme
the lab has a formula for keeps them in the form

    m = mu * w0,    M = alpha * w0 w0' + diag(D)      (in the eigenbasis of Sigma)

so `Moments(mu, alpha, D)` is O(d) whatever d is. OLS generators (any Sigma): mu = alpha = 1 and
D = c_n / lambda_j with c_n = sum_k sigma_k^2 / (T_k - d - 1) (MATH §1.2). Over-parameterised generators
(isotropic Sigma, MATH §1.5): only a_n = E||w_n||^2 and b_n = w0'm matter, stored as mu = b_n/||w0||^2,
alpha = 0, D = a_n/d.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax.problem import Generators
from collapse_jax.spectra import Spectrum
from collapse_jax.theory import overparam
from collapse_jax.theory._common import NoFormulaError


class Moments(NamedTuple):
    mu: jax.Array  # (...,)   m = mu w0
    alpha: jax.Array  # (...,)   M = alpha w0 w0' + diag(D)
    D: jax.Array  # (..., d)


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
    if gen.lam is not None:
        raise NoFormulaError("lam (generators): ridge generators have no closed form in the lab; simulate instead")
    d = spec.d
    T, sigma, _ = gen.per_generation(int(n.max()))
    eig = jnp.asarray(spec.eigenvalues, jnp.float64)
    if np.all(T >= d + 2):
        # OLS generators, fresh or fixed design alike: each adds noise with covariance sigma_k^2 Sigma^-1/(T_k-d-1).
        steps = sigma.astype(jnp.float64) ** 2 / (T - d - 1)
        c = jnp.concatenate([jnp.zeros(1), jnp.cumsum(steps)])[n]
        return Moments(jnp.ones(n.shape), jnp.ones(n.shape), c[..., None] / along_last(eig, c.ndim + 1))
    near = T[(T >= d - 1) & (T <= d + 1)]
    if near.size:
        raise ValueError(f"T0 must be >= d+2 = {d + 2} (OLS) or <= d-2 = {d - 2} (min-norm) for a finite expected "
                         f"error, got T0 = {int(near[0])}")
    if not spec.is_isotropic:
        raise NoFormulaError(f"T0 <= d-2 = {d - 2}: over-parameterised generators have an exact formula only for "
                             f"isotropic spectra (MATH §1.5); use T0 >= d+2 = {d + 2} here, or simulate")
    a, b = overparam.norm_moments(float(np.asarray(spec.eigenvalues)[0]), d, float((np.asarray(spec.w0) ** 2).sum()),
                                  T, sigma, gen.fixed)
    w0_sq = jnp.sum(jnp.asarray(spec.w0, jnp.float64) ** 2)
    return Moments(b[n] / w0_sq, jnp.zeros(n.shape), jnp.broadcast_to(a[n][..., None] / d, n.shape + (d,)))


def generator_error(spec: Spectrum, mom: Moments):
    """E (w_n - w0)' Sigma (w_n - w0) = tr(Sigma M) - 2 w0' Sigma m + w0' Sigma w0."""
    eig = jnp.asarray(spec.eigenvalues, jnp.float64)
    signal = jnp.sum(eig * jnp.asarray(spec.w0, jnp.float64) ** 2)
    return (mom.alpha - 2 * mom.mu + 1) * signal + jnp.sum(along_last(eig, mom.D.ndim) * mom.D, axis=-1)


def along_last(v, ndim: int):
    """A (d,) vector shaped (1, ..., 1, d) to meet ndim-dimensional arrays without implicit rank promotion."""
    return jnp.reshape(v, (1,) * (ndim - 1) + (-1,))
