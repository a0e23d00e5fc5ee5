"""The `collapse-jax` command.

    collapse-jax run                       the default experiment (experiments/default.toml)
    collapse-jax run experiments/NAME.toml [--seeds N] [--out DIR] [--quiet]
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
    args = parser.parse_args(argv)

    import jax

    jax.config.update("jax_enable_x64", True)  # the CLI runs in float64 and records it in the results
    from collapse_jax import experiment

    try:
        exp = experiment.load(args.config or _default_experiment(), seeds=args.seeds)
        experiment.run(exp, args.out, progress=not args.quiet)
    except ValueError as err:
        print(f"collapse-jax: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
