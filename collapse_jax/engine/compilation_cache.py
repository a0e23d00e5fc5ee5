"""JAX's persistent compilation cache for the lab's own processes, in a folder keyed by this machine.

A compiled XLA program can be stored on disk and loaded by the next process (`jax_compilation_cache_dir`), so
that a second run of an experiment spends its time running, not compiling (benchmarks/README.md, "Time to first
result"). The CLI turns it on (`enable`); a library user can call `enable` too. Two points make it safe here:

* XLA:CPU compiles for the host's exact instruction set (AVX-512 and the like), and JAX's cache key does not
  name it: one folder shared by machines with different CPUs (a home directory on a cluster) could hand a
  program to a CPU that cannot run it (SIGILL). The folder is therefore named by a hash of what the programs
  depend on outside JAX's key: the CPU's model and feature flags, the platform, the jax and jaxlib versions and
  XLA_FLAGS. Another machine, or another XLA_FLAGS, gets another folder.
* When it loads a cached program, jaxlib 0.9's XLA:CPU logs an error for two LLVM *tuning* options
  (+prefer-no-gather, +prefer-no-scatter) that its check counts as CPU features (openxla/xla issue 44565):
  three long lines per program, on the very machine that compiled it, and the program still loads. Because the
  folder is keyed by the real features, that check says nothing here, so while the cache is on XLA's C++ log
  shows fatal errors only (Python errors are unaffected).

JAX's cache still traces and lowers every program before it can look it up (its key is a hash of the lowered
module): 0.3-0.5 s for a regression chain program, a third of a second run. `Stored` skips that for the lab's
big programs, the chains of every family, the regression theory and the optimiser's searches: it keys a compiled program by everything
its lowering depends on (the function, or the recipe or values a closure closes over; the argument structure,
static values, shapes, dtypes and shardings; JAX's tracing configuration, x64 and the threefry lowering) and
keeps it serialized in programs/<hash of the lab's source>/ of the same folder (the four source versions used
last keep theirs). A second run loads it in 0.05-0.2 s, bit for bit the program the first run compiled. Three
details, each found by a crash or a failure: a program is built outside JAX's cache (`_BypassableCache`: one JAX
loaded from it serializes into a blob that fails when run), is loaded with the devices it ran on, in order, and
jaxlib's LAPACK kernels are initialised before a load (a loaded program that calls one first crashes).
Within `loading_ahead` (the CLI's `run` and `validate`), the programs the last run of the same command used are
loaded in a background thread before they are needed (`_Ahead`). A few small values that take tracing to find
(the kind of a configuration's formulas) are kept in the same folder (`remembered`).

Environment: COLLAPSE_JAX_CACHE unset uses $XDG_CACHE_HOME/collapse_jax (else ~/.cache/collapse_jax); a path
uses that folder instead; "off" or "0" turns the cache off. JAX's own JAX_COMPILATION_CACHE_DIR, when set, is
left as the user set it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import hashlib
import json
import os
import pickle
import platform
import re
import shutil
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import jax
import jaxlib
import numpy as np

from collapse_jax.engine import compile_options, threefry

OFF = ("off", "0", "false", "no")
LOADED = "/collapse_jax/programs/load_duration"  # a monitoring event: a stored program loaded (engine/timing.py)
AHEAD = "/collapse_jax/programs/load_ahead_duration"  # one loaded in the background (`loading_ahead`)
_programs: Path | None = None  # where `Stored` keeps its programs; None (the default) keeps none
_KEY = re.compile(r"[0-9a-f]{32}")  # what `program_key` returns


def machine_key() -> str:
    """A short hash of what a compiled CPU program depends on beyond JAX's own cache key.

    Example:
        >>> len(machine_key())
        16
    """
    parts = [platform.machine(), platform.system(), jax.__version__, jaxlib.__version__]
    parts.append(os.environ.get("XLA_FLAGS", ""))
    parts += _cpu_identity()
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _cpu_identity() -> list[str]:
    """The CPU's model and feature flags (Linux /proc/cpuinfo; elsewhere the processor name)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return [platform.processor()]
    wanted = ("model name", "flags", "Features", "CPU implementer", "CPU part")
    return sorted({line.split(":", 1)[1].strip() for line in lines if line.split(":")[0].strip() in wanted})


def folder(base: str | Path | None = None) -> Path | None:
    """The cache folder for this machine under `base` (default: COLLAPSE_JAX_CACHE, else the user cache
    folder), or None when COLLAPSE_JAX_CACHE turns the cache off.

    Raises:
        ValueError: COLLAPSE_JAX_CACHE (or base) names a file, not a folder.

    Example:
        >>> folder("/tmp/cj-cache").name.startswith("xla-")
        True
    """
    setting = os.environ.get("COLLAPSE_JAX_CACHE", "").strip()
    if base is None and setting.lower() in OFF:
        return None
    if base is None:
        xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        base = setting or Path(xdg) / "collapse_jax"
    base = Path(base).expanduser()
    if base.exists() and not base.is_dir():
        raise ValueError(f"COLLAPSE_JAX_CACHE {str(base)!r} is a file; name a folder, or 'off'")
    return base / f"xla-{machine_key()}"


def enable(base: str | Path | None = None) -> Path | None:
    """Turn JAX's persistent compilation cache on in this machine's folder (see the module docstring) and
    return that folder; None when it is off (COLLAPSE_JAX_CACHE=off) or JAX_COMPILATION_CACHE_DIR already
    chose one. Every program is cached, however quickly it compiled: the lab's are many and small.

    Example (it changes this process's JAX configuration, so it is not run as a doctest):
        >>> enable()  # doctest: +SKIP
        PosixPath('/home/me/.cache/collapse_jax/xla-3f2a...')
    """
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return None
    path = folder(base)
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(
            f"COLLAPSE_JAX_CACHE: cannot create {str(path)!r} ({err}); name another folder, or 'off'"
        ) from None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    global _programs
    if _programs is None and _bypassable():
        _programs = _program_folder(path / "programs")
    from jaxlib import utils

    utils.absl_set_min_log_level(3)  # the loader's false alarm about tuning options (module docstring)
    return path


class Stored:
    """`jax.jit(fn, static_argnames)` whose compiled programs are kept in the cache folder once `enable` has
    chosen one: a later process with the same key loads the program instead of tracing, lowering and
    compiling it (the module docstring). Without a folder it is the plain jit. Called with the arguments of fn,
    the static ones by keyword. `name` stands for fn in the key: a closure must pass one that determines what it
    closes over (`seeds.builder_cache` names a chain's one_seed by its builder and arguments). `wide_vectors`: fn
    computes every number lane by lane, so it is compiled with `compile_options.WIDE_VECTORS` (the same numbers).

    Example:
        >>> import jax.numpy as jnp
        >>> double = Stored(lambda x, times: x * times, static_argnames=("times",))
        >>> double(jnp.arange(3.0), times=2).tolist()
        [0.0, 2.0, 4.0]
    """

    keep = 64  # programs held in memory per Stored

    def __init__(self, fn, static_argnames: tuple[str, ...] = (), name: str | None = None, wide_vectors: bool = False):
        _check_callable(fn)
        if isinstance(static_argnames, str) or not all(isinstance(a, str) for a in static_argnames):
            raise ValueError(f"static_argnames must be a tuple of argument names, got {static_argnames!r}"[:300])
        if name is not None and not isinstance(name, str):
            raise ValueError(f"name must be a string or None, got {name!r}"[:300])
        if not isinstance(wide_vectors, bool):
            raise ValueError(f"wide_vectors must be True or False, got {wide_vectors!r}"[:300])
        self.fn, self.static_argnames, self.wide_vectors = fn, static_argnames, wide_vectors
        self.jits: dict[str, Any] = {}  # the jit of fn per set of XLA options (engine/compile_options.py)
        self.name = name or f"{fn.__module__}.{fn.__qualname__}"  # a closure's name must say what it closes over
        self.static = set(static_argnames)
        self.loaded: dict[str, jax.stages.Compiled] = {}

    @property
    def jitted(self):
        """jax.jit of fn, compiled with the XLA options in force now (`compile_options.current`)."""
        options = compile_options.current(self.wide_vectors)
        if repr(options) not in self.jits:
            self.jits[repr(options)] = jax.jit(
                self.fn, static_argnames=self.static_argnames, compiler_options=options or None
            )
        return self.jits[repr(options)]

    def __call__(self, *args, **static):
        if set(static) != self.static:  # a keyword is taken for static: an array passed by name would be baked in
            raise ValueError(f"{self.name}: pass exactly {sorted(self.static)} by keyword, got {sorted(static)}")
        if _programs is None:
            return self.jitted(*args, **static)
        key = program_key(self.name, args, static, self.wide_vectors)
        if key is None:
            return self.jitted(*args, **static)
        if key not in self.loaded:
            if len(self.loaded) >= self.keep:  # a sweep over many static sizes: keep the newest ones
                self.loaded.pop(next(iter(self.loaded)))
            start = time.perf_counter()
            taken, program = _ahead.take(key)
            program = program if taken else _load(_programs / f"{key}.program")
            if program is not None:  # the time this call waited for it (loaded ahead, often none)
                jax.monitoring.record_event_duration_secs(LOADED, time.perf_counter() - start, fun_name=self.name)
            self.loaded[key] = program or self._build(_programs, key, args, static)
            _ahead.used(key)
        return self.loaded[key](*args)

    def _build(self, folder: Path, key: str, args, static):
        from jax.experimental.serialize_executable import serialize

        _bypass.on = True
        try:
            program = self.jitted.trace(*args, **static).lower().compile()
        finally:
            _bypass.on = False
        try:  # with the devices it runs on, in order: loaded, it would otherwise expect every device
            devices = [d.id for d in program._executable.xla_executable.local_devices()]
            blob = pickle.dumps((devices, *serialize(program)))
        except Exception:  # a program JAX cannot serialize (one holding constants, ...) is used, not stored
            return program
        part = folder / f"{key}.{os.getpid()}.{threading.get_ident()}.part"  # validate builds in two threads
        try:  # written whole, then renamed: a process killed while writing leaves a .part, never a bad program
            part.write_bytes(blob)
            os.replace(part, folder / f"{key}.program")
        except OSError:  # a full or read-only disk costs the next run a compile, not this run its result
            part.unlink(missing_ok=True)
        return program


def _load(path: Path):
    """The program stored at `path`, or None where there is none or it does not load (then a warning)."""
    from jax.experimental.serialize_executable import deserialize_and_load

    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        _lapack_ready()
        devices, payload, in_tree, out_tree = pickle.loads(blob)
        by_id = {d.id: d for d in jax.devices()}
        return deserialize_and_load(payload, in_tree, out_tree, execution_devices=[by_id[i] for i in devices])
    except Exception as err:  # a file cut short or from an older jaxlib: compile again, and overwrite it
        warnings.warn(f"compiling again: the stored program {path} did not load ({err})", stacklevel=3)
        return None


class _Ahead:
    """The programs the last run of the same command used, loaded in one background thread in the order that run
    needed them, while this run imports, computes its theory and runs the programs it already has. Loading
    (XLA:CPU rebuilding a program's optimised HLO module and linking its object code: 0.1-0.3 s per chain
    program) is C++ that mostly runs without the GIL, so it fills the core the run leaves idle. `Stored` takes a
    program from here (waiting while it loads, or loading it itself if its turn has not come) and notes the keys
    it used, which `finish` writes down for the next run. A key the run does not use costs its load, in the
    background; a command never run before (or run before an edit of the lab's source) loads nothing ahead."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pending: dict = {}  # key -> Future of its program
        self.order: list[str] = []  # keys in the order this process first used them
        self.pool: concurrent.futures.ThreadPoolExecutor | None = None
        self.manifest: Path | None = None

    def start(self, command: str):
        if _programs is None or self.manifest is not None:
            return
        self.manifest = _programs / "runs" / f"{hashlib.sha256(command.encode()).hexdigest()[:32]}.keys"
        try:
            keys = self.manifest.read_text().split()
        except (OSError, ValueError):  # the first run of this command (or a damaged list): nothing to load ahead
            return
        # keys are hex digests (`program_key`): any other line names no program of this folder
        keys = [k for k in keys if _KEY.fullmatch(k) and (_programs / f"{k}.program").exists()]
        if not keys:
            return
        _lapack_ready()  # here, before the loading thread's first load
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="collapse_jax-load-ahead")
        with self.lock:
            self.pending = {k: self.pool.submit(self._load_ahead, _programs / f"{k}.program") for k in keys}

    @staticmethod
    def _load_ahead(path: Path):
        start = time.perf_counter()
        program = _load(path)
        jax.monitoring.record_event_duration_secs(AHEAD, time.perf_counter() - start)
        return program

    def take(self, key: str) -> tuple[bool, Any]:
        """(True, the program of `key` loaded ahead, waiting while it loads; None if it did not load), or
        (False, None) where the caller must load it: not queued, or its turn has not come (then it is taken off
        the queue)."""
        with self.lock:
            future = self.pending.pop(key, None)
        if future is None or future.cancel():
            return False, None
        return True, future.result()

    def used(self, key: str):
        with self.lock:
            if self.manifest is not None and key not in self.order:  # noted within `loading_ahead` only
                self.order.append(key)

    def finish(self, write: bool = True):
        """Stop loading ahead (after the load under way), drop what was not used, and write down the keys this
        run used, in order, for the next run of the same command (not after a run that failed or was
        interrupted: its list would be cut short)."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        with self.lock:
            manifest, order = self.manifest, list(self.order)
            self.pending, self.order, self.pool, self.manifest = {}, [], None, None
        if manifest is None or not order or not write:
            return
        part = manifest.with_suffix(f".{os.getpid()}.part")
        try:  # written whole, then renamed, as the programs are
            manifest.parent.mkdir(exist_ok=True)
            part.write_text("\n".join(order) + "\n")
            os.replace(part, manifest)
        except OSError:  # a read-only or full disk: the next run loads each program when it first needs it
            part.unlink(missing_ok=True)


_ahead = _Ahead()


@contextlib.contextmanager
def loading_ahead(command: str):
    """Within the block, `Stored` takes the programs that the last run of `command` used (any string that names
    what the process will do; the CLI passes its arguments) from a background thread that loads them ahead; at
    its end, the keys this run used are written down for the next run. Without a cache folder (`enable`) it
    does nothing.

    Example:
        >>> with loading_ahead("run experiments/default.toml"):  # doctest: +SKIP
        ...     experiment.run(...)
    """
    if not isinstance(command, str):
        raise ValueError(f"command must be a string, got {command!r}"[:300])
    if _ahead.manifest is not None:
        raise ValueError("loading_ahead: a block is already open in this process; open one at a time")
    try:
        _ahead.start(command)
        yield
    except BaseException:
        _ahead.finish(write=False)
        raise
    _ahead.finish()


def stored_closure(label: str, fn, closed_over):
    """fn jitted, as a `Stored` program named by `label` and a digest of `closed_over`, the values fn closes over
    (their structure, dtypes, shapes and bytes), where they are all data; the plain jit where one is not (a
    callable; a tracer, when fn runs inside another program): fn's program holds those values as constants, so
    they must be in its name.

    Example:
        >>> import jax.numpy as jnp
        >>> a = jnp.arange(3.0)
        >>> stored_closure("example.shift", lambda x: x + a, a)(jnp.ones(3)).tolist()
        [1.0, 2.0, 3.0]
    """
    _check_callable(fn)
    if not isinstance(label, str):
        raise ValueError(f"label must be a string, got {label!r}"[:300])
    digest = _value_digest(closed_over)
    return jax.jit(fn) if digest is None else Stored(fn, name=f"{label} {digest}")


def remembered(label: str, fn, inputs, valid=lambda value: True):
    """fn(), a short JSON value that takes tracing to find, kept in the cache folder under `label` and a digest of
    `inputs` by value: a later process with equal inputs reads it instead of calling fn. The folder is that of the
    lab's source version, so an edit makes every remembered value stale, as it does the programs. fn() alone where
    no folder is chosen, or where an input is not data (a callable, a tracer: then no other process could find
    it). A file that does not read as JSON, or whose value `valid` refuses, is computed and written again. For
    which kind of formula a configuration has (`theory.formula_kind` traces the formulas to read it: validate
    asks for the kinds of its 10 regression checks before it simulates).

    Example:
        >>> remembered("example.kind", lambda: "exact", (np.arange(3.0), 2), valid=lambda v: v in ("exact", "DE"))
        'exact'
    """
    _check_callable(fn)
    if not callable(valid):
        raise ValueError(f"valid must be a function of the value -> bool, got {valid!r}"[:300])
    if not isinstance(label, str):
        raise ValueError(f"label must be a string, got {label!r}"[:300])
    folder, digest = _programs, _value_digest(inputs)
    if folder is None or digest is None or " at 0x" in repr(jax.tree.structure(inputs)):
        return fn()
    path = folder / f"{hashlib.sha256(f'{label} {digest}'.encode()).hexdigest()[:32]}.value"
    try:
        value = json.loads(path.read_text())
        if valid(value):
            return value
    except (OSError, ValueError):  # none yet, or a file cut short: computed again, and written again
        pass
    value = fn()
    part = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.part")
    try:  # written whole, then renamed, as the programs are
        part.write_text(json.dumps(value))
        os.replace(part, path)
    except (OSError, TypeError):  # a full or read-only disk (or a value JSON cannot write) costs the next run the
        part.unlink(missing_ok=True)  # tracing, not this run its result
    return value


def _check_callable(fn):
    if not callable(fn):
        raise ValueError(f"fn must be a function to compile, got {fn!r}"[:300])


def _value_digest(tree) -> str | None:
    leaves, structure = jax.tree.flatten(tree)
    digest = hashlib.sha256(repr(structure).encode())
    for leaf in leaves:
        if leaf is None or isinstance(leaf, (bool, int, float, str)):
            digest.update(repr(leaf).encode())
        elif isinstance(leaf, (np.ndarray, np.generic, jax.Array)) and not isinstance(leaf, jax.core.Tracer):
            try:
                arr = np.asarray(leaf)
            except (RuntimeError, ValueError):  # an array spread over other processes' devices
                return None
            digest.update(f"{arr.dtype.str}{arr.shape}".encode() + np.ascontiguousarray(arr).tobytes())
        else:
            return None
    return digest.hexdigest()[:32]


class _Bypass(threading.local):
    on = False  # this thread is building a program for `Stored`


_bypass = _Bypass()


class _BypassableCache:
    """JAX's persistent cache, but neither read nor written by a thread building a program for `Stored`: a
    program JAX loaded from its cache serializes into a blob whose functions are missing ("Function
    sine_add_fusion not found" when it runs, measured), so `Stored` must keep a freshly compiled one."""

    def __init__(self, cache):
        self.cache = cache

    def get(self, key):
        return None if _bypass.on else self.cache.get(key)

    def put(self, key, value):
        if not _bypass.on:
            self.cache.put(key, value)

    def __getattr__(self, name):
        return getattr(self.cache, name)


def _bypassable() -> bool:
    """Put `_BypassableCache` in front of JAX's persistent cache; False (Stored stays a plain jit) where this
    JAX's internals differ."""
    try:
        from jax._src import compilation_cache as jax_cache

        jax_cache._initialize_cache()
        if jax_cache._cache is None:
            return False
        if not isinstance(jax_cache._cache, _BypassableCache):
            jax_cache._cache = _BypassableCache(jax_cache._cache)  # type: ignore[assignment]
        return True
    except (ImportError, AttributeError):
        return False


def _program_folder(programs: Path, keep: int = 4) -> Path | None:
    """The folder of this version of the lab's programs, under `programs`, where the `keep` versions used last keep
    theirs (two checkouts can take turns) and older ones are removed: every edit of the source makes its programs
    stale, and a developer's edits would otherwise pile them up (about 1 MB each)."""
    here = programs / _source_hash()[:16]
    try:
        here.mkdir(parents=True, exist_ok=True)
        os.utime(here)  # used now
        versions = sorted(programs.iterdir(), key=_last_used, reverse=True)
    except OSError:  # a folder it cannot write: no stored programs, JAX's cache alone
        return None
    for old in versions[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    return here


def _last_used(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed meanwhile by another process
        return 0.0


def program_key(name: str, args, static: dict, wide_vectors: bool = False) -> str | None:
    """A hash of everything the program of `name` at (args, static) depends on, short of the machine and the lab's
    source (the folders' names have those): JAX's tracing configuration (x64 included), the threefry lowering,
    the XLA options (`compile_options`), the devices, the arguments' structure with their static fields, and each
    leaf's type and sharding. None where the structure or a static value names an object by its address (a
    function inside a `Partial`): no other process would find that key, so storing the program would only fill
    the disk. None as well where an argument
    is a tracer: called inside another transformation (`optimal_lambda` under `jax.vmap`), the function is part of
    the outer program, and a compiled program cannot take tracers.

    Example:
        >>> import jax.numpy as jnp
        >>> program_key("f", (jnp.ones(3),), {}) == program_key("f", (jnp.zeros(3),), {})  # values are data
        True
        >>> program_key("f", (jnp.ones(3),), {}) == program_key("f", (jnp.ones(4),), {})
        False
    """
    from jax._src.config import trace_context

    leaves, tree = jax.tree.flatten(args)
    if any(isinstance(x, jax.core.Tracer) for x in leaves):
        return None
    parts = [name, repr(tree), repr(sorted(static.items())), repr(trace_context())]
    if any(" at 0x" in part for part in parts):
        return None
    parts += [str(jax.dtypes.canonicalize_dtype(np.float64)), str(threefry.fused), repr(jax.devices())]
    parts.append(repr(compile_options.current(wide_vectors)))  # compiled with other XLA options: another program
    parts += [f"{jax.typeof(x)!r} {x.sharding if isinstance(x, jax.Array) else ''}" for x in leaves]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


@functools.cache
def _lapack_ready():
    """Point jaxlib's LAPACK kernels at scipy's LAPACK, as lowering a linalg operation does first: a loaded
    program that calls a kernel before this crashes the process (a segmentation fault, measured)."""
    from jaxlib import lapack

    lapack._lapack.initialize()


@functools.cache
def _source_hash() -> str:
    """A hash of the lab's Python source: any edit to it makes every stored program stale."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + path.read_bytes())
    return digest.hexdigest()
