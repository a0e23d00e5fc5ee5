"""The experiment contract: one registry (filled by the families) read by run, sweep, validate, the CLI help and the
docs test; one output type with a typed, judged summary; sub-run keys by fold_in."""

from __future__ import annotations

import tomllib
from pathlib import Path

import jax
import numpy as np
import pytest

from collapse_jax import cli, experiment, validate
from collapse_jax.engine import plotting, protocol
from collapse_jax.engine.protocol import ExperimentOutput, Summary, subkey

ROOT = Path(__file__).parents[1]


def test_every_experiment_file_names_a_registered_kind_and_the_help_lists_them(capsys):
    kinds = {tomllib.loads(p.read_text()).get("kind") for p in (ROOT / "experiments").glob("*.toml")}
    # files without a `kind` (or with a spectrum kind at the top level) run the default, lambda_scan
    assert {k for k in kinds if k in protocol.REGISTRY} >= {"gaussian_chain", "krr_chain", "compare", "T_scan"}
    for p in (ROOT / "experiments").glob("*.toml"):
        cfg = tomllib.loads(p.read_text())
        assert cfg.get("kind", "lambda_scan") in protocol.REGISTRY or "spectrum" in cfg, p
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(k in text for k in protocol.REGISTRY)
    assert validate.FAMILIES == protocol.families() == ("distributions", "kernels", "regression")
    assert {c.family for c in validate._catalogue()} <= set(validate.FAMILIES)


def test_a_kind_is_registered_once():
    register = protocol.family("distributions", experiment.from_config)
    with pytest.raises(ValueError, match="'kde_chain' is already registered"):
        register("kde_chain")(lambda exp, progress: None)
    with pytest.raises(ValueError, match="kind must be one of"):
        experiment.from_config({"kind": "kde_chian"})


TOY = """
kind = "toy_normal_mean"
[chain]
shift = 0.0
[simulation]
seeds = 400
"""


def test_a_new_kind_is_one_function_and_one_toml(tmp_path, capsys):
    """A kind added by one decorated function and one TOML runs, saves and is judged (here E x = shift, exact, for
    x ~ N(0, 1): 400 seeds see a shift of ~4/sqrt(400) = 0.2); the same simulation against a theory off by
    2 x 0.2 disagrees (the negative control)."""
    from collapse_jax.distributions.experiments import register

    @register("toy_normal_mean", chain={"shift": "real"})
    def toy(exp, progress):
        """A toy kind: the mean of standard normals against its formula."""
        x = np.asarray(jax.random.normal(subkey(exp.key, 0), (exp.seeds, 1)))
        mean, sem = x.mean(0), x.std(0, ddof=1) / np.sqrt(exp.seeds)
        fig, ax = plotting.panels(1)
        ax[0].errorbar([0], mean, yerr=sem, fmt="o")
        z = float(np.abs((mean - exp.chain["shift"]) / sem).max())
        return ExperimentOutput(dict(x=x), dict(x=["seed", "n"]), [f"|z| = {z:.2f}"], Summary("exact", z), fig)

    try:
        path = tmp_path / "toy.toml"
        path.write_text(TOY)
        assert cli.main(["run", str(path), "--out", str(tmp_path), "--quiet"]) == 0
        assert "exact formula, |z| <= 4: largest |z|" in capsys.readouterr().out and (tmp_path / "toy.png").exists()
        cfg = tomllib.loads(TOY)
        summary = experiment.run(experiment.from_config(cfg, "toy"), tmp_path, progress=False)
        assert summary.agrees and summary.formula == "exact" and summary.max_abs_z <= 4
        cfg["chain"]["shift"] = 0.4
        bad = experiment.run(experiment.from_config(cfg, "toy"), tmp_path, progress=False)
        assert not bad.agrees and bad.verdict.endswith("-> disagrees")
        with pytest.raises(ValueError, match="chain"):
            experiment.from_config({"kind": "toy_normal_mean", "chain": {"shfit": 0.0}})
    finally:
        del protocol.REGISTRY["toy_normal_mean"]


def test_output_and_summary_refuse_what_they_cannot_hold():
    with pytest.raises(ValueError, match="formula must be one of"):
        Summary("approximate")
    with pytest.raises(ValueError, match="has 2 axes"):
        ExperimentOutput(dict(a=np.zeros((2, 3))), dict(a=["n"]), [], Summary("none"), None)
    with pytest.raises(ValueError, match="name different arrays"):
        ExperimentOutput(dict(a=np.zeros(2)), dict(b=["n"]), [], Summary("none"), None)
    judged = experiment.judge(Summary("DE", max_abs_z=9.0, max_rel_gap=0.01, d=100))
    assert judged.agrees and "beyond a gap bound of 2.0%" in judged.verdict  # a DE within its finite-size gap
    assert not experiment.judge(Summary("DE", max_abs_z=9.0, max_rel_gap=0.03, d=100)).agrees
    assert experiment.judge(Summary("none")).verdict == "no closed form checked"


def test_sub_run_keys_are_distinct_where_integer_offsets_collide():
    """kde_chain's old key + 10 r + i gave start 1, bandwidth 0 the key of start 0, bandwidth 10."""
    assert 0 + 10 * 1 + 0 == 0 + 10 * 0 + 10
    data = lambda k: jax.random.key_data(k).tolist()
    keys = [data(subkey(0, r, i)) for r in range(2) for i in range(12)]
    assert len({tuple(k) for k in keys}) == 24
    assert data(subkey(5)) == data(jax.random.key(5))
