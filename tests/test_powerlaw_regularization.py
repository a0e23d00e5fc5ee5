"""Scaling laws (theory/powerlaw.md) and adaptive regularisation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import collapse_jax as cj
from collapse_jax.engine import agreement
from collapse_jax.regression.theory import moments, ridge


def test_exponents_by_hand():
    assert cj.theory.ell_crit(2.0, 0.5) == pytest.approx(2 / 3)
    assert cj.theory.ell_crit(1.5, 2.0) == pytest.approx(1.5 / 4)  # r capped at 1
    assert cj.theory.error_exponent(2.0, 0.5, 0.3) == pytest.approx(-0.3)  # bias-limited
    assert cj.theory.error_exponent(2.0, 0.5, 1.2) == pytest.approx(-0.4)  # variance-limited
    assert cj.theory.error_exponent(2.0, 0.5, 3.0) == pytest.approx(0.0)  # lambda too small: no decay
    assert cj.theory.error_exponent(2.0, 0.5, 3.0, noisy=False) == pytest.approx(-2.0)
    assert cj.theory.fast_exponent(2.0, 0.5) == pytest.approx(-2.0)
    assert cj.theory.slow_exponent(2.0, 0.5) == pytest.approx(-2 / 3)
    assert cj.theory.sigma_eff2(0.5, 1.0, 3, 0.5) == pytest.approx(0.25 + 3.0)
    assert cj.theory.crossover_T(1e-4, 2.0, 0.5) == pytest.approx(1e2)
    with pytest.raises(ValueError, match="beta"):
        cj.theory.ell_crit(0.8, 0.5)
    with pytest.raises(ValueError, match="phi0"):
        cj.theory.sigma_eff2(1.0, 1.0, 1, 1.5)


BETA, R, D = 2.0, 0.5, 500_000
SPEC = cj.Spectrum.power_law(D, BETA, R)


@pytest.mark.parametrize(
    "ell, sigma, n",
    [(2 / 3, 1.0, 0), (2 / 3, 0.0, 3), (0.3, 1.0, 0), (1.2, 1.0, 0), (3.0, 0.0, 0), (3.0, 0.0, 3), (1.0, 0.0, 0)],
)
def test_theory_slopes_match_exponents(ell, sigma, n):
    """log-log slope of the deterministic equivalent for lambda = T^-ell, T in [1e3, 1e4], d = 5e5 >> T."""
    mom = moments.generator_moments(SPEC, cj.Generators(T0=2 * D, sigma0=1.0), np.array(n))
    with jax.enable_x64(True):
        f = jax.jit(jax.vmap(lambda ev, w0, T: ridge.test_error(ev, w0, mom, T, sigma, T**-ell), (None, None, 0)))
        Ts = np.logspace(3, 4, 5)
        E = np.asarray(f(jnp.asarray(SPEC.eigenvalues), jnp.asarray(SPEC.w0), jnp.asarray(Ts)))
    slope = np.polyfit(np.log(Ts), np.log(E), 1)[0]
    assert slope == pytest.approx(cj.theory.error_exponent(BETA, R, ell, noisy=sigma > 0 or n > 0), abs=0.05)


def test_optimal_lambda_isotropic_clean():
    """n = 0, Sigma = I: lambda* = sigma^2 phi / signal (theory/ridge.md "Isotropic closed form"), to 1%."""
    for d, T, sigma, signal in [(100, 250, 1.0, 1.0), (50, 400, 0.5, 2.0), (200, 100, 1.5, 0.7)]:
        spec = cj.Spectrum.isotropic(d, signal=signal)
        got = cj.regularization.optimal_lambda(spec, cj.Generators(T0=4 * d), cj.Downstream(T=T, sigma=sigma), 0)
        assert float(got) == pytest.approx(sigma**2 * (d / T) / signal, rel=0.01)


def test_optimal_lambda_grows_with_n_and_vmaps_over_T():
    spec = cj.Spectrum.power_law(200, 1.5, 0.5)
    gen, down = cj.Generators(T0=500), cj.Downstream(T=100, sigma=0.3)
    lam = cj.regularization.optimal_lambda(spec, gen, down, np.arange(0, 21, 5)[:, None], T=np.array([50.0, 400.0]))
    assert lam.shape == (5, 2)
    assert np.all(np.diff(lam, axis=0) > 0)
    vmapped = jax.vmap(lambda T: cj.regularization.optimal_lambda(spec, gen, down, 10, T=T))(jnp.array([50.0, 400.0]))
    np.testing.assert_allclose(vmapped, lam[2], rtol=1e-10)
    # a minimum: the derivative of the predicted error vanishes there
    f = lambda l: cj.theory.test_error(spec, gen, cj.Downstream(T=400, sigma=0.3, lam=l), 10)
    assert abs(float(jax.grad(f)(lam[2, 1]))) < 1e-6 * float(f(lam[2, 1])) / float(lam[2, 1])


def test_adaptive_beats_naive_in_simulation():
    """At n = 10 the lambda tuned for clean data is clearly worse than the adaptive one, in simulation."""
    spec = cj.Spectrum.power_law(100, 1.5, 0.5)
    gen, down = cj.Generators(T0=200, sigma0=1.0), cj.Downstream(T=80, sigma=0.2)
    naive = cj.regularization.naive(spec, gen, down)
    adaptive = cj.regularization.adaptive(spec, gen, down)
    runs = {
        name: cj.simulate(spec, gen, cj.Downstream(T=80, sigma=0.2, lam=s), 10, 1000, key=4)
        for name, s in [("naive", naive), ("adaptive", adaptive)]
    }
    m = {k: r.mean().test_error[10] for k, r in runs.items()}
    s = {k: r.sem().test_error[10] for k, r in runs.items()}
    assert (m["naive"] - m["adaptive"]) / np.hypot(s["naive"], s["adaptive"]) > 4
    for name, sched in [("naive", naive), ("adaptive", adaptive)]:
        theory = cj.theory.metrics(spec, gen, cj.Downstream(T=80, sigma=0.2, lam=sched), np.arange(11))
        mean, sem = runs[name].mean().test_error, runs[name].sem().test_error
        v = agreement.judge_moments("DE", mean, sem, np.asarray(theory.test_error), gap=agreement.de_gap(spec.d))
        assert v.verdict != "disagrees", (name, v.sentence)


def test_schedules_are_plain_functions():
    sched = cj.regularization.power_law(2.0, 0.5)
    assert sched(400.0) == pytest.approx(0.1)
    down = cj.Downstream(T=100, lam=sched).resolved(3)
    np.testing.assert_allclose(down.lam, [0.2] * 4)
    assert cj.regularization.per_generation(lambda k: 0.1 * k, 3) == pytest.approx((0.1, 0.2, 0.3))
    with pytest.raises(ValueError, match="generations"):
        cj.Downstream(T=100, lam=np.array([0.1, 0.2])).resolved(3)
