"""`collapse-jax validate --quick` is part of the suite: every closed form in the catalogue agrees with simulation
by its own criterion (exact: |z| <= 4; DE: |z| <= 4 or a relative gap within 2/d), and the report is written."""

from __future__ import annotations

import pytest

from collapse_jax import cli, validate
from collapse_jax.regression import theory


def test_every_formula_in_the_catalogue_agrees_quick(tmp_path, capsys):
    assert cli.main(["validate", "--quick", "--quiet", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "formula" not in line]
    assert len(rows) == len(validate.select()) >= 14
    assert all(line.rstrip().endswith("| pass |") for line in rows), out
    report = (tmp_path / "report.md").read_text()
    assert all(f"{family}.png" in report for family in validate.FAMILIES)


def test_agreement_criteria():
    assert theory.agreement("exact", 3.9, 0.5, 10)[0] and not theory.agreement("exact", 4.1, 0.0, 10)[0]
    # a DE passes on a large |z| when its gap is within 2/d, and fails when both are out
    assert theory.agreement("DE", 9.0, 0.019, 100)[0] and not theory.agreement("DE", 9.0, 0.021, 100)[0]
    assert theory.de_gap(50) == pytest.approx(0.04)
    ok, sentence = theory.agreement("DE", 9.0, None, 100)  # no gap measured: judged by |z| alone, and said so
    assert not ok and "largest gap not measured" in sentence and "nan" not in sentence


def test_bad_family_is_refused():
    with pytest.raises(ValueError, match="family"):
        validate.select("regresion")
    assert cli.main(["validate", "--family", "nope"]) == 2
