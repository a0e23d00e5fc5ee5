"""Data strategies for OLS generators and a downstream trained on a real/synthetic mixture (MATH §1.7).
Derivations: theory/strategies.md.

Every exact result here has the form m = w0, M = w0 w0' + c_n Sigma^-1 (the error is rotation invariant in
whitened coordinates), so only the scalar recursion for c_n differs between strategies:

* replace with real rows: c_k = gamma_k c_{k-1} + sigma_k^2/(T_k - d - 1), gamma_k = `carry_over(s_k, T_k, d)`
  with s_k = T_k - round(pi_k T_k) synthetic rows [exact];
* accumulate, fresh designs: c_k = c_{k-1} + sigma_k^2 T_k / (N_k (N_k - d - 1)), N_k = T_1 + ... + T_k [exact];
* accumulate, one fixed design: c_k = c_{k-1} + sigma_k^2 / (k^2 (T0 - d - 1)) [exact].

A downstream OLS fit whose T rows hold s synthetic ones carries gamma = carry_over(s, T, d) of the generators'
error: E = gamma E||w_n - w0||^2_Sigma + sigma^2 d/(T - d - 1) [exact, any generators].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax.engine import checks
from collapse_jax.engine.strategies import NoFormula, lookup
from collapse_jax.engine.strategies import table as strategy_table
from collapse_jax.regression.theory._common import NoFormulaError


def carry_over(s, T, d: int):
    """gamma = E tr(P P')/d for P = W^-1 W_s, W ~ Wishart(I_d, T) and W_s the Gram matrix of s of its T rows.

    An OLS fit on T Gaussian rows, s of them labelled by w + e and the rest by w0, keeps P e of a previous error e;
    for e with a rotation-invariant law (in whitened coordinates) E||P e||^2 = gamma E||e||^2. gamma = 0 at s = 0,
    1 at s = T, and (s/T)^2 plus a finite-size excess in between. Needs T >= d + 2. s may be an array (data).

    Example:
        >>> float(carry_over(300, 300, 50)), float(carry_over(0, 300, 50))
        (1.0, 0.0)
    """
    s = jnp.asarray(s, jnp.float64)
    T = jnp.asarray(T, jnp.float64)
    # moments of the hat matrix H = Z W^-1 Z', a uniformly random rank-d projection in R^T
    h_aa2 = d * (d + 2) / (T * (T + 2))
    h_ab2 = d * (T - d) / (T * (T - 1) * (T + 2))
    h_aa_bb = d * (d * T + d - 2) / (T * (T - 1) * (T + 2))
    tr_c2 = s * h_aa2 + s * (s - 1) * h_ab2  # E tr(C^2), C = U_s'U_s (U an orthonormal basis of the columns)
    tr_c_sq = s * h_aa2 + s * (s - 1) * h_aa_bb  # E (tr C)^2
    if d == 1:
        return tr_c2
    gap = tr_c2 - tr_c_sq
    off = (tr_c2 + gap / (d - 1)) / (d * (d + 2))  # E C_jk^2, j != k
    diag = 3 * off - gap / (d * (d - 1))  # E C_jj^2
    # E tr(C L C L^-1) over the eigenvalues L of W: E tr W tr W^-1 = (T d - 2) d / (T - d - 1)
    return diag + off * ((T * d - 2) / (T - d - 1) - 1)


def ols_moments_scale(gen, d: int, T: np.ndarray, sigma, n_real) -> jnp.ndarray:
    """c_0..c_N of M = w0 w0' + c_n Sigma^-1 for OLS generators under gen.strategy (see the module docstring)."""
    entry = lookup(OLS_SCALES, gen.strategy, "regression theory")
    if gen.lam is not None:
        raise NoFormulaError(
            f"ridge generators (lam) with strategy={gen.strategy!r} or real_fraction have no "
            "formula in the lab; simulate instead"
        )
    if np.any(T < d + 2):
        raise NoFormulaError(
            f"strategy={gen.strategy!r} and real_fraction have exact formulas for T0 >= d+2 = "
            f"{d + 2} only (OLS generators), got T0 = {int(T.min())}; simulate instead"
        )
    sigma2 = jnp.asarray(sigma, jnp.float64) ** 2
    mixes = gen.real_fraction is not None and not (
        checks.is_concrete(gen.real_fraction) and np.all(np.asarray(gen.real_fraction) == 0)
    )
    if isinstance(entry, NoFormula):
        raise NoFormulaError(entry.why)
    return jnp.concatenate([jnp.zeros(1), entry(gen, d, T, sigma2, n_real, mixes)])


def _replace(gen, d: int, T, sigma2, n_real, mixes):
    """c_k = gamma_k c_{k-1} + sigma_k^2/(T_k - d - 1), gamma_k the carry-over of the synthetic rows."""
    if gen.fixed and mixes:
        raise NoFormulaError(
            "real_fraction with fixed=True: one projection reused every generation has no "
            "formula in the lab; simulate instead"
        )
    gamma = carry_over(T - n_real, T, d) if mixes else jnp.ones(len(T))

    def step(c, xs):
        g, v = xs
        c = g * c + v
        return c, c

    return jax.lax.scan(step, jnp.zeros((), jnp.float64), (gamma, sigma2 / (T - d - 1)))[1]


def _accumulate(gen, d: int, T, sigma2, n_real, mixes):
    """Fresh designs: the normal equations telescope, w_k = w_{k-1} + G_k^-1 X_k' eps_k with G_k the pooled Gram;
    one fixed design relabelled: generation k averages k label sets, each step adds X^+ eps / k."""
    if mixes:
        raise NoFormulaError(
            "real_fraction with strategy='accumulate': the pooled design is shared with earlier "
            "errors, and the lab has no formula; simulate instead"
        )
    k = np.arange(1, len(T) + 1)
    N = np.cumsum(T)
    steps = sigma2 / (k**2 * (T - d - 1)) if gen.fixed else sigma2 * T / (N * (N - d - 1))
    return jnp.cumsum(steps)


# c_1..c_N for OLS generators, one entry per declared strategy (engine/strategies.py), or why there is none.
OLS_SCALES = strategy_table(
    "regression theory",
    {
        "replace": _replace,
        "accumulate": _accumulate,
        "accumulate_subsample": NoFormula(
            "strategy='accumulate_subsample' has no formula in the lab: rows picked again carry their "
            "old labels and noise into later fits (theory/strategies.md); simulate instead"
        ),
    },
)
