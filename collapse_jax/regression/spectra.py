"""Spectrum: the covariance eigenvalues and the teacher's coordinates in that eigenbasis (theory/moments.md "Setting").

By rotation invariance of Gaussian features, Sigma = diag(eigenvalues) loses no generality; every simulation
and formula in the lab works in this basis.
"""

from __future__ import annotations

import dataclasses
import numbers
import typing
from typing import cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from collapse_jax.engine import checks

EIG_MIN, EIG_MAX = 1e-100, 1e100  # covariance eigenvalues the float64 theory handles without over- or underflow


@checks.strict_init
@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Spectrum:
    """Eigenvalues of Sigma and the teacher w0 in its eigenbasis.

    Both are data (not static), so one compiled simulation serves many spectra of the same dimension.

    Args:
        eigenvalues: the d eigenvalues of Sigma, all > 0 (a numpy or JAX array, or a list).
        w0: the teacher's d coordinates in Sigma's eigenbasis.

    Raises:
        ValueError: eigenvalues not all positive and finite, w0 not finite, or shapes that differ.

    Example:
        >>> import collapse_jax as cj
        >>> spec = cj.Spectrum.power_law(100, beta=1.5, r=0.5)
        >>> round(float(spec.signal), 6)
        1.0
    """

    eigenvalues: ArrayLike  # held as given (a numpy or JAX array; lists become numpy arrays)
    w0: ArrayLike
    # How the named constructors built it ({"kind": "power_law", "d": 100, "beta": 1.5, ...}), so that a sweep can
    # rebuild it with other parameters. A static field (part of the tree structure, hashable), so it survives
    # dataclasses.replace and jax.tree.map; `values()` drops it where one compiled program should serve spectra of
    # different recipes (simulate, sweep).
    recipe: Recipe | None = dataclasses.field(default=None, metadata=dict(static=True))
    # a sweep's axes: the recipes' parameters (rebuilt at each point), d static (it sets the shapes)
    GRID_FIELDS: typing.ClassVar[dict] = {"d": True, "beta": False, "r": False, "signal": False}

    def __post_init__(self):
        for name in ("eigenvalues", "w0"):  # a string, None or a table is never a spectrum (tracers pass)
            value = getattr(self, name)
            if value is None or isinstance(value, (str, bytes, dict, set, numbers.Number)):
                raise ValueError(f"{name} must be a 1-D array of real numbers, got {value!r}"[:300])
        if self.recipe is not None:
            if not isinstance(self.recipe, dict) or self.recipe.get("kind") not in _BUILDERS:
                raise ValueError(
                    f"recipe must be None or a dict with kind in {sorted(_BUILDERS)} (as Spectrum.isotropic and "
                    f"Spectrum.power_law set it), got {self.recipe!r}"[:300]
                )
            object.__setattr__(self, "recipe", Recipe(self.recipe))
        for name in ("eigenvalues", "w0"):  # lists and tuples are one array each, not pytrees of scalars
            if isinstance(getattr(self, name), (list, tuple)):
                checks.real_array(name, getattr(self, name), ndim=(1,))
                object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=float))
        if checks.is_concrete(self.eigenvalues):
            # beyond [EIG_MIN, EIG_MAX] the theory's squares and inverses leave float64's range (NaN theory)
            checks.real_array("eigenvalues", self.eigenvalues, lo=EIG_MIN, hi=EIG_MAX, ndim=(1,))
        if checks.is_concrete(self.w0):
            checks.real_array("w0", self.w0, lo=-checks.SCALE_MAX, hi=checks.SCALE_MAX, ndim=(1,))
            if checks.is_concrete(self.eigenvalues) and np.shape(self.w0) != np.shape(self.eigenvalues):
                raise ValueError(
                    f"w0 must have the shape of eigenvalues {np.shape(self.eigenvalues)}, got {np.shape(self.w0)}"
                )

    def values(self) -> Spectrum:
        """This spectrum without its recipe: the tree structure depends on d alone, so a jit-compiled function
        called on spectra of other betas or signals reuses one compilation."""
        return self if self.recipe is None else dataclasses.replace(self, recipe=None)

    def matches_recipe(self) -> bool:
        """True when the recipe rebuilds this spectrum's arrays (to float32 precision), so that a sweep may rebuild it
        with other parameters. Needs concrete values; False without a recipe."""
        if self.recipe is None:
            return False
        params = {k: v for k, v in self.recipe.items() if k != "kind"}
        return all(
            np.shape(a) == np.shape(b) and np.allclose(np.asarray(a, float), b, rtol=1e-6, atol=0)
            for a, b in zip((self.eigenvalues, self.w0), _BUILDERS[self.recipe["kind"]](**params), strict=True)
        )

    @property
    def d(self) -> int:
        return int(np.shape(self.eigenvalues)[0])

    @property
    def signal(self):
        """||w0||^2_Sigma = sum_j lambda_j w0_j^2."""
        # both are 1-d arrays (checked in __post_init__), numpy or JAX: the sum stays in the arrays' own library
        return cast("jax.Array | np.ndarray", self.eigenvalues * self.w0**2).sum()

    @property
    def is_isotropic(self) -> bool:
        """True when all eigenvalues are equal (then the isotropic closed forms apply). Needs concrete values."""
        ev = np.asarray(self.eigenvalues)
        return bool(np.all(ev == ev[0]))

    @classmethod
    def isotropic(cls, d: int, signal: float = 1.0) -> Spectrum:
        """Sigma = I_d and a teacher with equal coordinates, scaled so that ||w0||^2 = signal."""
        checks.Int(1, checks.MAX_SIZE)("d", d)
        checks.real_array("signal", signal, lo=0.0, hi=checks.SCALE_MAX, ndim=(0,))
        eigenvalues, w0 = _isotropic(d, signal)
        return cls(eigenvalues, w0, recipe=_recipe(kind="isotropic", d=d, signal=signal))

    @classmethod
    def power_law(cls, d: int, beta: float, r: float, signal: float = 1.0) -> Spectrum:
        """Capacity and source conditions (theory/powerlaw.md): lambda_j = j^-beta, lambda_j w0_j^2 ∝ j^-(1 + 2 beta r).

        The teacher's coordinates are positive and normalised so that ||w0||^2_Sigma = signal.
        """
        checks.Int(1, checks.MAX_SIZE)("d", d)
        checks.real_array("beta", beta, lo=0.0, lo_open=True, ndim=(0,))
        checks.real_array("r", r, lo=0.0, lo_open=True, ndim=(0,))
        checks.real_array("signal", signal, lo=0.0, hi=checks.SCALE_MAX, ndim=(0,))
        eigenvalues, w0 = _power_law(d, beta, r, signal)
        return cls(eigenvalues, w0, recipe=_recipe(kind="power_law", d=d, beta=beta, r=r, signal=signal))

    @classmethod
    def stack(cls, spectra, dtype) -> Spectrum:
        """Spectra of one dimension as one Spectrum whose arrays have a leading axis over them, to vmap over
        (built without __post_init__, whose checks are for one spectrum)."""
        spectra = list(spectra) if isinstance(spectra, (list, tuple)) else None
        if not spectra or not all(isinstance(s, Spectrum) for s in spectra):
            raise ValueError("spectra must be a non-empty list of Spectrum")
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise ValueError(f"dtype must be a numpy dtype, got {dtype!r}") from None
        out = object.__new__(cls)
        object.__setattr__(out, "recipe", None)
        for name in ("eigenvalues", "w0"):
            object.__setattr__(out, name, jnp.stack([jnp.asarray(getattr(s, name), dtype) for s in spectra]))
        return out

    @classmethod
    def from_config(cls, cfg: dict) -> Spectrum:
        """From a TOML [spectrum] table: kind = "isotropic" (d, signal), "power_law" (d, beta, r, signal) or
        "custom" (eigenvalues, w0)."""
        if not isinstance(cfg, dict):
            raise ValueError(f"[spectrum] must be a table, got {cfg!r}"[:300])
        cfg = dict(cfg)
        kind = cfg.pop("kind", "isotropic")
        keys = {
            "isotropic": {"d", "signal"},
            "power_law": {"d", "beta", "r", "signal"},
            "custom": {"eigenvalues", "w0"},
        }
        if kind not in keys:
            raise ValueError(f"spectrum.kind must be 'isotropic', 'power_law' or 'custom', got {kind!r}")
        checks.sections(cfg, keys[kind], f"[spectrum] (kind = {kind!r})")
        if kind == "custom":
            missing = keys[kind] - set(cfg)
            if missing:
                raise ValueError(f"[spectrum] kind = 'custom' needs {sorted(missing)}")
            for key in ("eigenvalues", "w0"):  # a ragged or non-numeric list is named, not a numpy message
                checks.real_array(f"spectrum.{key}", cfg[key], ndim=(1,))
            return cls(np.asarray(cfg["eigenvalues"], float), np.asarray(cfg["w0"], float))
        if "d" not in cfg:
            raise ValueError(f"[spectrum] kind = {kind!r} needs d")
        try:
            return getattr(cls, kind)(**cfg)
        except TypeError as err:
            raise ValueError(f"[spectrum]: {err}") from None


class Recipe(dict):
    """A spectrum's recipe: a dict (it reads, merges with `|` and serialises as one) that is hashable and refuses
    changes, as a static pytree field must be."""

    def __hash__(self):  # type: ignore[override]
        return hash(tuple(sorted(self.items())))

    def _frozen(self, *args, **kwargs):
        raise TypeError("a Spectrum's recipe cannot be changed; use Spectrum.from_config(spec.recipe | {...})")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = __ior__ = _frozen


def _recipe(**params) -> Recipe:
    return Recipe({k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()})


def _isotropic(d: int, signal: float):
    return np.ones(d), np.full(d, np.sqrt(signal / d))


def _power_law(d: int, beta: float, r: float, signal: float):
    j = np.arange(1, d + 1, dtype=float)
    eigenvalues = j**-beta
    energy = j ** -(1.0 + 2.0 * beta * r)  # lambda_j w0_j^2 before normalisation
    if not (eigenvalues[-1] > 0 and energy[0] / energy.sum() > 0 and np.all(np.isfinite(energy))):
        raise ValueError(
            f"beta = {beta} and r = {r} at d = {d}: j^-beta or j^-(1 + 2 beta r) underflows "
            "float64; take smaller exponents or a smaller d"
        )
    energy *= signal / energy.sum()
    return eigenvalues, np.sqrt(energy / eigenvalues)


_BUILDERS: dict[str, typing.Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "isotropic": _isotropic,
    "power_law": _power_law,
}
