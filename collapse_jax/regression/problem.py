"""The two configs of a regression chain (MATH §1.1): the generators and the downstream ridge model.

Sizes (T0, T) and structural choices (fixed design, ridge or not) are static fields: they fix array shapes
and code paths. Noise levels and lambda are data, so one compiled function serves a grid of them via vmap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import numpy as np
from jax.typing import ArrayLike

from collapse_jax.engine import checks
from collapse_jax.engine.strategies import NAMES, check_takes
from collapse_jax.engine.strategies import strategy as declared

STRATEGIES = NAMES  # declared in engine/strategies.py


@checks.strict_init
@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Generators:
    """The fake-data chain: generation k fits T0 fresh samples labelled by generation k-1 plus N(0, sigma0^2).

    Each fit is OLS when T0 >= d and the minimum-norm interpolator when T0 < d, or ridge with the generators'
    own ``lam`` (normalised like the downstream model's). ``T0``, ``sigma0``, ``lam`` and ``real_fraction`` may be
    per-generation sequences (entry k-1 is generation k). With ``fixed=True`` every generation reuses one design X (drawn
    once per seed) and only the label noise is fresh.

    Data strategies (MATH §1.7, theory/strategies.md):

    * ``strategy="replace"`` (default): generation k fits only its own T_k fresh rows.
    * ``strategy="accumulate"``: generation k fits every row of generations 1..k, each labelled once, when it
      was drawn, by the model of that time. With ``fixed=True``: one design relabelled each generation, fitted on
      all label sets so far (Gerstgrasser et al. 2024).
    * ``strategy="accumulate_subsample"``: the pool grows as in accumulate; generation k fits T_k rows drawn
      uniformly without replacement from it.
    * ``real_fraction`` pi (data, any strategy; None means none): of generation k's fresh rows, round(pi T_k) are
      labelled by w0 instead of w_{k-1}. ``real_fraction=0.0`` is the same chain as None in law, drawn by the
      direct sampler.

    Args:
        T0: rows per generation (static), or one per generation.
        sigma0: label noise of each generation (data), or one per generation.
        lam: the generators' own ridge lambda (data; None: OLS or min-norm), or one per generation.
        fixed: reuse one design X for every generation (static).
        strategy: "replace", "accumulate" or "accumulate_subsample" (static).
        real_fraction: share of each generation's fresh rows labelled by w0 (data; None: none).

    Raises:
        ValueError: a bad size, noise, lambda, fraction or strategy, or sequences of different lengths.

    Example:
        >>> import collapse_jax as cj
        >>> gen = cj.Generators(T0=(200, 400, 800), sigma0=1.0)
        >>> gen.length
        3
        >>> cj.Generators(T0=300, strategy="accumulate", real_fraction=0.2).strategy
        'accumulate'
    """

    T0: int | tuple[int, ...] = dataclasses.field(default=300, metadata=dict(static=True))
    sigma0: ArrayLike = 1.0
    lam: ArrayLike | None = None
    fixed: bool = dataclasses.field(default=False, metadata=dict(static=True))
    strategy: str = dataclasses.field(default="replace", metadata=dict(static=True))
    real_fraction: ArrayLike | None = None

    def __post_init__(self):
        object.__setattr__(self, "T0", checks.size("T0", self.T0))
        for name in ("sigma0", "lam", "real_fraction"):  # a sequence is one per-generation array, not a pytree
            if isinstance(getattr(self, name), (list, tuple)):
                object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=float))
        checks.config_array("sigma0", self.sigma0, lo=0.0, hi=checks.SCALE_MAX)
        if self.lam is not None:
            checks.config_array("lam (generators)", self.lam, lo=0.0, hi=checks.SCALE_MAX)
            object.__setattr__(self, "lam", _ols_when_zero(self.lam))
        if self.real_fraction is not None:
            checks.config_array("real_fraction", self.real_fraction, lo=0.0, hi=1.0)
        if not isinstance(self.fixed, (bool, np.bool_)):
            raise ValueError(f"fixed must be True or False, got {self.fixed!r}")
        if check_takes(self.strategy, real_fraction=self.real_fraction).subsample and self.fixed:
            raise ValueError(
                "strategy='accumulate_subsample' needs fresh rows each generation (fixed=False): a "
                "subsample of one relabelled design is not a growing pool"
            )
        if self.fixed and len(set(self.T0_tuple)) > 1:
            raise ValueError(f"T0 must be constant with fixed=True (one design for all generations), got {self.T0}")
        lengths = {len(v) for v in self._sequences() if _is_sequence(v)}
        if len(lengths) > 1:
            raise ValueError(
                f"T0, sigma0, lam and real_fraction sequences must have the same length, got lengths {sorted(lengths)}"
            )

    def _sequences(self):
        return (self.T0, self.sigma0, self.lam, self.real_fraction)

    @property
    def pooled(self) -> bool:
        """True when generation k's fit draws on the rows of earlier generations (accumulate strategies)."""
        return declared(self.strategy).pools

    @property
    def T0_tuple(self) -> tuple[int, ...]:
        return self.T0 if isinstance(self.T0, tuple) else (self.T0,)

    @property
    def length(self) -> int | None:
        """Number of generations a per-generation config defines (None: constant, any number)."""
        for v in self._sequences():
            if _is_sequence(v):
                return len(v)
        return None

    def per_generation(self, generations: int):
        """(T_k, sigma_k, lam_k) for k = 1..generations, arrays of that length (the scan's inputs).

        T_k is a numpy array (sizes are static); lam_k is 0 where the generators are not ridge.
        """
        if self.length is not None and generations > self.length:
            raise ValueError(f"generations must be <= {self.length}, the length of the per-generation config")
        n = self.length or generations

        def take(v):
            return jax.numpy.broadcast_to(jax.numpy.asarray(v), (n,))[:generations]

        T = np.broadcast_to(np.asarray(self.T0, dtype=float), (n,))[:generations]
        return T, take(self.sigma0), take(0.0 if self.lam is None else self.lam)

    def real_rows(self, generations: int):
        """round(pi_k T_k) for k = 1..generations: how many of generation k's fresh rows w0 labels (0 if None).

        A float array (traced when real_fraction is), so that pi stays data for vmap and sweeps.
        """
        T, _, _ = self.per_generation(generations)
        pi = 0.0 if self.real_fraction is None else self.real_fraction
        n = self.length or generations
        pi = jax.numpy.broadcast_to(jax.numpy.asarray(pi), (n,))[:generations]
        return jax.numpy.round(pi * T)


@checks.strict_init
@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Downstream:
    """The final ridge model: T fresh samples labelled by generation n plus N(0, sigma^2).

    lam is normalised by T: w = (X'X/T + lam I)^-1 X'Y/T. lam = 0 is OLS (T >= d) or min-norm (T < d).
    ``synthetic_fraction`` p (data; None means 1, every row): round(p T) rows are labelled by the generation-n
    model and the rest by w0 (Dohmatob et al. 2025, strong model collapse). At n = 0 every row is real.
    lam may also be one value per generation n (an array, entry n for the model trained on generation-n
    data), or a schedule `lam(T, n)` (see `collapse_jax.regression.regularization`), which `resolved` turns into that.

    Args:
        T: downstream rows (static).
        sigma: label noise of the downstream rows (data).
        lam: ridge lambda >= 0 (data): a number, one per generation n, or a schedule lam(T, n).
        synthetic_fraction: share of rows labelled by the generation-n model (data; None: all of them).

    Raises:
        ValueError: a bad size, noise, lambda or fraction, named with its allowed range.

    Example:
        >>> import collapse_jax as cj
        >>> cj.Downstream(T=300, sigma=1.0, lam=0.1).T
        300
    """

    T: int = dataclasses.field(default=300, metadata=dict(static=True))
    sigma: ArrayLike = 1.0
    lam: ArrayLike | Callable[..., ArrayLike] = 0.0  # a number, one per generation n, or a schedule lam(T, n)
    synthetic_fraction: ArrayLike | None = None

    def __post_init__(self):
        object.__setattr__(self, "T", checks.size("T", self.T))
        if isinstance(self.T, tuple):
            raise ValueError(f"T must be a single integer, got {self.T}")
        if isinstance(self.lam, (list, tuple)):
            object.__setattr__(self, "lam", np.asarray(self.lam, dtype=float))
        checks.config_array("sigma", self.sigma, lo=0.0, hi=checks.SCALE_MAX, ndim=(0,))
        if not callable(self.lam):  # a schedule (T, n) -> lam, see collapse_jax.regression.regularization
            checks.config_array("lam", self.lam, lo=0.0, hi=checks.SCALE_MAX)
        if self.synthetic_fraction is not None:
            checks.config_array("synthetic_fraction", self.synthetic_fraction, lo=0.0, hi=1.0, ndim=(0,))

    def synthetic_rows(self):
        """round(p T): how many downstream rows the generation-n model labels (T when synthetic_fraction is None)."""
        if self.synthetic_fraction is None:
            return float(self.T)
        return jax.numpy.round(jax.numpy.asarray(self.synthetic_fraction) * self.T)

    def resolved(self, generations: int) -> Downstream:
        """This config with lam as a number or an array of one lambda per n = 0..generations."""
        lam = self.lam
        if callable(lam):  # schedules take an array of generations and broadcast against it
            out = lam(self.T, np.arange(generations + 1))
            if not isinstance(out, jax.core.Tracer):
                checks.real_array("lam (the schedule's values lam(T, n))", out, lo=0.0, hi=checks.SCALE_MAX)
                if np.ndim(out) > 1 or np.size(out) not in (1, generations + 1):
                    raise ValueError(
                        f"lam schedule must return one value or one per n = 0..{generations}, got shape {np.shape(out)}"
                    )
            lam = np.broadcast_to(np.asarray(out, float), (generations + 1,))
        if checks.is_concrete(lam) and np.ndim(lam) == 1 and np.shape(lam)[0] < generations + 1:
            raise ValueError(f"lam per generation must have at least generations + 1 = {generations + 1} entries")
        return dataclasses.replace(self, lam=lam)


def _ols_when_zero(lam):
    """Generators' lam = 0 is OLS (T0 >= d) or min-norm (T0 < d), exactly the chain of lam = None, which has exact
    formulas; so a concrete zero (a number, or zeros per generation) becomes None. A per-generation lam mixing 0
    with ridge values is refused: one chain is either ridge or not (the choice is static). Jax arrays pass as they
    are (JAX rebuilds configs from their leaves: the pytree structure must not change)."""
    if isinstance(lam, jax.Array) or not checks.is_concrete(lam):
        return lam
    zero = np.asarray(lam) == 0
    if np.all(zero):
        return None
    if np.any(zero):
        raise ValueError(
            f"lam (generators) must be > 0 in every generation (ridge) or 0 in all (OLS/min-norm, the same as "
            f"lam=None), got {np.asarray(lam).tolist()}"
        )
    return lam


def _is_sequence(x) -> bool:
    return isinstance(x, (tuple, list)) or (checks.is_concrete(x) and np.ndim(x) == 1)
