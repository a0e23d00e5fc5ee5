"""The kernel family's entry in `collapse-jax validate`'s catalogue: the KRR chain against the regression family's
deterministic equivalent on the kernel matrix's empirical spectrum."""

from __future__ import annotations

import numpy as np

from collapse_jax.engine import agreement
from collapse_jax.engine.catalogue import Check
from collapse_jax.kernels import theory as kt
from collapse_jax.kernels.chain import krr_chain
from collapse_jax.kernels.data import synthetic_power_law
from collapse_jax.kernels.functions import kernel_matrix


def _krr(seeds, key):
    data = synthetic_power_law(1000, 50, beta=1.5, r=0.5, key=1)
    K = kernel_matrix("linear", data.X)
    pool, n = np.arange(1000), np.arange(4)
    kw = dict(T0=150, T=150, sigma0=0.3, sigma=0.3, lam=0.01, lam_gen=0.01)
    out = krr_chain(K, data.Y, pool, pool, generations=3, seeds=seeds, key=key, chunk_size=256, **kw)
    return n, out.test_error[:, 0], kt.test_error(kt.empirical_spectrum(K, data.Y), n, one_program=True, **kw)


def entries() -> list[Check]:
    """The family's checks, in the catalogue's order (a check's key is its position in the run).

    Example:
        >>> [(c.formula, c.kind) for c in entries()]
        [('KRR chain on the empirical spectrum', 'DE')]
    """
    return [
        Check(
            "kernels",
            "KRR chain on the empirical spectrum",
            'theory/kernels.md "From a kernel matrix to a linear problem"',
            "linear kernel, power-law data p=50, T0=T=150",
            "DE",
            agreement.de_gap(50),
            0.27,
            _krr,
        )
    ]
