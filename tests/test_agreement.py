"""The lab's one agreement rule (engine/agreement.py) on synthetic data whose truth is known: numpy only, fast."""

import numpy as np
import pytest

from collapse_jax.engine import agreement
from collapse_jax.regression import theory


def sims(mean=1.0, sd=0.2, seeds=2000, points=3, seed=0):
    return np.random.default_rng(seed).normal(mean, sd, size=(seeds, points))


def test_mean_sem_zscore_detects():
    x = sims()
    m, s = agreement.mean_sem(x)
    np.testing.assert_allclose(s, x.std(0, ddof=1) / np.sqrt(2000), rtol=1e-12)
    np.testing.assert_allclose(agreement.zscore(m, s, 1.0), (m - 1) / s, rtol=1e-12)
    assert agreement.band(m, s) == pytest.approx(4 * np.min(s / np.abs(m)), rel=1e-12)
    assert agreement.detects(m, s, gap=0.03) == pytest.approx(0.03 + agreement.band(m, s), rel=1e-12)
    # a column every seed fixes at one value is an identity, not a statistical check: no power from it
    assert agreement.band(np.array([1.0, 2.0]), np.array([0.0, 0.1])) == pytest.approx(0.2)
    assert agreement.zscore(np.array([2.0]), np.array([0.0]), np.array([2.0]))[0] == 0.0
    assert np.isinf(agreement.zscore(np.array([2.0]), np.array([0.0]), np.array([2.1]))[0])
    with pytest.raises(ValueError, match="at least 2 seeds"):
        agreement.mean_sem(np.ones((1, 3)))


def test_the_check_detects_what_it_says_and_no_less():
    """At 2 x detects a scaled formula fails, at 0.5 x detects it is not seen (the stated power is honest)."""
    x = sims()
    v = agreement.judge("exact", x, 1.0)
    assert v.agrees and v.detects <= 0.05
    assert agreement.judge("exact", x, 1 + 2 * v.detects).verdict == "disagrees"
    assert agreement.judge("exact", x, 1 - 2 * v.detects).verdict == "disagrees"
    assert agreement.judge("exact", x, 1 + 0.5 * v.detects).verdict == "agrees"


def test_low_power_is_inconclusive_never_agrees():
    v = agreement.judge("exact", sims(seeds=40), 1.0)
    assert v.verdict == "inconclusive" and not v.agrees
    assert v.sentence.endswith(f"inconclusive (detects only {v.detects:.1%})")
    # ... but a disagreement seen at low power is still a disagreement
    assert agreement.judge("exact", sims(seeds=40), 2.0).verdict == "disagrees"


def test_a_de_is_judged_by_its_gap_plus_the_band():
    x = sims(mean=1.03, sd=0.05, seeds=4000)  # a 3% finite-size gap, resolved to 0.3%
    assert agreement.judge("exact", x, 1.0).verdict == "disagrees"
    v = agreement.judge("DE", x, 1.0, gap=agreement.de_gap(50))  # bound 4%
    assert v.agrees and v.detects == pytest.approx(0.04 + v.band)
    assert agreement.judge("DE", x, 1.0, gap=agreement.de_gap(100)).verdict == "disagrees"  # bound 2%
    assert agreement.excess_z(*agreement.mean_sem(x), 1.0, 0.04) == 0.0


def test_kinds_and_bad_arguments():
    assert agreement.KINDS == ("exact", "DE", "approximation", "none")
    for call in (
        lambda: agreement.judge("bogus", sims(), 1.0),
        lambda: theory.agreement("bogus", 1.0, 0.0, 10),
        lambda: agreement.agreement("bogus", 1.0, 0.0),
    ):
        with pytest.raises(ValueError, match="kind must be one of"):
            call()
    with pytest.raises(ValueError, match="gap"):
        agreement.judge("exact", sims(), 1.0, gap=0.1)
    with pytest.raises(ValueError, match="gap"):
        agreement.judge("DE", sims(), 1.0, gap=-0.1)
    with pytest.raises(ValueError, match="d must be"):
        agreement.de_gap(0)
    assert agreement.judge("none", sims(), 1.0).verdict == "no formula"
    assert issubclass(theory.NoFormulaError, ValueError) and theory.NoFormulaError is agreement.NoFormulaError


def test_scalar_rule_says_inconclusive_when_the_band_is_wide():
    ok, sentence = theory.agreement("DE", 1.0, 0.1022, 20, band=0.30)  # fig1b at 24 seeds
    assert not ok and "inconclusive (detects only 40.0%)" in sentence


def test_too_few_seeds_for_a_z_test_is_inconclusive():
    """4 seeds: z is t-distributed with 3 degrees of freedom, so a large |z| is no evidence either way."""
    x = sims(seeds=4, points=40, seed=3)
    v = agreement.judge("exact", x, 1.0)
    assert v.verdict == "inconclusive" and "only 4 seeds" in v.sentence
    ok, sentence = agreement.agreement("DE", 5.77, 0.105, 100, band=0.021, seeds=4)
    assert not ok and sentence.endswith("inconclusive (only 4 seeds: too few for a z-test)")
