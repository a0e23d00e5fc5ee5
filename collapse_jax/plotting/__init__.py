"""Figures: theory as lines, simulation as markers with +-1 standard-error bars; PNG and PDF."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

STYLE = Path(__file__).with_name("collapse.mplstyle")


def theory_vs_simulation(x_theory, theory, x_sim, sim_mean, sim_sem, labels, *, xlabel, ylabel, title,
                         logx=True, logy=True, legend_title=None):
    """One colour per curve: theory line (x_theory, theory[i]) and markers (x_sim, sim_mean[i] +- sim_sem[i])."""
    with plt.style.context(STYLE):
        fig, ax = plt.subplots()
        for i, label in enumerate(labels):
            line, = ax.plot(x_theory, theory[i], label=label)
            ax.errorbar(x_sim, sim_mean[i], yerr=sim_sem[i], fmt="o", color=line.get_color(), mfc="white")
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
        ax.set_xscale("log" if logx else "linear")
        ax.set_yscale("log" if logy else "linear")
        ax.plot([], [], "k-", label="theory")
        ax.errorbar([], [], yerr=[], fmt="o", color="k", mfc="white", label="simulation ±1 s.e.")
        ax.legend(title=legend_title, fontsize=8)
    return fig


def save(fig, stem: str | Path) -> list[Path]:
    """Write stem.png and stem.pdf."""
    stem = Path(stem)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for p in paths:
        fig.savefig(p)
    plt.close(fig)
    return paths
