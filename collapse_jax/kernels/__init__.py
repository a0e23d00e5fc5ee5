"""Kernel ridge regression chains on real data (MATH §1.8), with the empirical-spectrum prediction.

Example:
    >>> from collapse_jax.kernels import kernel_matrix, krr_chain, split, synthetic_power_law, theory
    >>> data = synthetic_power_law(600, 40, beta=1.5, r=0.5)
    >>> K = kernel_matrix("linear", data.X)
    >>> pool, test = split(data, test=200)
    >>> out = krr_chain(K, data.Y, pool, test, T0=80, T=80, generations=2, seeds=20, sigma0=0.3, lam=0.01)
    >>> emp = theory.empirical_spectrum(K[pool][:, pool], data.Y[pool])
    >>> theory.test_error(emp, [0, 1, 2], T0=80, T=80, sigma0=0.3, lam=0.01).shape
    (3,)
"""

from collapse_jax.kernels import theory
from collapse_jax.kernels.chain import KRRChain, krr_chain
from collapse_jax.kernels.data import Dataset, load_digits, load_mnist, one_hot, split, synthetic_power_law
from collapse_jax.kernels.functions import KERNELS, arccos, kernel_matrix, laplace, linear, polynomial, rbf

__all__ = [
    "KERNELS",
    "Dataset",
    "KRRChain",
    "arccos",
    "kernel_matrix",
    "krr_chain",
    "laplace",
    "linear",
    "load_digits",
    "load_mnist",
    "one_hot",
    "polynomial",
    "rbf",
    "split",
    "synthetic_power_law",
    "theory",
]
