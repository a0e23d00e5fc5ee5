"""Figures: theory as lines, simulation as markers with +-1 standard-error bars; PNG and PDF.

One style for the lab: an ordered colour map (`ordered_colours`) for ordered parameters (generations, sizes,
fractions) and the default cycle for categories (strategies, rules); log axes labelled in one way (all plain
numbers where few powers of ten are visible, else powers of ten only); panels laid out by matplotlib's
constrained layout, so labels never collide; and on every saved figure the note `NOTE`.

Every experiment's [plot] table may set `style` ("default" or "paper", a packaged single-column style) and
`size` ([width, height] in inches, applied when the figure is saved); `use` applies them to all figures drawn
inside it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import matplotlib.layout_engine
import matplotlib.pyplot as plt  # the backend is the user's (inline in a notebook); the CLI picks Agg
import matplotlib.ticker
import numpy as np

from collapse_jax.engine import checks

STYLE = Path(__file__).with_name("collapse.mplstyle")
STYLES = {"default": STYLE, "paper": Path(__file__).with_name("paper.mplstyle")}
PLOT_KEYS = {"style": "str", "size": "reals"}  # the [plot] keys every family accepts
NOTE = "lines: theory, markers: simulation ± 1 s.e."
ORDERED_MAP = "viridis"
_current: dict[str, Any] = {"style": STYLE, "size": None}


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


def ordered_colours(count: int) -> list:
    """`count` colours along the lab's ordered colour map, dark to light, for curves of an ordered parameter.

    Stops short of the map's pale end, so that the last curve stays visible on white.

    Example:
        >>> from collapse_jax.engine import plotting
        >>> len(plotting.ordered_colours(4))
        4
    """
    return [tuple(c) for c in plt.get_cmap(ORDERED_MAP)(np.linspace(0.0, 0.85, max(count, 1)))[:count]]


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
    ordered=False,
    x_theory_per_curve=None,
):
    """One colour per curve: theory line (x_theory, theory[i]) and markers (x_sim, sim_mean[i] +- sim_sem[i]).

    Draws into `ax` when given (panels), else a new figure; returns the figure. reference_slope: a grey
    line of that log-log slope through the start of the first curve. ordered: the curves follow an ordered
    parameter (colours from `ordered_colours`), else the category cycle. x_theory_per_curve: a list of one x
    array per curve, used instead of x_theory where curves have their own abscissae (theory[i] matching it).
    """
    with style():
        fig, ax = plt.subplots() if ax is None else (ax.figure, ax)
        colours = ordered_colours(len(labels)) if ordered else [None] * len(labels)
        for i, label in enumerate(labels):
            x_i = x_theory if x_theory_per_curve is None else x_theory_per_curve[i]
            (line,) = ax.plot(x_i, theory[i], label=label, color=colours[i])
            yerr = sim_sem[..., i, :] if np.ndim(sim_sem) == 3 else sim_sem[i]  # (2, curves, x): asymmetric bars
            ax.errorbar(x_sim, sim_mean[i], yerr=yerr, fmt="o", color=line.get_color(), mfc="white")
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
        ax.set_xscale("log" if logx else "linear")
        ax.set_yscale("log" if logy else "linear")
        if reference_slope is not None:
            ref = theory[0][0] * 1.5 * (np.asarray(x_theory) / x_theory[0]) ** reference_slope
            ax.plot(x_theory, ref, color="0.6", lw=1, label=f"slope {reference_slope:.2f} (predicted)")
        ax.legend(title=legend_title, fontsize=8)
        _plain_minor_ticks(ax)
    return fig


def panels(count: int, sharey: bool = True, ncols: int | None = None):
    """`count` panels in rows of `ncols` (default: one row), sharing the y axis unless told not to, laid out
    by constrained layout (labels never collide): (figure, flat list of the axes); spare cells are removed."""
    with style():
        w, h = plt.rcParams["figure.figsize"]
        cols = count if ncols is None else max(1, min(ncols, count))
        rows = -(-count // cols)
        fig, axs = plt.subplots(
            rows,
            cols,
            figsize=(w if cols == 1 else 0.6 * w * cols, h if rows == 1 else 0.8 * h * rows),
            sharey=sharey,
            squeeze=False,
            layout="constrained",
        )
    flat = list(axs.ravel())
    for ax in flat[count:]:
        ax.remove()
    return fig, flat[:count]


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
        if inside < 2:  # minor ticks read 20, 50: the powers of ten then read 10, 100 (not 10^1, 10^2)
            axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: _leading(v, range(1, 10))))


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
        colours = ordered_colours(len(ns))  # generations are ordered
        for i, label in enumerate(rule_labels):
            for j, n in enumerate(ns):
                c = colours[j]
                ax.plot(T_theory, theory[i][j], styles[i % 4], color=c, label=f"n = {n}" if i == 0 else None)
                ax.errorbar(T_sim, sim_mean[i, :, j], yerr=sim_sem[i, :, j], fmt="os^v"[i % 4], color=c, mfc="white")
            if len(rule_labels) > 1:  # one rule: the title names it
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


def save(fig, stem: str | Path, note: str | None = NOTE) -> list[Path]:
    """Write stem.png and stem.pdf, at the size `use` set (if any), every panel's log axes readable, and
    `note` (what lines and markers mean) in small grey type below the bottom right corner."""
    stem = Path(stem)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    if _current["size"] is not None:
        fig.set_size_inches(*_current["size"])
    for ax in fig.axes:
        _plain_minor_ticks(ax)
    if note:
        style = dict(ha="right", fontsize=7, color="0.35")
        if isinstance(fig.get_layout_engine(), matplotlib.layout_engine.ConstrainedLayoutEngine):
            fig.supxlabel(note, x=0.99, **style)  # the layout keeps a row for it, below legends outside the axes
        else:  # below everything (va="top" at y = 0): the tight bounding box grows to hold it
            fig.text(0.99, 0.0, note, va="top", **style)
    for p in paths:  # tight, as the styles ask (savefig runs outside their context): the note is drawn, not cut
        fig.savefig(p, bbox_inches="tight")
    plt.close(fig)
    return paths
