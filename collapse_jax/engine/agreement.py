"""The lab's statistical vocabulary: kinds of formula, the seed mean and its standard error, the z-score, the power
of a check, and the one rule that turns a comparison of simulation with theory into a verdict.

Every check in the lab (the tests, `collapse-jax validate`, experiment summaries, sweeps) goes through this module,
so the thresholds live here, once, fixed before any run, each with its reason:

* ``Z_MAX = 4``: a comparison whose largest |z| exceeds 4 disagrees. With a fixed key and Gaussian seed means a
  true formula crosses 4 at one point with probability 6e-5, so a catalogue of a few hundred points raises a false
  alarm about once in a hundred runs of new keys, and never on the pinned keys.
* the statistical ``band = Z_MAX * sem / |mean|``: the relative error of the formula (theory scaled by 1 + r) that
  moves the expected |z| of the check's best-resolved point to Z_MAX. ``detects = gap + band`` is the smallest
  relative error the check sees (gap = 0 for an exact formula, its bound for a DE or an approximation). At twice
  that error an exact check's expected |z| is 2 Z_MAX, so it fails with probability > 0.9999: that is the negative
  control every `validate` catalogue entry must fail.
* ``DETECTS_MAX = 0.05``: a check whose statistical band exceeds 5% has too little power to say "agrees"; it says
  "inconclusive (detects only X%)". 5% is the `validate --quick` standard for exact formulas. (A DE's gap is a
  property of the formula, not of the check: a DE at d = 20 agrees within its 10% bound when the band is <= 5%.)
* a deterministic equivalent (DE) is exact only as d -> infinity: it agrees when every point lies within its
  finite-size gap bound plus the statistical band, |mean - theory| <= gap |theory| + Z_MAX sem. The bound is
  ``de_gap(d) = DE_GAP_C / d`` with ``DE_GAP_C = 2`` (theory/ridge.md "Finite-size gap": on a grid of 108
  configurations the largest measured gap is 1.30/d and the largest upper bound, gap + 2 sem/mean, 1.87/d).
* ``MIN_SEEDS_Z = 30``: below 30 seeds the z of a seed mean is t-distributed with heavy tails (3 degrees of
  freedom at 4 seeds: |z| > 4 at 3% of points) and its standard error is itself a rough guess, so neither
  "agrees" nor "disagrees" can be said: the verdict is "inconclusive (only N seeds)".
* an approximation (e.g. the coalescent fixation time) agrees within its stated relative accuracy, passed as
  ``gap``, plus the statistical band: the same rule as a DE with a bound of its own.

Example:
    >>> import numpy as np
    >>> from collapse_jax.engine import agreement
    >>> sims = np.random.default_rng(0).normal(1.0, 0.1, size=(400, 3))
    >>> v = agreement.judge("exact", sims, np.ones(3))
    >>> v.agrees, round(v.detects, 3)
    (True, 0.019)
    >>> agreement.judge("exact", sims, 1.05 * np.ones(3)).verdict
    'disagrees'
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

KINDS = ("exact", "DE", "approximation", "none")
Z_MAX = 4.0
DETECTS_MAX = 0.05
DE_GAP_C = 2.0
MIN_SEEDS_Z = 30


class NoFormulaError(ValueError):
    """Raised where the lab has no closed form it can stand behind: simulate instead."""


def de_gap(d: float) -> float:
    """The finite-size bound on a deterministic equivalent's relative gap at dimension d: DE_GAP_C / d.

    Args:
        d: the dimension (number of features) of the problem; inf gives 0 (an exact formula).

    Returns:
        The relative gap a DE may show on top of the statistical band.

    Raises:
        ValueError: d is not a positive number.

    Example:
        >>> de_gap(50)
        0.04
    """
    if not (isinstance(d, (int, float, np.integer, np.floating)) and d > 0):
        raise ValueError(f"d must be a positive number, got {d!r}")
    return DE_GAP_C / float(d)


def mean_sem(x, axis: int = 0):
    """The mean over seeds (axis) and its standard error (ddof 1); the one implementation the lab uses.

    Args:
        x: per-seed values; axis indexes the seeds (at least 2 of them).
        axis: the seed axis.

    Returns:
        (mean, sem), arrays with the seed axis removed.

    Raises:
        ValueError: fewer than two seeds along axis.

    Example:
        >>> mean_sem(np.array([1.0, 2.0, 3.0]))
        (np.float64(2.0), np.float64(0.5773502691896258))
    """
    x = np.asarray(x, dtype=float)
    n = x.shape[axis] if x.ndim else 0
    if n < 2:
        raise ValueError(f"a standard error needs at least 2 seeds along axis {axis}, got shape {x.shape}")
    return x.mean(axis), x.std(axis, ddof=1) / math.sqrt(n)


def zscore(mean, sem, theory, *, atol: float = 1e-12, sem_floor=None):
    """(mean - theory) / sem, elementwise; 0 where the difference vanishes up to atol relative to the mean (a
    deterministic quantity that equals its formula, whatever rounding left in its sem), +-inf where only the sem
    vanishes, unless a sem_floor (broadcast) stands in for a vanishing sem (a column every seed fixes at one value).

    Example:
        >>> zscore(np.array([1.1, 2.0]), np.array([0.05, 0.0]), np.array([1.0, 2.0]))
        array([2., 0.])
    """
    mean, sem, theory = (np.asarray(a, dtype=float) for a in (mean, sem, theory))
    if sem_floor is not None:
        sem = np.where(sem > 0, sem, sem_floor)
    diff = mean - theory
    # a difference at rounding level is equality, whatever the sem: identical seeds (a collision probability of
    # 1/M at t = 0) leave a sem of ~1e-19 from rounding, and 1e-17 / 1e-19 is no evidence (it read |z| = 85)
    same = np.abs(diff) <= atol * (1 + np.abs(mean))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(same, 0.0, np.where(sem > 0, diff / sem, np.sign(diff) * np.inf))


def band(mean, sem) -> float:
    """The statistical band: Z_MAX sem / |mean| at the best-resolved point, the relative error of a formula (theory
    scaled by 1 + r) that moves that point's expected |z| to Z_MAX. Points with a zero mean or a zero sem (every
    seed gives the same value: an identity, not a statistical check), or NaN, are skipped; inf if none is left.

    Example:
        >>> band(np.array([10.0, 1.0]), np.array([0.1, 0.1]))
        0.04
    """
    mean, sem = np.asarray(mean, dtype=float), np.asarray(sem, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = Z_MAX * sem / np.abs(mean)
    r = r[np.isfinite(r) & (np.abs(mean) > 0) & (sem > 0)]
    return float(r.min()) if r.size else math.inf


def detects(mean, sem, gap: float = 0.0) -> float:
    """The smallest relative error of a formula the check sees: its gap bound plus the statistical band.

    Example:
        >>> detects(np.array([10.0, 1.0]), np.array([0.1, 0.1]), gap=0.02)
        0.06
    """
    return float(gap) + band(mean, sem)


def relative_gap(mean, theory):
    """|mean / theory - 1| where theory is nonzero, |mean - theory| where it is zero."""
    mean, theory = np.asarray(mean, dtype=float), np.asarray(theory, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(theory != 0, np.abs(mean / np.where(theory != 0, theory, 1) - 1), np.abs(mean - theory))


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome of one comparison. verdict is "agrees", "disagrees", "inconclusive" or "no formula"."""

    kind: str
    verdict: str
    max_abs_z: float
    max_rel_gap: float
    band: float
    gap: float
    sentence: str

    @property
    def detects(self) -> float:
        """The smallest relative error of the formula this check sees: gap + band."""
        return self.gap + self.band

    @property
    def agrees(self) -> bool:
        """True only for a conclusive agreement."""
        return self.verdict == "agrees"


def _check_kind(kind):
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def judge(kind: str, sims, theory, *, gap: float = 0.0, axis: int = 0) -> Verdict:
    """Judge per-seed simulated values against a formula of this kind (the lab's one agreement rule).

    A point agrees when |mean - theory| <= gap |theory| + Z_MAX sem (gap = 0 for exact formulas, de_gap(d) for a
    DE, the stated accuracy for an approximation); the comparison agrees when every point does and its power is
    enough (detects <= DETECTS_MAX), is inconclusive when every point does but the power is not, and disagrees
    otherwise (a disagreement seen at low power is still seen).

    Args:
        kind: "exact", "DE", "approximation" or "none".
        sims: per-seed values, seeds along axis.
        theory: the formula at the same points (broadcast against the mean).
        gap: the finite-size or approximation bound (relative), >= 0; must be 0 for an exact formula.
        axis: the seed axis of sims.

    Returns:
        A Verdict.

    Raises:
        ValueError: unknown kind, a negative gap, a gap on an exact formula, or fewer than 2 seeds.

    Example:
        >>> sims = np.random.default_rng(1).normal(2.0, 0.5, size=(50, 2))
        >>> judge("exact", sims, 2.0).sentence
        'exact formula, |z| <= 4: largest |z| 1.10, detects 12.3% -> inconclusive (detects only 12.3%)'
    """
    mean, sem = mean_sem(sims, axis)
    return judge_moments(kind, mean, sem, theory, gap=gap, seeds=np.shape(sims)[axis])


def judge_moments(kind: str, mean, sem, theory, *, gap: float = 0.0, seeds: int | None = None) -> Verdict:
    """`judge` from the seed means and their standard errors (for callers that keep only those); `seeds`, when
    given, below MIN_SEEDS_Z makes the verdict inconclusive."""
    _check_kind(kind)
    if not (gap >= 0 and math.isfinite(gap)):
        raise ValueError(f"gap must be a finite number >= 0, got {gap!r}")
    if kind == "exact" and gap != 0:
        raise ValueError(f"an exact formula has no gap bound, got gap={gap!r}")
    mean, sem = np.asarray(mean, dtype=float), np.asarray(sem, dtype=float)
    theory = np.broadcast_to(np.asarray(theory, dtype=float), mean.shape)
    z = zscore(mean, sem, theory)
    zmax = float(np.nanmax(np.abs(z))) if z.size else 0.0
    rel = relative_gap(mean, theory)
    relmax = float(np.nanmax(rel)) if rel.size else 0.0
    power = band(mean, sem)
    if kind == "none":
        return Verdict(kind, "no formula", zmax, relmax, power, gap, "no closed form: nothing to judge")
    v = _verdict(kind, excess_z(mean, sem, theory, gap) <= Z_MAX, zmax, relmax, power, gap)
    return _too_few(v, seeds)


def _too_few(v: Verdict, seeds: int | None) -> Verdict:
    if seeds is None or seeds >= MIN_SEEDS_Z:
        return v
    rule = v.sentence.rsplit(" -> ", 1)[0]
    return dataclasses.replace(
        v, verdict="inconclusive", sentence=f"{rule} -> inconclusive (only {seeds} seeds: too few for a z-test)"
    )


def excess_z(mean, sem, theory, gap: float = 0.0) -> float:
    """The largest distance of a seed mean from its formula beyond the gap bound, in standard errors:
    max (|mean - theory| - gap |theory|) / sem. A comparison agrees when it is <= Z_MAX (for gap = 0 it is the
    largest |z|). A point with a zero sem counts 0 if it matches to 1e-12 and inf if not.

    Example:
        >>> round(excess_z(np.array([1.1]), np.array([0.01]), np.array([1.0]), gap=0.05), 9)
        5.0
    """
    mean, sem = np.asarray(mean, dtype=float), np.asarray(sem, dtype=float)
    theory = np.broadcast_to(np.asarray(theory, dtype=float), mean.shape)
    beyond = np.maximum(np.abs(mean - theory) - gap * np.abs(theory), 0.0)
    tiny = beyond <= 1e-12 * (1 + np.abs(theory))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(tiny, 0.0, np.where(sem > 0, beyond / sem, np.inf))
    return float(np.nanmax(z)) if z.size else 0.0


def agreement(
    kind: str,
    max_abs_z: float,
    max_abs_rel: float | None,
    d: float = math.inf,
    band: float | None = None,
    seeds: int | None = None,
) -> tuple[bool, str]:
    """The rule from summary numbers: (agrees, sentence) for a comparison whose largest |z|, largest relative gap
    and statistical band are known. A DE agrees when |z| <= Z_MAX or its largest gap is within de_gap(d) plus the
    band; an unknown band (None) is not held against the check (prefer `judge`, which measures it).

    Args:
        kind: "exact", "DE", "approximation" or "none".
        max_abs_z: the largest |z| of the comparison.
        max_abs_rel: the largest relative gap |mean / theory - 1| (None: not measured).
        d: the dimension that sets a DE's gap bound de_gap(d) (inf: no gap).
        band: the statistical band Z_MAX sem / |mean| (None: unknown).
        seeds: the seed count (None: unknown); below MIN_SEEDS_Z the verdict is inconclusive.

    Returns:
        (agrees, sentence): agrees is True only for a conclusive agreement.

    Raises:
        ValueError: an unknown kind.

    Example:
        >>> agreement("exact", 1.2, 0.01, band=0.12)
        (False, 'exact formula, |z| <= 4: largest |z| 1.20, detects 12.0% -> inconclusive (detects only 12.0%)')
    """
    _check_kind(kind)
    power = math.nan if band is None else float(band)
    gap = de_gap(d) if kind == "DE" and math.isfinite(d) else 0.0
    rel = math.nan if max_abs_rel is None else float(max_abs_rel)
    if kind == "none":
        return False, "no closed form: nothing to judge"
    stat = 0.0 if math.isnan(power) else power
    within = max_abs_z <= Z_MAX or (kind != "exact" and not math.isnan(rel) and rel <= gap + stat)
    v = _too_few(_verdict(kind, within, float(max_abs_z), rel, power, gap), seeds)
    return v.agrees, v.sentence


def _verdict(kind, within, zmax, relmax, power, gap) -> Verdict:
    if not within:
        verdict = "disagrees"
    elif power > DETECTS_MAX:
        verdict = "inconclusive"
    else:
        verdict = "agrees"
    said = f"{verdict} (detects only {gap + power:.1%})" if verdict == "inconclusive" else verdict
    power_txt = "" if math.isnan(power) else f", detects {gap + power:.1%}"
    if kind == "exact":
        rule = f"exact formula, |z| <= {Z_MAX:g}: largest |z| {zmax:.2f}"
    else:
        name = "deterministic equivalent" if kind == "DE" else "approximation"
        gap_txt = "not measured" if math.isnan(relmax) else f"{relmax:.2%}"
        rule = (
            f"{name}, |z| <= {Z_MAX:g} beyond a gap bound of {gap:.1%}: largest |z| {zmax:.2f}, largest gap {gap_txt}"
        )
    return Verdict(kind, verdict, zmax, relmax, power, gap, f"{rule}{power_txt} -> {said}")
