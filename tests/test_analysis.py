"""Results for analysis and command-line settings: to_xarray/to_dataframe round trips with the right coordinates,
coordinates checked when saving, `run FILE key=value` and `sweep FILE key=value` recorded in the results,
and the [plot] style and size."""

from __future__ import annotations

import numpy as np
import pytest
from test_cli_io import TINY

import collapse_jax as cj
from collapse_jax import cli
from collapse_jax.engine import io

pytest.importorskip("xarray")


def test_result_to_xarray_and_dataframe_round_trip():
    res = cj.simulate(cj.Spectrum.isotropic(6), cj.Generators(T0=20), cj.Downstream(T=20), 2, 8, key=0, seed_offset=5)
    ds = res.to_xarray()
    assert dict(ds.sizes) == {"seed": 8, "n": 3}
    np.testing.assert_array_equal(ds["seed"], np.arange(5, 13))
    np.testing.assert_array_equal(ds["test_error"], res.test_error)
    df = res.to_dataframe()
    assert len(df) == 8 * 3 and {"seed", "n", "test_error", "generator_error"} <= set(df.columns)
    row = df[(df.seed == 7) & (df.n == 2)]
    assert float(row.test_error.iloc[0]) == res.test_error[2, 2]


def test_sweep_to_xarray_and_dataframe_round_trip(tmp_path):
    grid = {"down.lam": [0.1, 1.0], "gen.sigma0": [0.5, 1.0, 2.0]}
    res = cj.sweep(
        cj.Spectrum.isotropic(6),
        cj.Generators(T0=20),
        cj.Downstream(T=20),
        grid,
        generations=2,
        seeds=8,
        key=0,
        out=tmp_path / "s",
        progress=False,
    )
    ds = res.to_xarray()
    assert dict(ds.sizes) == {"down.lam": 2, "gen.sigma0": 3, "seed": 8, "n": 3}
    np.testing.assert_allclose(ds["gen.sigma0"], grid["gen.sigma0"])
    np.testing.assert_array_equal(ds["test_error"], res.test_error)
    assert set(np.asarray(ds["formula"]).ravel()) == {"DE"}  # ridge downstream everywhere
    df = res.to_dataframe()
    assert len(df) == 2 * 3 * 8 * 3
    row = df[(df["down.lam"] == 1.0) & (df["gen.sigma0"] == 2.0) & (df.seed == 3) & (df.n == 1)]
    assert float(row.test_error.iloc[0]) == res.test_error[1, 2, 3, 1]
    assert float(row.theory_test_error.iloc[0]) == res.theory_test_error[1, 2, 1]
    arrays, _ = io.load(tmp_path / "s" / "sweep")  # the coordinates are in sweep.npz too
    np.testing.assert_allclose(arrays["coord:gen.sigma0"], grid["gen.sigma0"])
    np.testing.assert_array_equal(arrays["coord:n"], np.arange(3))
    assert cj.sweep_load(tmp_path / "s").to_dataframe().equals(df)


def test_saving_refuses_arrays_that_do_not_match_their_coordinates(tmp_path):
    with pytest.raises(ValueError, match="axis 'n'"):
        io.save(tmp_path / "x", {"a": np.zeros((2, 3))}, {"a": ["seed", "n"]}, {}, coords={"n": np.arange(4)})
    assert not list(tmp_path.iterdir())


def test_run_with_settings_changes_the_run_and_records_it(tmp_path, capsys):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    assert (
        cli.main(
            [
                "run",
                str(path),
                "downstream.T=30",
                "generators.sigma0=0.5",
                "simulation.seeds=32",
                'name="tiny_T30"',
                "--out",
                str(tmp_path),
                "--quiet",
            ]
        )
        == 0
    )
    arrays, meta = io.load(tmp_path / "tiny_T30")
    assert arrays["test_error"].shape == (1, 3, 32, 3)
    assert meta["config"]["downstream"]["T"] == 30 and meta["config"]["generators"]["sigma0"] == 0.5
    for bad, word in (("downstream.TT=30", "TT"), ("downstream=3", "table"), ("generators.T0=[1,", "TOML")):
        assert cli.main(["run", str(path), bad, "--out", str(tmp_path), "--quiet"]) == 2
        assert word in capsys.readouterr().err


def test_sweep_with_settings(tmp_path):
    from test_sweep import TOML

    path = tmp_path / "s.toml"
    path.write_text(TOML)
    assert (
        cli.main(
            [
                "sweep",
                str(path),
                "simulation.seeds=8",
                'grid."gen.sigma0"=[0.5]',
                "--out",
                str(tmp_path / "out"),
                "--quiet",
            ]
        )
        == 0
    )
    res = cj.sweep_load(tmp_path / "out")
    assert res.test_error.shape == (3, 1, 8, 4)


def test_plot_style_and_size(tmp_path, capsys):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY + '[plot]\nstyle = "paper"\nsize = [3.4, 2.4]\n')
    assert cli.main(["run", str(path), "simulation.seeds=16", "--out", str(tmp_path), "--quiet"]) == 0
    assert (tmp_path / "tiny.png").stat().st_size > 1000
    for bad, word in (('plot.style="fancy"', "plot.style"), ("plot.size=[3]", "plot.size")):
        assert cli.main(["run", str(path), bad, "--out", str(tmp_path), "--quiet"]) == 2
        assert word in capsys.readouterr().err
