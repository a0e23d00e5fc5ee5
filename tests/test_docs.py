"""The examples in the docstrings run and print what they say."""

import doctest
import importlib

import pytest

MODULES = [
    "collapse_jax",
    "collapse_jax.experiment",
    "collapse_jax.validate",
    "collapse_jax.engine.seeds",
    "collapse_jax.engine.header",
    "collapse_jax.engine.io",
    "collapse_jax.engine.rng",
    "collapse_jax.regression",
    "collapse_jax.regression.spectra",
    "collapse_jax.regression.problem",
    "collapse_jax.regression.chain",
    "collapse_jax.regression.simulate",
    "collapse_jax.regression.sweep",
    "collapse_jax.regression.theory",
    "collapse_jax.regression.theory.ridge",
    "collapse_jax.regression.theory.projection",
    "collapse_jax.regression.theory.powerlaw",
    "collapse_jax.regression.regularization",
    "collapse_jax.distributions",
    "collapse_jax.distributions.gaussian",
    "collapse_jax.distributions.kde",
    "collapse_jax.distributions.bootstrap",
    "collapse_jax.distributions.discrete",
    "collapse_jax.distributions.distances",
    "collapse_jax.distributions.theory",
    "collapse_jax.kernels",
    "collapse_jax.kernels.functions",
    "collapse_jax.kernels.data",
    "collapse_jax.kernels.chain",
    "collapse_jax.kernels.theory",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
