"""Where a command's time goes: JAX's tracing, lowering and XLA compilation (or loading from the persistent
cache), the lab's saving and figure rendering, and the rest (execution and Python).

JAX reports each compilation step as a monitoring event; `record()` listens to them and `stage(name)` times a
block of the lab's own work. The CLI records when COLLAPSE_JAX_TIMINGS names a JSON file, which it writes at
exit; benchmarks/time_to_result.py runs every command twice that way and tabulates the files. Nothing listens
unless `record()` was called.

Example:
    >>> import jax, jax.numpy as jnp
    >>> times = record()
    >>> _ = jax.jit(lambda x: x + 1)(jnp.ones(3))
    >>> times.programs >= 1
    True
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import time
from pathlib import Path

import jax

from collapse_jax.engine.compilation_cache import AHEAD, LOADED

# JAX's monitoring events (jax/_src/dispatch.py and compiler.py), by the stage they measure
EVENTS = {
    "/jax/core/compile/jaxpr_trace_duration": "trace",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
    "/jax/core/compile/backend_compile_duration": "compile",
    LOADED: "compile",  # compilation_cache.Stored loaded a program (or waited for one loaded ahead), built nothing
    AHEAD: "ahead",  # a program loaded in the background (`compilation_cache.loading_ahead`): nobody waited
}
CACHE_HIT = "/jax/compilation_cache/cache_hits"


@dataclasses.dataclass
class Times:
    """Seconds per stage, and how many XLA programs were compiled or loaded from the persistent cache."""

    seconds: dict = dataclasses.field(default_factory=dict)  # summed over threads: may exceed the wall time
    spans: dict = dataclasses.field(default_factory=dict)  # stage -> [(start, end)], to know the wall time covered
    programs: int = 0  # XLA programs built (compiled, or loaded from the cache)
    cache_hits: int = 0  # of those, loaded from the persistent cache
    names: collections.Counter = dataclasses.field(default_factory=collections.Counter)  # programs by function name
    start: float = dataclasses.field(default_factory=time.perf_counter)

    def add(self, stage: str, seconds: float):
        """Count `seconds` of `stage` that ended just now."""
        end = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds
        self.spans.setdefault(stage, []).append((end - seconds, end))

    def covered(self, *stages: str) -> float:
        """Wall seconds during which at least one thread was in one of `stages`: where work overlaps (validate
        simulates two checks at once) the summed `seconds` count the same wall second twice, this does not.

        Example:
            >>> t = Times()
            >>> t.spans = {"trace": [(0.0, 2.0)], "compile": [(1.0, 3.0), (5.0, 6.0)]}
            >>> t.covered("trace", "compile")
            4.0
        """
        total, reach = 0.0, float("-inf")
        for start, end in sorted(span for s in stages for span in self.spans.get(s, [])):
            total += max(0.0, end - max(start, reach))
            reach = max(reach, end)
        return total

    def as_dict(self) -> dict:
        """Seconds per stage (summed over threads, and the wall time each covers), the wall time since
        `record()`, and the program counts."""
        wall = time.perf_counter() - self.start
        top = dict(self.names.most_common(12))
        covered = {s: self.covered(s) for s in self.spans} | {"build": self.covered("trace", "lower", "compile")}
        covered["all"] = self.covered(*(s for s in self.spans if s != "ahead"))  # the background thread aside
        return dict(
            wall=wall,
            seconds=dict(self.seconds),
            covered=covered,
            programs=self.programs,
            cache_hits=self.cache_hits,
            top=top,
        )


_current: Times | None = None


NAME_MAX = 100  # characters of a program's name kept in the record


def shortened(name: str) -> str:
    """A program's name cut to NAME_MAX characters: a stored chain is named by its builder's arguments, which
    spell out every generation's settings (the 1-D Gaussian chain of 1,000 generations: 15,000 characters).

    Example:
        >>> shortened("f" + "(1.0, " * 100)[-3:], len(shortened("f" + "(1.0, " * 100)) == NAME_MAX
        ('...', True)
    """
    return name if len(name) <= NAME_MAX else name[: NAME_MAX - 3] + "..."


def record() -> Times:
    """Start recording this process's compilation events and stages (once per process; later calls return the
    same record)."""
    global _current
    if _current is None:
        _current = Times()
        times = _current

        def on_duration(event: str, duration_secs: float, **kwargs: str | int) -> None:
            if event in EVENTS:
                times.add(EVENTS[event], duration_secs)
                if EVENTS[event] == "compile":
                    times.programs += 1
                    times.names[shortened(str(kwargs.get("fun_name", "?")))] += 1
                    times.cache_hits += event == LOADED

        def on_event(event: str, **kwargs: str | int) -> None:
            times.cache_hits += event == CACHE_HIT

        jax.monitoring.register_event_duration_secs_listener(on_duration)
        jax.monitoring.register_event_listener(on_event)
    return _current


@contextlib.contextmanager
def stage(name: str):
    """Time a block of the lab's own work under `name` (a no-op unless `record()` was called)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        if _current is not None:
            _current.add(name, time.perf_counter() - start)


def write(path: str | Path, **extra):
    """Write the record (and `extra` entries, e.g. the command) as JSON to `path`."""
    if _current is None:
        raise ValueError("timing.write: nothing recorded (call timing.record() first)")
    Path(path).write_text(json.dumps(dict(_current.as_dict(), **extra), indent=1))
