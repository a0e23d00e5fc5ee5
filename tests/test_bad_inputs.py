"""A property over every public constructor and function: a random sample of bad or edge inputs, one argument at
a time, either raises a ValueError that names the argument or returns finite numbers (no crash from inside JAX,
no silent NaN). The sample is fixed (seeded), so a failure names a reproducible case."""

from __future__ import annotations

import dataclasses
import random

import jax
import numpy as np
import pytest

import collapse_jax as cj
from collapse_jax.distributions import bootstrap_chain, discrete_chain, distances, gaussian_chain, kde_chain
from collapse_jax.distributions import theory as dtheory
from collapse_jax.kernels import kernel_matrix, krr_chain, one_hot
from collapse_jax.regression import regularization, theory

BAD = [
    -1,
    0,
    -0.5,
    2.5,
    1e300,
    -1e300,
    float("nan"),
    float("inf"),
    -float("inf"),
    "x",
    "",
    None,
    [],
    {},
    True,
    1 + 2j,
    [1, "a"],
    [[1.0, 2.0]],
    [0.5, -1.0],
    (3,),
    np.float64(-2.0),
    np.array([np.nan]),
    10**12,
    3.0,
]

SPEC, GEN, DOWN = cj.Spectrum.isotropic(4), cj.Generators(T0=12), cj.Downstream(T=12, lam=0.1)
K = np.asarray(kernel_matrix("rbf", np.random.default_rng(0).normal(size=(30, 3))))
Y = np.random.default_rng(1).normal(size=(30, 2))

# (label, function, valid keyword arguments): every argument of each is replaced in turn
TARGETS = [
    ("Spectrum", cj.Spectrum, dict(eigenvalues=np.ones(4), w0=np.ones(4) / 2)),
    ("Spectrum.isotropic", cj.Spectrum.isotropic, dict(d=4, signal=1.0)),
    ("Spectrum.power_law", cj.Spectrum.power_law, dict(d=8, beta=2.0, r=0.5, signal=1.0)),
    (
        "Generators",
        cj.Generators,
        dict(T0=12, sigma0=1.0, lam=None, fixed=False, strategy="replace", real_fraction=None),
    ),
    ("Downstream", cj.Downstream, dict(T=12, sigma=1.0, lam=0.1, synthetic_fraction=None)),
    (
        "simulate",
        cj.simulate,
        dict(
            spec=SPEC, gen=GEN, down=DOWN, generations=2, seeds=4, key=0, sampler="auto", chunk_size=None, seed_offset=0
        ),
    ),
    ("theory.test_error", theory.test_error, dict(spec=SPEC, gen=GEN, down=DOWN, n=2)),
    ("theory.kappa", theory.kappa, dict(eigenvalues=np.ones(4), lam=0.1, T=10.0)),
    (
        "theory.isotropic_test_error",
        theory.isotropic_test_error,
        dict(d=4, T=12, lam=0.1, signal=1.0, sigma=1.0, n=1, T0=12, sigma0=1.0),
    ),
    ("theory.sigma_eff2", theory.sigma_eff2, dict(sigma=1.0, sigma0=1.0, n=2, phi0=0.5)),
    ("theory.crossover_T", theory.crossover_T, dict(sigma_eff2_=0.5, beta=2.0, r=0.5)),
    ("theory.error_exponent", theory.error_exponent, dict(beta=2.0, r=0.5, ell=0.5)),
    (
        "optimal_lambda",
        regularization.optimal_lambda,
        dict(spec=SPEC, gen=GEN, down=DOWN, n=2, T=None, bounds=(1e-3, 10.0)),
    ),
    ("power_law", regularization.power_law, dict(c=1.0, ell=0.5)),
    (
        "gaussian_chain",
        gaussian_chain,
        dict(key=0, M=5, generations=3, seeds=4, d=1, estimator="mle", mu0=0.0, sigma0=1.0, real_fraction=None),
    ),
    ("kde_chain", kde_chain, dict(key=0, M=8, generations=2, seeds=3, bandwidth=0.3)),
    ("bootstrap_chain", bootstrap_chain, dict(key=0, M=6, generations=3, seeds=3)),
    ("discrete_chain", discrete_chain, dict(key=0, p=[0.5, 0.5], N=10, generations=3, seeds=3, synthetic=None)),
    ("gaussian_var_mean", dtheory.gaussian_var_mean, dict(M=5, n=3, estimator="mle", sigma0=1.0)),
    ("gaussian_w2", dtheory.gaussian_w2, dict(M=5, n=3, estimator="mle", sigma0=1.0)),
    ("kde_var", dtheory.kde_var, dict(M=5, n=3, var0=1.0, bandwidth=0.3)),
    ("distinct_mean", dtheory.distinct_mean, dict(M=5, t=3)),
    ("discrete_deviation", dtheory.discrete_deviation, dict(p=[0.5, 0.5], N=10, n=3)),
    ("w2sq_gaussian", distances.w2sq_gaussian, dict(mean1=0.0, var1=1.0, mean2=1.0, var2=2.0)),
    ("kl_gaussian", distances.kl_gaussian, dict(mean1=0.0, var1=1.0, mean2=1.0, var2=2.0)),
    ("kl_discrete", distances.kl_discrete, dict(p=[0.5, 0.5], q=[0.25, 0.75])),
    (
        "kernel_matrix",
        lambda X, lengthscale: kernel_matrix("rbf", X, lengthscale=lengthscale),
        dict(X=np.ones((3, 2)), lengthscale=1.0),
    ),
    ("one_hot", one_hot, dict(labels=[0, 1, 2], classes=3)),
    (
        "krr_chain",
        lambda **kw: krr_chain(K, Y, np.arange(20), np.arange(20, 30), **kw),
        dict(T0=10, T=10, generations=2, seeds=3, key=0, sigma0=0.1, sigma=0.1, lam=0.01, lam_gen=0.01),
    ),
]


def _finite(out) -> bool:
    leaves = [
        x
        for x in jax.tree.leaves(dataclasses.asdict(out) if dataclasses.is_dataclass(out) else out)
        if isinstance(x, (float, np.ndarray, jax.Array, np.floating))
    ]
    return all(np.all(np.isfinite(np.asarray(x, float))) for x in leaves)


def _outcome(fn, kwargs, arg):
    try:
        out = fn(**kwargs)
    except ValueError as err:
        return "clear" if arg.rstrip("_") in str(err) or arg in str(err) else f"unnamed: {err}"
    except Exception as err:
        return f"crash: {type(err).__name__}: {err}"
    return "finite" if _finite(out) else "NaN/inf returned"


@pytest.mark.parametrize("label,fn,valid", TARGETS, ids=[t[0] for t in TARGETS])
def test_bad_inputs_raise_a_named_error_or_return_finite_numbers(label, fn, valid):
    assert _outcome(fn, valid, "") in ("finite", "clear"), f"{label}: the valid call itself fails"
    rng = random.Random(label)  # a fixed sample per target
    defects = []
    for arg in valid:
        for bad in rng.sample(BAD, 6):
            result = _outcome(fn, {**valid, arg: bad}, arg)
            if result not in ("clear", "finite"):
                defects.append(f"{arg}={bad!r}: {result[:200]}")
    assert not defects, f"{label}: " + "; ".join(defects)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: cj.Generators(sigam0=1.0), "did you mean 'sigma0'"),
        (lambda: cj.Downstream(TT=3), "did you mean 'T'"),
        (lambda: cj.Spectrum(eigs=[1.0]), "eigs"),
        (lambda: regularization.optimal_lambda(SPEC, GEN, DOWN, 1, bounds=(10, 1e-3)), "bounds"),
        (lambda: theory.isotropic_test_error(d=10, T=20, lam=0.0, signal=1.0, sigma=1.0, n=1, T0=5, sigma0=1.0), "T0"),
        (lambda: theory.isotropic_test_error(d=10, T=10, lam=0.0, signal=1.0, sigma=1.0), "infinite"),
        (lambda: theory.sigma_eff2(1.0, 1.0, 1, 1.0), "phi0"),
        (lambda: theory.kappa(np.ones(5), 0.1, 0), "T"),
        (lambda: theory.crossover_T(-1.0, 2.0, 0.5), "sigma_eff2_"),
        (lambda: theory.error_exponent(2.0, 0.5, float("nan")), "ell"),
        (lambda: kde_chain(key=0, M=10, generations=3, seeds=2, bandwidth=1e200), "bandwidth"),
        (lambda: cj.simulate(SPEC, GEN, DOWN, generations=10**9, seeds=2), "generations"),
        (lambda: cj.Generators(T0=20, sigma0=np.float64(-1.0)), r"sigma0 must be >= 0.0, got -1.0$"),
    ],
)
def test_named_errors_for_the_issue_cases(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_float32_ols_downstream_at_T_equal_d_is_finite():
    """lam = 0 at T = d: the factor is the Bartlett factor itself, no Cholesky of L L' (which failed in float32)."""
    with jax.enable_x64(False):
        res = cj.simulate(cj.Spectrum.isotropic(10), cj.Generators(T0=20), cj.Downstream(T=10), 2, 2000, key=0)
    assert res.test_error.dtype == np.float32 and np.all(np.isfinite(res.test_error))


def test_d_dimensional_gaussian_chain_stays_finite_in_float32():
    from collapse_jax.distributions import theory as dt

    with jax.enable_x64(False):
        out = gaussian_chain(key=0, M=10, generations=5000, seeds=64, d=2, estimator="unbiased")
    assert out.log_det.dtype == np.float32
    assert all(np.all(np.isfinite(a)) for a in (out.mean, out.var, out.log_det))
    ns = np.array([100, 1000, 5000])
    ld, th = out.log_det[:, ns], dt.gaussian_logdet_drift(10, ns, 2, "unbiased")
    z = (ld.mean(0) - th) / (ld.std(0, ddof=1) / np.sqrt(64))
    assert np.abs(z).max() <= 4, z
