"""collapse_jax: a JAX lab for model collapse.

Three families of chains trained generation after generation on their own outputs, side by side over one
engine: regression chains (Dohmatob, Feng, Kempe 2024; `collapse_jax.regression`), kernel ridge chains on real
data (`collapse_jax.kernels`) and distribution chains (Shumailov et al. 2024, Borji 2024;
`collapse_jax.distributions`); each simulated exactly with vmap and lax.scan next to its closed forms. The
engine (`collapse_jax.engine`) holds seeds, validation, I/O and plotting; `experiment`, `validate` and `cli`
run, sweep, validate and plot every family the same way.

Example:
    >>> import collapse_jax as cj
    >>> spec, gen, down = cj.Spectrum.isotropic(50), cj.Generators(T0=150), cj.Downstream(T=150, lam=0.1)
    >>> res = cj.simulate(spec, gen, down, generations=5, seeds=500, key=0)
    >>> theory = cj.theory.metrics(spec, gen, down, range(6))
    >>> bool(abs(res.zscore(theory).test_error).max() < 4)
    True
"""

from collapse_jax import distributions, kernels, regression
from collapse_jax.regression import (
    Downstream,
    Generators,
    Metrics,
    Result,
    Spectrum,
    SweepResult,
    merge,
    optimize,
    regularization,
    run_chain,
    simulate,
    sweep,
    sweep_load,
    theory,
)

__version__ = "0.1.0"  # the one place the version is written (pyproject.toml reads it)
__all__ = [
    "Downstream",
    "Generators",
    "Metrics",
    "Result",
    "Spectrum",
    "SweepResult",
    "distributions",
    "kernels",
    "merge",
    "optimize",
    "regression",
    "regularization",
    "run_chain",
    "simulate",
    "sweep",
    "sweep_load",
    "theory",
]
