"""The two configs of a regression chain (theory/moments.md "Setting"): the generators and the downstream ridge model.

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

    Data strategies (theory/strategies.md):

    * ``strategy="replace"`` (default): generation k fits only its own T_k fresh rows.
    * ``strategy="accumulate"``: generation k fits every row of generations 1..k, each labelled once, when it
      was drawn, by the model of that time. With ``fixed=True``: one design relabelled each generation, fitted on
      all label sets so far (Gerstgrasser et al. 2024).
    * ``strategy="accumulate_subsample"``: the pool grows as in accumulate; generation k fits T_k rows drawn
      uniformly without replacement from it.
    * ``real_fraction`` pi (data, any strategy; None means none): of generation k's fresh rows, round(pi T_k)
      (rounded half to even, as ``jnp.round``: T = 25, pi = 0.5 gives 12) are labelled by w0 instead of w_{k-1}. ``real_fraction=0.0`` is the same chain as None in law, drawn by the
      direct sampler.
    * ``real_weight`` w (data, strategy "replace"; None means the pooled fit): generation k minimises
      w (mean loss on its real rows) + (1 - w) (mean loss on its synthetic rows) (+ the ridge penalty), a scalar
      or one per generation; needs ``real_fraction`` (theory/weighted.md). w = n_r/T_k is the pooled fit.

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
    real_weight: ArrayLike | None = None

    def __post_init__(self):
        object.__setattr__(self, "T0", checks.size("T0", self.T0))
        for name in (
            "sigma0",
            "lam",
            "real_fraction",
            "real_weight",
        ):  # a sequence is one per-generation array, not a pytree
            if isinstance(getattr(self, name), (list, tuple)):
                object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=float))
        checks.config_array("sigma0", self.sigma0, lo=0.0, hi=checks.SCALE_MAX)
        if self.lam is not None:
            checks.config_array("lam (generators)", self.lam, lo=0.0, hi=checks.SCALE_MAX)
            object.__setattr__(self, "lam", _ols_when_zero(self.lam))
        if self.real_fraction is not None:
            checks.config_array("real_fraction", self.real_fraction, lo=0.0, hi=1.0)
        if self.real_weight is not None:
            checks.real_array("real_weight", self.real_weight, lo=0.0, hi=1.0, ndim=(0, 1))
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
                "T0, sigma0, lam, real_fraction and real_weight sequences must have the same length, got lengths "
                f"{sorted(lengths)}"
            )
        if self.real_weight is not None:
            if self.real_fraction is None:
                raise ValueError("real_weight needs real_fraction (the share of real rows it weighs), got None")
            if self.strategy != "replace":
                raise ValueError(f"real_weight needs strategy='replace', got strategy={self.strategy!r}")
            if checks.is_concrete(self.real_weight) and checks.is_concrete(self.real_fraction):
                n = self.length or 1
                check_groups("real_weight", self.real_weight, self.real_rows(n), self.per_generation(n)[0])

    def _sequences(self):
        return (self.T0, self.sigma0, self.lam, self.real_fraction, self.real_weight)

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
        """round(pi_k T_k), half to even, for k = 1..generations: how many of generation k's fresh rows w0 labels.

        A float array (traced when real_fraction is), so that pi stays data for vmap and sweeps.
        """
        T, _, _ = self.per_generation(generations)
        pi = 0.0 if self.real_fraction is None else self.real_fraction
        n = self.length or generations
        pi = jax.numpy.broadcast_to(jax.numpy.asarray(pi), (n,))[:generations]
        return jax.numpy.round(pi * T)

    def real_weights(self, generations: int):
        """w_k for k = 1..generations (an array, traced when real_weight is); None when real_weight is None."""
        if self.real_weight is None:
            return None
        n = self.length or generations
        return jax.numpy.broadcast_to(jax.numpy.asarray(self.real_weight), (n,))[:generations]


@checks.strict_init
@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Downstream:
    """The final ridge model: T fresh samples labelled by generation n plus N(0, sigma^2).

    lam is normalised by T: w = (X'X/T + lam I)^-1 X'Y/T. lam = 0 is OLS (T >= d) or min-norm (T < d).
    ``synthetic_fraction`` p (data; None means 1, every row): round(p T) rows (half to even) are labelled by the generation-n
    model and the rest by w0 (Dohmatob et al. 2025, strong model collapse). At n = 0 every row is real.
    ``real_weight`` w (data; None means the pooled fit): the fit minimises w (mean loss on the real rows) +
    (1 - w) (mean loss on the synthetic rows) + the ridge penalty (theory/weighted.md); needs synthetic_fraction.
    lam may also be one value per generation n (an array, entry n for the model trained on generation-n
    data), or a schedule `lam(T, n)` (see `collapse_jax.regression.regularization`), which `resolved` turns into that.

    ``width`` m (static; None: the linear model on x itself) makes the model size an axis (theory/projection.md):
    the model is f(x) = v'Sx with S an (m x d) matrix of i.i.d. N(0, 1/d) entries drawn once per seed and
    independent of everything else, and v is the ridge fit on the features z = Sx, (Z'Z/T + lam I_m)^-1 Z'y/T
    (lam = 0: least squares or its minimum-norm solution in R^m). The error is that of S'v. One S serves every
    generation n of a seed: one model, retrained on each generation's data.

    Args:
        T: downstream rows (static).
        sigma: label noise of the downstream rows (data).
        lam: ridge lambda >= 0 (data): a number, one per generation n, or a schedule lam(T, n).
        synthetic_fraction: share of rows labelled by the generation-n model (data; None: all of them).
        width: the model size m of a random-projection model (static; None: the linear model on x).

    Raises:
        ValueError: a bad size, noise, lambda or fraction, named with its allowed range.

    Example:
        >>> import collapse_jax as cj
        >>> cj.Downstream(T=300, sigma=1.0, lam=0.1).T
        300
        >>> cj.Downstream(T=200, lam=1e-2, synthetic_fraction=0.1, width=100).width
        100
    """

    T: int = dataclasses.field(default=300, metadata=dict(static=True))
    sigma: ArrayLike = 1.0
    lam: ArrayLike | Callable[..., ArrayLike] = 0.0  # a number, one per generation n, or a schedule lam(T, n)
    synthetic_fraction: ArrayLike | None = None
    real_weight: ArrayLike | None = None
    width: int | None = dataclasses.field(default=None, metadata=dict(static=True))

    def __post_init__(self):
        object.__setattr__(self, "T", checks.size("T", self.T))
        if self.width is not None:
            object.__setattr__(self, "width", checks.size("width", self.width))
            if isinstance(self.width, tuple) or self.width > checks.MAX_SIZE:
                raise ValueError(f"width must be one integer in [1, {checks.MAX_SIZE}], got {self.width}")
            if getattr(self, "real_weight", None) is not None:
                raise ValueError(
                    "width with real_weight: a weighted fit of the width-m model is not supported; use one"
                )
        if isinstance(self.T, tuple):
            raise ValueError(f"T must be a single integer, got {self.T}")
        if isinstance(self.lam, (list, tuple)):
            object.__setattr__(self, "lam", np.asarray(self.lam, dtype=float))
        checks.config_array("sigma", self.sigma, lo=0.0, hi=checks.SCALE_MAX, ndim=(0,))
        if not callable(self.lam):  # a schedule (T, n) -> lam, see collapse_jax.regression.regularization
            checks.config_array("lam", self.lam, lo=0.0, hi=checks.SCALE_MAX)
        if self.synthetic_fraction is not None:
            checks.config_array("synthetic_fraction", self.synthetic_fraction, lo=0.0, hi=1.0, ndim=(0,))
        if self.real_weight is not None:  # the loss weight of the real rows (theory/weighted.md)
            checks.real_array("real_weight (downstream)", self.real_weight, lo=0.0, hi=1.0, ndim=(0,))
            if self.synthetic_fraction is None:
                raise ValueError(
                    "real_weight (downstream) needs synthetic_fraction (every row is synthetic without it)"
                )
            if checks.is_concrete(self.real_weight) and checks.is_concrete(self.synthetic_fraction):
                # in numpy, as synthetic_rows rounds: inside a trace (formula_kind's eval_shape) jnp would stage it
                real_rows = self.T - np.round(np.asarray(self.synthetic_fraction, float) * self.T)
                check_groups("real_weight (downstream)", self.real_weight, real_rows, self.T)

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


def check_groups(name: str, weight, n_real, T):
    """Refuse a loss weight on an empty group: with no real rows the weight must be 0, with no synthetic rows 1
    (a mean loss over no rows is undefined). weight, n_real, T: concrete numbers or per-generation arrays."""
    weight, n_real, T = np.broadcast_arrays(np.asarray(weight, float), np.asarray(n_real, float), np.asarray(T, float))
    for k, (w, r, t) in enumerate(zip(weight.ravel(), n_real.ravel(), T.ravel(), strict=True)):
        where = f" (entry {k})" if weight.size > 1 else ""
        if r == 0 and w != 0:
            raise ValueError(
                f"{name} must be 0 where there are no real rows (the real fraction rounds to 0){where}, got {w}"
            )
        if r == t and w != 1:
            raise ValueError(
                f"{name} must be 1 where there are no synthetic rows (the real fraction rounds to all rows){where}, "
                f"got {w}"
            )


def check_group_sizes(name: str, weight, n_real, T, d: int, ridge):
    """Refuse a weighted OLS fit (lam = 0, T >= d) that puts all the weight on a group of fewer than d rows: its
    normal equations are singular. Concrete arguments only (a traced weight is checked where it is drawn)."""
    if not all(checks.is_concrete(x) for x in (weight, n_real, ridge)):
        return
    weight, n_real, T, ridge = np.broadcast_arrays(
        np.asarray(weight, float), np.asarray(n_real, float), np.asarray(T, float), np.asarray(ridge, float)
    )
    for w, r, t, lam in zip(weight.ravel(), n_real.ravel(), T.ravel(), ridge.ravel(), strict=True):
        group, rows = ("real", r) if w == 1 else ("synthetic", t - r) if w == 0 else (None, t)
        if lam == 0 and t >= d and group and rows < d:
            raise ValueError(
                f"{name} = {w:g} fits the {group} rows alone, and there are {int(rows)} of them: an OLS fit needs at "
                f"least d = {d} (raise T or the fraction, or use a weight in (0, 1))"
            )


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
