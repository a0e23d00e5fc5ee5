"""Chunk files of a long computation on disk: a manifest of its config, one file per finished chunk, safe to
resume, to share between processes and to check.

`out/manifest.json` holds the config (a different config in the same folder is refused) and a hash of every
chunk's numbers; `out/chunks/s<static>_c<chunk>.npz` are written atomically under a per-process name, each
under an OS file lock, so that processes sharing a folder split the chunks and a damaged, edited or foreign
file is detected and recomputed. `execute` runs a sweep on them: `run_jobs` computes the missing chunks of this
process's shard under those locks and `finish` merges once every shard is done; under jax.distributed the
processes exchange their chunks through JAX's collectives instead (`engine/collective.py`) and process 0 alone
writes the folder. The regression sweep (`collapse_jax.regression.sweep`,
chunks of seeds) and the experiment sweeps of every family (`collapse_jax.experiment.sweep_file`, one chunk per
grid point) both run on them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import jax
import numpy as np
from filelock import FileLock as _FileLock
from filelock import Timeout

from collapse_jax.engine import io


def FileLock(path: Path):
    """An OS file lock at `path`, refused when a symbolic link sits there (opening it would create or truncate the
    link's target, outside the folder)."""
    if path.is_symlink() or path.is_dir():
        raise ValueError(f"{str(path)!r} is a symbolic link or a directory where a lock file belongs; remove it")
    return _FileLock(path)


def folder(path: Path) -> Path:
    """`path` as a real folder of the sweep (created when missing), refused when it is a symbolic link (files
    written there would land outside the output folder) or a file."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise ValueError(f"{str(path)!r} must be a folder of the sweep, not a symbolic link or a file; remove it")
    path.mkdir(parents=True, exist_ok=True)
    return path


def not_a_sweep(out: str | Path, what: str):
    """Refuse to write `what` into the folder of a chunked sweep (it holds manifest.json): its sweep.npz/.json
    would stop matching its manifest and chunks."""
    if (Path(out) / "manifest.json").exists():
        raise ValueError(f"{str(out)!r} holds a chunked sweep (manifest.json, chunks/); write {what} to another folder")


def claim(out: Path, manifest: dict):
    """Write the manifest, or check that the one on disk describes the same sweep (its chunk hashes aside)."""
    out.mkdir(parents=True, exist_ok=True)
    folder(out / "chunks")
    with FileLock(out / "manifest.lock"):
        old = read_manifest(out)
        if old is None:
            write_manifest(out, dict(manifest, chunk_sha256={}))
            return
        old.pop("chunk_sha256", None)
        if json.dumps(old, sort_keys=True) != json.dumps(manifest, sort_keys=True):
            diff = sorted(k for k in set(old) | set(manifest) if old.get(k) != manifest.get(k))
            raise ValueError(
                f"{out} holds a sweep with a different config (differs in {diff}); "
                "use another output folder or delete it"
            )


def read_manifest(out: Path) -> dict | None:
    path = out / "manifest.json"
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as err:
        raise ValueError(f"{path} is not a sweep manifest ({err}); delete the folder or use another") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path} is not a sweep manifest (a table), got {type(doc).__name__}; delete the folder")
    sealed = doc.pop("manifest_sha256", None)  # absent in manifests written before the seal
    if sealed is not None and sealed != seal(doc):
        raise ValueError(
            f"{path} was edited after the sweep wrote it (its seal does not match its config, grid or chunk "
            "hashes), so its chunks cannot be labelled from it; rerun the sweep in a fresh folder"
        )
    return doc


def recorded_chunk_size(out: Path) -> int | None:
    """The chunk size of the sweep already in `out` (None when there is none, or it did not record one)."""
    try:
        manifest = read_manifest(out)
    except ValueError:
        return None  # a damaged manifest is refused, by name, when the sweep claims the folder
    size = (manifest or {}).get("chunk_size")
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 1 else None


def seal(manifest: dict) -> str:
    """A hash of a manifest's content (the config, the grid axes and values, the chunk hashes): an edited
    manifest, which would relabel the chunks' numbers at merge, is detected."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def write_manifest(out: Path, manifest: dict):
    tmp = out / f"manifest.{os.getpid()}.tmp"
    manifest = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    with io.new_file(tmp) as f:
        f.write(json.dumps(dict(manifest, manifest_sha256=seal(manifest)), sort_keys=True).encode())
    os.replace(tmp, out / "manifest.json")


def digest(arrays: dict) -> str:
    """A hash of a chunk's numbers (not of its file, whose zip timestamps differ between identical writes)."""
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def chunk_path(out: Path, static_idx: int, chunk_idx: int) -> Path:
    return out / "chunks" / f"s{static_idx:04d}_c{chunk_idx:05d}.npz"


def read_chunk(out: Path, s_idx: int, c_idx: int, shape: tuple | None, keys=None, say=None) -> dict | None:
    """The arrays `keys` (default: all) of a chunk file if it is whole, has them, `shape` and float dtype (both
    unchecked when shape is None), and its numbers hash to what the manifest recorded when it was written; else
    None (missing; or damaged, edited or foreign: then removed with a word on stderr, so that the sweep
    recomputes it)."""
    path = chunk_path(out, s_idx, c_idx)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in (f.files if keys is None else keys)}
        recorded = (read_manifest(out) or {}).get("chunk_sha256", {}).get(path.name)
        if shape is not None and not all(a.shape == shape and a.dtype.kind == "f" for a in arrays.values()):
            why = f"shapes {[a.shape for a in arrays.values()]} instead of {shape}"
        elif recorded != digest(arrays):
            why = "its numbers do not match the hash recorded in manifest.json" if recorded else "no recorded hash"
        else:
            return arrays
    except Exception as err:  # truncated, empty, not a zip, missing keys: all mean "recompute"
        why = f"{type(err).__name__}: {err}"
    if say is not None:
        say(f"[sweep] {path} is damaged or foreign ({why}); recomputing it")
        path.unlink(missing_ok=True)
    return None


def write_chunk(out: Path, s_idx: int, c_idx: int, arrays: dict):
    """Record the chunk's hash in the manifest, then write the file atomically under a per-process name."""
    path = chunk_path(out, s_idx, c_idx)
    with FileLock(out / "manifest.lock"):
        manifest = read_manifest(out)
        if manifest is None:
            raise ValueError(f"{out}: no manifest.json to record chunk {path.name} in; claim the folder first")
        manifest.setdefault("chunk_sha256", {})[path.name] = digest(arrays)
        write_manifest(out, manifest)
    folder(path.parent)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    with io.new_file(tmp) as f:
        np.savez_compressed(f, **arrays)
    os.replace(tmp, path)


def clean_stale_temporaries(out: Path):
    """Remove temporaries left by processes that no longer run (their pid is in the name): chunk temporaries, and
    those of the merged sweep.npz/.json and the manifest; a symbolic link under such a name is never ours."""
    candidates = list((out / "chunks").glob("*.tmp.npz")) + list(out.glob("sweep.*.tmp.*"))
    candidates += list(out.glob("manifest.*.tmp"))
    for tmp in candidates:
        if tmp.is_symlink():  # never a temporary of ours: planted
            tmp.unlink()
            continue
        pid = next((p for p in tmp.name.split(".") if p.isdigit()), None)
        if pid is None:
            continue
        try:
            os.kill(int(pid), 0)
        except (ValueError, OverflowError, ProcessLookupError):
            tmp.unlink(missing_ok=True)
        except PermissionError:  # alive, another user's
            pass


def shard_of(shard) -> tuple[int, int]:
    """(i, N) checked, or this process's slice under jax.distributed when shard is None."""
    if shard is not None and not (isinstance(shard, (tuple, list)) and len(shard) == 2):
        raise ValueError(f"shard must be two integers (i, N) with 0 <= i < N, got {shard!r}")
    i, n = shard if shard is not None else (jax.process_index(), jax.process_count())
    if not (isinstance(n, int) and n >= 1 and isinstance(i, int) and 0 <= i < n):
        raise ValueError(f"shard must be two integers (i, N) with 0 <= i < N, got {shard}")
    return i, n


def run_jobs(out: Path, todo: list, compute, done, on_written=None, fail_after: int | None = None) -> int:
    """Compute and write the chunk of every job (static, chunk) in `todo` that `done(job)` does not find on disk.

    Each chunk is computed under its own OS file lock, so processes sharing a folder split the work: a first
    pass skips chunks another process holds, a second waits for them (and takes over those of a process that
    died, whose lock the OS has released). compute(job) returns the chunk's arrays; on_written(job, count, left)
    reports progress; fail_after raises after that many chunks (tests inject an interruption with it). Returns
    the number of chunks written here.
    """
    todo, written = list(todo), 0
    for blocking in (False, True):
        for job in list(todo):
            lock = FileLock(chunk_path(out, *job).with_suffix(".lock"))
            try:
                lock.acquire(timeout=-1 if blocking else 0)
            except Timeout:
                continue
            try:
                fresh = not done(job)  # else another process wrote it meanwhile
                if fresh:
                    if fail_after is not None and written >= fail_after:
                        raise RuntimeError(f"injected interruption after {written} chunks")
                    write_chunk(out, job[0], job[1], compute(job))
            finally:
                lock.release()
            todo.remove(job)
            if fresh:
                written += 1
                if on_written is not None:
                    on_written(job, written, todo)
    return written


def finish(out: Path, jobs: list, shard: tuple[int, int], merge, say):
    """After this process's chunks: merge when every chunk of `jobs` is on disk (under a lock, so processes that
    finish together merge one after the other), else say what is left and return None."""
    if all(chunk_path(out, *j).exists() for j in jobs):
        with FileLock(out / "merge.lock"):
            return merge(out)
    say(f"[sweep] shard {shard[0]}/{shard[1]} done; run `collapse-jax merge {out}` once every shard has finished")
    return None


def execute(out: Path, manifest: dict, jobs: list, compute, done, merge, say, describe, *, shard=None, **hooks):
    """Run (or resume) a sweep's `jobs` (static, chunk) into `out`; returns merge(out) where this process merges
    (once every chunk is on disk), else None.

    With shard (i, N), or one process: this process claims the folder and computes the missing chunks of its
    slice jobs[i::N] under the chunk locks (`run_jobs`), then merges if every slice is done. With shard None
    under jax.distributed (several processes): the processes split the missing chunks and exchange them through
    JAX's collectives, process 0 alone writing the folder (`engine/collective.py`).

    Args:
        out: the sweep's folder.
        manifest: its config, checked against the one on disk (`claim`).
        jobs: every (static, chunk) of the sweep, in the same order in every process.
        compute: job -> the chunk's arrays.
        done: job -> whether its chunk is whole on disk.
        merge: out -> the merged result.
        say: a progress printer.
        describe: (on_disk, total) -> the line said before computing.
        shard: (i, N), or None for (jax.process_index(), jax.process_count()).
        hooks: on_written(job, count, left) after each chunk written; fail_after (tests' interruption).

    Returns:
        merge(out), or None in a process that does not merge.

    Example:
        >>> import tempfile, numpy as np
        >>> out = Path(tempfile.mkdtemp())
        >>> done = lambda j: read_chunk(out, *j, None) is not None
        >>> merged = lambda o: sorted(p.name for p in (o / "chunks").glob("*.npz"))
        >>> execute(out, {"n": 2}, [(0, 0), (0, 1)], lambda j: {"x": np.ones(2) * j[1]}, done, merged, print,
        ...         lambda k, n: f"{k} of {n} on disk")
        0 of 2 on disk
        ['s0000_c00000.npz', 's0000_c00001.npz']
    """
    from collapse_jax.engine import collective  # it builds on this module

    if collective.active(shard):
        return collective.run(out, manifest, jobs, compute, done, merge, say, describe, **hooks)
    i, n = shard_of(shard)
    claim(out, manifest)
    clean_stale_temporaries(out)
    mine = jobs[i::n]
    todo = [j for j in mine if not done(j)]
    say(describe(len(mine) - len(todo), len(mine)))
    run_jobs(out, todo, compute, done, **hooks)
    return finish(out, jobs, (i, n), merge, say)
