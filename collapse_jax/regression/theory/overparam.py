"""Over-parameterised (min-norm) generators, isotropic Sigma = c I: exact norm recursions (theory/overparam.md).

A min-norm fit on T_k < d fresh samples maps w -> P_k w + X_k^+ eps_k, with P_k a projection onto a uniformly
random T_k-dimensional subspace (E P_k = (T_k/d) I) and E||X_k^+ eps_k||^2 = sigma_k^2 T_k / (c (d - T_k - 1)).
An OLS step (T_k >= d+2) adds noise of norm sigma_k^2 d / (c (T_k - d - 1)) and leaves the mean alone. So

    a_k = q_k a_{k-1} + v_k,   b_k = q_k b_{k-1},    a = E||w||^2, b = w0' E w, a_0 = b_0 = ||w0||^2.

With one fixed design the projection is the same every generation and P^2 = P: only the first step shrinks,
a_n = q ||w0||^2 + sum_k v_k and b_n = q ||w0||^2 for n >= 1. Derivation: theory/overparam.md.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def norm_moments(c: float, d: int, w0_sq: float, T: np.ndarray, sigma, fixed: bool):
    """Tables a_n, b_n for n = 0..len(T) (Euclidean norms), each step OLS (T_k >= d+2) or min-norm (T_k <= d-2)."""
    ols = T >= d + 2
    q = jnp.asarray(np.where(ols, 1.0, T / d))
    noise = jnp.asarray(np.where(ols, d / (T - d - 1.0), T / (d - T - 1.0)) / c)
    v = jnp.asarray(sigma, jnp.float64) ** 2 * noise
    zero = jnp.zeros(1)
    if fixed:
        shrink = jnp.concatenate([jnp.ones(1), jnp.full(len(T), q[0] if len(T) else 1.0)])
        a = shrink * w0_sq + jnp.concatenate([zero, jnp.cumsum(v)])
        return a, shrink * w0_sq
    Q = jnp.concatenate([jnp.ones(1), jnp.cumprod(q)])
    a = Q * (w0_sq + jnp.concatenate([zero, jnp.cumsum(v / Q[1:])]))
    return a, Q * w0_sq


def generator_error(c: float, d: int, w0_sq: float, T0: int, sigma0: float, n):
    """The closed form E||w_n - w0||^2_Sigma = c (1 - q^n)(||w0||^2 + sigma0^2 T0 d / (c (d-T0)(d-T0-1))), fresh
    designs."""
    q = T0 / d
    return c * (1 - q ** np.asarray(n)) * (w0_sq + sigma0**2 * T0 * d / (c * (d - T0) * (d - T0 - 1)))
