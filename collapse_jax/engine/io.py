"""Results on disk: arrays in a compressed .npz with named axes, and a .json sidecar with the config,
the axes, the versions, the x64 flag, the devices and the root seed. Both are written to temporary names first and
then renamed, sidecar first, and the sidecar records the hash of its .npz: an interrupted or failed save leaves the
old pair, or a pair that `load` refuses, never a mismatched pair that loads. Temporaries are created afresh
(`new_file`), so a symbolic link planted under their name is replaced, never followed out of the folder."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
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
    for axis, values in coords.items():
        if values.ndim != 1:  # `load` could not name its axes: refused before anything is written
            raise ValueError(
                f"the coordinate of axis {axis!r} must be 1-D (see io.coordinate), got shape {values.shape}"
            )
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
    tmp_json = stem.with_name(f"{stem.name}.{os.getpid()}.tmp.json")
    try:
        payload: dict[str, Any] = {k: np.asarray(v) for k, v in arrays.items()}
        with new_file(tmp) as f:
            np.savez_compressed(f, **payload)
        doc = dict(axes=axes, **meta, environment=environment(), npz_sha256=file_sha256(tmp))
        with new_file(tmp_json) as f:
            f.write(json.dumps(doc, indent=2, default=_jsonable).encode())
        # sidecar first: between the two renames the new sidecar names a hash the old .npz does not have
        os.replace(tmp_json, sidecar)
        os.replace(tmp, npz)
    finally:
        for t in (tmp, tmp_json):
            with contextlib.suppress(OSError):
                if t.is_symlink() or t.is_file():
                    t.unlink()
    return npz, sidecar


@contextlib.contextmanager
def new_file(path: str | Path):
    """A binary file freshly created at `path` for writing: whatever was there (a stale temporary, a planted
    symbolic link) is unlinked first (unlinking a link never touches its target), and the file is opened with
    O_EXCL | O_NOFOLLOW, so a write never follows a link out of its folder.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "x.tmp")
        >>> with new_file(p) as f:
        ...     _ = f.write(b"ok")
        >>> open(p, "rb").read()
        b'ok'
    """
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise ValueError(f"{str(path)!r} is a directory where a file is to be written; remove it")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "wb") as f:
        yield f


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes (the link between a results .npz and its sidecar)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def coordinate(values) -> np.ndarray:
    """A typed 1-D coordinate for an axis of values (the grid values of a sweep): numbers as an int or float
    array, one-entry lists unwrapped, strings as strings, anything else (a per-generation setting as a grid value,
    mixed types) as its JSON text. NumPy scalars and arrays count as the numbers and lists they hold.

    Example:
        >>> coordinate([[10], [20]]).tolist(), coordinate([0.1, "silverman"]).tolist(), coordinate([50, 200]).dtype.kind
        ([10, 20], ['0.1', 'silverman'], 'i')
        >>> coordinate([[1, 2], [3, 4]]).tolist()
        ['[1, 2]', '[3, 4]']
    """
    values = [v.tolist() if isinstance(v, (np.ndarray, np.generic)) else v for v in values]
    if values and all(isinstance(v, list) and len(v) == 1 for v in values):
        return coordinate([v[0] for v in values])
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.asarray(values)
    if all(isinstance(v, (str, bool)) for v in values) and len({type(v) for v in values}) == 1:
        return np.asarray(values)
    return np.asarray([v if isinstance(v, str) else json.dumps(v) for v in values])


def load(stem: str | Path) -> tuple[dict, dict]:
    """Read back (arrays, sidecar) written by `save` (no pickles), checking that the sidecar names every axis of
    every array; a missing, damaged or mismatched file is refused by path."""
    stem = Path(stem)
    npz, sidecar = stem.with_suffix(".npz"), stem.with_suffix(".json")
    for path in (npz, sidecar):
        if not path.is_file():
            raise ValueError(f"results file {str(path)!r} does not exist")
    try:
        meta = json.loads(sidecar.read_text())
        axes = meta["axes"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, OSError) as err:
        raise ValueError(f"{sidecar} is not a results sidecar ({type(err).__name__}: {err})") from None
    if not isinstance(meta, dict) or not isinstance(axes, dict):
        raise ValueError(f"{sidecar} is not a results sidecar (its 'axes' must be a table of array names)")
    recorded = meta.get("npz_sha256")  # absent in files written before the hash was recorded
    if recorded is not None and recorded != file_sha256(npz):
        raise ValueError(
            f"{npz} does not match its sidecar {sidecar} (the sidecar records another file's hash: an interrupted "
            "save or an edited file); rerun what wrote them"
        )
    try:
        with np.load(npz, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as err:  # truncated, not a zip, a pickle
        raise ValueError(f"{npz} is not a readable results file ({type(err).__name__}: {err})") from None
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
