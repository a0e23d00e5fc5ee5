"""Statistical helpers for Monte-Carlo-against-theory tests (numpy only)."""

import os

import numpy as np

from collapse_jax.engine import agreement


def timeout_for(quiet_seconds: float, floor: float = 600.0) -> float:
    """A subprocess timeout sized from its work rather than fixed: the seconds it takes alone on 2 cores, times the
    machine's current slowdown (load average per core, at least 1), times a margin of 10, and at least `floor`.
    On a quiet machine a 30 s sweep gets 600 s; with seven JAX processes on 2 cores, about 1050 s."""
    try:
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        load = 1.0
    return max(floor, 10.0 * quiet_seconds * max(1.0, load))


def ks_2samp_pvalue(a, b) -> float:
    """Two-sample Kolmogorov-Smirnov test, asymptotic p-value (Stephens' small-sample correction)."""
    a, b = np.sort(np.ravel(a)), np.sort(np.ravel(b))
    grid = np.concatenate([a, b])
    stat = np.max(np.abs(np.searchsorted(a, grid, "right") / a.size - np.searchsorted(b, grid, "right") / b.size))
    ne = a.size * b.size / (a.size + b.size)
    x = (np.sqrt(ne) + 0.12 + 0.11 / np.sqrt(ne)) * stat
    k = np.arange(1, 101)
    return float(np.clip(2 * np.sum((-1.0) ** (k - 1) * np.exp(-2 * k**2 * x**2)), 0.0, 1.0))


def assert_theory(res, theory, *, gap: float = 0.0, label: str = ""):
    """Both metrics agree with theory at every n by the lab's one rule (engine/agreement.py): |mean - theory| <=
    gap |theory| + Z_MAX sem, with gap = 0 for exact formulas and agreement.de_gap(d) for a deterministic
    equivalent. Returns the verdicts; each says what its check detects (gap + Z_MAX sem/|mean|), printed with -s.
    """
    verdicts = []
    for name, m, s, t in zip(res.mean()._fields, res.mean(), res.sem(), theory, strict=True):
        v = agreement.judge_moments("DE" if gap else "exact", m, s, np.asarray(t), gap=gap)
        print(f"{label} {name}: {v.sentence}")
        assert v.verdict != "disagrees", (
            f"{label} {name}: sim {np.round(m, 5)} theory {np.round(t, 5)} z {np.round(agreement.zscore(m, s, t), 2)}"
            f"; {v.sentence}"
        )
        verdicts.append(v)
    return verdicts
