"""Exact identities of the theory code: kappa, closed forms against the general formula, derivatives."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import collapse_jax as cj
from collapse_jax.regression.theory import overparam, ridge


@pytest.mark.parametrize("phi", [0.3, 1.0, 2.5])
@pytest.mark.parametrize("lam", [0.0, 1e-4, 0.1, 10.0])
def test_kappa_isotropic_closed_form(phi, lam):
    d = 100
    T = d / phi
    u = lam + phi - 1
    expected = 0.5 * (u + np.sqrt(u**2 + 4 * lam))
    with jax.enable_x64(True):
        got = ridge.kappa(jnp.ones(d), lam, T)
    if phi == 1.0 and lam == 0.0:
        assert got < 1e-10
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-300)


def test_kappa_solves_its_fixed_point_on_power_law():
    ev = jnp.asarray(cj.Spectrum.power_law(500, 2.0, 0.5).eigenvalues)
    lams = jnp.logspace(-8, 1, 30)
    for T in (50.0, 400.0, 2000.0):
        k = jax.vmap(ridge.kappa, in_axes=(None, 0, None))(ev, lams, T)
        residual = k - lams - k * jax.vmap(ridge.df, in_axes=(None, 0, None))(ev, k, 1) / T
        np.testing.assert_allclose(residual, 0, atol=1e-12 * float(k.max()))


def test_kappa_derivatives_match_finite_differences():
    ev = jnp.asarray(cj.Spectrum.power_law(200, 1.5, 0.5).eigenvalues)
    for lam, T in [(0.01, 100.0), (0.3, 400.0), (1e-5, 150.0)]:
        g = jax.grad(ridge.kappa, argnums=(1, 2))(ev, lam, T)
        h = 1e-6
        fd_lam = (ridge.kappa(ev, lam * (1 + h), T) - ridge.kappa(ev, lam * (1 - h), T)) / (2 * lam * h)
        fd_T = (ridge.kappa(ev, lam, T * (1 + h)) - ridge.kappa(ev, lam, T * (1 - h))) / (2 * T * h)
        np.testing.assert_allclose(g, (fd_lam, fd_T), rtol=1e-5)


@pytest.mark.parametrize("d, T, T0", [(100, 300, 200), (100, 50, 400), (60, 61, 90)])
@pytest.mark.parametrize("lam", [1e-3, 0.5, 5.0])
def test_isotropic_closed_form_equals_general_formula(d, T, T0, lam):
    """theory/ridge.md "Isotropic closed form" is theory/ridge.md "Composition with any generators" at Sigma = I."""
    spec = cj.Spectrum.isotropic(d, signal=1.7)
    gen, down = cj.Generators(T0=T0, sigma0=0.8), cj.Downstream(T=T, sigma=0.6, lam=lam)
    n = np.arange(0, 21, 5)
    general = cj.theory.test_error(spec, gen, down, n)
    with jax.enable_x64(True):
        closed = ridge.isotropic_test_error(d, T, lam, 1.7, 0.6, n, T0, 0.8)
    np.testing.assert_allclose(general, closed, rtol=1e-10)


def test_ols_exact_formula_by_hand():
    """sigma^2 d/(T-d-1) + sum_k sigma_k^2 d/(T_k-d-1), per-generation sizes and noise, any spectrum."""
    spec = cj.Spectrum.power_law(20, 1.3, 0.7)
    gen = cj.Generators(T0=(30, 50, 25), sigma0=(1.0, 0.5, 2.0))
    got = cj.theory.test_error(spec, gen, cj.Downstream(T=41, sigma=0.3, lam=0.0), np.arange(4))
    steps = np.array([1.0 * 20 / 9, 0.25 * 20 / 29, 4.0 * 20 / 4])
    np.testing.assert_allclose(got, 0.09 * 20 / 20 + np.concatenate([[0], np.cumsum(steps)]), rtol=1e-12)


def test_overparam_recursion_equals_closed_form():
    with jax.enable_x64(True):
        T = np.full(30, 12.0)
        a, b = overparam.norm_moments(1.0, 40, 2.0, T, jnp.full(30, 0.7), fixed=False)
        closed = overparam.generator_error(1.0, 40, 2.0, 12, 0.7, np.arange(31))
    np.testing.assert_allclose(a - 2 * b + 2.0, closed, rtol=1e-12, atol=1e-14)


def test_theory_vmaps_over_lambda_and_is_differentiable():
    spec, gen = cj.Spectrum.power_law(50, 1.5, 0.5), cj.Generators(T0=120)
    f = lambda lam: cj.theory.test_error(spec, gen, cj.Downstream(T=80, lam=lam), 3)
    lams = jnp.logspace(-3, 1, 9)
    batched = jax.vmap(f)(lams)
    np.testing.assert_allclose(batched, [f(float(x)) for x in lams], rtol=1e-12)
    h = 1e-6
    np.testing.assert_allclose(jax.grad(f)(0.2), (f(0.2 + h) - f(0.2 - h)) / (2 * h), rtol=1e-6)


def test_clean_optimum_is_sigma2_phi_over_signal():
    """theory/ridge.md "Isotropic closed form": for n = 0 the error is minimised at lam = sigma^2 phi / ||w0||^2 (isotropic)."""
    spec, gen = cj.Spectrum.isotropic(100, signal=2.0), cj.Generators(T0=300)
    f = lambda lam: cj.theory.test_error(spec, gen, cj.Downstream(T=250, sigma=1.5, lam=lam), 0)
    best = 1.5**2 * 0.4 / 2.0
    assert jnp.abs(jax.grad(f)(best)) < 1e-10
    assert f(best) < f(best * 1.1) and f(best) < f(best / 1.1)
