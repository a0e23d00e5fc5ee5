"""A sweep under `jax.distributed`: the processes exchange their chunks through JAX's collectives, and process 0
alone touches the output folder (no shared filesystem, no polling).

Process 0 claims the folder, finds the chunks already on disk (a resumed sweep) and tells the others, so that
every process holds the same list of missing chunks. The processes then take them in turns, the k-th missing
chunk being process k mod N's: each round every process computes one chunk and the round's chunks are gathered
(`jax.experimental.multihost_utils.process_allgather`); process 0 writes them, their hashes recorded in the
manifest exactly as one process would write them (so `merge`, resume and the damage checks see no difference),
and merges at the end. A chunk's numbers are those one process computes for the same seeds (seed i uses
fold_in(key, i) wherever it runs), so the merged arrays are bit-identical to a run in one process.

Why whole chunks, gathered as bytes, rather than a global mesh over the seed axis: an experiment sweep of any
family computes a grid point with host code around its jitted chains (judging, summaries), which a global mesh
cannot hold; a gathered chunk serves both kinds of sweep, and each process runs the very program of a
single-process run. A chunk travels as the bytes of its .npz: any dtype arrives bit for bit (a float64 array
gathered as an array is cast to float32 when x64 is off) and any shape (arrays gathered together must have one
shape in every process, else gloo aborts the process: the round's byte strings are padded, to a power of two so
that few gather programs are compiled). JAX offers an all-gather, not a gather to one process, so every process
holds a round's N chunks at once (N times a chunk's bytes, at most twice that padded): with many processes, keep
chunks small.

A process that fails raises in its turn and the others learn it in the same exchange, so that all stop with
its message. A process that dies (killed, its machine lost) breaks the gather's connections: the others stop
with an error naming the exchange, and JAX's coordination service stops any still computing once the dead
process misses its heartbeats (`heartbeat_timeout_seconds` of `jax.distributed.initialize`; `start` takes it).
Chunk files are written atomically and a round's chunks only once the whole round has arrived, so a stopped
sweep leaves whole chunks only, and running it again resumes from them.

Example:
    >>> from collapse_jax.engine import collective
    >>> collective.active(None), collective.active((0, 1))  # one process: the chunk store's own path
    (False, False)
"""

from __future__ import annotations

import io as _io
from pathlib import Path

import jax
import numpy as np

from collapse_jax.engine import store

_OK, _CHUNK, _ERROR, _NOTHING = b"o", b"c", b"e", b"-"  # the first byte of every exchanged message


def active(shard) -> bool:
    """True when a sweep exchanges its chunks through collectives: no explicit shard and several processes.

    Example:
        >>> active(None)  # one process here
        False
    """
    return shard is None and jax.process_count() > 1


def start(coordinator: str | None, processes: int | None, process_id: int | None, heartbeat: int = 100):
    """`jax.distributed.initialize` for a sweep, on the CPU with the gloo collectives; before any JAX computation.

    Args:
        coordinator: "HOST:PORT" of process 0's coordination service; None (with processes and process_id None)
            lets JAX detect them on a cluster (Slurm, Open MPI, Kubernetes...).
        processes: the number of processes N >= 1.
        process_id: this process's index, 0 <= process_id < N.
        heartbeat: seconds without a heartbeat after which a process is taken for dead and the others stop.

    Raises:
        ValueError: a malformed coordinator, a bad count or index, or no cluster detected; named by option.

    Example:
        >>> start("localhost:1234", 2, 5)
        Traceback (most recent call last):
        ...
        ValueError: --distributed: the process id must be an integer 0 <= id < 2, got 5
    """
    given = (coordinator, processes, process_id)
    if any(x is not None for x in given) and any(x is None for x in given):
        raise ValueError("--distributed takes HOST:PORT N ID together, or `auto` alone")
    if coordinator is not None:
        host, _, port = coordinator.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"--distributed: the coordinator must look like HOST:PORT, got {coordinator!r}")
        if not (isinstance(processes, int) and processes >= 1):
            raise ValueError(f"--distributed: the number of processes must be an integer >= 1, got {processes!r}")
        if not (isinstance(process_id, int) and 0 <= process_id < processes):
            raise ValueError(
                f"--distributed: the process id must be an integer 0 <= id < {processes}, got {process_id!r}"
            )
    if not (isinstance(heartbeat, int) and not isinstance(heartbeat, bool) and heartbeat >= 1):
        raise ValueError(f"--heartbeat must be an integer number of seconds >= 1, got {heartbeat!r}")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes gather through gloo
    try:
        jax.distributed.initialize(coordinator, processes, process_id, heartbeat_timeout_seconds=heartbeat)
    except ValueError as err:  # nothing detected, when called without arguments
        raise ValueError(f"--distributed auto: JAX found no cluster to join ({err}); pass HOST:PORT N ID") from None


def stop():
    """`jax.distributed.shutdown`, once every process is done (a no-op when `start` was not called).

    Example:
        >>> stop()
    """
    jax.distributed.shutdown()


def run(out: Path, manifest: dict, jobs: list, compute, done, merge, say, describe, on_written=None, fail_after=None):
    """Run (or resume) a sweep's `jobs` over every process; process 0 writes the chunks and merges.

    Args:
        out: the sweep's folder (read and written by process 0 only).
        manifest: the sweep's config, checked against the folder's (`store.claim`).
        jobs: every (static, chunk) of the sweep, the same list in every process.
        compute: job -> the chunk's arrays (any dtypes and shapes).
        done: job -> whether its chunk is whole on disk (called on process 0 only).
        merge: out -> the merged result (called on process 0 once every chunk is written).
        say: a progress printer.
        describe: (on_disk, total) -> the line process 0 says before computing.
        on_written: (job, count, left) -> None, on process 0 after each chunk written.
        fail_after: this process fails after computing that many chunks (tests inject an interruption with it).

    Returns:
        merge(out) on process 0, None on the others.

    Raises:
        RuntimeError: another process failed (its message), or stopped answering (died); this process's own
            error is raised as it was. Every chunk written before is whole on disk.

    Example:
        >>> import tempfile, numpy as np
        >>> out = Path(tempfile.mkdtemp())  # in one process it runs as one round per chunk
        >>> done = lambda j: store.read_chunk(out, *j, None) is not None
        >>> run(out, {"n": 1}, [(0, 0)], lambda j: {"x": np.arange(2.0)}, done, lambda o: "merged", print,
        ...     lambda k, n: f"{k} of {n} on disk")
        0 of 1 on disk
        'merged'
    """
    me, n = jax.process_index(), jax.process_count()
    failure, found = None, np.zeros(len(jobs), np.uint8)
    if me == 0:  # process 0 alone reads the folder (a damaged chunk is removed there) and claims it
        try:
            store.claim(out, manifest)
            store.clean_stale_temporaries(out)
            found[:] = [done(j) for j in jobs]
        except Exception as err:
            failure = err
    message = _ERROR + _text(failure) if failure is not None else _OK + found.tobytes()
    first = _exchange(message, "the start (which chunks are on disk)")[0]
    _raise_if_failed([first], failure, "the check of the output folder", n)
    todo = [j for j, f in zip(jobs, np.frombuffer(first[1:], np.uint8), strict=True) if not f]
    if me == 0:
        say(describe(len(jobs) - len(todo), len(jobs)))
    else:
        say(f"[sweep] process {me} of {n}: computing its turns of the {len(todo)} missing chunks; process 0 writes")
    pending: list = []  # process 0: the last round's chunks, written at the start of the next exchange
    computed = written = 0
    result = None
    for offset in range(0, n * (-(-len(todo) // n) + 1), n):  # a last, empty round writes the last chunks, merges
        batch = todo[offset : offset + n]
        try:
            for job, arrays in pending:
                store.write_chunk(out, job[0], job[1], arrays)
                written += 1
                if on_written is not None:
                    on_written(job, written, todo[written:])
            pending = []
            if me < len(batch):
                if fail_after is not None and computed >= fail_after:
                    raise RuntimeError(f"injected interruption after {computed} chunks")
                message, computed = _CHUNK + _to_bytes(compute(batch[me])), computed + 1
            elif not batch and me == 0:
                result, message = merge(out), _OK
            else:
                message = _NOTHING
        except Exception as err:
            failure, message = err, _ERROR + _text(err)
        what = f"chunks {offset + 1}..{offset + len(batch)} of {len(todo)}" if batch else "the merge"
        parts = _exchange(message, what)
        _raise_if_failed(parts, failure, what, n)
        pending = [(job, _from_bytes(part[1:])) for job, part in zip(batch, parts, strict=False)] if me == 0 else []
    return result


def _raise_if_failed(parts: list, failure, what: str, n: int):
    """Raise this process's own failure, else the first failure another process sent (parts in process order),
    naming that process."""
    if failure is not None:
        raise failure
    for p, part in enumerate(parts):
        if part[:1] == _ERROR:
            raise RuntimeError(
                f"process {p} of {n} failed during {what}: {part[1:].decode()}; every chunk written so far is "
                "whole on disk: the same command resumes from them"
            )


def _exchange(message: bytes, what: str) -> list[bytes]:
    """Every process's message, in process order (an all-gather of bytes padded to a power-of-two length)."""
    from jax.experimental import multihost_utils

    if len(message) >= 2**32:
        raise ValueError(f"a chunk of {len(message)} bytes is too large to exchange (< 4 GiB); lower --chunk-size")
    try:
        sizes = multihost_utils.process_allgather(np.array([len(message)], np.uint32)).reshape(-1)
        padded = np.zeros(1 << max(6, int(sizes.max() - 1).bit_length()), np.uint8)
        padded[: len(message)] = np.frombuffer(message, np.uint8)
        rows = multihost_utils.process_allgather(padded)
    except Exception as err:  # a process died: its connections are gone (gloo) or it missed its heartbeats
        text = " ".join(str(err).split())[:300]
        raise RuntimeError(
            f"a process stopped answering during {what} ({text}); every chunk written so far is whole on disk: "
            "the same command resumes from them"
        ) from None
    return [rows[p, : sizes[p]].tobytes() for p in range(len(sizes))]


def _text(x) -> bytes:
    if isinstance(x, Exception):
        return f"{type(x).__name__}: {' '.join(str(x).split())[:1000]}".encode()
    return str(x).encode()


def _to_bytes(arrays: dict) -> bytes:
    """A chunk's arrays as the bytes of an .npz, which `_from_bytes` reads back bit for bit."""
    buffer, plain = _io.BytesIO(), dict(arrays)
    np.savez(buffer, **plain)  # uncompressed: the bytes are read once, on process 0
    return buffer.getvalue()


def _from_bytes(data: bytes) -> dict:
    with np.load(_io.BytesIO(data), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}
