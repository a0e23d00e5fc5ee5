"""The bad-input property over every door, found rather than listed: every public callable and constructor of the
package's public namespaces (`collapse_jax`, `collapse_jax.theory`, the family namespaces and their theory and
optimisation modules), every TOML table of every experiment kind, every CLI subcommand and option, and the files the
lab reads (results, sweep folders, MNIST .npz). Each probe replaces one input by a bad value drawn from a seeded
sample; the outcome must be a ValueError (or, for the CLI, exit status 2 with one line), or finite numbers. The
counts per door and outcome are printed (`pytest -s`) and the test fails on any crash, silent NaN/inf, hang or
write outside the output folder.

Valid values come from the parameter's name (a table of names, not of functions): a callable whose required
parameters are not all in it is still probed, with what a required parameter needs missing (a ValueError)."""

from __future__ import annotations

import collections
import dataclasses
import inspect
import json
import random
import signal
import tempfile
import tomllib
import warnings
from pathlib import Path

import jax
import numpy as np

import collapse_jax as cj
from collapse_jax import cli, experiment
from collapse_jax.distributions import theory as dtheory
from collapse_jax.engine import io
from collapse_jax.kernels import kernel_matrix
from collapse_jax.kernels import theory as ktheory
from collapse_jax.regression.experiments import grid_values

NAMESPACES = (
    cj,
    cj.theory,
    cj.regression,
    cj.distributions,
    cj.kernels,
    dtheory,
    ktheory,
    cj.optimize,
    cj.regularization,
    cj.distributions.distances,
)
ROOT = Path(__file__).resolve().parents[1]
BAD = [
    -1,
    0,
    -0.5,
    1e300,
    float("nan"),
    float("inf"),
    "x",
    "",
    None,
    [],
    {},
    True,
    1 + 2j,
    [1, "a"],
    [[1.0, 2.0]],
    np.array([np.nan]),
    10**12,
    np.ones((2, 2, 2)),
    np.float64(-2.0),
    (1.5, 2),
]
PROBES_PER_CALLABLE = 6  # a seeded sample of (argument, bad value) pairs per callable
SECONDS = 120  # a probe longer than this is a hang (compiles included, on a loaded machine)

SPEC, GEN, DOWN = cj.Spectrum.isotropic(4), cj.Generators(T0=12), cj.Downstream(T=12, lam=0.1)
_X = np.random.default_rng(0).normal(size=(30, 3))
K = np.asarray(kernel_matrix("rbf", _X))
Y = np.eye(2)[np.arange(30) % 2]
VALID = {  # by parameter name
    "spec": SPEC,
    "gen": GEN,
    "down": DOWN,
    "n": 2,
    "generations": 2,
    "seeds": 4,
    "key": 0,
    "d": 4,
    "M": 5,
    "t": 3,
    "T": 12,
    "T0": 12,
    "N": 10,
    "p": [0.5, 0.5],
    "q": [0.25, 0.75],
    "eigenvalues": np.ones(4),
    "w0": np.ones(4) / 2,
    "lam": 0.1,
    "sigma": 1.0,
    "sigma0": 1.0,
    "signal": 1.0,
    "beta": 2.0,
    "r": 0.5,
    "ell": 0.5,
    "c": 1.0,
    "K": K,
    "Y": Y,
    "X": _X,
    "pool": np.arange(20),
    "test": np.arange(20, 30),
    "var0": 1.0,
    "bandwidth": 0.3,
    "mean1": 0.0,
    "var1": 1.0,
    "mean2": 1.0,
    "var2": 2.0,
    "labels": np.arange(30) % 2,
    "classes": 2,
    "estimator": "mle",
    "phi0": 0.5,
    "sigma_eff2_": 0.5,
    "x": np.ones((3, 2)),
    "y": np.ones((3, 2)),
    "eps": 0.5,
    "budget": 0.5,
}
VALID |= {
    "grid": {"down.lam": [0.1]},
    "m": 1,
    "kappa": 0.5,
    "spectra": [SPEC],
    "dtype": np.float64,
    "cfg": {"kind": "isotropic", "d": 4},
    "k": 3.0,
    "s0": 0.2,
    "start": (1.0, 0.5),
    "T_range": (20, 400),
    "schedule": lambda k: 0.1,
}
VALID["out"] = tempfile.mkdtemp()
SKIP = {"load_digits", "load_mnist"}  # reach files (probed under files below)

Counts = collections.Counter


def _public_callables():
    """(qualified name, callable) for every public function, class and public classmethod/staticmethod found."""
    found = {}
    for ns in NAMESPACES:
        names = getattr(ns, "__all__", None) or [n for n in dir(ns) if not n.startswith("_")]
        for name in names:
            obj = getattr(ns, name, None)
            if obj is None or inspect.ismodule(obj) or not callable(obj) or name in SKIP:
                continue
            if not getattr(obj, "__module__", "").startswith("collapse_jax"):
                continue
            if inspect.isclass(obj) and issubclass(obj, BaseException):
                continue
            found.setdefault(id(obj), (f"{ns.__name__}.{name}", obj))
            if inspect.isclass(obj):
                for attr, raw in vars(obj).items():
                    if not attr.startswith("_") and isinstance(raw, (classmethod, staticmethod)):
                        found.setdefault(id(raw), (f"{ns.__name__}.{name}.{attr}", getattr(obj, attr)))
    return sorted(found.values(), key=lambda t: t[0])


def _finite(out) -> bool:
    leaves = jax.tree.leaves(dataclasses.asdict(out) if dataclasses.is_dataclass(out) else out)
    nums = [x for x in leaves if isinstance(x, (float, np.ndarray, jax.Array, np.floating))]
    return all(np.all(np.isfinite(np.asarray(x, float))) for x in nums if np.asarray(x).dtype.kind in "fiu")


class _Hang(Exception):
    pass


def _alarm(*_):
    raise _Hang


def _outcome(call) -> str:
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(SECONDS)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = call()
    except _Hang:
        return "hang"
    except ValueError:
        return "clear error"
    except TypeError as err:
        if "required positional argument" in str(err) or "unexpected keyword" in str(err):
            return "not applicable"  # the probe could not fill a required argument: Python's own TypeError
        return f"crash: TypeError: {str(err)[:120]}"
    except Exception as err:
        return f"crash: {type(err).__name__}: {str(err)[:120]}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    try:
        return "finite" if _finite(out) else "NaN/inf"
    except Exception:
        return "finite"


CONTAINERS = (
    "Metrics",
    "Result",
    "SweepResult",
    "GaussianChain",
    "KDEChain",
    "BootstrapChain",
    "DiscreteChain",
    "KRRChain",
    "Dataset",
    "Moments",
    "Optimum",
)  # result records: built by the lab, not validated


def test_every_public_callable(capsys):
    counts, defects = Counts(), []
    callables = _public_callables()
    assert len(callables) >= 60, [n for n, _ in callables]  # the discovery reaches the whole public namespace
    for label, fn in callables:
        if label.rsplit(".", 1)[-1] in CONTAINERS:
            counts["containers (not probed)"] += 1
            continue
        try:
            params = [
                p for p in inspect.signature(fn).parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            ]
        except (TypeError, ValueError):
            continue
        base = {p.name: VALID[p.name] for p in params if p.name in VALID}
        rng = random.Random(label)
        pairs = [(p.name, b) for p in params for b in BAD]
        for arg, bad in rng.sample(pairs, min(PROBES_PER_CALLABLE, len(pairs))):
            result = _outcome(lambda fn=fn, kw=base | {arg: bad}: fn(**kw))
            counts[result.split(":")[0]] += 1
            if result.split(":")[0] in ("crash", "NaN/inf", "hang"):
                defects.append(f"{label}({arg}={bad!r}): {result}")
    with capsys.disabled():
        print(f"\nAPI door: {len(callables)} callables, {sum(counts.values())} probes: {dict(counts)}")
    assert not defects, "\n".join(defects)


# -- TOML: every table of every experiment kind, one bad value per key ---------------------------------------------


def _experiment_files():
    return sorted((ROOT / "experiments").glob("*.toml")) + sorted((ROOT / "experiments" / "sweeps").glob("*.toml"))


def _first_point(cfg: dict) -> dict:
    """An experiment file's config, or a sweep file's at its first grid point (a regression sweep file, with no
    kind, is a lambda scan of its problem)."""
    grid = cfg.pop("grid", None)
    if grid is None:
        return cfg
    if not isinstance(grid, dict):
        raise ValueError("grid must be a table")
    cfg.pop("simulation", None) if "kind" not in cfg else None
    for name, values in grid.items():
        section, _, key = name.partition(".")
        section = {"spec": "spectrum", "gen": "generators", "down": "downstream"}.get(section, section)
        first = (
            grid_values(name, values)[0]
            if not isinstance(values, list) or (values and not isinstance(values[0], (str, bool)))
            else values[0]
        )
        cfg.setdefault(section, {})[key] = first.item() if hasattr(first, "item") else first
    return cfg


def test_every_toml_table(capsys):
    counts, defects, rng = Counts(), [], random.Random(25)
    for path in _experiment_files():
        cfg = tomllib.loads(path.read_text())
        keys = [(s, k) for s, t in cfg.items() if isinstance(t, dict) for k in t] + [("", k) for k in cfg]
        keys.append(("", "no_such_key"))
        for section, key in rng.sample(keys, min(6, len(keys))):
            bad = rng.choice(['"x"', "-1", "nan", "[]", "true", "1e300", "{a = 1}", "[[1], [2]]"])
            setting = f"{section + '.' if section else ''}{key}={bad}"
            try:  # built, not run: a sweep file at its first grid point (running is probed under the API door)
                cfg2 = _first_point(experiment.read_toml(path, [setting]))
                result = _outcome(lambda cfg2=cfg2: experiment.from_config(cfg2))
            except ValueError:
                result = "clear error"
            counts[result.split(":")[0]] += 1
            if result.split(":")[0] in ("crash", "hang"):
                defects.append(f"{path.name} {setting}: {result}")
    with capsys.disabled():
        print(f"\nTOML door: {sum(counts.values())} probes over {len(_experiment_files())} files: {dict(counts)}")
    assert not defects, "\n".join(defects)


# -- CLI: every subcommand and option ------------------------------------------------------------------------------


def test_every_cli_option(tmp_path, capsys):
    (tmp_path / "f.txt").write_text("x")
    (tmp_path / "bad.toml").write_text("a = [")
    runs = [
        ["run", "{t}/missing.toml"],
        ["run", "{t}/bad.toml"],
        ["run", "{t}/f.txt"],
        ["run", "experiments/default.toml", "--seeds", "0"],
        ["run", "experiments/default.toml", "--seeds", "x"],
        ["run", "experiments/default.toml", "spectrum.d=-3", "--out", "{t}"],
        ["run", "experiments/default.toml", "nonsense"],
        ["run", "experiments/default.toml", "--out", "{t}/f.txt", "simulation.seeds=2", "scan.n=[0]"],
        ["sweep", "{t}/missing.toml"],
        ["sweep", "experiments/sweeps/default_grid.toml", "--shard", "3/2"],
        ["sweep", "experiments/sweeps/default_grid.toml", "--shard", "a"],
        ["sweep", "experiments/sweeps/default_grid.toml", "--chunk-size", "-1"],
        ["sweep", "experiments/sweeps/default_grid.toml", "simulation.generations=10000000"],
        ["sweep", "experiments/sweeps/default_grid.toml", "simulation.seeds=1000000000"],
        ["sweep", "experiments/sweeps/default_grid.toml", 'grid."gen.fixed"=["no"]'],
        ["merge", "{t}/missing"],
        ["merge", "{t}/f.txt"],
        ["merge", "{t}"],
        ["validate", "--family", "nonsense"],
        ["validate", "--quick", "--full"],
        ["nonsense"],
        [],
    ]
    counts, defects = Counts(), []
    for argv in runs:
        argv = [a.format(t=tmp_path) for a in argv]
        try:
            code = cli.main(argv)
        except SystemExit as stop:  # argparse: usage on stderr, status 2
            code = stop.code
        err = capsys.readouterr().err
        one_line = "Traceback" not in err and (code != 2 or "usage:" in err or len(err.strip().splitlines()) == 1)
        ok = code == 2 and one_line
        counts["clear error" if ok else "crash"] += 1
        if not ok:
            defects.append(f"{argv}: exit {code}: {err[-300:]}")
    assert not list(Path("/nonexistent").glob("*")) if Path("/nonexistent").exists() else True
    with capsys.disabled():
        print(f"\nCLI door: {len(runs)} command lines: {dict(counts)}")
    assert not defects, "\n".join(defects)


# -- files the lab reads: truncated, empty, wrong type, tampered --------------------------------------------------


def _tamper(path: Path, how: str):
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "wrong type":
        path.write_text("[1, 2, 3]" if path.suffix == ".json" else "not a zip")
    elif how == "directory":
        path.unlink()
        path.mkdir()
    elif how == "tampered" and path.suffix == ".json":
        doc = json.loads(data)
        doc[next(iter(doc))] = {"edited": True}
        path.write_text(json.dumps(doc))
    elif how == "tampered":
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
        arrays.pop(sorted(arrays)[-1])  # an array removed (and the file rewritten)
        np.savez(path, **arrays)


HOW = ("truncated", "empty", "wrong type", "directory", "tampered")


def test_every_file_the_lab_reads(tmp_path, capsys):
    counts, defects = Counts(), []

    def check(label, make, files, read):
        for name in files:
            for how in HOW:
                folder = tmp_path / f"{label}_{name}_{how}".replace(" ", "_").replace("/", "_")
                make(folder)
                _tamper(folder / name, how)
                result = _outcome(lambda folder=folder: read(folder))
                counts[result.split(":")[0]] += 1
                if result.split(":")[0] not in ("clear error",):
                    defects.append(f"{label} {name} {how}: {result}")

    def results(folder):
        io.save(folder / "r", {"x": np.arange(3.0)}, {"x": ["n"]}, {"seed": 0})

    check("results", results, ["r.npz", "r.json"], lambda f: io.load(f / "r"))

    def swept(folder):
        cj.sweep(
            cj.Spectrum.isotropic(4),
            cj.Generators(T0=8),
            cj.Downstream(T=8),
            {"down.lam": [0.1, 1.0]},
            1,
            4,
            0,
            out=folder,
            progress=False,
        )

    check("sweep", swept, ["manifest.json", "chunks/s0000_c00000.npz"], lambda f: cj.merge(f, progress=False))
    check("sweep", swept, ["sweep.npz", "sweep.json"], lambda f: cj.sweep_load(f))

    def mnist(folder):
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "mnist.npz", x_train=np.zeros((4, 28, 28), np.uint8), y_train=np.arange(4))

    check("mnist", mnist, ["mnist.npz"], lambda f: cj.kernels.load_mnist(f / "mnist.npz"))
    with capsys.disabled():
        print(f"\nfiles door: {sum(counts.values())} damaged files: {dict(counts)}")
    # a damaged chunk is recomputed by `sweep` and refused by `merge`; both are errors here (merge alone reads)
    assert not defects, "\n".join(defects)
