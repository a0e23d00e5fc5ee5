"""Argument checks shared by the configs, the simulator and the theory.

Every check names the argument and the allowed range, and skips values that are not concrete (tracers
met inside jit or vmap), because a config is rebuilt with abstract leaves whenever JAX transforms it.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import numbers
import os

import jax
import numpy as np

from collapse_jax.engine.strategies import NAMES


def is_concrete(x) -> bool:
    """True for numbers and arrays whose values can be inspected now (not tracers, not placeholders)."""
    if isinstance(x, jax.core.Tracer):
        return False
    return isinstance(x, (numbers.Number, np.ndarray, jax.Array, list, tuple))


def listed(name: str, x) -> list:
    """A TOML array (list) of settings, refused by name when it is anything else (a number or a string would
    otherwise be iterated, or fail far away)."""
    if not isinstance(x, (list, tuple)):
        raise ValueError(f"{name} must be a list (a TOML array), got {x!r}"[:300])
    return list(x)


def real_array(
    name: str, x, *, lo: float | None = None, lo_open: bool = False, hi: float | None = None, ndim: tuple = (0, 1, 2, 3)
):
    """Check a number or 1-D array of reals: finite, >= lo (> lo with lo_open), <= hi. Returns it unchanged."""
    if x is None or isinstance(x, (str, bytes, dict, complex, set)):
        raise ValueError(f"{name} must be a real number or array of them, got {x!r}")
    if not is_concrete(x):
        return x
    if isinstance(x, (bool, np.bool_)) or (isinstance(x, (list, tuple)) and any(isinstance(v, (bool, str)) for v in x)):
        raise ValueError(f"{name} must be a real number or array of them, got {x!r}")
    kind = np.asarray(x).dtype.kind if isinstance(x, (np.ndarray, jax.Array, np.generic)) else None
    if kind is not None and kind not in "iuf":  # complex (imaginary part dropped), bool, str, object arrays
        raise ValueError(f"{name} must be a real number or array of them, got dtype {np.asarray(x).dtype}: {x!r}"[:300])
    try:
        a = np.asarray(x, dtype=float) if not isinstance(x, jax.Array) else np.asarray(x).astype(float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number or array of them, got {x!r}"[:300]) from None
    if a.ndim not in ndim:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndim))} dimension(s), got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite (no NaN or inf), got {x!r}")
    if lo is not None:
        bad = a <= lo if lo_open else a < lo
        if np.any(bad):
            rel = ">" if lo_open else ">="
            raise ValueError(f"{name} must be {rel} {lo}, got {a[bad].ravel()[0].item()!r}")
    if hi is not None and np.any(a > hi):
        raise ValueError(f"{name} must be <= {hi}, got {a[a > hi].ravel()[0].item()!r}")
    return x


def config_array(name: str, x, *, ndim=(0, 1), lo=None, lo_open=False, hi=None):
    """real_array for a field of a config: what a user passes has ndim in `ndim`; a jax array may carry leading
    axes beyond (the sweep stacks configs over its grid points); a string, None or a table is refused. Returns x."""
    if x is None or isinstance(x, (str, bytes, dict, set, complex)):
        raise ValueError(f"{name} must be a real number or array of them, got {x!r}"[:300])
    if isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer):
        ndim = tuple(range(max(ndim) + 3))
    return real_array(name, x, lo=lo, lo_open=lo_open, hi=hi, ndim=ndim)


def size(name: str, x, *, lo: int = 1):
    """Check a static size: an int >= lo, or a non-empty tuple of them. Returns an int or a tuple of ints."""
    items = tuple(x) if isinstance(x, (list, tuple, np.ndarray)) else (x,)
    if not items:
        raise ValueError(f"{name} must not be empty")
    for v in items:
        if isinstance(v, bool) or not isinstance(v, (numbers.Integral, np.integer)):
            raise ValueError(f"{name} must be an integer (or a sequence of integers), got {v!r}")
        if v < lo:
            raise ValueError(f"{name} must be >= {lo}, got {v}")
    items = tuple(int(v) for v in items)
    return items if isinstance(x, (list, tuple, np.ndarray)) else items[0]


def sections(cfg: dict, known: set, what: str = "experiment"):
    """Refuse unknown keys of a TOML table (or sections of a file), naming them, the nearest allowed name and the
    allowed ones."""
    if not isinstance(cfg, dict):
        raise ValueError(f"{what} must be a table, got {cfg!r}")
    unknown = sorted(set(cfg) - set(known))
    if unknown:
        near = difflib.get_close_matches(unknown[0], sorted(known), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ValueError(f"unknown key(s) {unknown} in {what}{hint}; allowed: {sorted(known)}")


def build(cls, table: dict, what: str):
    """cls(**table) for a config dataclass, refusing unknown keys by name instead of a TypeError traceback."""
    sections(table, {f.name for f in dataclasses.fields(cls)}, what)
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in table.items()})


NAME_MAX = 100  # a results name; file systems allow 255 bytes, and the name gains suffixes (.pid.tmp.json)


def name(value, what: str = "name") -> str:
    """A results name: a plain file name (no separators or control characters such as a newline or ESC, not
    empty, not '.' or '..', at most NAME_MAX characters), so output stays in --out and the terminal stays clean."""
    if (
        not isinstance(value, str)
        or not value
        or value in (".", "..")
        or any(c in value for c in "/\\\0")
        or not value.isprintable()
        or len(value) > NAME_MAX
    ):
        raise ValueError(
            f"{what} must be a plain file name (no '/', '\\' or control characters, not empty, not '.' or '..', "
            f"at most {NAME_MAX} characters), got {value!r}"[:300]
        )
    return value


def choice(name: str, x, allowed: tuple):
    if x not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {x!r}")
    return x


STRATEGIES = NAMES  # data strategies, the same words in every family: declared in engine/strategies.py


def fraction(name: str, x):
    """A share in [0, 1] (a number or a per-generation sequence): returned as a float or float array."""
    real_array(name, x, lo=0.0, hi=1.0, ndim=(0, 1))
    return float(x) if np.ndim(x) == 0 else np.asarray(x, float)


_KINDS = {  # what a schema entry accepts; "ints"/"reals"/"strs" are lists
    "int": lambda name, v: size(name, v, lo=0) if not isinstance(v, (list, tuple)) else _not(name, v, "an integer"),
    "ints": lambda name, v: size(name, v, lo=0) if isinstance(v, list) else _not(name, v, "a list of integers"),
    "real": lambda name, v: real_array(name, v, ndim=(0,)),
    "reals": lambda name, v: (
        real_array(name, v, ndim=(1,)) if isinstance(v, list) else _not(name, v, "a list of numbers")
    ),
    "str": lambda name, v: v if isinstance(v, str) else _not(name, v, "a string"),
    "strs": lambda name, v: (
        v if isinstance(v, list) and all(isinstance(s, str) for s in v) else _not(name, v, "a list of strings")
    ),
    "list": lambda name, v: v if isinstance(v, list) else _not(name, v, "a list"),
    "any": lambda name, v: v,
}


def _not(name, v, what):
    raise ValueError(f"{name} must be {what}, got {v!r}")


def table(cfg, schema: dict, what: str) -> dict:
    """Check a TOML table against a schema {key: kind} (kinds in _KINDS): unknown keys refused with the nearest
    valid name, each value's type checked and named as what.key (integers integral, no booleans for numbers).
    Returns the table as a dict."""
    sections(cfg, set(schema), what)
    for key, value in cfg.items():
        _KINDS[schema[key]](f"{what.strip('[]')}.{key}", value)
    return dict(cfg)


# -- one validation layer for public functions: @checked(arg=rule, ...) ------------------------------------------
# A rule is called as rule(name, value) before the function runs and raises a ValueError naming the argument.
# Rules skip tracers (see real_array), so a checked function still runs under jit, vmap and grad.

MAX_GENERATIONS = 10**6  # beyond this a chain or a recursion would run for hours or fill memory: refused up front
MAX_SIZE = 10**7  # dimensions and sample sizes: a d x d or M-row array past this does not fit in memory
SCALE_MAX = 1e15  # noise levels, scales, bandwidths: squares summed over many generations stay finite in float32


def Int(lo: int = 0, hi: int | None = None, many: bool = False):
    """An integer (bool refused) in [lo, hi]; with many, also a non-empty 1-D sequence or array of them."""

    def rule(name, x):
        if isinstance(x, jax.core.Tracer):
            return
        if many and isinstance(x, range):
            x = list(x)
        if not is_concrete(x):
            raise ValueError(f"{name} must be an integer{' (or a sequence of them)' if many else ''}, got {x!r}")
        try:
            arr = np.asarray(x, dtype=object) if isinstance(x, (list, tuple)) else np.asarray(x)
        except ValueError:  # ragged
            arr = np.asarray([None, None])[None]
        if (arr.ndim > 0 and not many) or (arr.dtype == object and arr.ndim > 1):  # arrays of any shape may
            raise ValueError(f"{name} must be {'integers' if many else 'one integer'}, got {x!r}")  # broadcast
        items = arr.ravel().tolist()
        if not items:
            raise ValueError(f"{name} must not be empty")
        for v in items:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Integral, np.integer)):
                raise ValueError(f"{name} must be an integer{' (or integers)' if many else ''}, got {v!r}")
            if int(v) < lo:
                raise ValueError(f"{name} must be >= {lo}, got {int(v)}")
            if hi is not None and int(v) > hi:
                raise ValueError(f"{name} must be <= {hi}, got {int(v)}")

    return rule


def Real(lo: float | None = None, lo_open: bool = False, hi: float | None = None, ndim=(0, 1)):
    """Finite real numbers (a scalar or an array with ndim in `ndim`) in the given range."""
    return lambda name, x: real_array(name, x, lo=lo, lo_open=lo_open, hi=hi, ndim=ndim)


def RealArray(lo: float | None = None, hi: float | None = None, ndim=(1,), finite: bool = True):
    """A numpy or jax array (not a list: array functions need .shape and .dtype) of finite reals in range (with
    finite=False: of any real values, infinities included, as a sort takes them)."""

    def rule(name, x):
        if isinstance(x, jax.core.Tracer):
            return
        if not isinstance(x, (np.ndarray, jax.Array)):
            raise ValueError(f"{name} must be a numpy or jax array, got {type(x).__name__}: {x!r}"[:300])
        if finite:
            real_array(name, x, lo=lo, hi=hi, ndim=ndim)
        elif np.asarray(x).dtype.kind not in "iuf" or np.ndim(x) not in ndim or np.isnan(np.asarray(x, float)).any():
            raise ValueError(f"{name} must be a real array (no NaN) with {ndim} dimension(s), got {x!r}"[:300])

    return rule


def Probabilities():
    """Probability vectors (the last axis): entries in [0, 1] summing to 1."""

    def rule(name, x):
        real_array(name, x, lo=0.0, hi=1.0, ndim=(1, 2, 3))
        if is_concrete(x) and not np.allclose(np.sum(np.asarray(x, float), axis=-1), 1.0, atol=1e-6):
            raise ValueError(f"{name} must hold probabilities summing to 1 (along its last axis), got {x!r}"[:300])

    return rule


def Instance(*classes):
    """An instance of one of `classes` (the lab's configs: Spectrum, Generators, Downstream, ...)."""

    def rule(name, x):
        if not isinstance(x, classes):
            raise ValueError(f"{name} must be a {' or '.join(c.__name__ for c in classes)}, got {x!r}"[:300])

    return rule


def PathLike():
    """A file or folder path: a non-empty str or os.PathLike (a number or a list is not a path)."""

    def rule(name, x):
        if not isinstance(x, (str, os.PathLike)) or not str(x):
            raise ValueError(f"{name} must be a path (a non-empty str or pathlib.Path), got {x!r}"[:300])

    return rule


def OneOf(*allowed):
    return lambda name, x: choice(name, x, allowed)


def Optional(rule):
    """None, or what `rule` accepts."""
    return lambda name, x: None if x is None else rule(name, x)


def Key():
    """A PRNG seed: an int in [0, 2**31) (int32-safe with x64 off), or a JAX key (typed, or raw uint32 (2,))."""

    def rule(name, x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return
        if isinstance(x, (np.ndarray, jax.Array)) and x.shape == (2,) and x.dtype == np.uint32:
            return
        Int(0, 2**31 - 1)(name, x)

    return rule


def chain_rules() -> dict:
    """The rules every chain's run-time arguments share (key, seed_offset, generations, seeds, chunk_size,
    progress), written once: `@checked(**chain_rules(), M=Int(2))`."""
    return dict(
        key=Key(),
        seed_offset=Int(0),
        generations=Int(1, MAX_GENERATIONS),
        seeds=Int(1),
        chunk_size=Optional(Int(1)),
        progress=OneOf(True, False),
    )


def checked(**rules):
    """Decorator: validate the named arguments with their rules before the call; an unknown keyword argument or a
    missing one is a ValueError too (not a TypeError traceback)."""

    def wrap(fn):
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def inner(*args, **kwargs):
            try:
                bound = sig.bind(*args, **kwargs)
            except TypeError as err:
                raise ValueError(f"{fn.__name__}: {err}") from None
            for arg, rule in rules.items():
                if arg in bound.arguments:
                    rule(arg, bound.arguments[arg])
            return fn(*args, **kwargs)

        inner.__signature__ = sig  # type: ignore[attr-defined]  # what inspect.signature and help() show
        return inner

    return wrap


def strict_init(cls):
    """Class decorator for config dataclasses: an unknown keyword argument is a ValueError naming it and the
    nearest valid name (Python's TypeError would be a traceback that names neither)."""
    init = cls.__init__
    names = [p for p in inspect.signature(init).parameters if p != "self"]

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            near = difflib.get_close_matches(unknown[0], names, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ValueError(f"{cls.__name__}: unknown argument(s) {unknown}{hint}; allowed: {names}")
        if len(args) > len(names):
            raise ValueError(f"{cls.__name__} takes at most {len(names)} arguments ({names}), got {len(args)}")
        init(self, *args, **kwargs)

    cls.__init__ = __init__
    return cls
