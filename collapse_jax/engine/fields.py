"""What a sweep may vary in a config, read off the config dataclass itself, so that no list is kept beside it.

A field is a grid axis unless its metadata says sweep=False, and static (looped over on the host, one compilation
each) when its metadata says static=True, as jax.tree_util.register_dataclass reads it too. A config whose grid
parameters are not its fields (a Spectrum rebuilt from a recipe) lists them in a class attribute GRID_FIELDS,
{name: static}.
"""

from __future__ import annotations

import dataclasses


def grid_fields(cls) -> dict[str, bool]:
    """{name: static} for the fields of config class `cls` that a sweep may vary, in declaration order.

    Example:
        >>> import collapse_jax as cj
        >>> from collapse_jax.engine.fields import grid_fields
        >>> grid_fields(cj.Downstream)
        {'T': True, 'sigma': False, 'lam': False, 'synthetic_fraction': False, 'real_weight': False, 'width': True}
    """
    if hasattr(cls, "GRID_FIELDS"):
        return dict(cls.GRID_FIELDS)
    return {
        f.name: bool(f.metadata.get("static", False)) for f in dataclasses.fields(cls) if f.metadata.get("sweep", True)
    }
