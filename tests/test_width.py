"""Model size: the width-m downstream model on random projections (theory/projection.md).

Simulation against theory below, near and above T and above d (isotropic and power law, clean and mixture labels,
chained generators), the identity m >= d, lam = 0 -> OLS on x, width=None untouched, the two samplers by KS, and
bad input. d = 20 keeps every program small; the DE is judged by |z| <= 4 plus its finite-size gap 2/d.
"""

import dataclasses

import jax
import numpy as np
import pytest
from stats import assert_theory, ks_2samp_pvalue

import collapse_jax as cj
from collapse_jax.regression import regularization

D = 20
ISO = cj.Spectrum.isotropic(D)
PL = cj.Spectrum.power_law(D, beta=1.5, r=0.5)
GEN = cj.Generators(T0=60, sigma0=1.0)


def _check(spec, gen, down, seeds, generations=2, key=0):
    res = cj.simulate(spec, gen, down, generations=generations, seeds=seeds, key=key)
    ns = np.arange(generations + 1)
    th = cj.theory.metrics(spec, gen, down, ns)
    kind = cj.theory.formula_kind(spec, gen, down)
    gap = 0.0 if kind == "exact" else cj.theory.de_gap(spec.d)
    assert_theory(res, th, gap=gap, label=f"{kind} width={down.width} T={down.T} lam={down.lam}")
    # negative control: the same simulation against the theory scaled by 1 +- 2 x the detectable error must fail
    mean, sem = res.mean().test_error, res.sem().test_error
    detect = float(np.max(4 * sem / mean)) + gap
    for sign in (-1, 1):
        with pytest.raises(AssertionError):
            assert_theory(res, th._replace(test_error=th.test_error * (1 + sign * 2 * detect)), gap=gap)
    return kind, (mean - th.test_error) / sem, mean / th.test_error - 1


@pytest.mark.parametrize(
    "spec, gen, down, kind",
    [
        # below d and T (lam = 0: OLS on 10 isotropic features, exact), then the same with a real/synthetic mixture
        (ISO, GEN, cj.Downstream(T=60, sigma=0.5, lam=0.0, width=10), "exact"),
        (ISO, GEN, cj.Downstream(T=40, sigma=0.5, lam=0.0, width=10, synthetic_fraction=0.5), "exact"),
        # near T (ridge), above T and d (min-norm in R^m, T < d), power law, mixture, min-norm generators
        (ISO, GEN, cj.Downstream(T=60, sigma=0.5, lam=0.05, width=55), "DE"),
        (PL, GEN, cj.Downstream(T=60, sigma=0.5, lam=0.01, width=10), "DE"),
        (PL, GEN, cj.Downstream(T=60, sigma=0.5, lam=0.01, width=120, synthetic_fraction=0.3), "DE"),
        (PL, cj.Generators(T0=10, sigma0=0.5), cj.Downstream(T=60, sigma=0.5, lam=0.0, width=10), "DE"),
        # min-norm in R^m (T < d < m): the min-norm DE's finite-size gap near T = d is large at d = 20 (22% at
        # T = 15, as for the linear model's own min-norm DE), so T sits well below d here
        (ISO, GEN, cj.Downstream(T=8, sigma=0.5, lam=0.0, width=40), "DE"),
    ],
)
def test_width_theory_matches_simulation(spec, gen, down, kind):
    got, _, _ = _check(spec, gen, down, seeds=1500)
    assert got == kind


def test_width_at_least_d_without_ridge_is_ols_on_x():
    """m >= d, T > d, lam = 0: same function class and a unique minimiser, so the fit is OLS on x seed by seed
    (the width path draws the design from the same key) and the theory is the exact OLS formula."""
    gen = cj.Generators(T0=60, sigma0=1.0)
    for spec in (ISO, PL):
        base = cj.simulate(spec, gen, cj.Downstream(T=50, lam=0.0), generations=2, seeds=16, key=4)
        for m in (D, 3 * D):
            down = cj.Downstream(T=50, lam=0.0, width=m)
            res = cj.simulate(spec, gen, down, generations=2, seeds=16, key=4)
            np.testing.assert_allclose(res.test_error, base.test_error, rtol=1e-8)
            np.testing.assert_allclose(
                cj.theory.test_error(spec, gen, down, np.arange(3)),
                cj.theory.test_error(spec, gen, dataclasses.replace(down, width=None), np.arange(3)),
                rtol=1e-12,
            )
            assert cj.theory.formula_kind(spec, gen, down) == "exact"


def test_width_none_leaves_the_linear_model_unchanged():
    down = cj.Downstream(T=30, lam=0.1)
    assert down.width is None and down == cj.Downstream(T=30, lam=0.1, width=None)
    a = cj.simulate(ISO, GEN, down, generations=1, seeds=8, key=2)
    b = cj.simulate(ISO, GEN, cj.Downstream(T=30, lam=0.1, width=None), generations=1, seeds=8, key=2)
    np.testing.assert_array_equal(a.test_error, b.test_error)


def test_width_samplers_agree_in_distribution():
    """Direct (draw S and X, fit on Z = XS' by SVD) against sufficient statistics (Bartlett factor, then S)."""
    down = cj.Downstream(T=40, sigma=0.5, lam=0.05, width=12)
    runs = {s: cj.simulate(ISO, GEN, down, 1, 2000, key=7, sampler=s).test_error[:, 1] for s in ("direct", "suffstats")}
    assert ks_2samp_pvalue(runs["direct"], runs["suffstats"]) > 1e-3
    # the check has power: a width of 15 instead of 12 is told apart
    other = cj.simulate(ISO, GEN, dataclasses.replace(down, width=15), 1, 2000, key=7, sampler="direct")
    assert ks_2samp_pvalue(runs["suffstats"], other.test_error[:, 1]) < 1e-3


def test_width_theory_is_differentiable_and_tunes_lambda_per_width():
    gen = cj.Generators(T0=60, sigma0=1.0)
    f = lambda lam, m: cj.theory.test_error(PL, gen, cj.Downstream(T=40, sigma=0.5, lam=lam, width=m), 2)
    g = jax.grad(f)(0.05, 60)
    np.testing.assert_allclose(g, (f(0.05 * (1 + 1e-6), 60) - f(0.05 * (1 - 1e-6), 60)) / 1e-7, rtol=1e-5)
    lam = float(regularization.optimal_lambda(PL, gen, cj.Downstream(T=40, sigma=0.5, width=10), 2))
    assert f(lam, 10) <= min(f(lam * 1.2, 10), f(lam / 1.2, 10))  # the optimum beats its neighbours


@pytest.mark.parametrize("width", [0, -3, 2.5, "10", True, (10, 20), 10**8])
def test_width_rejects_bad_values(width):
    with pytest.raises(ValueError, match="width"):
        cj.Downstream(T=30, width=width)


def test_width_refuses_what_does_not_fit_or_cannot_be_sampled():
    with pytest.raises(ValueError, match="width"):  # one seed's S alone would need terabytes
        cj.simulate(cj.Spectrum.isotropic(2000), GEN, cj.Downstream(T=3000, width=10**7), 1, 2)
    with pytest.raises(ValueError, match="width"):  # T < d: the rows must be drawn
        cj.simulate(ISO, GEN, cj.Downstream(T=10, width=5), 1, 2, sampler="suffstats")
    with pytest.raises(ValueError, match="width"):  # lam = 0 on the interpolation threshold T = m
        cj.theory.test_error(ISO, GEN, cj.Downstream(T=10, lam=0.0, width=10), 1)
