"""Regression chains (Dohmatob, Feng, Kempe 2024; MATH §1): a teacher, n generators fitted to data labelled by
the previous one, a downstream ridge model on generation-n data; exact simulation and closed forms.

Modules: `spectra`, `problem` (the config), `samplers`, `chain` (one seed), `strategies` (data strategies),
`simulate` (many seeds), `sweep` (grids on disk), `theory/`, `regularization`, `optimize`, and the experiment
kinds (`experiments`, `compare`, `optimize_experiments`).

Example:
    >>> from collapse_jax.regression import Downstream, Generators, Spectrum, simulate, theory
    >>> res = simulate(Spectrum.isotropic(20), Generators(T0=80), Downstream(T=80), generations=3, seeds=400)
    >>> bool(abs(res.zscore(theory.metrics(Spectrum.isotropic(20), Generators(T0=80), Downstream(T=80),
    ...                                    range(4))).test_error).max() < 4)
    True
"""

from collapse_jax.regression import optimize, regularization, theory
from collapse_jax.regression.chain import Metrics, run_chain
from collapse_jax.regression.problem import Downstream, Generators
from collapse_jax.regression.simulate import Result, simulate
from collapse_jax.regression.spectra import Spectrum
from collapse_jax.regression.sweep import SweepResult, merge, sweep
from collapse_jax.regression.sweep import load as sweep_load

__all__ = [
    "Downstream",
    "Generators",
    "Metrics",
    "Result",
    "Spectrum",
    "SweepResult",
    "merge",
    "optimize",
    "regularization",
    "run_chain",
    "simulate",
    "sweep",
    "sweep_load",
    "theory",
]
