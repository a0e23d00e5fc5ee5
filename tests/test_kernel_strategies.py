"""Data strategies in kernel ridge chains (theory/strategies.md, theory/kernels.md): the KRR chain's strategies against the linear chain's,
and the real/synthetic mixture against the empirical-spectrum theory.

A file of its own because these tests run kernel matrices and KRR solves, not compilation: marked
execution_bound, tests/run_files.py runs it with XLA's full optimisation, like test_kernels.py.
"""

import numpy as np
import pytest
from test_kernels import _assert_same_means, _krr_beside_linear

import collapse_jax as cj
from collapse_jax.engine import agreement
from collapse_jax.kernels import kernel_matrix, krr_chain, synthetic_power_law
from collapse_jax.kernels import theory as kernel_theory

pytestmark = pytest.mark.execution_bound  # the whole file runs optimised (tests/run_files.py)


@pytest.mark.parametrize(
    "options",
    [
        dict(strategy="accumulate"),
        dict(strategy="accumulate_subsample"),
        dict(real_fraction=0.3),
        dict(synthetic_fraction=0.5),
    ],
    ids=["accumulate", "accumulate_subsample", "real_fraction", "synthetic_fraction"],
)
def test_linear_kernel_chain_matches_the_linear_chain_under_strategies(options):
    """The KRR chain's strategies against the linear chain's, both simulated (independent code): the difference
    of their means has |z| <= 4 at every n, for the downstream and the generators."""
    _assert_same_means(*_krr_beside_linear(0.05, seeds=1000, **options))


def test_krr_mixture_follows_the_empirical_spectrum_theory():
    """A downstream KRR on a real/synthetic mixture, scored on the pool's distribution: the mixture DE on the
    empirical spectrum within 4 sem + 2/p = 2% at every n (engine/agreement.py)."""
    data = synthetic_power_law(2000, 100, beta=1.5, r=0.5, key=1)
    K = kernel_matrix("linear", data.X)
    pool = np.arange(2000)
    out = krr_chain(
        K,
        data.Y,
        pool,
        pool,
        T0=200,
        T=200,
        generations=4,
        seeds=400,
        sigma0=0.3,
        sigma=0.3,
        lam=0.01,
        lam_gen=0.01,
        synthetic_fraction=0.3,
        chunk_size=100,
    )
    emp = kernel_theory.empirical_spectrum(K, data.Y)
    th = kernel_theory.test_error(
        emp, np.arange(5), T0=200, T=200, sigma0=0.3, sigma=0.3, lam=0.01, lam_gen=0.01, synthetic_fraction=0.3
    )
    v = agreement.judge("DE", out.test_error[:, 0], th, gap=agreement.de_gap(100))  # d: the 100 features
    assert v.verdict != "disagrees", v.sentence
    with pytest.raises(cj.theory.NoFormulaError):
        kernel_theory.test_error(emp, 2, T0=200, T=200, strategy="accumulate")
