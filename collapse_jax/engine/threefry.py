"""Threefry on CPU as one fused loop: the same bits as `jax.random`, five times faster to make.

JAX lowers its threefry hash on CPU as a rolled `while` loop of five iterations (four rounds each) over the
whole array of counters, to keep compile times short. XLA cannot fuse across the loop, so every iteration reads
and writes both full uint32 arrays: measured on the project's 2-core CPU, 11 ns of wall time per 32 random bits,
more than half the cost of a float64 normal (18 ns). The unrolled lowering, which JAX itself uses on every other
platform, computes the same function in one fused elementwise loop: 2 ns per 32 bits, normals 11.5 ns.
The hash, the counters and so every draw are unchanged, bit for bit (`tests/test_rng.py` checks it against
JAX's rolled loop and its own unrolled rule).

Opt-in, because a lowering is global to the process: importing `collapse_jax` leaves JAX as it was. The
lab's own programs call `use_fused_threefry()` (the `collapse-jax` CLI, `tests/conftest.py`, the benchmarks);
in a notebook, call it once yourself to simulate at the CLI's speed. Either way every draw is the same. It
reaches into `jax._src`, so it is guarded: with a JAX that no longer has those names it changes nothing and
says so once.
"""

from __future__ import annotations

import warnings

import numpy as np

fused = False  # whether this process lowers threefry with `_unrolled` (a stored program's key names it)


def use_fused_threefry() -> bool:
    """Register an unrolled threefry lowering for CPU. Returns whether it is in place.

    The lowering writes the hash's twenty rounds as StableHLO directly (`_unrolled`): JAX's own unrolled rule
    computes the same ops but traces its Python implementation to a jaxpr at every call site, about 28 ms each,
    a third of the time spent lowering a chain program. Programs compiled before the call keep the rolled loop;
    their numbers are the same either way.

    Example:
        >>> import jax
        >>> from collapse_jax.engine.threefry import use_fused_threefry
        >>> use_fused_threefry()
        True
    """
    global fused
    try:
        from jax._src import prng
        from jax._src.interpreters import mlir
        from jax._src.lib.mlir.dialects import hlo

        mlir.register_lowering(prng.threefry2x32_p, _unrolled(mlir, hlo), platform="cpu")
        fused = True
    except (ImportError, AttributeError) as err:
        warnings.warn(
            f"collapse_jax: threefry stays JAX's rolled CPU loop ({err}); draws are unchanged, only slower",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    return True


ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))  # Threefry-2x32's rotation distances, alternating every 4 rounds
PARITY = 0x1BD11BDA  # the key schedule's third word is key1 ^ key2 ^ PARITY


def _unrolled(mlir, hlo):
    """The lowering rule: Threefry-2x32 with 20 rounds (Salmon et al. 2011), the function JAX's `threefry2x32_p`
    computes, written out as elementwise StableHLO ops on uint32 arrays (the inputs broadcast to the output shape)."""

    def rule(ctx, *args):
        out = ctx.avals_out[0]
        rank = len(out.shape)
        key1, key2, x1, x2 = (
            v
            if aval.shape == out.shape
            else mlir.broadcast_in_dim(ctx, v, out, broadcast_dimensions=range(rank - len(aval.shape), rank))
            for v, aval in zip(args, ctx.avals_in, strict=True)
        )
        constants: dict = {}

        def const(value: int):
            if value not in constants:
                constants[value] = mlir.full_like_aval(ctx, np.uint32(value), out)
            return constants[value]

        ks = (key1, key2, hlo.xor(hlo.xor(key1, key2), const(PARITY)))
        x = [hlo.add(x1, ks[0]), hlo.add(x2, ks[1])]
        for i in range(5):
            for r in ROTATIONS[i % 2]:
                x0 = hlo.add(x[0], x[1])
                rotated = hlo.or_(hlo.shift_left(x[1], const(r)), hlo.shift_right_logical(x[1], const(32 - r)))
                x = [x0, hlo.xor(x0, rotated)]
            x = [hlo.add(x[0], ks[(i + 1) % 3]), hlo.add(hlo.add(x[1], ks[(i + 2) % 3]), const(i + 1))]
        return x

    return rule
