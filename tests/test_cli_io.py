"""The command line, experiment files and the results written to disk."""
import json

import numpy as np
import pytest

from collapse_jax import cli, experiment, io

TINY = """
name = "tiny"
[spectrum]
kind = "power_law"
d = 20
beta = 1.5
r = 0.5
[generators]
T0 = 60
[downstream]
T = 40
sigma = 0.5
[scan]
lam = {logspace = [-2, 0, 3]}
n = [0, 2]
[simulation]
seeds = 64
key = 3
"""


def test_run_writes_results_and_figure(tmp_path, capsys):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    assert cli.main(["run", str(path), "--out", str(tmp_path), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "largest |z|" in printed
    arrays, meta = io.load(tmp_path / "tiny")
    assert arrays["test_error"].shape == (3, 64, 3)  # (lam, seed, n)
    assert meta["axes"]["test_error"] == ["lam", "seed", "n"]
    assert meta["config"]["spectrum"]["kind"] == "power_law" and meta["root_seed"] == 3
    assert meta["environment"]["x64"] is True and meta["environment"]["jax"]
    np.testing.assert_allclose(arrays["lam"], [0.01, 0.1, 1.0])
    z = (arrays["test_error"].mean(1) - arrays["theory_test_error"]) / (arrays["test_error"].std(1, ddof=1) / 8)
    assert np.abs(z[:, [0, 2]]).max() == pytest.approx(meta["summary"]["max_abs_z"], rel=1e-9)  # n in [0, 2]
    for ext in ("png", "pdf"):
        assert (tmp_path / f"tiny.{ext}").stat().st_size > 1000
    assert not list(tmp_path.glob("*.tmp.*"))


def test_default_experiment_file_loads():
    exp = experiment.load(cli._default_experiment())
    assert exp.spec.d == 100 and exp.ns == (0, 1, 2, 5, 10) and len(exp.lams) == 11


def test_bad_experiment_files(tmp_path, capsys):
    assert cli.main(["run", str(tmp_path / "missing.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY.replace('kind = "power_law"', 'kind = "fractal"'))
    assert cli.main(["run", str(bad)]) == 2
    assert "spectrum.kind" in capsys.readouterr().err
    bad.write_text(TINY + "\n[extra]\nx = 1\n")
    assert cli.main(["run", str(bad)]) == 2
    assert "unknown section" in capsys.readouterr().err


def test_save_refuses_unnamed_axes(tmp_path):
    with pytest.raises(ValueError, match="axes"):
        io.save(tmp_path / "x", {"a": np.zeros((2, 3))}, {"a": ["only_one"]}, {})


def test_sidecar_is_plain_json(tmp_path):
    io.save(tmp_path / "x", {"a": np.arange(3)}, {"a": ["n"]}, {"config": {"lam": np.float64(0.5)}})
    doc = json.loads((tmp_path / "x.json").read_text())
    assert doc["config"]["lam"] == 0.5
