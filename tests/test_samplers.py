"""The direct and the sufficient-statistics samplers agree in distribution (theory/samplers.md), including T close to d."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from stats import ks_2samp_pvalue

from collapse_jax.regression import samplers

DRAWS = 4000


def draws(fit, d, key):
    """Whitened error Sigma^1/2 (w_fit - w) of many independent fits of one w, as (DRAWS, d)."""
    eig = jnp.linspace(2.0, 0.1, d)
    sqrt_eig = jnp.sqrt(eig)
    w = jnp.linspace(-1.0, 1.0, d)
    one = lambda k: sqrt_eig * (fit(k, w, sqrt_eig) - w)
    return np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(key), DRAWS)))


def assert_same_law(a, b, label):
    """KS on the squared norm and on two coordinates: p > 1e-3 each."""
    for name, x, y in [
        ("norm", (a**2).sum(1), (b**2).sum(1)),
        ("first", a[:, 0], b[:, 0]),
        ("last", a[:, -1], b[:, -1]),
    ]:
        p = ks_2samp_pvalue(x, y)
        assert p > 1e-3, f"{label}: {name} differs (KS p = {p:.2g})"


@pytest.mark.parametrize("d, T", [(10, 10), (10, 12), (10, 30), (25, 26)])
def test_ols_t_shortcut_matches_direct(d, T):
    """OLS error is multivariate t: d normals and one chi-square equal a full OLS fit, even at T = d."""
    direct = functools.partial(samplers.ridge_direct_fresh, rows=T, T=T, s=0.7, lam=0.0)
    shortcut = functools.partial(samplers.ols_step, T=T, s=0.7)
    bartlett = functools.partial(samplers.ridge_step, T=T, s=0.7, lam=0.0)
    a = draws(lambda k, w, se: direct(k, w, se), d, 1)
    assert_same_law(a, draws(lambda k, w, se: shortcut(k, w, se), d, 2), f"t-shortcut d={d} T={T}")
    assert_same_law(a, draws(lambda k, w, se: bartlett(k, w, se), d, 3), f"Bartlett OLS d={d} T={T}")


@pytest.mark.parametrize("d, T, lam", [(10, 10, 0.05), (10, 11, 0.5), (10, 40, 0.1), (25, 100, 2.0)])
def test_ridge_bartlett_matches_direct(d, T, lam):
    direct = draws(lambda k, w, se: samplers.ridge_direct_fresh(k, w, se, T, T, 0.7, lam), d, 4)
    suff = draws(lambda k, w, se: samplers.ridge_step(k, w, se, T, 0.7, lam), d, 5)
    assert_same_law(direct, suff, f"ridge d={d} T={T} lam={lam}")


def test_padded_design_equals_unpadded_in_law():
    """Masked rows of a padded design change nothing: T live rows of 30 behave like a T-row design."""
    d, T, rows = 10, 14, 30
    mask = (jnp.arange(rows) < T).astype(float)
    padded = draws(lambda k, w, se: samplers.ridge_direct_fresh(k, w, se, rows, T, 0.5, 0.0, mask), d, 6)
    plain = draws(lambda k, w, se: samplers.ridge_direct_fresh(k, w, se, T, T, 0.5, 0.0), d, 7)
    assert_same_law(padded, plain, "padded")


def test_dual_and_primal_solves_agree_exactly():
    """On one design with lam > 0 the primal (d x d) and dual (T x T) ridge solutions are the same vector."""
    X = jax.random.normal(jax.random.key(0), (8, 12))
    y = jax.random.normal(jax.random.key(1), (8,))
    dual = samplers.ridge_direct(X, y, 0.3, 8)
    primal = jnp.linalg.solve(X.T @ X / 8 + 0.3 * jnp.eye(12), X.T @ y / 8)
    np.testing.assert_allclose(dual, primal, rtol=1e-10)


def test_min_norm_padded_solves_both_regimes():
    """The padded min-norm fit equals the pseudo-inverse solution for T < d and T >= d."""
    d, rows = 6, 12
    X = jax.random.normal(jax.random.key(2), (rows, d))
    w = jnp.arange(d, dtype=float)
    for T in (4, 9):
        mask = (jnp.arange(rows) < T).astype(float)
        got = samplers.min_norm_padded(X * mask[:, None], (X @ w) * mask, T, mask)
        np.testing.assert_allclose(
            got, np.linalg.pinv(np.asarray(X[:T])) @ np.asarray(X[:T] @ w), rtol=1e-9, atol=1e-12
        )


def test_bartlett_factor_is_wishart():
    """E[L L'] = T I for the Bartlett factor (Wishart(I, T) mean), within 4 standard errors per entry."""
    d, T = 5, 9
    W = jax.vmap(lambda k: (lambda L: L @ L.T)(samplers.bartlett(k, d, T)))(jax.random.split(jax.random.key(0), 20000))
    W = np.asarray(W)
    mean, sem = W.mean(0), W.std(0) / np.sqrt(W.shape[0])
    assert np.all(np.abs(mean - T * np.eye(d)) <= 4 * sem)


@pytest.mark.parametrize("m", [1, 2, 3, 450])
def test_a_reduced_system_solves_every_shift_exactly(m):
    """(K + mu I)^-1 b from one reduction (`reduce`, reflectors never formed into Q; m = 450 runs them in two
    segments) against a dense solve, with a scale; and each reflection is orthogonal (Q'Qb = b)."""
    X = np.random.default_rng(m).standard_normal((m + 5, m))
    K, b = jnp.asarray(X.T @ X / (m + 5)), jnp.asarray(np.random.default_rng(1).standard_normal(m))
    scale = jnp.linspace(0.5, 2.0, m)
    reduced = samplers.reduce(K, scale=scale)
    for mu in (0.0, 0.03, 1.0):
        exact = np.linalg.solve(np.diag(1 / scale) @ (np.asarray(K) + mu * np.eye(m)) @ np.diag(1 / scale), b)
        np.testing.assert_allclose(samplers.solve(reduced.shifted(mu), b), exact, rtol=1e-9, atol=1e-12)
    back = samplers._reflect(reduced, samplers._reflect(reduced, b, transpose=True), transpose=False)
    np.testing.assert_allclose(back, b, rtol=0, atol=1e-13)
    if m == 450:  # a wrong segment (or reflector order) would not solve: the check can fail
        wrong = reduced._replace(taus=reduced.taus.at[300].multiply(0.5))
        assert not np.allclose(samplers.solve(wrong.shifted(0.03), b), samplers.solve(reduced.shifted(0.03), b))
