"""Test-wide JAX settings: float64, explicit shapes (rank promotion raises), two host devices, quick compiles.

Two CPU devices make every simulation in the suite run sharded over the seed axis, so sharding is exercised
everywhere; tests that need another device count run in a subprocess.

Most test files spend their time compiling (hundreds of small XLA programs, each run once), and most of a
compile is LLVM's optimisation passes, so they compile with them off (--xla_backend_optimization_level=0: a
third less CPU time). tests/run_files.py also asks (COLLAPSE_JAX_TEST_LEGACY_EMITTERS=1) for XLA:CPU's older
fusion emitters (--xla_cpu_use_fusion_emitters=false: at level 0 a chain program compiles in 0.6-0.7 of the
time, measured on three of validate's programs, 2 December 2026); a plain `pytest` run keeps the default
emitters. Those programs compute the same numbers up to rounding (not bit for bit): measured on simulate (two
samplers), kde, d-dimensional Gaussian and KRR chains, at most 4e-14 relative. Tests that spend their time
running programs instead (kernel matrices, KRR, an optimiser's many steps, large Monte Carlo) are slower
unoptimised: they are marked `execution_bound`, and tests/run_files.py runs them with COLLAPSE_JAX_TEST_OPTIMIZE=1
(XLA's default).

Subprocesses that change the device count keep these flags. Not used: compiling each LLVM module in one piece
(--xla_cpu_parallel_codegen_split_count=1) took 3-10% less CPU time, but it changed the last bits of one of two
programs that tests/test_rng.py compares bit for bit (194 of 25,600 draws, 9e-15 relative; 3 December 2026).

`make run`, the experiments and the benchmarks always keep XLA's default; tests/test_runtime_guard.py runs its
program with the default flags too, and tests/test_compilation_cache.py runs the CLI as a user would.
"""

import os

_flags = os.environ.get("XLA_FLAGS", "")
_quick = () if os.environ.get("COLLAPSE_JAX_TEST_OPTIMIZE") == "1" else ("--xla_backend_optimization_level=0",)
if os.environ.get("COLLAPSE_JAX_TEST_LEGACY_EMITTERS") == "1":  # set by tests/run_files.py per file
    _quick += ("--xla_cpu_use_fusion_emitters=false",)
for _flag in ("--xla_force_host_platform_device_count=2",) + _quick:
    if _flag.split("=")[0] not in _flags:
        _flags += " " + _flag
os.environ["XLA_FLAGS"] = _flags.strip()
# No persistent compilation cache in the suite (CI starts from nothing, so it would only write): the CLI processes
# the tests start inherit this; tests/test_compilation_cache.py turns it on in a folder of its own.
os.environ["COLLAPSE_JAX_CACHE"] = "off"

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

import matplotlib  # noqa: E402

from collapse_jax.engine import use_fused_threefry, use_one_lapack_thread  # noqa: E402

matplotlib.use("Agg")  # figures are written to files, never shown
use_fused_threefry()  # as the CLI does (same bits, faster draws); importing collapse_jax no longer does it
use_one_lapack_thread()  # as the CLI does (jaxlib's LAPACK without OpenBLAS threads spinning beside XLA's)


import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _fresh_compilation_caches():
    """Drop compiled programs after each test module: the suite compiles hundreds, and none is shared."""
    yield
    jax.clear_caches()
