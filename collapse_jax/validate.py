"""`collapse-jax validate`: every closed form the lab ships, simulated at a few configurations and compared.

Each catalogue entry (`Check`, one small record of `engine/catalogue.py`; every family writes its own in
`<family>/catalogue.py`) names a formula, the theory note that derives it, its kind, its gap bound, its measured
per-seed spread and a function returning per-seed simulated values (seeds, points) with the theory at the same
points. The seeds of a mode follow from its target statistical band (`TARGETS`); the verdict is
the lab's one rule (`engine/agreement.py`): a point agrees when |mean - theory| <= gap |theory| + 4 sem. Each
row says what its check `detects` (gap + 4 sem/|mean|), and its negative controls (the theory scaled by
1 -+ 2 detects) must fail. The test suite runs the same catalogue (quick), so report and tests cannot drift.

    collapse-jax validate [--quick | --full] [--controls] [--family regression,distributions,kernels]

To add a formula: append one `Check` to its family's `catalogue.entries()`, with cv from `calibrate`.

Example:
    >>> from collapse_jax import validate
    >>> rows = validate.run(validate.select("regression")[:1], full=False, progress=False)
    >>> rows[0]["kind"], rows[0]["agrees"], rows[0]["detects"] <= 0.05
    ('exact', True, True)
    >>> [c["fails"] for c in rows[0]["controls"]]
    [True, True]
"""

from __future__ import annotations

import concurrent.futures
import math
import textwrap
import time
from pathlib import Path

import numpy as np

from collapse_jax import experiment  # noqa: F401  (registers every family's experiment kinds)
from collapse_jax.distributions import catalogue as _distributions
from collapse_jax.engine import agreement, checks, compile_options, plotting, protocol, timing
from collapse_jax.engine.catalogue import MARGIN as MARGIN  # re-exported: the seed rule's constants and record
from collapse_jax.engine.catalogue import MIN_SEEDS as MIN_SEEDS
from collapse_jax.engine.catalogue import Check
from collapse_jax.engine.progress import reporter
from collapse_jax.kernels import catalogue as _kernels
from collapse_jax.regression import catalogue as _regression

FAMILIES = protocol.families()  # the families that registered experiment kinds


TARGETS = {"quick": 0.05, "full": 0.01}  # the statistical band each mode must reach (issue #22: <= 5% / <= 1%)


def _catalogue() -> list[Check]:
    """Every family's checks. The order is part of the record: `run` draws check i from key + i, so the families
    come in the order their checks were first written (regression, distributions, kernels), not alphabetically."""
    return [*_regression.entries(), *_distributions.entries(), *_kernels.entries()]


def calibrate(selected: list[Check], seeds: int = 2000, key: int = 1) -> list[tuple[str, float]]:
    """(formula, cv) measured at `seeds` seeds: how the catalogue's cv values were set (one pilot run per entry,
    on a key the catalogue's runs do not use)."""
    out = []
    for c in selected:
        _, sim, _ = c.simulate(seeds, key)
        mean, sem = agreement.mean_sem(sim)
        out.append((c.formula, agreement.band(mean, sem) * math.sqrt(seeds) / agreement.Z_MAX))
    return out


CRITERIA = (
    f"Seeds per formula follow from a target statistical band (quick {TARGETS['quick']:.0%}, full "
    f"{TARGETS['full']:.0%}; a DE's band need not go below its gap bound) and the formula's measured per-seed "
    f"spread (cv). `detects` is the smallest relative "
    f"error the check sees: the gap bound plus Z_MAX sem/|mean| at the best-resolved point. A point agrees when "
    f"|mean - theory| <= gap |theory| + {agreement.Z_MAX:g} sem: gap 0 for exact formulas, {agreement.DE_GAP_C:g}/d "
    f'for deterministic equivalents (engine/agreement.py, theory/ridge.md "Finite-size gap"). No variance '
    f"reduction is used: every estimator is a plain seed mean; the samplers draw exact sufficient statistics "
    f"(theory/samplers.md), which makes a seed cheaper, not less variable."
)


def select(families: str | None = None) -> list[Check]:
    """The catalogue, or the checks of the named families (comma-separated)."""
    wanted = FAMILIES if not families else tuple(f.strip() for f in families.split(","))
    for f in wanted:
        checks.choice("family", f, FAMILIES)
    return [c for c in _catalogue() if c.family in wanted]


def run(
    selected: list[Check], full: bool = False, key: int = 0, progress: bool = True, threads: int = 2, on_row=None
) -> list[dict]:
    """Simulate every check at the seeds its mode's target needs; one row per check with the verdict
    (engine/agreement.py), what the check detects, and its negative controls.

    Each row's "controls" holds, for the theory scaled by 1 - 2 detects and 1 + 2 detects, the largest distance
    beyond the allowed band in standard errors (`agreement.excess_z`) and whether that control fails as it must.

    `threads` checks are simulated at once: a check spends most of its first run compiling, which keeps
    about one and a half of two cores busy, and the next check's tracing and compiling fill the rest
    (validate --quick's first run: 55 s in one thread, 46 s in two, same draws: check i always uses key + i).
    Each check's programs are compiled for latency (`compile_options.for_latency`): they run once, for well under
    their compile time, and their numbers are the same bit for bit.
    Rows, verdicts and progress lines come in the catalogue's order whatever finishes first; `on_row(rows)`, when
    given, is called with the rows so far after each one, while the later checks still run (`main` draws a
    family's figure there).
    """
    target = TARGETS["full" if full else "quick"]
    checks.size("threads", threads, lo=1)
    if on_row is not None and not callable(on_row):
        raise ValueError(f"on_row must be a function of the rows so far, or None, got {on_row!r}"[:300])

    def simulate(i: int, c: Check):
        seeds = c.seeds(target)
        t0 = time.perf_counter()
        with compile_options.for_latency():  # each program runs once: compiled faster, the same numbers
            x, sim, th = c.simulate(seeds, key + i)
        return seeds, x, sim, th, time.perf_counter() - t0

    rows = []
    pool = concurrent.futures.ThreadPoolExecutor(threads)
    try:
        for c, done in zip(selected, [pool.submit(simulate, i, c) for i, c in enumerate(selected)], strict=True):
            seeds, x, sim, th, seconds = done.result()
            rows.append(_row(c, seeds, x, sim, th, seconds))
            reporter(progress)(
                f"[validate] {'ok  ' if rows[-1]['agrees'] else 'FAIL'} {c.formula} ({seeds} seeds, detects "
                f"{rows[-1]['detects']:.1%}, {seconds:.1f}s wall{', beside other checks' if threads > 1 else ''})"
            )
            if on_row is not None:
                on_row(rows)
    finally:
        pool.shutdown(cancel_futures=True)  # a failed check stops the run: the checks not yet started never start
    return rows


def _row(c: Check, seeds: int, x, sim, th, seconds: float) -> dict:
    """One check's record: the verdict of its simulation against its theory, and the negative controls."""
    mean, sem = agreement.mean_sem(sim)
    th = np.broadcast_to(np.asarray(th, float), mean.shape)
    v = agreement.judge_moments(c.kind, mean, sem, th, gap=c.gap)
    controls = []
    for sign in (-1, 1):
        scaled = th * (1 + sign * 2 * v.detects)
        z = agreement.excess_z(mean, sem, scaled, c.gap)
        controls.append(dict(scale=1 + sign * 2 * v.detects, excess_z=z, fails=z > agreement.Z_MAX))
    return dict(
        **{k: getattr(c, k) for k in ("family", "formula", "note", "config", "kind", "gap")},
        **{k: getattr(v, k) for k in ("max_abs_z", "max_rel_gap", "band", "detects", "agrees")},
        seeds=seeds,
        verdict=v.sentence,
        controls=controls,
        seconds=seconds,
        x=np.asarray(x),
        mean=mean,
        sem=sem,
        theory=th,
    )


def table(rows: list[dict]) -> list[str]:
    """The markdown table: one line per formula with its kind, seeds, what it detects and its verdict."""
    head = (
        "| family | formula | kind | theory | configuration | seeds | detects | largest \\|z\\| | largest rel. gap "
        "| verdict |\n|---|---|---|---|---|---:|---:|---:|---:|---|"
    )
    return [head] + [
        f"| {r['family']} | {r['formula']} | {r['kind']} | {r['note']} | {r['config']} | {r['seeds']} | "
        f"{r['detects']:.1%} | {r['max_abs_z']:.2f} | {r['max_rel_gap']:.2%} | "
        f"{'pass' if r['agrees'] else '**FAIL**'} |"
        for r in rows
    ]


def control_table(rows: list[dict]) -> list[str]:
    """The negative controls: each formula's theory scaled by 1 -+ 2 detects must fail (excess |z| > Z_MAX)."""
    head = (
        "| formula | detects | scale | excess \\|z\\| | control | scale | excess \\|z\\| | control |\n"
        "|---|---:|---:|---:|---|---:|---:|---|"
    )
    return [head] + [
        f"| {r['formula']} | {r['detects']:.1%} | "
        + " | ".join(
            f"{c['scale']:.3f} | {c['excess_z']:.1f} | {'fails (good)' if c['fails'] else '**PASSES**'}"
            for c in r["controls"]
        )
        + " |"
        for r in rows
    ]


def family_figure(rows: list[dict], out: str | Path) -> tuple[Path, Path]:
    """out/<family>.png and .pdf: one panel per check of the family of `rows`, theory as a line and the simulated
    means with their standard errors as markers."""
    families = {r["family"] for r in rows}
    if len(families) != 1:
        raise ValueError(f"rows must be one family's, got {sorted(families)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fig, axs = plotting.panels(len(rows), sharey=False, ncols=3)  # rows of three: every panel keeps its y label
    for ax, r in zip(axs, rows, strict=True):
        ax.plot(r["x"], r["theory"], "-", color="C0", label=f"theory ({r['kind']})")
        ax.errorbar(r["x"], r["mean"], yerr=r["sem"], fmt="o", ms=3, color="C1", label="simulation")
        ax.set_title(textwrap.fill(r["formula"], 40), fontsize=8)
        ax.set_xlabel("n")
        ax.set_ylabel("test error" if r["family"] == "regression" else "mean over seeds (title)", fontsize=8)
        ax.legend(fontsize=7)
    png, pdf = plotting.save(fig, out / rows[0]["family"])
    return png, pdf


def report(rows: list[dict], out: str | Path, mode: str, figures: dict | None = None) -> Path:
    """results/validate/report.md with the table, the criteria, and one figure per family (`figures`: those
    already drawn, family -> (png, pdf); the others are drawn here)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = dict(figures or {})
    lines = (
        [
            f"# collapse_jax validate ({mode})",
            "",
            CRITERIA,
            "",
        ]
        + table(rows)
        + ["", "Negative controls (the same simulation against the theory scaled by 1 -+ 2 detects):", ""]
        + control_table(rows)
        + [""]
    )
    for family in dict.fromkeys(r["family"] for r in rows):
        if family not in figures:
            figures[family] = family_figure([r for r in rows if r["family"] == family], out)
        png, pdf = figures[family]
        lines.append(f"![{family}]({png.name})")  # markdown viewers show PNG; the PDF is for print
        lines.append(f"[{family} (PDF)]({pdf.name})")
        lines.append("")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(args) -> int:
    selected = select(args.family)
    mode = "full" if args.full else "quick"
    t0, c0 = time.perf_counter(), time.process_time()
    figures: dict = {}
    per_family = {f: sum(c.family == f for c in selected) for f in dict.fromkeys(c.family for c in selected)}

    def draw_complete_family(rows):
        """A family's figure is drawn once its last row is in, while the later checks still simulate: a core
        that would idle through the last check's run draws it (validate --quick: 3-4 s of figures)."""
        mine = [r for r in rows if r["family"] == rows[-1]["family"]]
        if len(mine) == per_family[rows[-1]["family"]]:
            with timing.stage("figure"):
                figures[rows[-1]["family"]] = family_figure(mine, args.out)

    rows = run(selected, full=args.full, progress=not args.quiet, on_row=draw_complete_family)
    for line in table(rows):
        print(line)
    failed = [r for r in rows if not r["agrees"]]
    passed_controls = [r for r in rows if not all(c["fails"] for c in r["controls"])]
    if getattr(args, "controls", False):
        print()
        for line in control_table(rows):
            print(line)
        print(
            f"{len(rows) - len(passed_controls)} of {len(rows)} negative controls fail as they must"
            + (
                f"; these pass and cannot be trusted: {[r['formula'] for r in passed_controls]}"
                if passed_controls
                else ""
            )
        )
    with timing.stage("figure"):
        path = report(rows, args.out, mode, figures)
    print(
        f"{len(rows) - len(failed)} of {len(rows)} formulas agree with simulation ({mode}, band <= "
        f"{TARGETS[mode]:.0%}); {time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU "
        f"(this process); report: {path}"
    )
    return 1 if failed or (getattr(args, "controls", False) and passed_controls) else 0
