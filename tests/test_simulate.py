"""cj.simulate: shapes, reproducibility, and results that do not depend on chunking, slicing or devices."""

import json
import math
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from stats import timeout_for

import collapse_jax as cj
from collapse_jax.engine.seeds import chunk_size_for
from collapse_jax.regression.simulate import simulate_lambdas

SPEC = cj.Spectrum.power_law(12, beta=1.5, r=0.5)
CASES = {
    "ols": (cj.Generators(T0=30), cj.Downstream(T=20, sigma=0.5, lam=0.1)),
    "direct": (cj.Generators(T0=(8, 30, 20), sigma0=0.5), cj.Downstream(T=9, lam=0.0)),
    "fixed_ridge": (cj.Generators(T0=30, lam=0.2, fixed=True), cj.Downstream(T=40, lam=1.0)),
}


@pytest.mark.parametrize("case", CASES)
def test_chunk_size_does_not_change_results(case):
    gen, down = CASES[case]
    runs = [cj.simulate(SPEC, gen, down, 3, 50, key=7, chunk_size=c) for c in (None, 4, 7, 50)]
    for r in runs[1:]:
        np.testing.assert_array_equal(r.test_error, runs[0].test_error)
        np.testing.assert_array_equal(r.generator_error, runs[0].generator_error)


@pytest.mark.parametrize("seeds", [1, 7, 50, 618, 1001, 4096])
def test_chunks_are_spread_evenly_and_never_larger_than_asked(seeds):
    """The last chunk is padded to the others' shape, so `chunk_size_for` evens the chunks out: never larger than
    the request rounded to the devices (the memory bound it stands for), never more chunks, padding under one
    device share per chunk, and the same size when asked again (a resumed sweep). The old rule, for contrast,
    padded 618 seeds in chunks of 256 with 150 seeds that were computed and thrown away."""
    n = jax.local_device_count()
    for requested in (1, 3, 64, 256, 1000, 10**6):
        old = math.ceil(min(requested, seeds) / n) * n
        chunk = chunk_size_for(seeds, requested, default=1)
        pieces = math.ceil(seeds / chunk)
        assert chunk % n == 0 and chunk <= old and pieces <= math.ceil(seeds / old), (requested, chunk)
        assert pieces * chunk - seeds < pieces * n, (requested, chunk)
        assert chunk_size_for(seeds, chunk, default=1) == chunk
    assert chunk_size_for(seeds, None, default=seeds) == math.ceil(seeds / n) * n  # the default: one chunk
    if seeds == 618:
        assert chunk_size_for(618, 256, default=1) == 206 and 3 * 256 - 618 == 150


@pytest.fixture
def forced_reduction(monkeypatch):
    """The second way a per-n lambda is solved (regression/samplers.py `shifts_pay`): from SHIFTS_MIN lambdas where
    lambdas x size reaches SHIFTS_MIN_WORK (float64), one tridiagonal reduction per seed for all n instead of a
    Cholesky per n. Forced here at a small size; programs traced under the other rule are dropped before and after."""
    from collapse_jax.regression import samplers

    monkeypatch.setattr(samplers, "SHIFTS_MIN", 2)
    monkeypatch.setattr(samplers, "SHIFTS_MIN_WORK", 1)
    traced, reduce = [], samplers.reduce
    monkeypatch.setattr(samplers, "reduce", lambda *a, **k: traced.append(1) or reduce(*a, **k))
    jax.clear_caches()
    yield traced  # how often a reduction was traced: the test checks that the route was taken
    jax.clear_caches()


DOWNSTREAMS = {
    "suffstats": dict(T=20),
    "dual": dict(T=9),
    "width": dict(T=20, width=8),
    "weighted": dict(T=20, synthetic_fraction=0.5, real_weight=0.7),
}
ROUTES = [(name, False) for name in DOWNSTREAMS] + [(name, True) for name in DOWNSTREAMS if name != "width"]


@pytest.mark.parametrize(("down", "reduced"), ROUTES, ids=[f"{n}-{'reduced' if r else 'cholesky'}" for n, r in ROUTES])
def test_a_lambda_per_generation_equals_each_lambda_alone(down, reduced, request):
    """A schedule solves each seed's system per n (a Cholesky per n, or one reduction for every n; a width-m
    model always factors per n): column n of the schedule's run is the run at lambda_n alone (the same designs, to
    rounding), and a schedule with one value for every n is that value's run bit for bit (simulate.one_lambda)."""
    traced = request.getfixturevalue("forced_reduction") if reduced else None
    down = DOWNSTREAMS[down]
    gen, lams = cj.Generators(T0=30), np.array([0.0, 0.05, 0.3])
    run = lambda lam: cj.simulate(SPEC, gen, cj.Downstream(sigma=0.5, lam=lam, **down), 2, 6, key=5).test_error
    per_n = run(lams)
    assert traced is None or traced, "the forced route was not taken"
    for n, lam in enumerate(lams):
        np.testing.assert_allclose(per_n[:, n], run(float(lam))[:, n], rtol=1e-11)
    np.testing.assert_array_equal(run(np.full(3, 0.3)), run(0.3))
    # every lambda of a scan in one program (the lambda scans' path): the same numbers as one run per lambda
    together = simulate_lambdas(SPEC, gen, cj.Downstream(sigma=0.5, **down), lams, 2, 6, key=5)
    for lam, res in zip(lams, together, strict=True):
        np.testing.assert_allclose(res.test_error, run(float(lam)), rtol=1e-12)
        assert res.config["downstream"]["lam"] == lam


def test_slices_merged_equal_one_run():
    gen, down = CASES["ols"]
    whole = cj.simulate(SPEC, gen, down, 3, 40, key=3)
    parts = [
        cj.simulate(SPEC, gen, down, 3, 15, key=3, seed_offset=0),
        cj.simulate(SPEC, gen, down, 3, 25, key=3, seed_offset=15),
    ]
    np.testing.assert_array_equal(np.concatenate([p.test_error for p in parts]), whole.test_error)


def test_shapes_keys_and_clean_generation():
    gen, down = CASES["ols"]
    res = cj.simulate(SPEC, gen, down, generations=5, seeds=9, key=1)
    assert res.test_error.shape == res.generator_error.shape == (9, 6)
    assert np.all(res.generator_error[:, 0] == 0)  # generation 0 is the teacher itself
    assert np.all(np.diff(res.generator_error.mean(0)) > 0)
    same = cj.simulate(SPEC, gen, down, generations=5, seeds=9, key=jax.random.key(1))
    np.testing.assert_array_equal(res.test_error, same.test_error)
    other = cj.simulate(SPEC, gen, down, generations=5, seeds=9, key=2)
    assert not np.allclose(res.test_error, other.test_error)
    zero = cj.simulate(SPEC, gen, down, generations=0, seeds=9, key=1)
    # n = 0 does not see later keys: the same draws; equal to rounding, because the downstream solves of all
    # generations are one batched solve whose width (1 or 6 right-hand sides) changes the summation order
    np.testing.assert_allclose(zero.test_error[:, 0], res.test_error[:, 0], rtol=1e-13)


def test_sampler_choice_is_recorded():
    gen, down = CASES["direct"]
    res = cj.simulate(SPEC, gen, down, 2, 4, key=0)
    assert res.config["sampler_used"] == {"generators": "direct", "downstream": "direct"}
    json.dumps(res.config)  # the config is JSON-ready


SHARDED = textwrap.dedent("""
    import os, sys
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f]  # the suite's compile flags stay
    os.environ["XLA_FLAGS"] = " ".join(flags + ["--xla_force_host_platform_device_count=" + sys.argv[1]])
    import jax, numpy as np
    jax.config.update("jax_enable_x64", True)
    import collapse_jax as cj
    assert len(jax.devices()) == int(sys.argv[1])
    res = cj.simulate(cj.Spectrum.power_law(12, 1.5, 0.5), cj.Generators(T0=30), cj.Downstream(T=20, lam=0.1),
                      3, 37, key=5, chunk_size=int(sys.argv[2]))
    np.save(sys.argv[3], res.test_error)
""")


def test_devices_do_not_change_results(tmp_path):
    """1 and 4 simulated CPU devices (seeds sharded over them, padded chunks) give identical arrays."""
    out = []
    for devices, chunk in [(1, 37), (4, 8)]:
        path = tmp_path / f"{devices}.npy"
        subprocess.run(
            [sys.executable, "-c", SHARDED, str(devices), str(chunk), str(path)], check=True, timeout=timeout_for(30)
        )
        out.append(np.load(path))
    np.testing.assert_array_equal(out[0], out[1])


SCRATCH_SCRIPT = """
import importlib, jax, jax.numpy as jnp
jax.config.update("jax_enable_x64", True)
import collapse_jax as cj
from collapse_jax.engine.seeds import root_key
sm = importlib.import_module("collapse_jax.regression.simulate")
for d, G, gen in [(50, 20, cj.Generators(T0=150)), (100, 20, cj.Generators(T0=300)),
                  (100, 200, cj.Generators(T0=300)), (200, 10, cj.Generators(T0=600)),
                  (100, 20, cj.Generators(T0=300, lam=0.5)), (100, 20, cj.Generators(T0=300, strategy="accumulate"))]:
    spec, chunk = cj.Spectrum.isotropic(d), 32
    down = sm._plan(spec, gen, cj.Downstream(T=3 * d, lam=0.1), G, chunk, "auto")[0]
    ids = jnp.arange(chunk, dtype=jnp.uint32)
    lowered = sm._chunk.jitted.lower(root_key(0), ids, spec.values(), gen, down, generations=G, sampler="auto")
    scratch = lowered.compile().memory_analysis().temp_size_in_bytes / chunk
    print(scratch / (8 * (3 * d * d + 3 * (G + 1) * d)))
for d, G, L in [(100, 20, 4), (100, 20, 11), (50, 100, 11), (200, 10, 4)]:
    spec, gen, chunk = cj.Spectrum.isotropic(d), cj.Generators(T0=3 * d), 32
    down = sm._plan(spec, gen, cj.Downstream(T=3 * d, lam=0.1), G, chunk, "auto")[0]
    ids, lams = jnp.arange(chunk, dtype=jnp.uint32), jnp.linspace(0.01, 1.0, L)
    lowered = sm._lambda_chunk.jitted.lower(root_key(0), ids, spec.values(), gen, down, lams, generations=G,
                                            sampler="auto")
    scratch = lowered.compile().memory_analysis().temp_size_in_bytes / chunk
    print(scratch / (8 * (3 * d * d + 3 * (G + 1) * d + (L - 1) * (2 * d * d + (G + 1) * d))))
"""


def test_default_chunks_keep_the_scratch_the_allocator_reuses():
    """`reused_chunk`'s estimate of a seed's scratch memory, 3 d^2 + 3 (G + 1) d float64 numbers, against XLA's
    memory analysis of the compiled chain in a process with XLA's defaults (the suite compiles with flags of its
    own): within 3% with OLS generators (d = 50-200, 10-200 generations), at most 1.25x with ridge generators or
    accumulate; for `simulate_lambdas`, each further lambda adding 2 d^2 + (G + 1) d, an upper estimate within
    10% (4 and 11 lambdas). And `simulate` uses it: chunks of at most 86 seeds at d = 100 and 20 generations (the
    memory bound alone gave 200), the memory bound where the reused chunk would be under 16 seeds (d = 300);
    `simulate_lambdas` with 4 lambdas at most 30 (the memory bound gave 50)."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run([sys.executable, "-c", SCRATCH_SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    ratios = [float(x) for x in done.stdout.split()]
    assert len(ratios) == 10, done.stdout
    assert all(0.97 <= r <= 1.03 for r in ratios[:4]), ratios
    assert all(1.0 <= r <= 1.25 for r in ratios[4:6]), ratios
    assert all(0.9 <= r <= 1.0 for r in ratios[6:]), ratios  # simulate_lambdas: an upper estimate
    gen, down = cj.Generators(T0=300), cj.Downstream(T=300, lam=0.1)
    assert cj.simulate(cj.Spectrum.isotropic(100), gen, down, 20, 400, key=0).config["chunk_size"] == 80
    assert cj.simulate(cj.Spectrum.isotropic(300), gen, down, 1, 40, key=0).config["chunk_size"] == 40
    lams = [0.01, 0.1, 1.0, 10.0]
    assert simulate_lambdas(cj.Spectrum.isotropic(100), gen, down, lams, 20, 60, key=0)[0].config["chunk_size"] == 30


def test_the_reduction_is_chosen_where_it_was_measured_to_pay():
    """regression/samplers.py `shifts_pay`, as its docstring's measurements say: from 2 shifts at m = 200, from
    about 5-6 at m = 100 and 50; never for one shift or in float32."""
    from collapse_jax.regression.samplers import shifts_pay

    f64, f32 = np.float64, np.float32
    assert shifts_pay(2, 200, f64) and shifts_pay(6, 100, f64) and shifts_pay(11, 50, f64) and shifts_pay(11, 800, f64)
    assert not shifts_pay(1, 800, f64) and not shifts_pay(3, 100, f64) and not shifts_pay(6, 50, f64)
    assert not shifts_pay(11, 800, f32)
