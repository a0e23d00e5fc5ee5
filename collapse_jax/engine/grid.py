"""Experiment sweeps of any family on the chunk store (`engine/store.py`): one chunk per grid point, so that they
resume, shard over processes and lock as the regression sweep does; merged into `sweep.npz`/`sweep.json` with the
grid axes in front of every array and typed coordinates (numbers stay numbers), and read back by `load` (which
`cj.sweep_load` calls for such a folder).

A chunk holds a point's `ExperimentOutput`: its data arrays ("data:NAME"), its coordinates ("coord:AXIS"), its
axes and its judged summary (JSON strings). At the merge a coordinate must be the same at every point; one that
changes but has a single entry at each point (chain.M = [10] at one point, [20] at the next) is the grid axis
itself, and its axis is dropped.

Grid values become typed coordinates by `io.coordinate` (re-exported here as `coordinate`).

Example:
    >>> coordinate([[10], [20]]).tolist(), coordinate is io.coordinate
    ([10, 20], True)
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from collapse_jax.engine import io, store
from collapse_jax.engine.io import coordinate
from collapse_jax.engine.progress import reporter
from collapse_jax.engine.protocol import ExperimentOutput


@dataclasses.dataclass(frozen=True)
class GridSweep:
    """A merged experiment sweep: data arrays with the grid axes in front, their axes, typed coordinates, the grid
    as written in the file, each point's summary (C order over the grid) and the whole sweep's summary."""

    arrays: dict
    axes: dict
    coords: dict
    grid: dict
    summaries: list
    summary: dict

    def _variables(self):
        coords = {a: v for a, v in self.coords.items() if any(a in ax for ax in self.axes.values())}
        return {k: (self.axes[k], a) for k, a in self.arrays.items()}, coords

    def to_xarray(self):
        """An xarray.Dataset over the grid axes and the experiment's own axes (needs the `analysis` extra)."""
        return io.to_xarray(*self._variables())

    def to_dataframe(self):
        """Tidy long format: one row per coordinate combination, one column per array."""
        return io.to_dataframe(*self._variables())

    def agreement(self) -> list[str]:
        """The sweep's verdict: how many grid points agree, and the sentence of the worst one."""
        return [self.summary["verdict"]] if self.summary.get("verdict") else []


def pack(output: ExperimentOutput) -> dict:
    """A point's output as the arrays of one chunk file (no pickles: axes and summary as JSON strings)."""
    text = lambda x: np.asarray(json.dumps(x, default=io._jsonable))
    return (
        {f"data:{k}": v for k, v in output.data.items()}
        | {f"coord:{k}": v for k, v in output.coords.items()}
        | dict(axes=text({k: list(output.axes[k]) for k in output.data}), summary=text(output.summary.as_dict()))
    )


def run(out, manifest: dict, points: int, compute, *, shard=None, progress=True, _fail_after=None):
    """Compute (or resume) the points of this shard, compute(p) -> ExperimentOutput for point p in C order; merge
    once every point is on disk (shard None: every process under jax.distributed, see `store.execute`). Returns
    the GridSweep, or None in a process that does not merge."""
    out, say = Path(out), reporter(progress)
    jobs = [(p, 0) for p in range(points)]
    done = lambda j: store.read_chunk(out, j[0], j[1], None, None, say) is not None
    describe = lambda on_disk, total: (
        f"[sweep] {out}: {points} grid points; {on_disk} of the {total} to run here already on disk"
    )
    t0 = time.perf_counter()

    def report(job, written, left):
        say(
            f"[sweep] point {job[0] + 1}/{points} done ({written} here, {len(left)} left, {time.perf_counter() - t0:.0f}s)"
        )

    merged = lambda o: merge(o, progress)
    hooks = dict(on_written=report, fail_after=_fail_after)
    return store.execute(
        out, manifest, jobs, lambda j: pack(compute(j[0])), done, merged, say, describe, shard=shard, **hooks
    )


def merge(out, progress: bool = True) -> GridSweep:
    """Join the chunk files of a finished experiment sweep into sweep.npz/.json."""
    out = Path(out)
    m = store.read_manifest(out)
    if m is None:  # cj.merge checks this first; grid.merge may also be called directly
        raise ValueError(f"cannot merge {str(out)!r}: it is not a sweep folder (no manifest.json in it)")
    names, grid = m["axes"], m["grid"]
    shape = tuple(len(grid[k]) for k in names)
    points = [_read_point(out, p) for p in range(math.prod(shape))]
    coords, drop = _common_coords(points)
    arrays, axes = {}, {}
    for k, dims in points[0][1].items():
        keep = [a for a in dims if a not in drop]
        parts = [np.squeeze(pt[0][k], axis=tuple(dims.index(a) for a in drop if a in dims)) for pt in points]
        if any(p.shape != parts[0].shape for p in parts):  # a grid over a size that shapes this array
            raise ValueError(
                f"array {k!r} changes shape across the grid ({sorted({p.shape for p in parts})}); "
                "sweep that key in separate runs"
            )
        arrays[k], axes[k] = np.stack(parts).reshape(shape + parts[0].shape), names + keep
    summaries = [pt[2] for pt in points]
    summary = _overall(summaries)
    coords = {k: coordinate(grid[k]) for k in names} | coords
    used = {a for ax in axes.values() for a in ax}
    meta = dict(kind=m["kind"], config=m["config"], grid=grid, summaries=summaries, summary=summary)
    io.save(out / "sweep", arrays, axes, meta, coords={a: v for a, v in coords.items() if a in used})
    if progress:
        print(f"[sweep] merged {out}: {summary['verdict']}", file=sys.stderr)
    return GridSweep(arrays, axes, coords, grid, summaries, summary)


def load(out) -> GridSweep:
    """Read a merged experiment sweep back."""
    arrays, meta = io.load(Path(out) / "sweep")
    return from_loaded(arrays, meta)


def from_loaded(arrays: dict, meta: dict) -> GridSweep:
    """The GridSweep of the arrays and sidecar that `io.load` returned for an experiment sweep."""
    coords = {k[6:]: v for k, v in arrays.items() if k.startswith("coord:")}
    data = {k: v for k, v in arrays.items() if not k.startswith("coord:")}
    return GridSweep(data, {k: meta["axes"][k] for k in data}, coords, meta["grid"], meta["summaries"], meta["summary"])


def _read_point(out: Path, p: int):
    chunk = store.read_chunk(out, p, 0, None)
    if chunk is None:
        raise ValueError(
            f"cannot merge {out}: grid point {p} ({store.chunk_path(out, p, 0)}) is missing or damaged; run the "
            "sweep (every shard), which computes it"
        )
    data = {k[5:]: v for k, v in chunk.items() if k.startswith("data:")}
    coords = {k[6:]: v for k, v in chunk.items() if k.startswith("coord:")}
    return data, json.loads(str(chunk["axes"])), json.loads(str(chunk["summary"])), coords


def _common_coords(points):
    """The coordinates shared by every point, and the axes to drop: single-entry ones that change (the grid's)."""
    coords, drop = {}, set()
    for axis, first in points[0][3].items():
        values = [pt[3].get(axis) for pt in points]
        if all(v is not None and v.shape == first.shape and np.array_equal(v, first) for v in values):
            coords[axis] = first
        elif all(v is not None and v.shape == (1,) for v in values):
            drop.add(axis)
        else:
            raise ValueError(f"coordinate {axis!r} changes across the grid; sweep that key in separate runs")
    return coords, drop


def _overall(summaries: list) -> dict:
    """The sweep's summary: the looser kind of formula on the grid, the largest |z| and gap, how many agree."""
    kinds = {s["formula"] for s in summaries}
    formula = "DE" if "DE" in kinds else "exact" if "exact" in kinds else "none"
    largest = lambda k: max((s[k] for s in summaries if np.isfinite(s[k])), default=math.nan)
    agree = [bool(s["agrees"]) for s in summaries]
    worst = max(summaries, key=lambda s: (not s["agrees"], s["max_abs_z"] if np.isfinite(s["max_abs_z"]) else -1))
    verdict = f"{sum(agree)} of {len(agree)} grid points agree; the worst: {worst['verdict']}"
    return dict(
        formula=formula,
        max_abs_z=largest("max_abs_z"),
        max_rel_gap=largest("max_rel_gap"),
        agrees=all(agree),
        verdict=verdict,
    )
