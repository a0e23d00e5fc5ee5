"""Chunk files of a long computation on disk: a manifest of its config, one file per finished chunk, safe to
resume, to share between processes and to check.

`out/manifest.json` holds the config (a different config in the same folder is refused) and a hash of every
chunk's numbers; `out/chunks/s<static>_c<chunk>.npz` are written atomically under a per-process name, each
under an OS file lock, so that processes sharing a folder split the chunks and a damaged, edited or foreign
file is detected and recomputed. The regression sweep (`collapse_jax.regression.sweep`) stores its grid here.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
from filelock import FileLock


def claim(out: Path, manifest: dict):
    """Write the manifest, or check that the one on disk describes the same sweep (its chunk hashes aside)."""
    out.mkdir(parents=True, exist_ok=True)
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
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a sweep manifest ({err}); delete the folder or use another") from None


def write_manifest(out: Path, manifest: dict):
    tmp = out / f"manifest.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(manifest, sort_keys=True))
    os.replace(tmp, out / "manifest.json")


def digest(arrays: dict) -> str:
    """A hash of a chunk's numbers (not of its file, whose zip timestamps differ between identical writes)."""
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def wait_for(paths, timeout: float):
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        if time.monotonic() > deadline:
            missing = sum(not p.exists() for p in paths)
            raise TimeoutError(f"{missing} chunk file(s) from other processes did not appear within {timeout:.0f}s")
        time.sleep(0.5)


def chunk_path(out: Path, static_idx: int, chunk_idx: int) -> Path:
    return out / "chunks" / f"s{static_idx:04d}_c{chunk_idx:05d}.npz"


def read_chunk(out: Path, s_idx: int, c_idx: int, shape: tuple, keys, say=None) -> dict | None:
    """The arrays `keys` of a chunk file if it is whole, has them, shapes and float dtype, and its numbers
    hash to what the manifest recorded when it was written; else None (missing; or damaged, edited or foreign:
    then removed with a word on stderr, so that the sweep recomputes it)."""
    path = chunk_path(out, s_idx, c_idx)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in keys}
        recorded = (read_manifest(out) or {}).get("chunk_sha256", {}).get(path.name)
        if not all(a.shape == shape and a.dtype.kind == "f" for a in arrays.values()):
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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def clean_stale_temporaries(out: Path):
    """Remove chunk temporaries left by processes that no longer run (their pid is in the name)."""
    for tmp in (out / "chunks").glob("*.tmp.npz"):
        try:
            os.kill(int(tmp.name.split(".")[-3]), 0)
        except (ValueError, IndexError, ProcessLookupError):
            tmp.unlink(missing_ok=True)
        except PermissionError:  # alive, another user's
            pass
