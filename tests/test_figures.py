"""The lab's figure style: ordered colours that are ordered, one kind of log tick label, the note on every figure,
and theory lines for a real/synthetic mixture drawn only where the rounding of p T does not bite."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from collapse_jax.engine import plotting
from collapse_jax.regression.compare import _whole_rows_grid


def test_ordered_colours_grow_lighter_one_step_at_a_time():
    """Luminance (Rec. 709) strictly increases along the colours, so an ordered parameter reads in order."""
    rgb = np.array(plotting.ordered_colours(6))[:, :3]
    luminance = rgb @ np.array([0.2126, 0.7152, 0.0722])
    assert np.all(np.diff(luminance) > 0.03), luminance
    assert len(plotting.ordered_colours(1)) == 1


def test_log_ticks_are_all_plain_numbers_when_minor_ticks_are_labelled(tmp_path):
    """An axis from 20 to 500 labels 20, 50, 100, 200, 500: the power of ten as a plain number too (not 10^2)."""
    fig, ax = plt.subplots()
    ax.loglog([20, 500], [1e-3, 1e1])
    plotting.save(fig, tmp_path / "ticks")
    fig.canvas.draw()
    major = {t.get_text() for t in ax.xaxis.get_majorticklabels() if t.get_text()}
    minor = {t.get_text() for t in ax.xaxis.get_minorticklabels() if t.get_text()}
    assert "100" in major and not any("10^" in t or "mathdefault" in t for t in major), major
    assert {"20", "50", "200", "500"} <= minor
    y_major = [t.get_text() for t in ax.yaxis.get_majorticklabels() if t.get_text()]  # four decades: 10^k only
    assert y_major and all("10^" in t for t in y_major), y_major


def test_every_saved_figure_says_what_lines_and_markers_are(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([1, 2], [1, 2])
    paths = plotting.save(fig, tmp_path / "note")
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size > 1000 for p in paths)
    assert [t.get_text() for t in fig.texts] == [plotting.NOTE]  # a plain figure: a text below it
    fig2, _ = plt.subplots()
    plotting.save(fig2, tmp_path / "bare", note=None)
    assert fig2.texts == []


@pytest.mark.parametrize("p", [0.01, 0.1, 0.3, 0.5])
def test_mixture_theory_is_drawn_where_p_T_is_whole(p):
    """The simulation labels round(p T) rows synthetic; the line is drawn only at T with p T whole (exactly the
    simulated fraction), inside the scanned range, and p = 0.01 starts at T = 100 (one synthetic row)."""
    fine = np.geomspace(30, 10_000, 60)
    T = _whole_rows_grid(fine, p)
    assert len(T) >= 10 and np.all(np.diff(T) > 0)
    np.testing.assert_allclose(p * T, np.round(p * T), atol=1e-9)
    assert T.min() >= 29 and T.max() <= 10_001
    if p == 0.01:
        assert T.min() == 100


@pytest.mark.parametrize("p", [None, 0.0, 1.0])
def test_unmixed_downstream_draws_every_T(p):
    fine = np.geomspace(30, 10_000, 60)
    np.testing.assert_array_equal(_whole_rows_grid(fine, p), np.unique(fine.round().astype(int)))
