"""Test-wide JAX settings: float64, explicit shapes (rank promotion raises), two host devices.

Two CPU devices make every simulation in the suite run sharded over the seed axis, so sharding is exercised
everywhere; tests that need another device count run in a subprocess.
"""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _fresh_compilation_caches():
    """Drop compiled programs after each test module: the suite compiles hundreds, and none is shared."""
    yield
    jax.clear_caches()
