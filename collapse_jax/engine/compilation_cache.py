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

Environment: COLLAPSE_JAX_CACHE unset uses $XDG_CACHE_HOME/collapse_jax (else ~/.cache/collapse_jax); a path
uses that folder instead; "off" or "0" turns the cache off. JAX's own JAX_COMPILATION_CACHE_DIR, when set, is
left as the user set it.
"""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path

import jax
import jaxlib

OFF = ("off", "0", "false", "no")


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
    from jaxlib import utils

    utils.absl_set_min_log_level(3)  # the loader's false alarm about tuning options (module docstring)
    return path
