"""What one entry of `collapse-jax validate`'s catalogue is: a closed form, how it is judged, how to simulate it.

Each family owns its entries (`regression/catalogue.py`, `distributions/catalogue.py`, `kernels/catalogue.py`,
each with `entries()`); `collapse_jax.validate` runs them. The record lives here, in the engine, so that a family
writes its checks without importing the validation command or another family.

Example:
    >>> import numpy as np
    >>> c = Check("demo", "E x = 0", "theory/samplers.md", "normal draws", "exact", 0.0, 1.0,
    ...           lambda seeds, key: (np.arange(1), np.zeros((seeds, 1)), np.zeros(1)))
    >>> c.seeds(0.05), c.seeds(1.0) == MIN_SEEDS
    (8464, True)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from collapse_jax.engine import agreement

MARGIN = 1.15  # seeds = (Z_MAX cv MARGIN / target)^2: the margin covers the error of cv measured at 2000 seeds
# (cv: `validate.calibrate(validate.select(), 2000, key=1)`, a key the catalogue does not use; heavy tails
# (Gaussian sigma_n^2) vary most)
MIN_SEEDS = 200


@dataclasses.dataclass(frozen=True)
class Check:
    """One catalogue entry: a formula, where it is derived, how it is judged, and how to simulate it.

    `cv` is the per-seed standard deviation over |mean| at the entry's best-resolved point, measured once
    (`validate.calibrate`); the seed count of a mode follows from it and the mode's target band, never from runtime.
    """

    family: str
    formula: str
    note: str  # the theory note that derives it: theory/<note>.md
    config: str
    kind: str  # "exact", "DE" or "approximation" (engine/agreement.py)
    gap: float  # relative bound beyond the statistical band: 0 (exact), de_gap(d) (DE), stated accuracy
    cv: float
    simulate: Callable  # (seeds, key) -> (x, simulated (seeds, points), theory (points,))

    def seeds(self, target: float) -> int:
        """Seeds that bring the statistical band Z_MAX * sem / |mean| to `target`, or to the gap bound where that
        is wider: a DE detects gap + band, so a band below its gap would at most halve what it detects."""
        return max(MIN_SEEDS, math.ceil((agreement.Z_MAX * self.cv * MARGIN / max(target, self.gap)) ** 2))
