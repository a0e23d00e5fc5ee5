"""collapse_jax: a JAX lab for model collapse.

Regression chains trained generation after generation on their own outputs (Dohmatob, Feng, Kempe 2024),
simulated exactly with vmap and lax.scan, next to their closed-form predictions.

Example:
    >>> import collapse_jax as cj
    >>> spec, gen, down = cj.Spectrum.isotropic(50), cj.Generators(T0=150), cj.Downstream(T=150, lam=0.1)
    >>> res = cj.simulate(spec, gen, down, generations=5, seeds=500, key=0)
    >>> theory = cj.theory.metrics(spec, gen, down, range(6))
    >>> bool(abs(res.zscore(theory).test_error).max() < 4)
    True
"""
from collapse_jax import distributions, optimize, regularization, theory
from collapse_jax.chain import Metrics, run_chain
from collapse_jax.problem import Downstream, Generators
from collapse_jax.simulate import Result, simulate
from collapse_jax.sweep import SweepResult, merge, sweep
from collapse_jax.sweep import load as sweep_load
from collapse_jax.spectra import Spectrum

__version__ = "0.1.0"
__all__ = ["distributions", "Spectrum", "Generators", "Downstream", "simulate", "Result", "Metrics", "run_chain", "theory",
           "regularization", "optimize", "sweep", "merge", "sweep_load", "SweepResult"]
