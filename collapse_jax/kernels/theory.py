"""The empirical-spectrum prediction for kernel chains (theory/kernels.md), and power-law fits of real spectra
(theory/powerlaw.md).

Eigendecompose the pool's kernel matrix once: K/N = sum_k mu_k psi_k psi_k'. In the eigenfunctions
phi_k = sqrt(N) psi_k (unit norm under the pool's empirical distribution), a target y has coefficients
theta_k = <y, psi_k>/sqrt(N). The pair (mu_k, theta_k) plays the role of (lambda_j, sqrt(lambda_j) w0_j) in the
linear chain, so the linear theory applies with Spectrum(mu, theta/sqrt(mu)). C outputs (one-hot classes) add
up: the deterministic equivalent needs only sums over outputs of w0_j^2-like terms, and each output brings its
own noise, so C outputs equal one output with w0_j^2 = sum_c w0_cj^2 and noise variances times C.

Example:
    >>> from collapse_jax.kernels import kernel_matrix, synthetic_power_law, theory
    >>> data = synthetic_power_law(400, 30, beta=1.5, r=0.5)
    >>> emp = theory.empirical_spectrum(kernel_matrix("linear", data.X), data.Y)
    >>> emp.eigenvalues.shape, round(float(emp.residual), 6)
    ((30,), 0.0)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from collapse_jax.engine.checks import Instance, OneOf, checked
from collapse_jax.regression import Downstream, Generators, Spectrum


class EmpiricalSpectrum(NamedTuple):
    eigenvalues: np.ndarray  # (k,) of K/N, descending, numerically non-zero
    coefficients: np.ndarray  # (k, C): theta_kc = <y_c, psi_k> / sqrt(N)
    residual: float  # sum over outputs of the target energy outside the kept eigenfunctions (no KRR fits it)
    outputs: int  # C

    def spectrum(self) -> Spectrum:
        """The linear problem with the same deterministic equivalent (all outputs pooled)."""
        energy = np.sum(self.coefficients**2, axis=1)
        return Spectrum(self.eigenvalues, np.sqrt(energy / self.eigenvalues))


def empirical_spectrum(K_pool, Y_pool, rel_tol: float = 1e-10) -> EmpiricalSpectrum:
    """Eigenpairs of K/N on the pool and the targets' coefficients; eigenvalues below rel_tol times the largest
    are dropped (their share of the target goes to `residual`)."""
    K_pool, Y_pool = np.asarray(K_pool, float), np.asarray(Y_pool, float)
    N = len(K_pool)
    if K_pool.shape != (N, N) or Y_pool.ndim != 2 or len(Y_pool) != N:
        raise ValueError(f"K_pool must be (N, N) and Y_pool (N, C), got {K_pool.shape} and {Y_pool.shape}")
    mu, psi = np.linalg.eigh(K_pool / N)
    mu, psi = mu[::-1], psi[:, ::-1]
    keep = mu > rel_tol * mu[0]
    theta = psi.T @ Y_pool / np.sqrt(N)
    total = np.sum(Y_pool**2) / N
    return EmpiricalSpectrum(mu[keep], theta[keep], float(total - np.sum(theta[keep] ** 2)), Y_pool.shape[1])


@checked(emp=Instance(EmpiricalSpectrum))
def problem(
    emp: EmpiricalSpectrum,
    T0,
    T,
    sigma0=0.0,
    sigma=0.0,
    lam=1e-3,
    lam_gen=1e-3,
    strategy="replace",
    real_fraction=None,
    synthetic_fraction=None,
):
    """(Spectrum, Generators, Downstream) of the linear chain with the same prediction (noise scaled by sqrt(C)).
    The data strategies carry over word for word; the linear theory then decides what it can predict (KRR
    generators are ridge fits: a downstream mixture has a deterministic equivalent, the pooled strategies and
    real rows in the generators raise NoFormulaError)."""
    scale = np.sqrt(emp.outputs)
    gen = Generators(
        T0=T0,
        sigma0=scale * np.asarray(sigma0, float) if np.ndim(sigma0) else scale * float(sigma0),
        lam=lam_gen if np.ndim(lam_gen) == 0 else np.asarray(lam_gen, float),
        strategy=strategy,
        real_fraction=real_fraction,
    )
    return (
        emp.spectrum(),
        gen,
        Downstream(T=T, sigma=scale * float(sigma), lam=lam, synthetic_fraction=synthetic_fraction),
    )


@checked(emp=Instance(EmpiricalSpectrum), one_program=OneOf(True, False))
def test_error(
    emp: EmpiricalSpectrum, n, *, T0, T, sigma0=0.0, sigma=0.0, lam=1e-3, lam_gen=1e-3, one_program=False, **strategy
):
    """Predicted downstream test error (squared error summed over outputs, averaged over points) after n
    generations, for one lambda (a number, per-n array or schedule); n may be an array. `strategy`: the
    keywords strategy, real_fraction and synthetic_fraction of `problem`.

    one_program: evaluate the formulas as one compiled program (`regression.theory.compiled_metrics`, the same
    numbers to float64 rounding) rather than op by op. For one configuration evaluated once (validate's check:
    0.5 s against 1.5 s on a first run); a loop over lambdas or sizes is faster op by op, whose small programs
    serve every iteration."""
    from collapse_jax.regression import theory

    spec, gen, down = problem(emp, T0, T, sigma0, sigma, lam, lam_gen, **strategy)
    n = np.asarray(n)
    error = (
        theory.compiled_metrics(spec, gen, down, n).test_error if one_program else theory.test_error(spec, gen, down, n)
    )
    return np.asarray(error) + emp.residual


@checked(emp=Instance(EmpiricalSpectrum))
def generator_error(emp: EmpiricalSpectrum, n, *, T0, sigma0=0.0, lam_gen=1e-3):
    """Predicted error of the generation-n generator itself against the real targets."""
    from collapse_jax.regression import theory

    spec, gen, _ = problem(emp, T0, T0, sigma0, 0.0, 1.0, lam_gen)
    return np.asarray(theory.generator_error(spec, gen, np.asarray(n))) + emp.residual


class PowerLawFit(NamedTuple):
    beta: float  # mu_k ~ k^-beta
    r: float  # tail energy sum_{j>k} theta_j^2 ~ k^-(2 beta r)
    k_range: tuple
    eigen_prefactor: float
    tail_prefactor: float


@checked(emp=Instance(EmpiricalSpectrum))
def fit_power_law(emp: EmpiricalSpectrum, k_range=None) -> PowerLawFit:
    """Least-squares fits on log-log axes over k in k_range (default: 2 .. a third of the kept spectrum):
    beta from the eigenvalues, and r from the tail of the target energy, whose slope is -2 beta r when
    lambda_j w0_j^2 ∝ j^-(1 + 2 beta r) (theory/moments.md "Setting")."""
    m = len(emp.eigenvalues)
    lo, hi = k_range or (2, max(4, m // 3))
    if not 1 <= lo < hi <= m:
        raise ValueError(f"k_range must satisfy 1 <= lo < hi <= {m} (the kept spectrum), got {(lo, hi)}")
    k = np.arange(lo, hi + 1)
    energy = np.sum(emp.coefficients**2, axis=1)
    tail = np.cumsum(energy[::-1])[::-1]  # tail[k-1] = sum_{j >= k}
    b_eig = np.polyfit(np.log(k), np.log(emp.eigenvalues[k - 1]), 1)
    b_tail = np.polyfit(np.log(k), np.log(tail[k - 1] + emp.residual), 1)
    beta = -b_eig[0]
    return PowerLawFit(
        float(beta),
        float(-b_tail[0] / (2 * beta)),
        (int(lo), int(hi)),
        float(np.exp(b_eig[1])),
        float(np.exp(b_tail[1])),
    )
