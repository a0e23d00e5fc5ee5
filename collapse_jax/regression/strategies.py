"""Generators under the pooled data strategies (MATH §1.7, theory/strategies.md): one seed's generation step.

* accumulate: generation k fits every row drawn so far. The fit sees those rows only through their Gram matrix
  and X'y, so the state is O(d^2) whatever n is: in whitened coordinates (u = Sigma^1/2 w, rows z = Sigma^-1/2 x)
  W = sum Z_k'Z_k and beta = sum Z_k'y_k. A new block adds its own statistics: a Bartlett factor L (W_k = L L',
  Z_k'y_k = W_k u + s L z, exact for T_k >= d) or the drawn rows (any T_k, and needed for real rows).
  With a fixed design the same block is relabelled each generation, so W grows as k W_1.
* accumulate_subsample: the rows themselves are kept (the subset is a function of the rows), in a pool of
  capacity sum_k T_k; generation k fits T_k rows drawn uniformly without replacement from the first N_k.

Each builder returns (init, step): init(key, sqrt_eig) -> state; step(state, key, w, w0, sqrt_eig, T, s, lam,
n_real) -> (w, state), with T, s, lam, n_real the generation's size, noise, ridge lambda and real-row count.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_factor, cho_solve

from collapse_jax.engine.rng import subset
from collapse_jax.engine.wishart import bartlett
from collapse_jax.regression import samplers


def accumulate(d: int, T0: tuple[int, ...], fixed: bool, sampler: str, mixes_real: bool):
    """Fit on all rows so far from carried statistics (W, beta, N); `sampler` draws each new block.

    While fewer than d rows are pooled (T_1 < d), or always with one fixed design of T0 < d rows, the
    minimum-norm fit needs the rows themselves (a pseudo-inverse of the Gram matrix would need an eigen- or
    singular-value decomposition, which hangs or aborts XLA's CPU runtime when sharded over host devices): the
    first d + max(T0) rows are kept and the dual normal equations solved by Cholesky.
    """
    rows = max(T0)
    varying = len(set(T0)) > 1
    few_rows = T0[0] < d  # pooled sizes N_k >= T_1: only then can a min-norm stage occur
    kept = rows if fixed else d + rows  # rows kept for the min-norm stage

    def block(fixed_part, key, u, u0, T, s, n_real):
        """The new block's Z'Z, Z'y and (for the min-norm stage) its rows Z and labels y."""
        k_x, k_e = jax.random.split(key)
        if sampler == "suffstats":
            L = fixed_part if fixed else bartlett(k_x, d, T)
            Wk = L @ L.T
            return Wk, Wk @ u + s * (L @ jax.random.normal(k_e, (d,), u.dtype)), None, None
        Z = fixed_part if fixed else jax.random.normal(k_x, (rows, d), u.dtype)
        y = samplers.labels(Z, k_e, u, s, (u0, n_real) if mixes_real else None)
        if varying:
            mask = (jnp.arange(rows) < T).astype(u.dtype)
            Z, y = Z * mask[:, None], y * mask
        return Z.T @ Z, Z.T @ y, Z, y

    def init(key, sqrt_eig):
        dtype = sqrt_eig.dtype
        if not fixed:
            part = None
        elif sampler == "suffstats":
            part = bartlett(key, d, T0[0])
        else:
            part = jax.random.normal(key, (rows, d), dtype)
        buf = (jnp.zeros((kept, d), dtype), jnp.zeros(kept, dtype)) if few_rows else None
        return part, jnp.zeros((d, d), dtype), jnp.zeros(d, dtype), jnp.zeros((), dtype), buf

    def min_norm(buf, N, k, sqrt_eig):
        """The minimum-norm fit on the kept rows (original coordinates X = Z Sigma^1/2), by the dual equations.
        A fixed design relabelled k times: the pooled fit is the fit to the mean labels."""
        Z, y = buf
        live = (jnp.arange(kept) < (rows if fixed else N)).astype(Z.dtype)
        X, y = Z * sqrt_eig[None, :] * live[:, None], y * live / (k if fixed else 1.0)
        return X.T @ cho_solve(cho_factor(X @ X.T + jnp.diag(1.0 - live)), y)

    def step(state, key, w, w0, sqrt_eig, T, s, lam, n_real):
        part, W, beta, N, buf = state
        Wk, bk, Z, y = block(part, key, sqrt_eig * w, sqrt_eig * w0, T, s, n_real)
        if few_rows:
            if fixed:  # the same rows each time: keep the sum of their label sets
                buf = (Z, buf[1] + y)
            else:
                start = jnp.minimum(N, kept - rows).astype(jnp.int32)  # past d rows the buffer is no longer read
                buf = (
                    jax.lax.dynamic_update_slice(buf[0], Z, (start, jnp.zeros((), jnp.int32))),
                    jax.lax.dynamic_update_slice(buf[1], y, (start,)),
                )
        W, beta, N = W + Wk, beta + bk, N + T
        # ridge in whitened coordinates: (W/N + lam Sigma^-1) u = beta/N, w = Sigma^-1/2 u (lam = 0: OLS)
        u = cho_solve(cho_factor(W / N + jnp.diag(lam / sqrt_eig**2), lower=True), beta / N)
        w_new = u / sqrt_eig
        if few_rows:
            primal_ok = (lam > 0) | ((N >= d) & (not fixed))
            w_new = jnp.where(primal_ok, w_new, min_norm(buf, N, N / T, sqrt_eig))  # N / T: generations (fixed)
        return w_new, (part, W, beta, N, buf)

    return init, step


def accumulate_subsample(d: int, T0: tuple[int, ...], generations: int, ridge: bool, mixes_real: bool):
    """Keep every row in a pool; each generation fits T_k rows drawn without replacement from it."""
    rows = max(T0)
    varying = len(set(T0)) > 1
    T_seq = (T0 * generations)[:generations] if len(T0) == 1 else T0[:generations]
    capacity = sum(T_seq) + rows  # + rows: the last block is written whole even when only T_k of it is live
    min_norm_either = not ridge and min(T0) < d <= rows

    def init(key, sqrt_eig):
        dtype = sqrt_eig.dtype
        return jnp.zeros((capacity, d), dtype), jnp.zeros(capacity, dtype), jnp.zeros((), jnp.int32)

    def step(state, key, w, w0, sqrt_eig, T, s, lam, n_real):
        X_pool, y_pool, N = state
        k_x, k_e, k_pick = jax.random.split(key, 3)
        X = samplers.design(k_x, sqrt_eig, rows)
        y = samplers.labels(X, k_e, w, s, (w0, n_real) if mixes_real else None)
        X_pool = jax.lax.dynamic_update_slice(X_pool, X, (N, jnp.zeros((), jnp.int32)))
        y_pool = jax.lax.dynamic_update_slice(y_pool, y, (N,))
        N = N + T.astype(jnp.int32)
        pick = subset(k_pick, N, capacity, rows)
        mask = (jnp.arange(rows) < T).astype(X.dtype) if varying else None
        w_new = samplers.fit_rows(X_pool[pick], y_pool[pick], T, lam, mask, min_norm_either)
        return w_new, (X_pool, y_pool, N)

    return init, step
