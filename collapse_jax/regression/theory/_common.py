"""What every theory module shares: float64 evaluation and the error raised where no formula applies."""

from __future__ import annotations

import functools

import jax

from collapse_jax.engine.agreement import NoFormulaError  # re-exported: the engine owns it

__all__ = ["NoFormulaError", "float64"]


def float64(fn):
    """Evaluate fn with 64-bit floats, scoped to the call (the library never flips the global flag)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with jax.enable_x64(True):
            return fn(*args, **kwargs)

    return wrapper
