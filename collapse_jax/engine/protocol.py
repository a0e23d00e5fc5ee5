"""The experiment contract, the same for every family: what an experiment kind returns, and where kinds are found.

A kind is one function, `run(exp, progress) -> ExperimentOutput`, registered by its family with `kind(...)`
(a decorator made once per family by `family(name, build)`); `build(cfg, default_name)` turns the TOML into
the experiment dataclass. `collapse_jax.experiment` (run, sweep), `collapse_jax.validate` (its families), the CLI
help and the docs test read REGISTRY, so a new kind is one decorated function and one TOML file.

Sub-runs of an experiment (a bandwidth, a sample size, a start) draw from `subkey(exp.key, i, j, ...)`: keys
folded in with `jax.random.fold_in`, distinct for every index tuple (integer offsets such as key + 10 r + i
collide as soon as i reaches 10).

Example:
    >>> s = Summary("exact", max_abs_z=1.3)
    >>> s.formula, s.max_abs_z, s.as_dict()["max_abs_z"]
    ('exact', 1.3, 1.3)
    >>> import jax
    >>> bool((jax.random.key_data(subkey(0, 1, 0)) != jax.random.key_data(subkey(0, 0, 10))).any())
    True
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from collapse_jax.engine.seeds import root_key

FORMULAS = ("exact", "DE", "none")


@dataclasses.dataclass(frozen=True)
class Summary:
    """What an experiment concluded: the kind of formula checked, the largest |z| and relative gap over the
    points it checks (NaN where nothing was checked), the dimension that sets a DE's finite-size bound, the
    verdict (set by `collapse_jax.experiment.judge`) and the kind's own numbers (`details`: slopes, fits, ...).
    """

    formula: str  # "exact", "DE" (the looser criterion applies when a scan mixes both) or "none"
    max_abs_z: float = math.nan
    max_rel_gap: float = math.nan
    d: float = math.inf  # a DE's finite-size bound is 2/d
    band: float = math.nan  # the statistical band Z_MAX sem / |mean| at the best-resolved point: what it detects
    seeds: int | None = None  # below engine.agreement.MIN_SEEDS_Z the verdict is inconclusive
    agrees: bool | None = None  # None until judged; True for formula "none" (nothing to disagree with)
    verdict: str = ""
    seconds: float | None = None
    details: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.formula not in FORMULAS:
            raise ValueError(f"Summary.formula must be one of {FORMULAS}, got {self.formula!r}")

    def as_dict(self) -> dict:
        """The summary as JSON-ready data (recorded in the results sidecar)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclasses.dataclass(frozen=True)
class ExperimentOutput:
    """Everything one experiment run produces.

    arrays: {name: array}; axes: {name: [axis names]}. An array whose only axis carries its own name ("n",
    "M", "bandwidth") is that axis's coordinate. rows: the printed theory-vs-simulation table; summary: its
    Summary; figure: the matplotlib figure.
    """

    arrays: dict
    axes: dict
    rows: list
    summary: Summary
    figure: Any

    def __post_init__(self):
        if set(self.arrays) != set(self.axes):
            raise ValueError(f"arrays and axes name different arrays: {sorted(set(self.arrays) ^ set(self.axes))}")
        for k, a in self.arrays.items():
            if np.ndim(a) != len(self.axes[k]):
                raise ValueError(f"array {k!r} has {np.ndim(a)} axes, named {self.axes[k]}")

    @property
    def coords(self) -> dict:
        """{axis: values} for the axes that have a coordinate array."""
        return {k: np.asarray(v) for k, v in self.arrays.items() if list(self.axes[k]) == [k]}

    @property
    def data(self) -> dict:
        """The arrays that are not coordinates."""
        return {k: np.asarray(v) for k, v in self.arrays.items() if list(self.axes[k]) != [k]}


@dataclasses.dataclass(frozen=True)
class Kind:
    """A registered experiment kind: its name, family, the family's builder, its runner and options (e.g. the
    schema of its [chain] table)."""

    name: str
    family: str
    build: Callable  # (cfg, default_name) -> experiment
    run: Callable  # (exp, progress) -> ExperimentOutput
    options: dict

    @property
    def module(self) -> str:
        return self.run.__module__

    @property
    def doc(self) -> str:
        """The first line of the runner's docstring."""
        return (self.run.__doc__ or "").strip().split("\n")[0]


REGISTRY: dict[str, Kind] = {}


def family(name: str, build: Callable):
    """A decorator factory for one family's kinds: `kind = family("distributions", from_config)`, then
    `@kind("gaussian_chain", chain={...})` above each runner."""

    def kind(kind_name: str, **options):
        def register(run):
            old = REGISTRY.get(kind_name)
            if old is not None and (old.module, old.run.__qualname__) != (run.__module__, run.__qualname__):
                raise ValueError(f"experiment kind {kind_name!r} is already registered by {old.module}")
            REGISTRY[kind_name] = Kind(kind_name, name, build, run, options)
            return run

        return register

    return kind


def families() -> tuple[str, ...]:
    """The registered families, in registration order."""
    return tuple(dict.fromkeys(k.family for k in REGISTRY.values()))


def lookup(kind: str) -> Kind:
    """The registered kind, or a ValueError naming every registered kind."""
    if not isinstance(kind, str) or kind not in REGISTRY:
        raise ValueError(f"kind must be one of {tuple(REGISTRY)}, got {kind!r}")
    return REGISTRY[kind]


def subkey(key, *indices):
    """The key of a sub-run: root_key(key) with each index folded in turn (distinct for distinct index tuples).

    Example:
        >>> import jax
        >>> jax.random.key_data(subkey(3)).tolist() == jax.random.key_data(jax.random.key(3)).tolist()
        True
    """
    k = root_key(key)
    for i in indices:
        k = jax.random.fold_in(k, int(i))
    return k
