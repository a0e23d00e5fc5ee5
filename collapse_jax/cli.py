"""The `collapse-jax` command.

    collapse-jax run                       the default experiment (experiments/default.toml)
    collapse-jax run experiments/NAME.toml [--seeds N] [--out DIR] [--quiet]
    collapse-jax sweep SWEEP.toml [--out DIR] [--shard i/N] [--chunk-size N] [--quiet]
    collapse-jax merge DIR                 join the chunks that the shards of a sweep wrote
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT = "experiments/default.toml"


def _default_experiment() -> Path:
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (base / DEFAULT).is_file():
            return base / DEFAULT
    raise SystemExit(f"collapse-jax: cannot find {DEFAULT}; pass an experiment file")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="collapse-jax", description="A JAX lab for model collapse.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run an experiment: simulation beside theory, results file and figure")
    run.add_argument("config", nargs="?", help=f"experiment TOML (default: {DEFAULT})")
    run.add_argument("--seeds", type=int, help="override [simulation] seeds")
    run.add_argument("--out", default="results", help="output folder (default: results)")
    run.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    sw = sub.add_parser("sweep", help="a grid of configs x seeds, chunked, resumable, shardable over processes")
    sw.add_argument("config", help="sweep TOML: [spectrum], [generators], [downstream], [grid], [simulation]")
    sw.add_argument("--out", help="output folder (default: results/sweeps/NAME)")
    sw.add_argument("--shard", default="0/1", help="i/N: run the i-th of N slices (then `merge`)")
    sw.add_argument("--chunk-size", type=int, help="seeds per chunk (default: bounded by memory)")
    sw.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    mg = sub.add_parser("merge", help="join the chunks of a sweep run in slices")
    mg.add_argument("out", help="the sweep's output folder")
    args = parser.parse_args(argv)

    import jax

    jax.config.update("jax_enable_x64", True)  # the CLI runs in float64 and records it in the results
    from collapse_jax import experiment

    try:
        if args.command == "run":
            exp = experiment.load(args.config or _default_experiment(), seeds=args.seeds)
            experiment.run(exp, args.out, progress=not args.quiet)
        elif args.command == "sweep":
            _sweep(args)
        else:
            from collapse_jax.sweep import merge

            merge(args.out)
    except ValueError as err:
        print(f"collapse-jax: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resume = " every finished chunk is on disk: the same command resumes" if args.command == "sweep" else ""
        print(f"collapse-jax: interrupted;{resume or ' nothing was written for this run'}", file=sys.stderr)
        return 130
    return 0


def _sweep(args):
    import tomllib

    import numpy as np

    from collapse_jax import experiment
    from collapse_jax.problem import Downstream, Generators
    from collapse_jax.sweep import sweep

    path = Path(args.config)
    if not path.is_file():
        raise ValueError(f"sweep file {str(path)!r} does not exist")
    cfg = tomllib.loads(path.read_text())
    try:
        i, n = (int(x) for x in args.shard.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/N, got {args.shard!r}") from None
    from collapse_jax import _checks

    _checks.sections(cfg, {"name", "description", "spectrum", "generators", "downstream", "grid", "simulation"},
                     f"sweep file {str(path)!r}")
    sim = cfg.get("simulation", {})
    _checks.sections(sim, {"generations", "seeds", "key", "sampler", "chunk_size"}, "[simulation]")
    grid = {k: (list(v) if isinstance(v, list) and all(isinstance(x, (str, bool)) for x in v)
                else experiment._grid(f"grid.{k}", v)) for k, v in cfg.get("grid", {}).items()}
    grid = {k: (v.round().astype(int) if k in ("gen.T0", "down.T") else v) for k, v in grid.items()}
    gen = _checks.build(Generators, cfg.get("generators", {}), "[generators]")
    down = _checks.build(Downstream, cfg.get("downstream", {}), "[downstream]")
    res = sweep(experiment.spectrum_from_config(cfg.get("spectrum", {})), gen, down, grid,
                _checks.size("simulation.generations", sim.get("generations", 10), lo=0),
                _checks.size("simulation.seeds", sim.get("seeds", 1000)),
                _checks.size("simulation.key", sim.get("key", 0), lo=0),
                out=args.out or Path("results/sweeps") / _checks.name(cfg.get("name", path.stem)),
                sampler=sim.get("sampler", "auto"),
                chunk_size=args.chunk_size or sim.get("chunk_size"), shard=(i, n), progress=not args.quiet)
    if res is not None:
        z = np.abs(res.zscore().test_error)
        print(f"sweep done: test_error {res.test_error.shape} over axes {res.axes}; "
              f"largest |z| against theory {np.nanmax(z) if np.isfinite(z).any() else float('nan'):.2f}; "
              f"{len(res.invalid)} invalid point(s)")


if __name__ == "__main__":
    sys.exit(main())
