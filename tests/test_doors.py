"""The doors of issue #25, each closed: an input that used to get through (silently wrong science, a crash from
inside, a silent NaN, a write outside --out, a hang) now raises a ValueError that names it, or gives the right
answer. Each test failed before its fix. Most run no simulation; the others run tiny ones."""

from __future__ import annotations

import json
import os
import warnings

import jax
import numpy as np
import pytest

import collapse_jax as cj
from collapse_jax import cli, experiment
from collapse_jax.distributions import discrete_chain, gaussian_chain
from collapse_jax.distributions import theory as dtheory
from collapse_jax.distributions.kde import Mixture
from collapse_jax.engine import io
from collapse_jax.kernels import data as kdata
from collapse_jax.kernels import kernel_matrix, krr_chain
from collapse_jax.regression import optimize, theory

SPEC = cj.Spectrum.isotropic(10)

# -- silently wrong science ---------------------------------------------------------------------------------------


def test_generators_lam_zero_is_ols_exactly_in_theory_and_simulation():
    """lam = 0 was routed to the ridge DE: [0, 5, 10] at T0 = d + 2 where OLS gives exactly [0, 10, 20]."""
    zero, none = cj.Generators(T0=12, lam=0.0), cj.Generators(T0=12)
    assert zero.lam is None and zero == none
    np.testing.assert_allclose(theory.generator_error(SPEC, zero, np.arange(3)), [0.0, 10.0, 20.0], rtol=1e-12)
    assert theory.formula_kind(SPEC, zero, cj.Downstream(T=20)) == "exact"
    with pytest.raises(ValueError, match=r"lam \(generators\) must be > 0 in every generation"):
        cj.Generators(T0=(12, 12), lam=(0.0, 0.1))
    # per-generation T0 crossing d with lam = 0: the OLS/min-norm chain, finite (the ridge solve went NaN)
    res = cj.simulate(SPEC, cj.Generators(T0=(6, 30), lam=0.0), cj.Downstream(T=30), 2, 16, key=0)
    assert np.all(np.isfinite(res.test_error))


def test_sweep_refuses_a_zero_generator_lambda(tmp_path):
    with pytest.raises(ValueError, match=r"grid field 'gen\.lam' must not be 0"):
        cj.sweep(
            SPEC,
            cj.Generators(T0=20, lam=0.1),
            cj.Downstream(T=20),
            {"gen.lam": [0.0, 0.1]},
            1,
            4,
            0,
            out=tmp_path,
            progress=False,
        )


def test_agreement_refuses_an_unknown_kind():
    with pytest.raises(
        ValueError, match=r"kind must be one of \('exact', 'DE', 'approximation', 'none'\), got 'bogus'"
    ):
        theory.agreement("bogus", 100.0, None, 10)
    # 'none' is a kind, not an error: nothing was judged, so it is no agreement either (engine/agreement.py)
    assert theory.agreement("none", 100.0, None, 10) == (False, "no closed form: nothing to judge")


def test_gaussian_real_fraction_zero_is_the_replace_chain():
    """real_fraction = 0.0 went through the pooled path, whose covariance underflows: NaN from ~generation 39."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        a = gaussian_chain(key=0, M=2, generations=60, seeds=8, real_fraction=0.0)
        b = gaussian_chain(key=0, M=2, generations=60, seeds=8)
    assert np.all(np.isfinite(a.log_var))
    np.testing.assert_array_equal(a.log_var, b.log_var)


def test_gaussian_direct_sampler_at_M_2_stays_finite():
    """The direct 1-D sampler subtracted mu from points that had collapsed onto it: log 0, then NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = gaussian_chain(key=0, M=2, generations=1500, seeds=4, sampler="direct")
    assert np.all(np.isfinite(out.log_var)) and np.all(np.isfinite(out.mean))


def test_gaussian_chain_warns_where_the_spread_of_log_var_makes_means_unreliable():
    with pytest.warns(RuntimeWarning, match="spread of log var"):
        gaussian_chain(key=0, M=5, generations=20, seeds=64)


def test_simulate_records_an_infinite_expectation_by_name():
    with pytest.warns(RuntimeWarning, match="expected error is infinite"):
        res = cj.simulate(SPEC, cj.Generators(T0=11), cj.Downstream(T=20), 1, 8, key=0)
    assert "T0 = [11]" in res.config["infinite_expectation"][0]
    with pytest.warns(RuntimeWarning, match="T = 10 is within 1 of d = 10 with lam = 0"):
        cj.simulate(SPEC, cj.Generators(T0=20), cj.Downstream(T=10), 1, 8, key=0)


# -- configs that accepted nonsense, crashes that did not name the input -------------------------------------------


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: cj.Spectrum("abc", "def"), "eigenvalues must be a 1-D array"),
        (lambda: cj.Spectrum(None, None), "eigenvalues must be a 1-D array"),
        (lambda: cj.Spectrum(np.full(3, 1e-300), np.ones(3)), "eigenvalues must be >= 1e-100"),
        (
            lambda: cj.Spectrum.from_config({"kind": "custom", "eigenvalues": [[1, 2], [3]], "w0": [1, 2]}),
            "spectrum.eigenvalues must be a real number",
        ),
        (lambda: cj.Generators(T0=50, sigma0=np.ones((2, 2))), "sigma0 must have 0 or 1 dimension"),
        (lambda: cj.Generators(T0=50, sigma0=np.array([1 + 2j])), "sigma0 must be a real number"),
        (lambda: cj.Downstream(T=50, sigma=[1.0, 2.0]), "sigma must have 0 dimension"),
        (lambda: cj.Downstream(T=50, sigma=1e300), "sigma must be <= 1000000000000000.0"),
        (lambda: cj.Downstream(T=50, lam=np.ones((2, 2))), "lam must have 0 or 1 dimension"),
        (lambda: cj.Downstream(T=50, lam=np.array([True, False])), "lam must be a real number"),
        (lambda: cj.Downstream(T=20, lam=lambda T, n: "x").resolved(2), "lam schedule|schedule's values"),
        (lambda: cj.Downstream(T=20, lam=lambda T, n: np.ones((2, 2))).resolved(2), "lam schedule must return"),
        (
            lambda: gaussian_chain(key=0, M=5, generations=2, seeds=2, d=2, mu0=np.ones(3)),
            "mu0 must be .* length d = 2",
        ),
        (lambda: discrete_chain(key=0, p=["a", "b"], N=10, generations=2, seeds=2), "^p must be a real"),
        (lambda: dtheory.discrete_deviation([0.3, 0.3], 10, 3), "p must hold at least 2 probabilities summing to 1"),
        (lambda: dtheory.distinct_mean(10**5, 3), r"M = 100000 and t = 3: .* GiB"),
        (lambda: Mixture((1.0,), ("gaussian",), (float("nan"),), (1.0,)), "mixture loc must be finite"),
        (lambda: kernel_matrix("rbf", np.ones((10**6, 1))), "kernel matrix .* GiB"),
        (lambda: optimize.minimize(lambda x: x**2, 1.0, method="adam", learning_rate=-1.0), "learning_rate"),
        (
            lambda: cj.simulate(cj.Spectrum.isotropic(10**5), cj.Generators(T0=20), cj.Downstream(T=20), 1, 2),
            "one seed at d = 100000 would need",
        ),
        (lambda: cj.simulate(SPEC, cj.Generators(T0=20), cj.Downstream(T=20), 1, 1).zscore(None), "seeds must be >= 2"),
    ],
)
def test_named_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("tol", [0.0, -1.0, float("nan")])
def test_least_real_fraction_refuses_a_tolerance_that_never_ends(tol):
    with pytest.raises(ValueError, match="tol must be"):
        optimize.least_real_fraction(SPEC, cj.Generators(T0=20), cj.Downstream(T=20), n=3, eps=2.0, tol=tol)


def test_quadratic_recursion_is_linear_now():
    """kde_pooled_var_strategy took np.mean over every earlier generation at each step (10^12 operations at 10^6)."""
    out = dtheory.kde_pooled_var_strategy(10, [0, 3, 200_000], 1.0, 0.5, strategy="accumulate")
    ref = [1.0]
    for _ in range(3):
        ref.append(np.mean(ref) + 0.25)
    np.testing.assert_allclose(out[:2], ref[::3], rtol=1e-12)
    assert np.isfinite(out[2])


K_POINTS = np.random.default_rng(0).normal(size=(12, 2))
K_GOOD, Y_GOOD = kernel_matrix("rbf", K_POINTS), np.eye(3)[np.arange(12) % 3]


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(pool=4.5), "pool must be an integer"),
        (dict(pool=np.arange(8.0)), "pool must be an integer"),
        (dict(Y=np.ones((5, 3))), "Y must be"),
        (dict(K=K_GOOD - 2 * np.eye(12)), "K must be positive semi-definite"),
        (dict(K=np.where(np.eye(12) > 0, np.nan, K_GOOD)), "K must be finite"),
        (dict(labels=np.arange(12) % 3 + 5), "labels must be <= 2"),
        (dict(labels=np.arange(5) % 3), "labels must hold one class per point"),
    ],
)
def test_krr_chain_names_its_bad_inputs(change, match):
    kw = dict(K=K_GOOD, Y=Y_GOOD, pool=np.arange(8), test=np.arange(8, 12))
    kw |= change
    with pytest.raises(ValueError, match=match):
        krr_chain(kw.pop("K"), kw.pop("Y"), kw.pop("pool"), kw.pop("test"), T0=4, T=4, generations=1, seeds=2, **kw)


def test_truncated_mnist_npz_is_refused_by_path(tmp_path):
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=np.zeros((4, 28, 28), np.uint8), y_train=np.arange(4))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"mnist\.npz' is not a readable \.npz file"):
        kdata.load_mnist(path)


# -- results that stop matching their sidecar ---------------------------------------------------------------------


def test_a_failed_save_leaves_the_old_pair_or_one_that_load_refuses(tmp_path, monkeypatch):
    stem = tmp_path / "r"
    io.save(stem, {"x": np.zeros(4)}, {"x": ["seed"]}, {})
    real_replace = os.replace
    calls = []

    def fail_second(src, dst):  # the disk fills between the two renames
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", fail_second)
    with pytest.raises(OSError):
        io.save(stem, {"x": np.zeros(6)}, {"x": ["seed"]}, {})
    monkeypatch.setattr(os, "replace", real_replace)
    with pytest.raises(ValueError, match="does not match its sidecar"):
        io.load(stem)
    assert not list(tmp_path.glob("*.tmp.*"))  # no temporaries left behind


def test_a_planted_symlink_is_replaced_not_followed(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    out = tmp_path / "out"
    out.mkdir()
    (out / f"r.{os.getpid()}.tmp.npz").symlink_to(outside)
    (out / f"r.{os.getpid()}.tmp.json").symlink_to(outside)
    io.save(out / "r", {"x": np.zeros(2)}, {"x": ["n"]}, {})
    assert outside.read_text() == "keep" and io.load(out / "r")[0]["x"].shape == (2,)


def test_sweep_folders_refuse_symlinks_and_edited_manifests(tmp_path):
    args = (SPEC, cj.Generators(T0=20), cj.Downstream(T=20), {"down.lam": [0.1, 1.0]}, 1, 4, 0)
    out = tmp_path / "sw"
    out.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (out / "chunks").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="not a symbolic link"):
        cj.sweep(*args, out=out, progress=False)
    (out / "chunks").unlink()
    cj.sweep(*args, out=out, progress=False)
    sealed = (out / "manifest.json").read_text()
    m = json.loads(sealed)
    m["grid"]["down.lam"] = [1.0, 0.1]  # relabel the data
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="was edited after the sweep wrote it"):
        cj.merge(out)
    (out / "manifest.json").write_text(sealed)
    # an experiment sweep (on the same chunk store) refuses the folder of another sweep before computing anything
    with pytest.raises(ValueError, match="holds a sweep with a different config"):
        experiment.sweep_file({"kind": "kde_chain", "grid": {"chain.M": [10]}}, out, progress=False)


def test_sweep_grid_values_of_the_wrong_type_are_refused(tmp_path):
    args = (SPEC, cj.Generators(T0=20), cj.Downstream(T=20))
    for grid, match in [
        ({"gen.fixed": ["no", "yes"]}, "grid field 'gen.fixed' takes true or false"),
        ({"down.T": [8.6]}, "grid field 'down.T' must be an integer"),
        ({"gen.sigma0": ["a"]}, "grid field 'gen.sigma0' must be a real number"),
    ]:
        with pytest.raises(ValueError, match=match):
            cj.sweep(*args, grid, 1, 4, 0, out=tmp_path / "g", progress=False)
    for kw, match in [(dict(generations=10**7), "generations must be <="), (dict(seeds=10**9), "seeds must be <=")]:
        with pytest.raises(ValueError, match=match):
            cj.sweep(*args, {"down.lam": [0.1]}, **(dict(generations=1, seeds=4, key=0) | kw), out=tmp_path / "h")
    with pytest.raises(ValueError, match="shard must be two integers"):
        cj.sweep(*args, {"down.lam": [0.1]}, 1, 4, 0, out=tmp_path / "i", shard=(1.5, 2))


def test_a_list_valued_grid_key_is_refused_or_written_as_a_loadable_coordinate(tmp_path):
    with pytest.raises(ValueError, match=r"grid field 'gen\.T0' takes single values"):
        cj.sweep(
            SPEC,
            cj.Generators(T0=20),
            cj.Downstream(T=20),
            {"gen.T0": [[20, 30], [30, 20]]},
            2,
            4,
            0,
            out=tmp_path / "l",
            progress=False,
        )
    with pytest.raises(ValueError, match="coordinate of axis 'M' must be 1-D"):
        io.save(tmp_path / "x", {"a": np.zeros(2)}, {"a": ["M"]}, {}, coords={"M": [[5, 6], [6, 5]]})
    assert not list(tmp_path.glob("x*"))
    io.save(tmp_path / "y", {"a": np.zeros(2)}, {"a": ["M"]}, {}, coords={"M": io.coordinate([[5, 6], [6, 5]])})
    assert io.load(tmp_path / "y")[0]["coord:M"].tolist() == ["[5, 6]", "[6, 5]"]


# -- the command line -------------------------------------------------------------------------------------------


TOML = """
name = "tiny"
[spectrum]
kind = "isotropic"
d = 6
[generators]
T0 = 12
[downstream]
T = 12
[scan]
lam = [0.1, 1.0]
T = [10, 20]
n = [0, 1]
[simulation]
seeds = 4
"""


def _cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_cli_refuses_a_setting_that_the_scan_overrides(tmp_path, capsys):
    path = tmp_path / "e.toml"
    path.write_text(TOML)
    code, err = _cli(capsys, "run", path, "downstream.T=500", "--out", tmp_path, "--quiet")
    assert code == 2 and "downstream.T = 500 is overridden by scan.T" in err
    path.write_text(TOML.replace("T = [10, 20]\n", ""))
    code, err = _cli(capsys, "run", path, "scan.n=[0, 1.5]", "--out", tmp_path, "--quiet")
    assert code == 2 and "scan.n must be an integer" in err
    code, err = _cli(capsys, "run", path, "name=a\nsimulation.seeds=1", "--out", tmp_path, "--quiet")
    assert code == 2 and "one printable line" in err


def test_cli_readme_grid_override_on_a_logspace_grid(tmp_path):
    cfg = experiment.read_toml("experiments/sweeps/default_grid.toml", ['grid."down.lam"=[0.1,1.0]'])
    assert cfg["grid"]["down.lam"] == [0.1, 1.0]


@pytest.mark.parametrize(
    "argv, match",
    [
        (["merge", "{tmp}/missing"], "not a sweep folder"),
        (["merge", "{tmp}/file.txt"], "not a sweep folder"),
        (["merge", "{tmp}/empty_manifest"], "not a sweep manifest"),
        (["sweep", "{tmp}/s.toml", "--chunk-size", "0"], None),
        (["run", "{tmp}/deep.toml", "--out", "{tmp}"], "is not valid TOML"),
        (["run", "{tmp}/e.toml", "name=" + "x" * 300, "--out", "{tmp}"], "plain file name"),
        (["run", "{tmp}/e.toml", "name=a\x1b[31m", "--out", "{tmp}"], "one printable line"),
        (["run", "{tmp}/esc.toml", "--out", "{tmp}"], "plain file name"),
    ],
)
def test_cli_bad_folders_and_files_give_one_line(tmp_path, capsys, argv, match):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "empty_manifest").mkdir()
    (tmp_path / "empty_manifest" / "manifest.json").write_text("[]")
    (tmp_path / "deep.toml").write_text("a = " + "[" * 3000 + "]" * 3000)
    (tmp_path / "e.toml").write_text(TOML.replace("T = [10, 20]\n", ""))
    (tmp_path / "esc.toml").write_text(TOML.replace("T = [10, 20]\n", "").replace('"tiny"', '"a\\u001b[31m"'))
    (tmp_path / "s.toml").write_text('[spectrum]\nd = 4\n[grid]\n"down.lam" = [0.1]\n')
    argv = [a.format(tmp=tmp_path) for a in argv]
    if match is None:  # argparse refuses it: exit status 2, one line
        with pytest.raises(SystemExit) as stop:
            cli.main(argv)
        assert stop.value.code == 2 and "--chunk-size" in capsys.readouterr().err
        return
    code, err = _cli(capsys, *argv)
    assert code == 2 and match in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_cli_out_naming_a_file_gives_one_line(tmp_path, capsys):
    (tmp_path / "e.toml").write_text(TOML.replace("T = [10, 20]\n", ""))
    (tmp_path / "f").write_text("x")
    code, err = _cli(capsys, "run", tmp_path / "e.toml", "--out", tmp_path / "f", "--quiet")
    assert code == 2 and str(tmp_path / "f") in err and len(err.strip().splitlines()) == 1, err


def test_stale_merge_temporaries_are_cleaned(tmp_path):
    out = tmp_path / "sw"
    cj.sweep(SPEC, cj.Generators(T0=20), cj.Downstream(T=20), {"down.lam": [0.1]}, 1, 4, 0, out=out, progress=False)
    stale = out / "sweep.999999999.tmp.npz"  # left by a merge that was killed
    stale.write_bytes(b"")
    cj.merge(out, progress=False)
    assert not stale.exists()


def test_float32_chains_at_the_smallest_sizes_are_finite():
    """T = d and T0 = d in float32 (a few percent of seeds went NaN); the result names the infinite expectation."""
    with jax.enable_x64(False), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = cj.simulate(SPEC, cj.Generators(T0=10), cj.Downstream(T=10), 2, 64, key=0)
    assert res.test_error.dtype == np.float32 and np.all(np.isfinite(res.test_error))
    assert res.config["infinite_expectation"]


def test_a_ctrl_c_swallowed_inside_a_gc_callback_still_exits_130(tmp_path, capsys, monkeypatch):
    """A KeyboardInterrupt raised inside a garbage-collection callback (as JAX's are) is printed and ignored by
    Python: the run used to finish with status 0. The CLI's SIGINT handler remembers the Ctrl-C."""
    import gc
    import signal

    def run_with_interrupt_in_gc(*args, **kwargs):
        def callback(phase, info):
            if phase == "start":
                signal.raise_signal(signal.SIGINT)

        gc.callbacks.append(callback)
        try:
            gc.collect()  # the KeyboardInterrupt is raised in the callback and swallowed there
        finally:
            gc.callbacks.remove(callback)

    monkeypatch.setattr(experiment, "run", run_with_interrupt_in_gc)
    monkeypatch.setattr("sys.unraisablehook", lambda *_: None)
    (tmp_path / "e.toml").write_text(TOML.replace("T = [10, 20]\n", ""))
    code, err = _cli(capsys, "run", tmp_path / "e.toml", "--out", tmp_path, "--quiet")
    assert code == 130 and "interrupted" in err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_smallest_chains_in_float64_then_float32_in_one_process():
    """Builders were cached without the precision: a chain built in float64 and rerun in float32 crashed inside the
    scan (mixed carry dtypes) at its smallest sizes (M = 2, one seed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for x64 in (True, False):
            with jax.enable_x64(x64):
                one = gaussian_chain(key=0, M=2, generations=1, seeds=1)
                two = gaussian_chain(key=0, M=3, generations=1, seeds=1, d=2)
            assert one.log_var.dtype == (np.float64 if x64 else np.float32)
            assert np.all(np.isfinite(one.log_var)) and np.all(np.isfinite(two.log_det))
