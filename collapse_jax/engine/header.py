"""What every experiment file has, whatever its family: a name, a kind, a description, the seeds and key of
[simulation], the [plot] options and the resolved configuration. Each family's experiment dataclass extends
`Header` with its own tables and builds the header with `read_header`, so those entries are checked one way.

Example:
    >>> h = read_header({"kind": "kde_chain", "simulation": {"seeds": 50}}, "demo", {"chain"}, seeds=1000)
    >>> h["name"], h["seeds"], h["key"]
    ('demo', 50, 0)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Set as AbstractSet

from collapse_jax.engine import checks, plotting

COMMON = {"name", "kind", "description", "simulation", "plot"}
SIMULATION = {"seeds": "int", "key": "int"}


@dataclasses.dataclass(frozen=True)
class Header:
    name: str
    kind: str
    description: str
    seeds: int
    key: int
    plot: dict  # the [plot] table: style and size for every family, the kind's own options beside them
    config: dict  # the resolved TOML, recorded beside the results


def _description(value) -> str:
    """A description: one string (a number or a table is a mistake, not a description)."""
    if not isinstance(value, str):
        raise ValueError(f"description must be a string, got {value!r}"[:300])
    return value


def read_header(
    cfg: dict,
    default_name: str,
    tables: AbstractSet[str],
    *,
    seeds: int,
    simulation: dict | None = None,
    plot: AbstractSet[str] = frozenset(),
) -> dict:
    """Check the file's top-level tables (COMMON + `tables`), [simulation] (seeds, key + `simulation`, a schema
    of kinds as in `checks.table`) and [plot] (style, size + `plot`); return Header's fields as a dict, seeds
    defaulting to `seeds`."""
    kind = cfg.get("kind", "")
    checks.sections(cfg, COMMON | set(tables), f"a {kind} experiment" if kind else "an experiment file")
    sim = checks.table(cfg.get("simulation", {}), SIMULATION | (simulation or {}), "[simulation]")
    plot_table = dict(cfg.get("plot", {}))
    checks.sections(plot_table, set(plot) | set(plotting.PLOT_KEYS), "[plot]")
    checks.table({k: v for k, v in plot_table.items() if k in plotting.PLOT_KEYS}, plotting.PLOT_KEYS, "[plot]")
    return dict(
        name=checks.name(cfg.get("name", default_name)),
        kind=kind,
        description=_description(cfg.get("description", "")),
        seeds=checks.size("simulation.seeds", sim.get("seeds", seeds)),
        key=checks.size("simulation.key", sim.get("key", 0), lo=0),
        plot=plot_table,
        config=cfg,
    )
