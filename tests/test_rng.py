"""The engine's random numbers: JAX's own bits from a fused threefry, exact uniform indices, gamma draws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax._src import prng
from jax._src.interpreters import mlir
from stats import ks_2samp_pvalue

from collapse_jax.engine import rng
from collapse_jax.engine.rng import _mul_32x32, log_gamma, uniform_index
from collapse_jax.engine.threefry import use_fused_threefry


def _draws(key):
    k1, k2, k3 = jax.random.split(key, 3)
    return (
        jax.random.bits(k1, (1001,), jnp.uint32),
        jax.random.normal(k2, (37, 5)),
        jax.random.randint(k3, (333,), 0, 17),
        jax.vmap(lambda k: jax.random.uniform(k, (7,)))(jax.random.split(k3, 11)),
    )


def test_fused_threefry_draws_the_same_bits_as_the_rolled_loop():
    """Same numbers bit for bit as JAX's rolled loop and JAX's own unrolled rule; and the lowerings really differ
    (the rolled one is a while loop, JAX's unrolled one a private function), so the comparison cannot pass by
    comparing a program with itself."""
    assert use_fused_threefry()
    key = jax.random.key(3)
    fused_text = jax.jit(lambda k: _draws(k)).lower(key).as_text()
    fused = jax.jit(lambda k: _draws(k))(key)
    others = {}
    for name, rule in [
        ("rolled", prng._threefry2x32_cpu_lowering_rule),
        ("jax unrolled", prng._threefry2x32_lowering_rule),
    ]:
        mlir.register_lowering(prng.threefry2x32_p, rule, platform="cpu")
        try:
            others[name] = jax.jit(lambda k: _draws(k)).lower(key).as_text(), jax.jit(lambda k: _draws(k))(key)
        finally:
            assert use_fused_threefry()
    assert "stablehlo.while" in others["rolled"][0] and "stablehlo.while" not in fused_text
    assert "_unrolled" in mlir._platform_specific_lowerings["cpu"][prng.threefry2x32_p].rule.__qualname__
    assert fused_text != others["jax unrolled"][0]  # the same ops, emitted differently
    for _, draws in others.values():
        for a, b in zip(fused, draws, strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_mul_32x32_is_the_64_bit_product():
    x = np.random.default_rng(0).integers(0, 2**32, 50_000, dtype=np.uint64)
    for n in [1, 7, 200, 65_537, 2**31 - 1, 2**32 - 1]:
        high, low = _mul_32x32(jnp.asarray(x, jnp.uint32), jnp.uint32(n))
        product = x * np.uint64(n)
        np.testing.assert_array_equal(np.asarray(high, np.uint64), product >> np.uint64(32), err_msg=str(n))
        np.testing.assert_array_equal(np.asarray(low, np.uint64), product & np.uint64(2**32 - 1), err_msg=str(n))


@pytest.mark.parametrize("n", [1, 2, 7, 200])
def test_uniform_index_is_uniform(n):
    """Counts of 0..n-1 against n equal cells (chi-square statistic within 4 sd of its mean n - 1)."""
    draws = np.asarray(uniform_index(jax.random.key(n), (200_000,), n))
    assert draws.dtype == np.int32 and draws.min() >= 0 and draws.max() <= n - 1
    counts = np.bincount(draws, minlength=n)
    expected = draws.size / n
    stat = ((counts - expected) ** 2 / expected).sum()
    assert abs(stat - (n - 1)) <= 4 * np.sqrt(2 * max(n - 1, 1)), stat


def test_uniform_index_redraws_what_would_bias_it():
    """n = 3 * 2^29: a bare multiply-shift gives floor(3x/8), so value classes 0, 1, 2 mod 3 get 3, 3, 2 of every
    8 words (P(v = 2 mod 3) = 1/4). The redraws (25% of words here) make it 1/3 exactly; also with a traced n."""
    n = 3 * 2**29
    traced = jax.jit(lambda k, n: uniform_index(k, (300_000,), n))
    for v in (uniform_index(jax.random.key(1), (300_000,), n), traced(jax.random.key(2), n)):
        v = np.asarray(v)
        p = np.mean(v % 3 == 2)
        assert abs(p - 1 / 3) <= 4 * np.sqrt(2 / 9 / v.size), p
        assert v.min() >= 0 and v.max() < n


@pytest.mark.parametrize("shape,a", [((3, 333), 2.0), ((999,), 0.4), ((20_000,), 1.0)])
def test_gamma_draws_in_any_shape(shape, a):
    """Block sizes gcd(n, 32) = 1 (999 lanes), 1 and 32; shape 0.4 takes the boost; a = 1 rejects 5% of proposals."""
    ours = np.exp(np.asarray(log_gamma(jax.random.key(0), jnp.full(shape, a)))).reshape(-1)
    ref = np.asarray(jax.random.gamma(jax.random.key(1), a, (ours.size,)))
    assert ks_2samp_pvalue(ours, ref) > 1e-3
    assert abs(ours.mean() - a) <= 4 * np.sqrt(a / ours.size)


@pytest.mark.parametrize("n,a", [(1, 0.4), (1, 1.0), (20, 1.0)])
def test_gamma_draws_in_small_arrays_over_seeds(n, a):
    """Arrays of up to rng.WHOLE lanes, batched over seeds as the chains draw them (one loop, lanes redrawn at their
    rank): the law of Gamma(a) at shape 0.4 (the boost) and 1 (5% of proposals rejected, so most of these 4,000 x n
    draws come from some seed's redraw round)."""
    keys = jax.random.split(jax.random.key(3), 4_000)
    ours = np.exp(np.asarray(jax.jit(jax.vmap(lambda k: log_gamma(k, jnp.full(n, a))))(keys))).reshape(-1)
    ref = np.asarray(jax.random.gamma(jax.random.key(4), a, (ours.size,)))
    assert ks_2samp_pvalue(ours, ref) > 1e-3
    assert abs(ours.mean() - a) <= 4 * np.sqrt(a / ours.size)


def test_gamma_with_mixed_traced_shapes():
    """Shapes below and above 1 in one traced array: each lane keeps its own law."""
    a = jnp.tile(jnp.asarray([0.3, 5.0]), 10_000)
    x = np.exp(np.asarray(jax.jit(log_gamma)(jax.random.key(2), a)))
    for i, shape in enumerate([0.3, 5.0]):
        lane = x[i::2]
        assert abs(lane.mean() - shape) <= 4 * np.sqrt(shape / lane.size), (shape, lane.mean())


# The suite compiles at --xla_backend_optimization_level=0 (tests/conftest.py). There XLA:CPU's logarithm and
# exponential round differently from one fused loop to another (up to 7e-13 relative, in 1,278 of the 8,000 draws
# below: the pooled program against the whole one), so two programs that compute the same function are compared
# bit for bit as users compile them.
DEFAULT_OPTIMISATION = {"xla_backend_optimization_level": 3}


@pytest.mark.parametrize("a", [0.3, 1.0])
def test_one_lane_draws_do_not_depend_on_the_batch(a):
    """A chain's chi-square of one lane per seed, drawn for 300 seeds at once and for one seed at a time (a chunk
    of one seed): the same numbers bit for bit. The sampler before `whole_pool` gave 20 (a = 0.3) and 31 (a = 1)
    of these 300 draws different last bits, up to 8e-14 relative, in a batch of one seed."""
    keys = jax.random.split(jax.random.key(1), 300)
    shapes = jnp.full((300, 1), a)
    program = jax.jit(jax.vmap(log_gamma), compiler_options=DEFAULT_OPTIMISATION)
    together = np.asarray(program(keys, shapes))
    alone = np.concatenate([np.asarray(program(keys[i : i + 1], shapes[i : i + 1])) for i in range(300)])
    np.testing.assert_array_equal(together, alone)


@pytest.mark.parametrize("n", [1, 20, 64])
def test_small_arrays_settle_in_one_pool_with_the_draws_of_the_16_lane_pool(n, monkeypatch):
    """Up to rng.WHOLE lanes the pool is the whole array: one loop whose round 0 proposes for every lane and whose
    later rounds redraw each rejected lane at its rank among them, the draws a pool of 16 gives it, bit for bit
    (here at shape 1, 5% rejected, where most seeds redraw some lane). With rng.WHOLE = 0 the pool is 16 lanes,
    gathered by a top-k, and the loop over passes is there, as before (bit-identical to the sampler before that
    change, checked then for 60 shapes and sizes up to 300 lanes)."""
    keys = jax.random.split(jax.random.key(n), 400)
    a = jnp.broadcast_to(jnp.linspace(1.0, 1.2, n), (400, n))

    def draws():  # at XLA's default optimisation: see below
        program = jax.jit(jax.vmap(lambda k, s: log_gamma(k, s)), compiler_options=DEFAULT_OPTIMISATION)
        return np.asarray(program(keys, a)), program.lower(keys, a).as_text().count("stablehlo.while")

    whole, loops_whole = draws()
    monkeypatch.setattr(rng, "WHOLE", 0)
    pooled, loops_pooled = draws()
    np.testing.assert_array_equal(whole, pooled)
    # one loop (the pool's redraws) against three (those, and the loop over passes with its own redraws), where
    # the array is larger than 16 lanes: up to 16, the pool was the whole array before too
    assert (loops_whole, loops_pooled) == (1, 1 if n <= 16 else 3) and np.isfinite(whole).all()
