"""cj.sweep: grids that compile once per static shape, chunked and sharded work, resume, merge, refusals."""

import json
import subprocess
import sys

import numpy as np
import pytest
from stats import timeout_for

import collapse_jax as cj

SPEC = cj.Spectrum.isotropic(12)
GEN, DOWN = cj.Generators(T0=30, sigma0=1.0), cj.Downstream(T=30, sigma=0.5)
GRID = {"down.lam": [0.0, 0.3], "down.T": [20, 40], "gen.sigma0": [0.5, 1.0, 2.0]}


def run(out, **kw):
    args = dict(grid=GRID, generations=3, seeds=20, key=2, out=out, progress=False) | kw
    return cj.sweep(SPEC, GEN, DOWN, **args)


def test_each_point_equals_simulate(tmp_path):
    res = run(tmp_path / "a")
    assert res.test_error.shape == (2, 2, 3, 20, 4) and res.axes == ("down.lam", "down.T", "gen.sigma0", "seed", "n")
    for i, lam in enumerate(GRID["down.lam"]):
        for j, T in enumerate(GRID["down.T"]):
            for k, s0 in enumerate(GRID["gen.sigma0"]):
                one = cj.simulate(
                    SPEC, cj.Generators(T0=30, sigma0=s0), cj.Downstream(T=T, sigma=0.5, lam=lam), 3, 20, key=2
                )
                np.testing.assert_allclose(res.test_error[i, j, k], one.test_error, rtol=1e-12)
                np.testing.assert_allclose(res.generator_error[i, j, k], one.generator_error, rtol=1e-12)
    assert np.nanmax(np.abs(res.zscore().test_error)) < 6  # 20 seeds: a sanity check; exactness is tested elsewhere
    assert np.isfinite(res.theory_test_error).all()


def test_spectrum_fields_sweep_like_single_runs(tmp_path):
    """A power-law spectrum's beta (data: vmapped) and d (static) are grid axes; every point equals cj.simulate
    on the spectrum built with those values, and the theory at each point uses that spectrum."""
    base = cj.Spectrum.power_law(10, beta=1.5, r=0.5)
    grid = {"spec.beta": [1.0, 2.0], "spec.d": [8, 10]}
    res = cj.sweep(base, GEN, DOWN, grid=grid, generations=2, seeds=12, key=4, out=tmp_path / "s", progress=False)
    assert res.axes == ("spec.beta", "spec.d", "seed", "n") and res.d == 8
    for i, beta in enumerate(grid["spec.beta"]):
        for j, d in enumerate(grid["spec.d"]):
            spec = cj.Spectrum.power_law(d, beta=beta, r=0.5)
            one = cj.simulate(spec, GEN, DOWN, 2, 12, key=4)
            np.testing.assert_allclose(res.test_error[i, j], one.test_error, rtol=1e-12)
            th = cj.theory.metrics(spec, GEN, DOWN, range(3)).test_error
            np.testing.assert_allclose(res.theory_test_error[i, j], th, rtol=1e-12)
    with pytest.raises(ValueError, match=r"grid field 'spec\.beta': spectrum kind 'isotropic' has no 'beta'"):
        cj.sweep(SPEC, GEN, DOWN, grid={"spec.beta": [1.0]}, generations=1, seeds=4, out=tmp_path / "x")
    with pytest.raises(ValueError, match=r"not made by Spectrum\.isotropic or Spectrum\.power_law"):
        cj.sweep(
            cj.Spectrum([1.0, 2.0], [1.0, 1.0]),
            GEN,
            DOWN,
            grid={"spec.d": [2]},
            generations=1,
            seeds=4,
            out=tmp_path / "y",
        )


def test_spectrum_recipe_survives_replace_and_tree_map(tmp_path):
    """Spectrum.recipe is a static field: dataclasses.replace and jax.tree.map keep it, and a spec.beta sweep on
    the copies gives the arrays of the original; arrays that no longer match the recipe are refused by name."""
    import dataclasses

    import jax

    base = cj.Spectrum.power_law(8, beta=1.5, r=0.5)
    grid = {"spec.beta": [1.0, 2.0]}
    args = dict(grid=grid, generations=1, seeds=6, key=4, progress=False)
    want = cj.sweep(base, GEN, DOWN, out=tmp_path / "base", **args).test_error
    for name, copy in [("replace", dataclasses.replace(base)), ("tree_map", jax.tree.map(lambda x: x, base))]:
        assert copy.recipe == base.recipe and hash(copy.recipe) == hash(base.recipe)
        np.testing.assert_array_equal(cj.sweep(copy, GEN, DOWN, out=tmp_path / name, **args).test_error, want)
    assert jax.tree.structure(base.values()) == jax.tree.structure(cj.Spectrum.power_law(8, beta=2.0, r=0.5).values())
    changed = dataclasses.replace(base, eigenvalues=np.ones(8))
    with pytest.raises(ValueError, match=r"grid field 'spec\.beta': the spectrum's arrays no longer match its recipe"):
        cj.sweep(changed, GEN, DOWN, out=tmp_path / "changed", **args)
    with pytest.raises(ValueError, match="recipe must be None or a dict with kind in"):
        cj.Spectrum(np.ones(2), np.ones(2), recipe={"kind": "bad"})


def test_chunks_shards_and_resume_give_identical_arrays(tmp_path):
    whole = run(tmp_path / "whole")
    chunked = run(tmp_path / "chunked", chunk_size=6)
    np.testing.assert_array_equal(chunked.test_error, whole.test_error)
    # two independent slices, then merge
    assert run(tmp_path / "sliced", chunk_size=6, shard=(0, 2)) is None
    sliced = run(tmp_path / "sliced", chunk_size=6, shard=(1, 2))
    np.testing.assert_array_equal(sliced.test_error, whole.test_error)
    np.testing.assert_array_equal(cj.merge(tmp_path / "sliced", progress=False).test_error, whole.test_error)
    # a run killed after 3 chunks, then resumed with the same command
    with pytest.raises(RuntimeError, match="injected"):
        run(tmp_path / "killed", chunk_size=6, _fail_after=3)
    assert len(list((tmp_path / "killed" / "chunks").glob("*.npz"))) == 3
    assert not list((tmp_path / "killed").rglob("*.tmp*"))
    resumed = run(tmp_path / "killed", chunk_size=6)
    np.testing.assert_array_equal(resumed.test_error, whole.test_error)
    # resumed without a chunk size on a machine with other memory: the folder's own chunks, not a refusal
    with pytest.raises(RuntimeError, match="injected"):
        run(tmp_path / "memory", chunk_size=6, _fail_after=1)
    np.testing.assert_array_equal(run(tmp_path / "memory", max_memory=1).test_error, whole.test_error)


def test_mismatched_config_is_refused(tmp_path):
    run(tmp_path / "a", seeds=8)
    with pytest.raises(ValueError, match="different config"):
        run(tmp_path / "a", seeds=8, key=3)
    with pytest.raises(ValueError, match="different config"):
        run(tmp_path / "a", seeds=8, grid={"down.lam": [0.0, 0.5]})


def test_invalid_points_are_reported_and_the_rest_computed(tmp_path):
    grid = {"down.lam": [0.1, -1.0], "down.T": [20, 0]}
    res = run(tmp_path / "bad", grid=grid, seeds=8)
    assert set(res.invalid) == {"0,1", "1,0", "1,1"}
    assert "lam" in res.invalid["1,0"] and "T" in res.invalid["0,1"]
    assert np.isfinite(res.test_error[0, 0]).all() and np.isnan(res.test_error[1]).all()
    assert np.isnan(res.test_error[0, 1]).all()
    meta = json.loads((tmp_path / "bad" / "sweep.json").read_text())
    assert meta["invalid"] == res.invalid


def test_bad_sweep_arguments(tmp_path):
    with pytest.raises(ValueError, match="grid field"):
        run(tmp_path / "x", grid={"down.gamma": [1.0]})
    with pytest.raises(ValueError, match="shard"):
        run(tmp_path / "x", shard=(2, 2))
    with pytest.raises(ValueError, match="missing"):
        run(tmp_path / "y", shard=(0, 2), chunk_size=6)
        cj.merge(tmp_path / "y")


TOML = """
name = "cli"
[spectrum]
kind = "isotropic"
d = 12
[generators]
T0 = 30
[downstream]
T = 30
[grid]
"down.lam" = {logspace = [-2, 0, 3]}
"gen.sigma0" = [0.5, 1.0]
[simulation]
generations = 3
seeds = 24
chunk_size = 8
"""


def test_two_processes_then_merge_equal_one_run(tmp_path):
    """`collapse-jax sweep --shard i/2` in two separate processes, then `collapse-jax merge`; and two unsharded
    processes started together on one folder: no crash, every chunk computed by exactly one of them (chunk
    locks). Both give the arrays of a run in one process."""
    cfg = tmp_path / "s.toml"
    cfg.write_text(TOML)
    cmd = [sys.executable, "-m", "collapse_jax.cli", "sweep", str(cfg)]
    procs = [subprocess.Popen(cmd + ["--quiet", "--out", str(tmp_path / "two"), "--shard", f"{i}/2"]) for i in range(2)]
    assert all(p.wait(timeout=timeout_for(30)) == 0 for p in procs)
    subprocess.run(
        [sys.executable, "-m", "collapse_jax.cli", "merge", str(tmp_path / "two")], check=True, timeout=timeout_for(30)
    )
    procs = [
        subprocess.Popen(cmd + ["--out", str(tmp_path / "both")], stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    logs = [p.communicate(timeout=timeout_for(30))[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    computed = [sum(line.startswith("[sweep] chunk ") for line in log.splitlines()) for log in logs]
    assert sum(computed) == 3, (computed, logs)  # 3 chunks of 8 seeds, each computed once
    subprocess.run(cmd + ["--quiet", "--out", str(tmp_path / "one")], check=True, timeout=timeout_for(30))
    one = cj.sweep_load(tmp_path / "one")
    assert one.test_error.shape == (3, 2, 24, 4)
    for other in ("two", "both"):
        np.testing.assert_array_equal(cj.sweep_load(tmp_path / other).test_error, one.test_error)


ON_DEVICES = """
import os, sys
flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f]  # the suite's compile flags stay
os.environ["XLA_FLAGS"] = " ".join(flags + ["--xla_force_host_platform_device_count=" + sys.argv[1]])
import jax, numpy as np
jax.config.update("jax_enable_x64", True)
import collapse_jax as cj
assert jax.local_device_count() == int(sys.argv[1])
res = cj.sweep(cj.Spectrum.power_law(12, 1.5, 0.5), cj.Generators(T0=30), cj.Downstream(T=20, sigma=0.5),
               grid={"down.lam": [0.0, 0.3], "down.T": [10, 20]}, generations=3, seeds=18, key=4,
               out=sys.argv[2], chunk_size=8, progress=False)
np.save(sys.argv[2] + ".npy", res.test_error)
"""


def test_devices_do_not_change_sweep_results(tmp_path):
    """The seed axis sharded over 1 or 4 simulated CPU devices (chunks padded to the device count): identical."""
    out = []
    for devices in (1, 4):
        path = str(tmp_path / f"dev{devices}")
        subprocess.run([sys.executable, "-c", ON_DEVICES, str(devices), path], check=True, timeout=timeout_for(30))
        out.append(np.load(path + ".npy"))
    np.testing.assert_array_equal(out[0], out[1])


def test_damaged_chunks_are_recomputed_or_refused_by_path(tmp_path):
    """A truncated or foreign chunk file is recomputed on resume (arrays identical to an untouched run); merge
    alone refuses it naming the file; a stale temporary of a dead process is removed."""
    args = dict(grid={"down.lam": [0.1, 1.0]}, generations=2, seeds=12, key=0, chunk_size=4, progress=False)
    spec, gen, down = cj.Spectrum.isotropic(6), cj.Generators(T0=20), cj.Downstream(T=20)
    ref = cj.sweep(spec, gen, down, out=tmp_path / "ref", **args)
    out = tmp_path / "run"
    cj.sweep(spec, gen, down, out=out, **args)
    chunks = sorted((out / "chunks").glob("*.npz"))
    chunks[2].write_bytes(chunks[1].read_bytes())  # a copy of another chunk: same keys and shapes, its hash differs
    chunks[0].write_bytes(chunks[0].read_bytes()[:50])  # truncated
    chunks[1].write_bytes(b"")  # empty
    with pytest.raises(ValueError, match=chunks[0].name):
        cj.merge(out, progress=False)
    stale = out / "chunks" / "s0000_c00009.999999999.tmp.npz"
    stale.write_bytes(b"x")
    again = cj.sweep(spec, gen, down, out=out, **args)
    np.testing.assert_array_equal(again.test_error, ref.test_error)
    assert not stale.exists()


def test_a_refused_sampler_writes_nothing_and_the_corrected_run_proceeds(tmp_path):
    """The config is checked before the manifest is written: a typo in the sampler leaves no manifest behind, so
    the corrected command is not refused as a different sweep."""
    args = dict(grid={"down.lam": [0.1]}, generations=1, seeds=4, key=0, out=tmp_path / "s", progress=False)
    spec, gen, down = cj.Spectrum.isotropic(4), cj.Generators(T0=12), cj.Downstream(T=12)
    with pytest.raises(ValueError, match="sampler"):
        cj.sweep(spec, gen, down, sampler="fst", **args)
    assert not (tmp_path / "s" / "manifest.json").exists()
    assert cj.sweep(spec, gen, down, sampler="direct", **args).test_error.shape == (1, 4, 2)
