"""Every closed form against simulation at a fixed key (MATH §1.2-1.5).

Exact formulas: |mean - theory| <= 4 sem. Deterministic equivalents: 4 sem plus the finite-size gap
MATH allows (DE_GAP, relative), the bound being stated per test.
"""

import numpy as np
import pytest
from stats import assert_theory

import collapse_jax as cj

DE_GAP = 0.02  # MATH §1.3: deterministic equivalents are within about 1-2% at d of a few hundred
ISO = cj.Spectrum.isotropic(40, signal=1.0)
POW = cj.Spectrum.power_law(40, beta=1.5, r=0.5)


def check(spec, gen, down, generations, seeds, *, de_rel=0.0, key=0, label=""):
    res = cj.simulate(spec, gen, down, generations, seeds, key=key)
    theory = cj.theory.metrics(spec, gen, down, np.arange(generations + 1))
    assert_theory(res, theory, de_rel=de_rel, label=label)
    return res, theory


@pytest.mark.parametrize("spec", [ISO, POW], ids=["isotropic", "power_law"])
@pytest.mark.parametrize(
    "gen, down, generations",
    [
        (cj.Generators(T0=100, sigma0=1.0), cj.Downstream(T=80, sigma=0.5, lam=0.0), 20),
        (cj.Generators(T0=(60, 200, 45, 100), sigma0=(1.0, 0.3, 0.5, 2.0)), cj.Downstream(T=120, sigma=1.0), 4),
        (cj.Generators(T0=60, sigma0=0.7, fixed=True), cj.Downstream(T=43, sigma=1.0), 6),
    ],
    ids=["constant", "per_generation", "fixed_design"],
)
def test_ols_exact(spec, gen, down, generations):
    """MATH §1.2: E = sigma^2 d/(T-d-1) + sum_k sigma_k^2 d/(T_k-d-1), for any Sigma; exact at every size."""
    check(spec, gen, down, generations, 3000, label="ols")


@pytest.mark.parametrize(
    "spec, T, lam, n",
    [
        (ISO, 80, 0.1, 5),
        (ISO, 25, 1.0, 3),  # T < d: direct dual solve downstream
        (POW, 80, 1e-3, 5),
        (POW, 25, 0.1, 10),
        (POW, 160, 10.0, 2),
    ],
)
def test_ridge_deterministic_equivalent(spec, T, lam, n):
    """MATH §1.3 (bias + variance + n sigma0^2 rho) within 4 sem + 2%."""
    check(
        spec,
        cj.Generators(T0=100, sigma0=1.0),
        cj.Downstream(T=T, sigma=0.5, lam=lam),
        n,
        3000,
        de_rel=DE_GAP,
        label="ridge",
    )


@pytest.mark.parametrize("T, lam, n", [(100, 1e-3, 5), (100, 0.1, 2), (300, 0.1, 5), (300, 1.0, 2)])
def test_ridge_math_reference_configs(T, lam, n):
    """The four Monte-Carlo checks quoted in MATH §1.3 (power law beta=1.5, r=0.5, d=150, T0=400)."""
    spec = cj.Spectrum.power_law(150, beta=1.5, r=0.5)
    check(
        spec,
        cj.Generators(T0=400, sigma0=1.0),
        cj.Downstream(T=T, sigma=0.5, lam=lam),
        n,
        600,
        de_rel=DE_GAP,
        label="math-1.3",
    )


@pytest.mark.parametrize(
    "gen, down, generations",
    [
        (cj.Generators(T0=20, sigma0=0.0), cj.Downstream(T=100, sigma=0.5, lam=0.0), 20),  # noiseless collapse
        (cj.Generators(T0=25, sigma0=1.0), cj.Downstream(T=100, sigma=1.0, lam=0.0), 10),
        (cj.Generators(T0=25, sigma0=1.0, fixed=True), cj.Downstream(T=100, sigma=1.0, lam=0.0), 10),
        (cj.Generators(T0=(25, 100, 10), sigma0=1.0), cj.Downstream(T=100, sigma=1.0, lam=0.0), 3),  # mixed
        (cj.Generators(T0=30, sigma0=0.5), cj.Downstream(T=20, sigma=1.0, lam=0.0), 8),  # min-norm downstream
    ],
    ids=["noiseless", "noisy", "fixed_design", "mixed_regimes", "min_norm_downstream"],
)
def test_overparameterised_exact(gen, down, generations):
    """MATH §1.5: E||w_n - w0||^2 = (1 - q^n)(||w0||^2 + ...); exact with an OLS or min-norm downstream."""
    check(ISO, gen, down, generations, 3000, label="overparam")


@pytest.mark.parametrize("lam", [0.05, 1.0])
def test_overparameterised_ridge_downstream(lam):
    """§1.5 generators composed with the ridge deterministic equivalent: 4 sem + 2%."""
    check(
        ISO,
        cj.Generators(T0=25, sigma0=1.0),
        cj.Downstream(T=60, sigma=1.0, lam=lam),
        20,
        3000,
        de_rel=DE_GAP,
        label="overparam-ridge",
    )


def test_noiseless_collapse_tends_to_null_risk():
    """With sigma0 = 0 the generators still forget w0: the error tends to ||w0||^2, the risk of predicting 0."""
    theory = cj.theory.generator_error(ISO, cj.Generators(T0=20, sigma0=0.0), np.array([0, 1, 5, 60]))
    np.testing.assert_allclose(theory, 1 - 0.5 ** np.array([0, 1, 5, 60]), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "spec, gen, down",
    [
        (
            cj.Spectrum.power_law(200, beta=1.5, r=0.5),
            cj.Generators(T0=100, sigma0=0.5, lam=0.1),
            cj.Downstream(T=150, sigma=0.5, lam=0.05),
        ),
        (
            cj.Spectrum.power_law(200, beta=1.5, r=0.5),
            cj.Generators(T0=(150, 400, 150), sigma0=0.5, lam=(1.0, 0.01, 0.1)),
            cj.Downstream(T=100, sigma=0.5, lam=0.01),
        ),
        (
            cj.Spectrum.isotropic(100),
            cj.Generators(T0=400, sigma0=0.5, lam=0.01),
            cj.Downstream(T=300, sigma=0.5, lam=0.1),
        ),
    ],
    ids=["power_law_overparameterised", "power_law_per_generation", "isotropic"],
)
def test_ridge_generators_deterministic_equivalent(spec, gen, down):
    """Ridge generators (theory/ridge.md): m and diag M recursed through first- and second-order deterministic
    equivalents. Seen while building: within 2% and |z| <= 2.6 at every n (d = 100, 200; 1000 seeds)."""
    generations = 6 if gen.length is None else gen.length
    check(spec, gen, down, generations, 1000, de_rel=DE_GAP, label="ridge generators")
