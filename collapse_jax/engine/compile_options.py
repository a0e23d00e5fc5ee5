"""How XLA compiles the lab's programs: its defaults, or, for programs that run once and briefly, options that
compile faster and leave every number the same.

XLA:CPU writes each fused kernel through its newer MLIR fusion emitters and then LLVM; compiling is most of a
first run wherever a program runs only once for well under a second, as each of `collapse-jax validate`'s checks
does (benchmarks/README.md, "Where a chain program's compile goes"). With `xla_cpu_use_fusion_emitters` off, XLA
uses its older elemental emitters: measured on the project's 2-core CPU (jax 0.9.2), validate --quick's 45 programs
compiled in 23.5-24.5 s instead of 30.7-33.2 s, with the same results bit for bit for every check of the
catalogue (tests/test_validate.py checks two of them). The price is speed once compiled: the regression chain
at d = 100 ran at about 0.75x (benchmarks/README.md). So the lab's defaults stay XLA's, and `for_latency()`
opens a block whose programs are compiled this way; `validate.run` opens one, because each of its programs runs
once.

The options apply to the programs `compilation_cache.Stored` builds (every chain, the regression theory, the
optimiser's searches), whose keys name them; JAX's own small programs (a conversion, an op outside a program)
keep XLA's defaults. The block is process-wide, not per thread, because validate builds its programs in a pool.

One more saving can only be had per process: LLVM's loop strength reduction, which rewrites the integer
arithmetic of loop counters and addresses (never a floating-point operation), took a sixth of XLA's compile time
on validate's programs (`perf` over four regression checks' first compile: 9% of all CPU samples, the largest
single pass). XLA hands LLVM options over only through XLA_FLAGS (`xla_backend_extra_options` is a map,
which per-program options cannot set), read once when JAX starts its backend; so the `collapse-jax validate`
process asks for it at its start (`process_flags_for_latency`, called by `cli.entry`). Measured: 21.0-21.7 s of
XLA compile instead of 24.6-24.7 s for validate --quick's programs (elemental emitters either way), every
check's numbers the same bit for bit. Not for the lab's other commands: the bootstrap chain ran about 20% slower
without it.

And one for throughput, per program: XLA:CPU writes 256-bit vectors even where the CPU has 512-bit ones (this
project's Zen 4 does). Wider vectors change the order of the additions in some matrix products (a matrix-vector
product's last bits move; with every program compiled so, 9 of validate's 18 checks moved), and nothing that is
computed lane by lane, as element-wise arithmetic and a running sum over a scan are. So a program that computes
nothing else asks for them (`seeds.wide_vectors` marks its one_seed, `Stored(..., wide_vectors=True)` compiles
it): the 1-D Gaussian chain, whose program for 1,000 seeds x 1,000 generations ran in 49 ms instead of 62 on one
core, with the same bits (tests/test_distributions.py). On a CPU without 512-bit vectors LLVM keeps to the width
it has.

Example:
    >>> current()
    {}
    >>> with for_latency():
    ...     current()
    {'xla_cpu_use_fusion_emitters': False}
    >>> current(wide_vectors=True)
    {'xla_cpu_prefer_vector_width': 512}
"""

from __future__ import annotations

import contextlib
import threading

FOR_LATENCY = {"xla_cpu_use_fusion_emitters": False}  # XLA:CPU's elemental emitters (the module docstring)
PROCESS_FOR_LATENCY = "--xla_backend_extra_options=-disable-lsr"  # LLVM without loop strength reduction (ditto)
WIDE_VECTORS = {"xla_cpu_prefer_vector_width": 512}  # for programs computed lane by lane (ditto)

_lock = threading.Lock()
_open = 0  # for_latency blocks open in this process (validate's threads may nest theirs)


def current(wide_vectors: bool = False) -> dict:
    """The XLA options for a program built now: FOR_LATENCY inside a `for_latency` block, else none (XLA's own);
    with WIDE_VECTORS added for a program computed lane by lane (`wide_vectors`)."""
    return {**(WIDE_VECTORS if wide_vectors else {}), **(FOR_LATENCY if _open else {})}


@contextlib.contextmanager
def for_latency():
    """Within the block, `Stored` programs are compiled with FOR_LATENCY: faster to compile, slower to run, the
    same numbers. For programs that each run once, briefly."""
    global _open
    with _lock:
        _open += 1
    try:
        yield
    finally:
        with _lock:
            _open -= 1


def process_flags_for_latency(flags: str) -> str:
    """XLA_FLAGS for a process whose programs each run once: `flags` with PROCESS_FOR_LATENCY added. Flags that
    already hand LLVM options of their own (`xla_backend_extra_options`) are the user's choice of LLVM's passes
    and come back as they are.

    Example:
        >>> process_flags_for_latency("--xla_force_host_platform_device_count=2")
        '--xla_force_host_platform_device_count=2 --xla_backend_extra_options=-disable-lsr'
    """
    if not isinstance(flags, str):
        raise ValueError(f"flags must be the text of XLA_FLAGS, got {flags!r}"[:300])
    if "xla_backend_extra_options" in flags:
        return flags
    return f"{flags} {PROCESS_FOR_LATENCY}".strip()
