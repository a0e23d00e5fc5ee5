"""One engine for every family: `collapse-jax sweep` on an experiment file of any kind sweeps its own keys
(a distribution field, a kernel field, a spectrum field), and every grid point equals the single run."""

from __future__ import annotations

import numpy as np
import pytest

from collapse_jax import cli, experiment
from collapse_jax.engine import io

KDE = """
name = "kde_grid"
kind = "kde_chain"
[chain]
generations = 4
bandwidths = [0.2]
keep = [0]
[simulation]
seeds = 16
[grid]
"chain.M" = [30, 60]
"""

KRR = """
name = "krr_grid"
kind = "krr_chain"
[data]
kind = "synthetic"
N = 240
p = 8
beta = 1.5
r = 0.5
test = 40
[kernel]
name = "rbf"
lengthscale = 1.0
[chain]
T0 = 30
T = 30
generations = 2
lam = [0.01]
sigma0 = 0.1
[simulation]
seeds = 8
[grid]
"kernel.lengthscale" = [1.0, 3.0]
"""

SPECTRUM = """
name = "beta_grid"
kind = "lambda_scan"
[spectrum]
kind = "power_law"
d = 12
beta = 1.5
r = 0.5
[generators]
T0 = 40
[downstream]
T = 30
[scan]
lam = [0.1]
n = [0, 1]
[simulation]
seeds = 16
[grid]
"spectrum.beta" = [1.5, 2.5]
"""


def _single(text, key, value):
    import tomllib

    cfg = tomllib.loads(text)
    cfg.pop("grid")
    section, _, k = key.partition(".")
    cfg[section][k] = value
    return experiment.compute(experiment.from_config(cfg)).arrays


@pytest.mark.parametrize(
    "text, key, values, field",
    [
        (KDE, "chain.M", [30, 60], "var"),
        (KRR, "kernel.lengthscale", [1.0, 3.0], "test_error_pool"),
        (SPECTRUM, "spectrum.beta", [1.5, 2.5], "test_error"),
    ],
)
def test_cli_sweep_of_any_family_equals_single_runs(tmp_path, text, key, values, field):
    path = tmp_path / "s.toml"
    path.write_text(text)
    assert cli.main(["sweep", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    arrays, meta = io.load(tmp_path / "out" / "sweep")
    assert meta["axes"][field][0] == key and meta["grid"] == {key: values}
    np.testing.assert_array_equal(arrays[f"coord:{key}"], values)
    for i, v in enumerate(values):
        np.testing.assert_array_equal(arrays[field][i], _single(text, key, v)[field])
    assert not np.array_equal(arrays[field][0], arrays[field][1])


def test_bad_family_sweeps(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(KDE.replace('"chain.M"', '"chain.MM"'))
    assert cli.main(["sweep", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "MM" in capsys.readouterr().err
    path.write_text(KDE.replace('"chain.M" = [30, 60]', '"chain.M" = 30'))
    assert cli.main(["sweep", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "grid.chain.M" in capsys.readouterr().err


GAUSSIAN = """
name = "gaussian_grid"
kind = "gaussian_chain"
[chain]
generations = 3
estimator = "mle"
[simulation]
seeds = 16
[grid]
"chain.M" = [10, 20]
"""


@pytest.mark.parametrize("values", ["[10, 20]", "[[10], [20]]"])
def test_gaussian_sweep_over_a_list_key_by_scalars_or_single_lists(tmp_path, values):
    """A list key swept by scalars ("chain.M" = [10, 20], refused before) or by one-entry lists (computed every
    point, then crashed with KeyError 'mu_M10' before): each point runs that one M, its M axis is the grid's, and
    cj.sweep_load reads it back with an integer coordinate."""
    import collapse_jax as cj

    path = tmp_path / "s.toml"
    path.write_text(GAUSSIAN.replace("[10, 20]", values))
    assert cli.main(["sweep", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    res = cj.sweep_load(tmp_path / "out")
    assert res.axes["mu"] == ["chain.M", "seed", "n"] and res.arrays["mu"].shape[:2] == (2, 16)
    assert res.coords["chain.M"].tolist() == [10, 20] and res.coords["chain.M"].dtype.kind == "i"
    for i, M in enumerate([10, 20]):
        np.testing.assert_array_equal(res.arrays["mu"][i], _single(GAUSSIAN, "chain.M", [M])["mu"][0])
    assert res.summary["formula"] == "exact" and res.summary["agrees"] and len(res.summaries) == 2


def test_sweep_load_reads_a_kde_sweep_with_typed_coordinates(tmp_path):
    """cj.sweep_load on a KDE sweep folder (a bare KeyError 'test_error' before): arrays over (chain.M, start,
    bandwidth, seed, n), M as integers; to_dataframe keeps them numbers."""
    import collapse_jax as cj

    path = tmp_path / "s.toml"
    path.write_text(KDE)
    assert cli.main(["sweep", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    res = cj.sweep_load(tmp_path / "out")
    assert res.axes["var"] == ["chain.M", "start", "bandwidth", "seed", "n"]
    assert res.coords["chain.M"].tolist() == [30, 60] and res.coords["chain.M"].dtype.kind == "i"
    assert res.summary["formula"] == "exact" and "grid points agree" in res.agreement()[0]
    pytest.importorskip("pandas")
    pytest.importorskip("xarray")
    df = res.to_dataframe()
    assert df["chain.M"].dtype.kind == "i" and set(df["chain.M"]) == {30, 60}


def test_family_sweep_shards_resume_and_merge(tmp_path, capsys):
    """Two shards of a KDE sweep each write their grid point; the second merges; rerunning finds every point on
    disk (nothing recomputed), and `merge` on the folder gives the same arrays."""
    import collapse_jax as cj

    path, out = tmp_path / "s.toml", tmp_path / "out"
    path.write_text(KDE)
    assert cli.main(["sweep", str(path), "--out", str(out), "--shard", "0/2", "--quiet"]) == 0
    assert not (out / "sweep.npz").exists() and len(list((out / "chunks").glob("*.npz"))) == 1
    assert cli.main(["sweep", str(path), "--out", str(out), "--shard", "1/2", "--quiet"]) == 0
    first = cj.sweep_load(out).arrays["var"]
    assert cli.main(["sweep", str(path), "--out", str(out)]) == 0
    assert "2 of the 2 to run here already on disk" in capsys.readouterr().err
    assert cli.main(["merge", str(out)]) == 0
    np.testing.assert_array_equal(cj.sweep_load(out).arrays["var"], first)
    path.write_text(KDE.replace("seeds = 16", "seeds = 8"))  # another config in the same folder is refused
    assert cli.main(["sweep", str(path), "--out", str(out), "--quiet"]) == 2
