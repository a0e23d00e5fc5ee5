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
    arrays, *_ = experiment.compute(experiment.from_config(cfg))
    return arrays


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
