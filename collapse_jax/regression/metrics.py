"""The names a regression chain measures, shared by simulation and theory (neither imports the other for them).

Example:
    >>> from collapse_jax.regression.metrics import Metrics
    >>> Metrics._fields
    ('test_error', 'generator_error')
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np


class Metrics(NamedTuple):
    """Per-generation quantities, shared by simulation (per seed, mean, sem) and theory."""

    test_error: jax.Array | np.ndarray  # (w_pred - w0)' Sigma (w_pred - w0) of the downstream model on generation n
    generator_error: jax.Array | np.ndarray  # (w_n - w0)' Sigma (w_n - w0) of generation n itself (0 at n = 0)
