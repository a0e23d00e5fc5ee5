"""Every closed form against simulation at a fixed key (theory/moments.md, theory/ridge.md, theory/overparam.md).

Exact formulas: |mean - theory| <= 4 sem. Deterministic equivalents: 4 sem plus the finite-size gap bound
agreement.de_gap(d) = 2/d (engine/agreement.py, theory/ridge.md "Finite-size gap"): one rule everywhere.
"""

import numpy as np
import pytest
from stats import assert_theory

import collapse_jax as cj
from collapse_jax.engine import agreement

ISO = cj.Spectrum.isotropic(40, signal=1.0)
POW = cj.Spectrum.power_law(40, beta=1.5, r=0.5)
# tests/run_files.py runs these optimised, in a process of their own: they spend their time running, not compiling
EXECUTION_BOUND = pytest.mark.execution_bound


def check(spec, gen, down, generations, seeds, *, de=False, key=0, label=""):
    res = cj.simulate(spec, gen, down, generations, seeds, key=key)
    theory = cj.theory.metrics(spec, gen, down, np.arange(generations + 1))
    assert_theory(res, theory, gap=agreement.de_gap(spec.d) if de else 0.0, label=label)
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
    """theory/moments.md "OLS generators": E = sigma^2 d/(T-d-1) + sum_k sigma_k^2 d/(T_k-d-1), for any Sigma; exact at every size."""
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
    """theory/ridge.md "Composition with any generators" (bias + variance + n sigma0^2 rho) within 4 sem + 2%."""
    check(
        spec,
        cj.Generators(T0=100, sigma0=1.0),
        cj.Downstream(T=T, sigma=0.5, lam=lam),
        n,
        3000,
        de=True,
        label="ridge",
    )


@pytest.mark.parametrize("T, lam, n", [(100, 1e-3, 5), (100, 0.1, 2), (300, 0.1, 5), (300, 1.0, 2)])
def test_ridge_math_reference_configs(T, lam, n):
    """The four Monte-Carlo checks quoted in theory/ridge.md "Composition with any generators" (power law beta=1.5, r=0.5, d=150, T0=400)."""
    spec = cj.Spectrum.power_law(150, beta=1.5, r=0.5)
    check(
        spec,
        cj.Generators(T0=400, sigma0=1.0),
        cj.Downstream(T=T, sigma=0.5, lam=lam),
        n,
        600,
        de=True,
        label="math-1.3",
    )


@pytest.mark.parametrize(
    "gen, down, generations",
    [
        pytest.param(
            cj.Generators(T0=20, sigma0=0.0),
            cj.Downstream(T=100, sigma=0.5, lam=0.0),
            20,
            marks=EXECUTION_BOUND,
            id="noiseless",
        ),
        pytest.param(cj.Generators(T0=25, sigma0=1.0), cj.Downstream(T=100, sigma=1.0, lam=0.0), 10, id="noisy"),
        pytest.param(
            cj.Generators(T0=25, sigma0=1.0, fixed=True),
            cj.Downstream(T=100, sigma=1.0, lam=0.0),
            10,
            id="fixed_design",
        ),
        pytest.param(
            cj.Generators(T0=(25, 100, 10), sigma0=1.0),
            cj.Downstream(T=100, sigma=1.0, lam=0.0),
            3,
            marks=EXECUTION_BOUND,
            id="mixed_regimes",
        ),
        pytest.param(
            cj.Generators(T0=30, sigma0=0.5), cj.Downstream(T=20, sigma=1.0, lam=0.0), 8, id="min_norm_downstream"
        ),
    ],
)
def test_overparameterised_exact(gen, down, generations):
    """theory/overparam.md: E||w_n - w0||^2 = (1 - q^n)(||w0||^2 + ...); exact with an OLS or min-norm downstream."""
    check(ISO, gen, down, generations, 3000, label="overparam")


@EXECUTION_BOUND
@pytest.mark.parametrize("lam", [0.05, 1.0])
def test_overparameterised_ridge_downstream(lam):
    """theory/overparam.md generators composed with the ridge deterministic equivalent: 4 sem + 2%."""
    check(
        ISO,
        cj.Generators(T0=25, sigma0=1.0),
        cj.Downstream(T=60, sigma=1.0, lam=lam),
        20,
        3000,
        de=True,
        label="overparam-ridge",
    )


def test_noiseless_collapse_tends_to_null_risk():
    """With sigma0 = 0 the generators still forget w0: the error tends to ||w0||^2, the risk of predicting 0."""
    theory = cj.theory.generator_error(ISO, cj.Generators(T0=20, sigma0=0.0), np.array([0, 1, 5, 60]))
    np.testing.assert_allclose(theory, 1 - 0.5 ** np.array([0, 1, 5, 60]), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "spec, gen, down",
    [
        pytest.param(
            cj.Spectrum.power_law(200, beta=1.5, r=0.5),
            cj.Generators(T0=100, sigma0=0.5, lam=0.1),
            cj.Downstream(T=150, sigma=0.5, lam=0.05),
            marks=EXECUTION_BOUND,
            id="power_law_overparameterised",
        ),
        pytest.param(
            cj.Spectrum.power_law(200, beta=1.5, r=0.5),
            cj.Generators(T0=(150, 400, 150), sigma0=0.5, lam=(1.0, 0.01, 0.1)),
            cj.Downstream(T=100, sigma=0.5, lam=0.01),
            marks=EXECUTION_BOUND,
            id="power_law_per_generation",
        ),
        pytest.param(
            cj.Spectrum.isotropic(100),
            cj.Generators(T0=400, sigma0=0.5, lam=0.01),
            cj.Downstream(T=300, sigma=0.5, lam=0.1),
            id="isotropic",
        ),
    ],
)
def test_ridge_generators_deterministic_equivalent(spec, gen, down):
    """Ridge generators (theory/ridge.md): m and diag M recursed through first- and second-order deterministic
    equivalents. Seen while building: within 2% and |z| <= 2.6 at every n (d = 100, 200; 1000 seeds)."""
    generations = 6 if gen.length is None else gen.length
    check(spec, gen, down, generations, 1000, de=True, label="ridge generators")
