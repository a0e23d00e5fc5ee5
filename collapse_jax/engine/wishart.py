"""Wishart draws by Bartlett's decomposition, shared by every family that samples a scatter or Gram matrix
(regression generators and downstream fits, the d-dimensional Gaussian chain). Derivation: theory/samplers.md.

W ~ Wishart(I_d, dof) is L L' with L lower triangular, L_ii = sqrt(chi2(dof - i)) for i = 0..d-1 and N(0, 1)
below the diagonal, all independent: d chi-squares and d(d-1)/2 normals instead of dof x d normals.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax.engine.rng import chi_square


def bartlett(key, d: int, dof):
    """Lower-triangular L with L L' ~ Wishart(I_d, dof): L_ii^2 ~ chi2(dof - i), i = 0..d-1, L_ij ~ N(0, 1), i > j.

    dof is data (one compiled function serves every sample size); it must be > d - 1. The draws are in the default
    float dtype (float64 under x64).

    Example:
        >>> import jax
        >>> from collapse_jax.engine.wishart import bartlett
        >>> L = bartlett(jax.random.key(0), 3, 10.0)
        >>> L.shape, bool((L[0, 1] == 0) & (L[0, 0] > 0))
        ((3, 3), True)
    """
    k_diag, k_low = jax.random.split(key)
    dtype = jnp.zeros(()).dtype
    diag = jnp.sqrt(chi_square(k_diag, jnp.asarray(dof, dtype) - jnp.arange(d, dtype=dtype)))
    return strictly_lower(jax.random.normal(k_low, (d * (d - 1) // 2,), dtype), d) + jnp.diag(diag)


def strictly_lower(values, d: int):
    """A d x d matrix with `values` (d(d-1)/2 of them) below the diagonal and zeros elsewhere: half the normal
    draws of a full matrix masked by tril, which dominated the cost of a Bartlett factor (profiled at d = 100).

    Example:
        >>> import jax.numpy as jnp
        >>> from collapse_jax.engine.wishart import strictly_lower
        >>> strictly_lower(jnp.array([1.0, 2.0, 3.0]), 3).tolist()
        [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 3.0, 0.0]]
    """
    slot = np.zeros((d, d), np.int32)
    slot[np.tril_indices(d, -1)] = np.arange(1, d * (d - 1) // 2 + 1)
    return jnp.concatenate([jnp.zeros(1, values.dtype), values])[slot]  # a gather with constant indices
