"""Data strategies, declared once for every family: what each one does with the rows of earlier generations.

A family maps each strategy's name to its simulation step and to its theory (or to the reason it has none) in one
table of its own; the words, their meaning and the check of a name live here. Derivations: theory/strategies.md.

Example:
    >>> from collapse_jax.engine.strategies import STRATEGIES, strategy
    >>> [s.name for s in STRATEGIES.values()]
    ['replace', 'accumulate', 'accumulate_subsample']
    >>> strategy("accumulate").pools, strategy("accumulate").subsample
    (True, False)
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Strategy:
    """One data strategy.

    Attributes:
        name: the word every family and TOML file uses.
        pools: generation k's fit draws on the rows of earlier generations (a pool that grows).
        subsample: the fit takes a subset of the pool drawn without replacement (its size: the generation's own).
        takes: the fractions and weights a config may set alongside it (real rows mixed into each generation).
        summary: one line for documentation and error messages.
    """

    name: str
    pools: bool
    subsample: bool
    takes: tuple[str, ...]
    summary: str


STRATEGIES = {
    s.name: s
    for s in (
        Strategy("replace", False, False, ("real_fraction",), "each generation fits only its own fresh rows"),
        Strategy("accumulate", True, False, ("real_fraction",), "each generation fits every row drawn so far"),
        Strategy(
            "accumulate_subsample",
            True,
            True,
            ("real_fraction",),
            "the pool grows as in accumulate; each generation fits as many rows as it drew, picked from the pool",
        ),
    )
}
NAMES = tuple(STRATEGIES)


def strategy(name, what: str = "strategy", allowed: tuple[str, ...] | None = None) -> Strategy:
    """The Strategy called `name`; a ValueError naming `what` and the allowed names otherwise (`allowed`: the
    strategies a family implements, when it implements fewer than all).

    Example:
        >>> strategy("replace").pools
        False
    """
    allowed = tuple(STRATEGIES) if allowed is None else allowed
    if name not in allowed:
        raise ValueError(f"{what} must be one of {allowed}, got {name!r}")
    return STRATEGIES[name]


def table(family: str, entries: dict) -> dict:
    """A family's table from strategy name to what it does under that strategy (a step, a formula, a reason
    why there is none), checked at import: its keys must be declared strategies, so that a new strategy is declared
    here once and each family's table says what it does with it.

    Example:
        >>> table("demo", {"replace": 1})
        {'replace': 1}
    """
    unknown = sorted(set(entries) - set(STRATEGIES))
    if unknown:
        raise ValueError(f"{family}: strategies {unknown} are not declared in collapse_jax.engine.strategies")
    return dict(entries)


@dataclasses.dataclass(frozen=True)
class NoFormula:
    """A theory table's entry for a strategy without a closed form in the lab: why there is none."""

    why: str


def lookup(entries: dict, name: str, family: str):
    """entries[name] for a declared strategy; a ValueError naming the family and what it implements otherwise.

    Example:
        >>> lookup({"replace": 1}, "replace", "demo")
        1
    """
    strategy(name)
    if name not in entries:
        raise ValueError(f"strategy {name!r} is not implemented by the {family} family; it has {tuple(entries)}")
    return entries[name]


def check_takes(name: str, **given) -> Strategy:
    """The Strategy called `name`, after refusing every option in `given` that is set (not None) and that the
    strategy does not take (see Strategy.takes), by name.

    Example:
        >>> check_takes("accumulate", real_fraction=0.2).name
        'accumulate'
    """
    s = strategy(name)
    for option, value in given.items():
        if value is not None and option not in s.takes:
            raise ValueError(f"{option} is not an option of strategy {name!r}; it takes {s.takes}")
    return s
