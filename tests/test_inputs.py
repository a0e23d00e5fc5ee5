"""Bad input raises a ValueError that names the argument, never a silent NaN."""
import numpy as np
import pytest

import collapse_jax as cj

ISO = cj.Spectrum.isotropic(10)


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: cj.Downstream(lam=-0.1), "lam"),
        (lambda: cj.Downstream(sigma=-1.0), "sigma"),
        (lambda: cj.Downstream(lam=float("nan")), "lam"),
        (lambda: cj.Downstream(T=0), "T"),
        (lambda: cj.Downstream(T=2.5), "T"),
        (lambda: cj.Generators(sigma0=-1.0), "sigma0"),
        (lambda: cj.Generators(sigma0=(1.0, float("nan"))), "sigma0"),
        (lambda: cj.Generators(T0=(30, 0)), "T0"),
        (lambda: cj.Generators(lam=-1.0), "lam"),
        (lambda: cj.Generators(T0=(30, 40), fixed=True), "T0"),
        (lambda: cj.Generators(T0=(30, 40), sigma0=(1.0, 1.0, 1.0)), "same length"),
        (lambda: cj.Spectrum(np.array([1.0, 0.0]), np.ones(2)), "eigenvalues"),
        (lambda: cj.Spectrum(np.array([1.0, -2.0]), np.ones(2)), "eigenvalues"),
        (lambda: cj.Spectrum(np.ones(2), np.array([1.0, np.nan])), "w0"),
        (lambda: cj.Spectrum(np.ones(2), np.ones(3)), "w0"),
        (lambda: cj.Spectrum.power_law(10, beta=-1.0, r=0.5), "beta"),
        (lambda: cj.Spectrum.isotropic(0), "d"),
    ],
)
def test_bad_config(make, name):
    with pytest.raises(ValueError, match=name):
        make()


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(generations=-1), "generations"),
        (dict(seeds=0), "seeds"),
        (dict(sampler="fast"), "sampler"),
        (dict(chunk_size=0), "chunk_size"),
    ],
)
def test_bad_simulate_arguments(kwargs, name):
    args = dict(generations=2, seeds=4, key=0) | kwargs
    with pytest.raises(ValueError, match=name):
        cj.simulate(ISO, cj.Generators(T0=30), cj.Downstream(T=30), **args)


def test_suffstats_needs_enough_samples():
    with pytest.raises(ValueError, match="suffstats"):
        cj.simulate(ISO, cj.Generators(T0=5), cj.Downstream(T=30), 2, 4, sampler="suffstats")


def test_generations_beyond_per_generation_config():
    with pytest.raises(ValueError, match="generations"):
        cj.simulate(ISO, cj.Generators(T0=(30, 40)), cj.Downstream(T=30), 3, 4)


@pytest.mark.parametrize("T0", [9, 10, 11])
def test_theory_rejects_T0_near_d(T0):
    """T0 in [d-1, d+1]: the expected error is infinite; the exact formula needs T0 >= d+2 (or <= d-2)."""
    with pytest.raises(ValueError, match="T0"):
        cj.theory.test_error(ISO, cj.Generators(T0=T0), cj.Downstream(T=30), 1)


def test_theory_rejects_interpolation_threshold_downstream():
    with pytest.raises(ValueError, match="T must be"):
        cj.theory.test_error(ISO, cj.Generators(T0=30), cj.Downstream(T=11, lam=0.0), 1)


@pytest.mark.parametrize("n", [-1, 1.5, [0, -2]])
def test_theory_rejects_bad_n(n):
    with pytest.raises(ValueError, match="n must"):
        cj.theory.test_error(ISO, cj.Generators(T0=30), cj.Downstream(T=30), n)


def test_theory_says_where_it_has_no_formula():
    pow_spec = cj.Spectrum.power_law(10, beta=1.5, r=0.5)
    with pytest.raises(cj.theory.NoFormulaError, match="T0"):
        cj.theory.test_error(pow_spec, cj.Generators(T0=5), cj.Downstream(T=30), 1)
    with pytest.raises(cj.theory.NoFormulaError, match="fixed"):
        cj.theory.test_error(ISO, cj.Generators(T0=30, lam=0.1, fixed=True), cj.Downstream(T=30), 1)
    assert issubclass(cj.theory.NoFormulaError, ValueError)
