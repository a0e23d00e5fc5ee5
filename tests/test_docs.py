"""The documentation runs and points somewhere real.

* Every docstring example of every module in the package runs and prints what it says (collected automatically:
  a new module is tested without being listed anywhere).
* Every reference to a theory note (`theory/<note>.md`, optionally followed by a quoted section heading) names a
  note that exists and a section it has; no "MATH §" reference (a document outside the repository) is left.
"""

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import collapse_jax

ROOT = Path(__file__).resolve().parents[1]
SKIP = {"collapse_jax.__main__"}  # importing it runs the CLI


def _modules():
    names = ["collapse_jax"]
    for info in pkgutil.walk_packages(collapse_jax.__path__, "collapse_jax."):
        if info.name not in SKIP:
            names.append(info.name)
    return sorted(names)


MODULES = _modules()


def test_every_module_is_collected():
    assert {"collapse_jax.engine.agreement", "collapse_jax.regression.optimize", "collapse_jax.validate"} <= set(
        MODULES
    )


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


REFERENCE = re.compile(r'theory/([\w-]+)\.md(?: "([^"\n]+)")?')


def _documents():
    return (
        sorted(ROOT.glob("collapse_jax/**/*.py"))
        + [ROOT / "README.md", ROOT / "experiments/README.md"]
        + sorted(ROOT.glob("theory/*.md"))
    )


def _headings(note: Path) -> list[str]:
    return [line.lstrip("#").strip() for line in note.read_text().splitlines() if line.startswith("#")]


def references():
    """(document, note, section or None) for every theory-note reference in the package and the docs."""
    out = []
    for doc in _documents():
        for m in REFERENCE.finditer(doc.read_text()):
            out.append((doc.relative_to(ROOT).as_posix(), m.group(1), m.group(2)))
    return out


def test_theory_references_exist():
    refs = references()
    assert len(refs) >= 39  # the 39 "MATH §" references of the package now point here, and more
    missing = []
    for doc, note, section in refs:
        path = ROOT / "theory" / f"{note}.md"
        if not path.exists():
            missing.append(f"{doc}: theory/{note}.md does not exist")
        elif section is not None and not any(h.startswith(section) for h in _headings(path)):
            missing.append(f'{doc}: theory/{note}.md has no section "{section}"')
    assert not missing, "\n".join(missing)


def test_no_reference_to_a_document_outside_the_repository():
    stale = [
        f"{doc.relative_to(ROOT)}:{i}"
        for doc in _documents()
        for i, line in enumerate(doc.read_text().splitlines(), 1)
        if "MATH §" in line or re.search(r"(?<!\.md )§\s?\d", line)
    ]
    assert not stale, stale


def test_a_broken_reference_is_caught(tmp_path):
    """The reference checker can fail: a made-up section of a real note is not among its headings."""
    headings = _headings(ROOT / "theory/ridge.md")
    assert not any(h.startswith("A section that does not exist") for h in headings)
    assert any(h.startswith("Finite-size gap") for h in headings)


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
