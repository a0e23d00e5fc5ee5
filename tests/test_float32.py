"""Float32, which users get by default (jax_enable_x64 off): one agreement test per family with the simulation in
float32 and the theory in float64, judged by the lab's one rule (engine/agreement.py) with the power stated.

Rounding floor: a float32 seed value carries a relative rounding error of about cond(XᵀX) · d · 2⁻²⁴ from the
solves (cond ≈ ((1 + √(d/T))/(1 − √(d/T)))² ≈ 14 at d = 20, T = 60: about 2e-5), and the Gaussian chain's
sufficient statistics about n · 2⁻²⁴ after n generations (6e-7 at n = 10). Both sit three orders of magnitude
below the 5% these checks detect, so at these sizes float32 cannot be told from float64 by a seed mean.
The kernel family always computes in float64 (the chain scopes x64 on: kernel eigenvalues span 10 decades, and
float32 would lose the tail that sets the error), which the third test pins.
"""

import jax
import numpy as np

import collapse_jax as cj
from collapse_jax.engine import agreement


def test_regression_ols_chain_in_float32_agrees_with_float64_theory():
    spec, gen, down = cj.Spectrum.isotropic(20), cj.Generators(T0=60), cj.Downstream(T=60)
    with jax.enable_x64(False):
        res = cj.simulate(spec, gen, down, 3, 1200, key=11)
    assert res.test_error.dtype == np.float32
    v = agreement.judge("exact", res.test_error, np.asarray(cj.theory.test_error(spec, gen, down, np.arange(4))))
    print(v.sentence)
    assert v.agrees and v.detects <= 0.05, v.sentence
    # the negative control: the same float32 simulation against the theory scaled by 1 + 2 detects fails
    mean, sem = agreement.mean_sem(res.test_error)
    th = np.asarray(cj.theory.test_error(spec, gen, down, np.arange(4)))
    assert agreement.excess_z(mean, sem, th * (1 + 2 * v.detects)) > agreement.Z_MAX


def test_gaussian_chain_in_float32_agrees_with_float64_theory():
    from collapse_jax.distributions import gaussian_chain, theory

    n = np.arange(1, 11)
    with jax.enable_x64(False):
        out = gaussian_chain(M=20, generations=10, seeds=4000, key=3)
    assert out.var.dtype == np.float32
    v = agreement.judge("exact", out.var[:, n], theory.gaussian_var_mean(20, n))
    print(v.sentence)
    assert v.agrees and v.detects <= 0.05, v.sentence
    mean, sem = agreement.mean_sem(out.var[:, n])
    assert agreement.excess_z(mean, sem, theory.gaussian_var_mean(20, n) * (1 - 2 * v.detects)) > agreement.Z_MAX


def test_kernel_chain_computes_in_float64_even_when_x64_is_off():
    from collapse_jax.kernels import kernel_matrix, krr_chain, synthetic_power_law

    data = synthetic_power_law(200, 10, beta=1.5, r=0.5, key=1)
    K = kernel_matrix("linear", data.X)
    pool = np.arange(200)
    with jax.enable_x64(False):
        out = krr_chain(K, data.Y, pool, pool, T0=40, T=40, generations=1, seeds=4, key=0, lam=0.01)
    assert out.test_error.dtype == np.float64
