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
    "collapse_jax.engine.wishart",
    "collapse_jax.engine.progress",
    "collapse_jax.engine.calls",
    "collapse_jax.engine.strategies",
    "collapse_jax.engine.fields",
    "collapse_jax.regression",
    "collapse_jax.regression.spectra",
    "collapse_jax.regression.problem",
    "collapse_jax.regression.chain",
    "collapse_jax.regression.metrics",
    "collapse_jax.regression.simulate",
    "collapse_jax.regression.sweep",
    "collapse_jax.regression.theory",
    "collapse_jax.regression.theory.ridge",
    "collapse_jax.regression.theory.fixed_point",
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


GOOGLE_STYLE = [  # the public functions the API reference leads with; each documents its arguments in full
    "collapse_jax.simulate",
    "collapse_jax.run_chain",
    "collapse_jax.sweep",
    "collapse_jax.merge",
    "collapse_jax.sweep_load",
    "collapse_jax.theory.metrics",
    "collapse_jax.theory.test_error",
    "collapse_jax.theory.formula_kind",
    "collapse_jax.theory.agreement",
    "collapse_jax.theory.ell_crit",
    "collapse_jax.theory.error_exponent",
    "collapse_jax.theory.fast_exponent",
    "collapse_jax.theory.slow_exponent",
    "collapse_jax.theory.sigma_eff2",
    "collapse_jax.theory.crossover_T",
    "collapse_jax.kernels.kernel_matrix",
    "collapse_jax.kernels.split",
]


@pytest.mark.parametrize("path", GOOGLE_STYLE)
def test_public_functions_document_args_returns_and_an_example(path):
    """Google style (Args / Returns / Example) where the reference renders it, every parameter named in Args:
    a renamed or added parameter without its line fails here, not silently in the docs."""
    import inspect

    fn = importlib.import_module("collapse_jax")
    for name in path.split(".")[1:]:
        fn = getattr(fn, name)
    doc = inspect.getdoc(fn) or ""
    for section in ("Args:", "Returns:", "Example:"):
        assert f"\n{section}\n" in f"\n{doc}", f"{path}: no {section} section"
    args = doc.split("Args:")[1].split("\n\n")[0]
    entries = [line for line in args.splitlines()[1:] if line.startswith("    ") and not line.startswith("     ")]
    named = {line.strip().split(":")[0].lstrip("*") for line in entries}
    params = {p.name for p in inspect.signature(fn).parameters.values() if p.kind is not p.VAR_KEYWORD}
    params = {p for p in params if not p.startswith("_")}
    assert params <= named, f"{path}: parameters without an Args line: {sorted(params - named)}"
