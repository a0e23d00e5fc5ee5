"""Figures: theory as lines, simulation as markers with +-1 standard-error bars; PNG and PDF.

Every experiment's [plot] table may set `style` ("default" or "paper", a packaged single-column style) and
`size` ([width, height] in inches, applied when the figure is saved); `use` applies them to all figures drawn
inside it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from collapse_jax.engine import checks

STYLE = Path(__file__).with_name("collapse.mplstyle")
STYLES = {"default": STYLE, "paper": Path(__file__).with_name("paper.mplstyle")}
PLOT_KEYS = {"style": "str", "size": "reals"}  # the [plot] keys every family accepts
_current = {"style": STYLE, "size": None}


def options(table: dict) -> dict:
    """The style and size of a [plot] table, checked: {"style": name, "size": (w, h) or None}."""
    style = checks.choice("plot.style", table.get("style", "default"), tuple(STYLES))
    size = table.get("size")
    if size is not None:
        checks.real_array("plot.size", size, lo=0.5, hi=50.0, ndim=(1,))
        if len(size) != 2:
            raise ValueError(f"plot.size must be [width, height] in inches, got {size!r}")
        size = tuple(float(v) for v in size)
    return dict(style=style, size=size)


@contextlib.contextmanager
def use(style: str = "default", size=None):
    """Draw (and save) the figures made inside with this style and size."""
    old = dict(_current)
    _current.update(style=STYLES[style], size=size)
    try:
        yield
    finally:
        _current.update(old)


def style():
    """A context applying the current style (for figures drawn with plt directly)."""
    return plt.style.context(_current["style"])


def theory_vs_simulation(
    x_theory,
    theory,
    x_sim,
    sim_mean,
    sim_sem,
    labels,
    *,
    xlabel,
    ylabel,
    title,
    logx=True,
    logy=True,
    legend_title=None,
    ax=None,
    reference_slope=None,
):
    """One colour per curve: theory line (x_theory, theory[i]) and markers (x_sim, sim_mean[i] +- sim_sem[i]).

    Draws into `ax` when given (panels), else a new figure; returns the figure. reference_slope: a grey
    line of that log-log slope through the start of the first curve.
    """
    with style():
        fig, ax = plt.subplots() if ax is None else (ax.figure, ax)
        for i, label in enumerate(labels):
            (line,) = ax.plot(x_theory, theory[i], label=label)
            yerr = sim_sem[..., i, :] if np.ndim(sim_sem) == 3 else sim_sem[i]  # (2, curves, x): asymmetric bars
            ax.errorbar(x_sim, sim_mean[i], yerr=yerr, fmt="o", color=line.get_color(), mfc="white")
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
        ax.set_xscale("log" if logx else "linear")
        ax.set_yscale("log" if logy else "linear")
        ax.plot([], [], "k-", label="theory")
        ax.errorbar([], [], yerr=[], fmt="o", color="k", mfc="white", label="simulation ±1 s.e.")
        if reference_slope is not None:
            ref = theory[0][0] * 1.5 * (np.asarray(x_theory) / x_theory[0]) ** reference_slope
            ax.plot(x_theory, ref, color="0.6", lw=1, label=f"slope {reference_slope:.2f} (predicted)")
        ax.legend(title=legend_title, fontsize=8)
        _plain_minor_ticks(ax)
    return fig


def panels(count: int, sharey: bool = True):
    """A row of `count` panels (sharing the y axis unless told not to) in the lab's style: (figure, axes)."""
    with style():
        w, h = plt.rcParams["figure.figsize"]
        fig, axs = plt.subplots(
            1, count, figsize=(w if count == 1 else 0.6 * w * count, h), sharey=sharey, squeeze=False
        )
    return fig, list(axs[0])


def _plain_minor_ticks(ax):
    """Readable log axes: where fewer than two powers of ten fall inside a log axis (one labelled tick or none
    would be left), minor ticks are labelled too, as plain numbers (every one when no power of ten is inside,
    else those at 2 and 5 x 10^k); elsewhere they stay unlabelled so that they do not overlap."""
    for axis, scale, lim in ((ax.xaxis, ax.get_xscale(), ax.get_xlim()), (ax.yaxis, ax.get_yscale(), ax.get_ylim())):
        if scale != "log":
            continue
        lo, hi = sorted(lim)
        inside = np.floor(np.log10(hi)) - np.ceil(np.log10(lo)) + 1 if lo > 0 else 2
        keep = range(1, 10) if inside < 1 else (2, 5)
        axis.set_minor_formatter(
            matplotlib.ticker.FuncFormatter(lambda v, _, keep=keep: _leading(v, keep))
            if inside < 2
            else matplotlib.ticker.NullFormatter()
        )


def _leading(v: float, keep) -> str:
    """v as a plain number ("0.3", "20") when its leading digit is in keep, else no label."""
    if v <= 0:
        return ""
    digit = round(v / 10 ** np.floor(np.log10(v)))
    return f"{v:g}" if digit in keep else ""


def curves_against_T(
    T_theory, theory, T_sim, sim_mean, sim_sem, ns, rule_labels, title, crossover=None, reference_slope=None
):
    """Log-log error against T: a colour per generation n, a line style per lambda rule.

    theory[i]: (len(ns), len(T_theory)) for rule i; sim_mean, sim_sem: (rules, len(T_sim), len(ns)).
    crossover: {n: T*} drawn as dotted vertical lines. reference_slope: a grey line of that slope.
    """
    styles = ["-", "--", ":", "-."]
    with style():
        fig, ax = plt.subplots()
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, label in enumerate(rule_labels):
            for j, n in enumerate(ns):
                c = colours[j % len(colours)]
                ax.plot(T_theory, theory[i][j], styles[i % 4], color=c, label=f"n = {n}" if i == 0 else None)
                ax.errorbar(T_sim, sim_mean[i, :, j], yerr=sim_sem[i, :, j], fmt="os^v"[i % 4], color=c, mfc="white")
            ax.plot([], [], styles[i % 4], color="k", label=label)
        for j, n in enumerate(ns):
            if crossover and n in crossover and T_theory[0] <= crossover[n] <= T_theory[-1]:
                ax.axvline(crossover[n], color=colours[j % len(colours)], ls=":", lw=1)
        if reference_slope is not None:
            ref = theory[0][0][0] * 1.6 * (T_theory / T_theory[0]) ** reference_slope
            ax.plot(T_theory, ref, color="0.6", lw=1, label=f"slope {reference_slope:.2f} (predicted)")
        ax.set(xscale="log", yscale="log", xlabel="downstream sample size T", ylabel="test error", title=title)
        ax.legend(fontsize=8, ncol=2)
        _plain_minor_ticks(ax)
    return fig


def close(fig):
    plt.close(fig)


def save(fig, stem: str | Path) -> list[Path]:
    """Write stem.png and stem.pdf, at the size `use` set (if any), every panel's log axes readable."""
    stem = Path(stem)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    if _current["size"] is not None:
        fig.set_size_inches(*_current["size"])
    for ax in fig.axes:
        _plain_minor_ticks(ax)
    for p in paths:
        fig.savefig(p)
    plt.close(fig)
    return paths
