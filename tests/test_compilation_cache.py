"""The CLI's persistent compilation cache (engine/compilation_cache.py) and its timings (engine/timing.py).

The suite itself runs with the cache off (conftest.py); these tests turn it on in a folder of their own.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from collapse_jax.engine import compilation_cache, io

ROOT = Path(__file__).resolve().parents[1]
TINY = ["spectrum.d=12", "generators.T0=40", "downstream.T=30", "--seeds", "40", "--quiet"]


def _run(tmp_path, cache, label):
    env = dict(os.environ, COLLAPSE_JAX_CACHE=str(cache), COLLAPSE_JAX_TIMINGS=str(tmp_path / f"{label}.json"))
    env.pop("XLA_FLAGS", None)  # a user's process: XLA's default compile (the conftest's quick flags aside)
    out = tmp_path / label
    cmd = [
        sys.executable,
        "-m",
        "collapse_jax",
        "run",
        str(ROOT / "experiments/default.toml"),
        *TINY,
        "--out",
        str(out),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return done, json.loads((tmp_path / f"{label}.json").read_text()), io.load(out / "default")[0]


def test_a_second_run_loads_every_program_and_gives_the_same_numbers(tmp_path, monkeypatch):
    """Run 1 compiles and stores its programs; run 2 (a fresh process) loads all of them and compiles none, with
    the same arrays bit for bit, and neither prints XLA's false alarm about tuning options (module docstring)."""
    cache = tmp_path / "cache"
    first, t1, a1 = _run(tmp_path, cache, "first")
    second, t2, a2 = _run(tmp_path, cache, "second")
    assert t1["programs"] >= 3 and t1["cache_hits"] == 0
    assert t2["programs"] == t1["programs"] and t2["cache_hits"] == t2["programs"]
    assert t2["seconds"]["compile"] < t1["seconds"]["compile"]
    monkeypatch.delenv("XLA_FLAGS")  # as in the runs: their folder is the one this machine gets without flags
    assert [p.name for p in cache.iterdir()] == [compilation_cache.folder(cache).name]
    for k in a1:
        np.testing.assert_array_equal(a1[k], a2[k])
    assert "cpu_aot_loader" not in first.stderr + second.stderr


def test_the_cache_folder_is_keyed_by_the_machine_and_xla_flags(tmp_path, monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    plain = compilation_cache.folder(tmp_path)
    assert plain.parent == tmp_path and plain.name == f"xla-{compilation_cache.machine_key()}"
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_max_isa=AVX2")
    assert compilation_cache.folder(tmp_path) != plain  # programs compiled for another ISA live apart
    monkeypatch.setenv("COLLAPSE_JAX_CACHE", "off")
    assert compilation_cache.folder() is None and compilation_cache.enable() is None
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("COLLAPSE_JAX_CACHE", str(tmp_path / "file"))
    with pytest.raises(ValueError, match=r"COLLAPSE_JAX_CACHE .* is a file"):
        compilation_cache.folder()
