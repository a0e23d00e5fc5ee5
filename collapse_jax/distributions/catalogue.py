"""The distribution family's entries in `collapse-jax validate`'s catalogue: the exact moments of the Gaussian,
KDE, bootstrap and discrete chains against their simulation.

To add a formula: append one `_exact(...)` to `entries()` with a `(seeds, key) -> (x, simulated, theory)`
function, and cv from `validate.calibrate`.
"""

from __future__ import annotations

import numpy as np

from collapse_jax.distributions import theory as dt
from collapse_jax.distributions.bootstrap import bootstrap_chain
from collapse_jax.distributions.discrete import discrete_chain
from collapse_jax.distributions.gaussian import gaussian_chain
from collapse_jax.distributions.kde import kde_chain
from collapse_jax.engine.catalogue import Check

GAUSS = 'theory/distributions.md "Gaussian fit-and-resample"'


def _exact(formula, note, config, cv, simulate):
    return Check("distributions", formula, note, config, "exact", 0.0, cv, simulate)


def _gaussian_var(seeds, key):
    n = np.arange(5, 51, 5)  # n = 0 is sigma_0^2 = 1 for every seed: an identity, not a statistical check
    out = gaussian_chain(key=key, M=20, generations=50, seeds=seeds)
    return n, out.var[:, n], dt.gaussian_var_mean(20, n)


def _gaussian_logdet(seeds, key):
    n = np.array([10, 100, 1000])
    out = gaussian_chain(key=key, M=10, generations=1000, seeds=seeds, d=2, estimator="unbiased")
    return n, out.log_det[:, n], dt.gaussian_logdet_drift(10, n, 2, "unbiased")


def _gaussian_accumulate(seeds, key):
    n = np.arange(1, 21)
    out = gaussian_chain(key=key, M=10, generations=20, seeds=seeds, strategy="accumulate", real_fraction=0.2)
    return n, out.var[:, n], dt.gaussian_strategy_moments(10, n, strategy="accumulate", real_fraction=0.2)[1]


def _gaussian_weighted(seeds, key):
    n = np.arange(1, 21)
    out = gaussian_chain(key=key, M=20, generations=20, seeds=seeds, real_fraction=0.5, real_weight=0.618)
    return n, out.var[:, n], dt.gaussian_weighted_moments(20, n, 0.5, 0.618)[1]


def _kde_fixed(seeds, key):
    out = kde_chain(key=key, M=50, generations=20, seeds=seeds, bandwidth=0.3)
    return out.generations, out.var[:, :, 0], dt.kde_var(50, out.generations, 1.0, 0.3)


def _bootstrap_distinct(seeds, key):
    t = np.array([1, 2, 5, 10, 20, 50])
    out = bootstrap_chain(30, 50, seeds, key=key)
    return t, out.distinct[:, t], dt.distinct_mean(30, t)


def _discrete_dev(seeds, key):
    p, N, n = np.array([0.5, 0.3, 0.2]), 20, np.array([0, 2, 5, 10])
    out = discrete_chain(p, N, 10, seeds, key=key)
    dev = np.sum((out.probs[:, n] - out.probs[:, 1:2]) ** 2, -1)
    return n, dev, dt.discrete_deviation(p, N, n)


def entries() -> list[Check]:
    """The family's checks, in the catalogue's order (a check's key is its position in the run).

    Example:
        >>> [c.formula for c in entries()][:2]
        ['Gaussian fit-and-resample, E sigma_n^2', 'Gaussian, E log det Sigma_n drift']
    """
    return [
        _exact("Gaussian fit-and-resample, E sigma_n^2", GAUSS, "1-D, M=20, mle", 0.847, _gaussian_var),
        _exact("Gaussian, E log det Sigma_n drift", GAUSS, "d=2, M=10, unbiased, 1000 gens", 0.062, _gaussian_logdet),
        _exact(
            "Gaussian accumulate + 20% real, E sigma_n^2",
            'theory/distributions.md "Data strategies"',
            "1-D, M=10",
            0.360,
            _gaussian_accumulate,
        ),
        _exact(
            "Gaussian, weighted real/synthetic ML fit, E sigma_n^2",
            "theory/weighted.md",
            "1-D, M=20, 50% real, w=0.618",
            0.85,  # not calibrated yet: the plain Gaussian chain's cv, conservative (more seeds)
            _gaussian_weighted,
        ),
        _exact(
            "KDE chain, fixed bandwidth, E s_n^2",
            'theory/distributions.md "KDE chains"',
            "M=50, h=0.3",
            0.195,
            _kde_fixed,
        ),
        _exact(
            "bootstrap, E distinct values",
            'theory/distributions.md "Wright-Fisher resampling"',
            "M=30",
            0.090,
            _bootstrap_distinct,
        ),
        _exact(
            "discrete resampling, E ‖p_n − p_1‖²",
            'theory/distributions.md "Discrete distributions with real data mixed in"',
            "3 categories, N=20",
            0.845,
            _discrete_dev,
        ),
    ]
