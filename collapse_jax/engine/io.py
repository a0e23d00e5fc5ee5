"""Results on disk: arrays in a compressed .npz with named axes, and a .json sidecar with the config,
the axes, the versions, the x64 flag, the devices and the root seed. Both are written to a temporary name and
renamed, so an interrupted run never leaves a half-written file."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any

import jax
import numpy as np


def environment() -> dict:
    """Versions and runtime facts recorded beside every result."""
    import collapse_jax

    return dict(
        collapse_jax=collapse_jax.__version__,
        jax=jax.__version__,
        jaxlib=jax.lib.__version__,
        numpy=np.__version__,
        python=platform.python_version(),
        x64=bool(jax.config.read("jax_enable_x64")),
        devices=[str(d) for d in jax.devices()],
        written=datetime.datetime.now(datetime.UTC).isoformat(),
    )


def save(stem: str | Path, arrays: dict, axes: dict, meta: dict, coords: dict | None = None) -> tuple[Path, Path]:
    """Write stem.npz (arrays) and stem.json ({'axes': {array: [axis names]}, **meta, 'environment': ...}).

    coords: {axis: values} for axes with coordinates; stored in the npz as "coord:AXIS" arrays, and every
    array's length along a coordinated axis must match its coordinate (checked here, before anything is written).

    Example:
        >>> import numpy as np, tempfile, os
        >>> from collapse_jax.engine import io
        >>> stem = os.path.join(tempfile.mkdtemp(), "demo")
        >>> _ = io.save(stem, {"x": np.arange(3.0)}, {"x": ["n"]}, {"seed": 0})
        >>> arrays, meta = io.load(stem)
        >>> arrays["x"].tolist(), meta["axes"]["x"]
        ([0.0, 1.0, 2.0], ['n'])
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    coords = {k: np.asarray(v) for k, v in (coords or {}).items()}
    for name, arr in arrays.items():
        if name not in axes or len(axes[name]) != np.ndim(arr):
            raise ValueError(f"axes must name every axis of array {name!r} (shape {np.shape(arr)})")
        for axis, size in zip(axes[name], np.shape(arr), strict=True):
            if axis in coords and len(coords[axis]) != size:
                raise ValueError(
                    f"array {name!r} has {size} entries along axis {axis!r}, its coordinate has {len(coords[axis])}"
                )
    arrays = dict(arrays) | {f"coord:{k}": v for k, v in coords.items()}
    axes = dict(axes) | {f"coord:{k}": [k] for k in coords}
    npz, sidecar = stem.with_suffix(".npz"), stem.with_suffix(".json")
    tmp = stem.with_name(f"{stem.name}.{os.getpid()}.tmp.npz")  # per process: two writers never share one
    payload: dict[str, Any] = {k: np.asarray(v) for k, v in arrays.items()}
    np.savez_compressed(tmp, **payload)
    os.replace(tmp, npz)
    doc = dict(axes=axes, **meta, environment=environment())
    tmp_json = stem.with_name(f"{stem.name}.{os.getpid()}.tmp.json")
    tmp_json.write_text(json.dumps(doc, indent=2, default=_jsonable))
    os.replace(tmp_json, sidecar)
    return npz, sidecar


def load(stem: str | Path) -> tuple[dict, dict]:
    """Read back (arrays, sidecar) written by `save` (no pickles), checking that the sidecar names every axis of
    every array; a missing, damaged or mismatched file is refused by path."""
    stem = Path(stem)
    npz, sidecar = stem.with_suffix(".npz"), stem.with_suffix(".json")
    for path in (npz, sidecar):
        if not path.is_file():
            raise ValueError(f"results file {str(path)!r} does not exist")
    try:
        with np.load(npz, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as err:  # truncated, not a zip, a pickle
        raise ValueError(f"{npz} is not a readable results file ({type(err).__name__}: {err})") from None
    try:
        meta = json.loads(sidecar.read_text())
        axes = meta["axes"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{sidecar} is not a results sidecar ({type(err).__name__}: {err})") from None
    for name, arr in arrays.items():
        if not isinstance(axes.get(name), list) or len(axes[name]) != arr.ndim:
            raise ValueError(
                f"{sidecar} does not name the {arr.ndim} axes of array {name!r} (shape {arr.shape}) "
                f"in {npz}: got {axes.get(name)!r}"
            )
    return arrays, meta


def to_xarray(variables: dict, coords: dict):
    """An xarray.Dataset from {name: (dims, array)} and {dim: coordinate values} (the optional extra
    `pip install 'collapse_jax[analysis]'`)."""
    try:
        import xarray as xr
    except ImportError:
        raise ValueError(
            "to_xarray/to_dataframe need xarray and pandas: pip install 'collapse_jax[analysis]'"
        ) from None
    return xr.Dataset(
        {k: (list(dims), np.asarray(a)) for k, (dims, a) in variables.items()},
        coords={k: np.asarray(v) for k, v in coords.items()},
    )


def to_dataframe(variables: dict, coords: dict):
    """Tidy long format (one row per coordinate combination, one column per variable, theory broadcast over
    seeds), ready for pandas or seaborn."""
    return to_xarray(variables, coords).to_dataframe().reset_index()


def _jsonable(x):
    if isinstance(x, (np.ndarray, jax.Array)):
        return np.asarray(x).tolist()
    if isinstance(x, np.generic):
        return x.item()
    return str(x)
