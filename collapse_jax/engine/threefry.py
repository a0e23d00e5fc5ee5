"""Threefry on CPU as one fused loop: the same bits as `jax.random`, five times faster to make.

JAX lowers its threefry hash on CPU as a rolled `while` loop of five iterations (four rounds each) over the
whole array of counters, to keep compile times short. XLA cannot fuse across the loop, so every iteration reads
and writes both full uint32 arrays: measured on the project's 2-core CPU, 11 ns of wall time per 32 random bits,
more than half the cost of a float64 normal (18 ns). The unrolled lowering, which JAX itself uses on every other
platform, computes the same function in one fused elementwise loop: 2 ns per 32 bits, normals 11.5 ns.
The hash, the counters and so every draw are unchanged, bit for bit (`tests/test_rng.py` checks it).

Opt-in, because a lowering is global to the process: importing `collapse_jax` leaves JAX as it was. The
lab's own programs call `use_fused_threefry()` (the `collapse-jax` CLI, `tests/conftest.py`, the benchmarks);
in a notebook, call it once yourself to simulate at the CLI's speed. Either way every draw is the same. It
reaches into `jax._src`, so it is guarded: with a JAX that no longer has those names it changes nothing and
says so once.
"""

from __future__ import annotations

import warnings


def use_fused_threefry() -> bool:
    """Register JAX's unrolled threefry lowering for CPU. Returns whether it is in place.

    Programs compiled before the call keep the rolled loop; their numbers are the same either way.

    Example:
        >>> import jax
        >>> from collapse_jax.engine.threefry import use_fused_threefry
        >>> use_fused_threefry()
        True
    """
    try:
        from jax._src import prng
        from jax._src.interpreters import mlir

        rule = prng._threefry2x32_lowering_rule  # the unrolled one; the CPU rule is the rolled variant
        mlir.register_lowering(prng.threefry2x32_p, rule, platform="cpu", inline=False)
    except (ImportError, AttributeError) as err:
        warnings.warn(
            f"collapse_jax: threefry stays JAX's rolled CPU loop ({err}); draws are unchanged, only slower",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    return True
