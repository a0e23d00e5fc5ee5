"""The examples in the docstrings run and print what they say."""
import doctest
import importlib

import pytest

MODULES = ["collapse_jax", "collapse_jax.spectra", "collapse_jax.problem", "collapse_jax.chain",
           "collapse_jax.simulate", "collapse_jax.theory", "collapse_jax.theory.ridge", "collapse_jax.io",
           "collapse_jax.sweep", "collapse_jax.regularization", "collapse_jax.theory.powerlaw",
           "collapse_jax._random", "collapse_jax.distributions", "collapse_jax.distributions.gaussian",
           "collapse_jax.distributions.kde", "collapse_jax.distributions.bootstrap",
           "collapse_jax.distributions.discrete", "collapse_jax.distributions.distances",
           "collapse_jax.distributions.theory", "collapse_jax.kernels",
           "collapse_jax.kernels.functions", "collapse_jax.kernels.data", "collapse_jax.kernels.chain",
           "collapse_jax.kernels.theory", "collapse_jax.experiment", "collapse_jax.validate"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
