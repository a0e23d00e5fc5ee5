"""The `collapse-jax` command.

Usage:

    collapse-jax run                       the default experiment (experiments/default.toml)
    collapse-jax run experiments/NAME.toml [section.key=value ...] [--seeds N] [--out DIR] [--quiet]
    collapse-jax sweep SWEEP.toml [section.key=value ...] [--out DIR] [--shard i/N | --distributed HOST:PORT N ID
                 | --distributed auto] [--heartbeat SECONDS] [--chunk-size N] [--quiet]
    collapse-jax merge DIR                 join the chunks that the shards of a sweep wrote
    collapse-jax validate [--quick | --full] [--controls] [--family F] [--out DIR]   every closed form against simulation
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

DEFAULT = "experiments/default.toml"
# Where the lab's own experiment files are: experiments/ in a clone (their one home), collapse_jax/experiments/ in an
# installed wheel (pyproject.toml maps the folder there).
SHIPPED = (Path(__file__).resolve().parents[1] / "experiments", Path(__file__).resolve().parent / "experiments")


def experiment_file(config: str | None = None) -> Path:
    """The file that `collapse-jax run CONFIG` (or `sweep CONFIG`) reads.

    CONFIG where it exists; where it is a missing relative `experiments/NAME` (no CONFIG: experiments/default.toml),
    the file of that name that ships with the lab, so that the README's commands work from any folder and from a
    wheel. Anything else comes back as given, for the reader to name the missing path.

    Args:
        config: the path given on the command line, or None for the default experiment.

    Returns:
        The path to read.

    Raises:
        ValueError: no CONFIG, and no experiments/default.toml here or shipped.

    Example:
        >>> experiment_file().name
        'default.toml'
    """
    path = Path(config or DEFAULT)
    if path.is_file() or path.is_absolute() or path.parts[:1] != ("experiments",):
        return path
    for folder in SHIPPED:
        if folder.joinpath(*path.parts[1:]).is_file():
            return folder.joinpath(*path.parts[1:])
    if config is None:
        raise ValueError(f"cannot find {DEFAULT} here or in {', '.join(map(str, SHIPPED))}; pass an experiment file")
    return path


def _kinds_help() -> str:
    """The registered experiment kinds, by family (the registry is the only list)."""
    from collapse_jax import experiment

    return "; ".join(f"{family}: {', '.join(names)}" for family, names in experiment.kinds().items())


def entry() -> int:
    """The `collapse-jax` process (the console script and `python -m collapse_jax`): `main` on sys.argv.

    XLA reads XLA_FLAGS once, when JAX starts its backend, so what a process asks of XLA for all its programs is
    set here, before anything is compiled: `collapse-jax validate`, whose programs each run once, asks for
    `compile_options.process_flags_for_latency` (the same numbers, compiled faster). Every command asks for one
    OpenBLAS thread in jaxlib's factorisations (`lapack_threads`: the same numbers, without threads that spin
    beside XLA's). Callers of `main` inside a process of their own (tests, notebooks) keep their flags.
    """
    from collapse_jax.engine import compile_options, use_one_lapack_thread

    use_one_lapack_thread()
    if sys.argv[1:2] == ["validate"]:
        os.environ["XLA_FLAGS"] = compile_options.process_flags_for_latency(os.environ.get("XLA_FLAGS", ""))
    return main()


def main(argv=None) -> int:
    import jax
    import matplotlib

    from collapse_jax.engine import compilation_cache, timing, use_fused_threefry

    timings = os.environ.get("COLLAPSE_JAX_TIMINGS")
    if timings:  # where this command's time goes, written at exit (benchmarks/time_to_result.py)
        timing.record()
    jax.config.update("jax_enable_x64", True)  # the CLI runs in float64 and records it in the results
    use_fused_threefry()  # the same draws, made faster: the lab's own process, so its global lowering is ours to set
    matplotlib.use("Agg")  # the CLI writes figure files and opens no window
    from collapse_jax import experiment
    from collapse_jax.engine import collective, protocol

    parser = argparse.ArgumentParser(
        prog="collapse-jax",
        description="A JAX lab for model collapse.",
        epilog=f"experiment kinds ({len(protocol.REGISTRY)}): {_kinds_help()}",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="run an experiment: simulation beside theory, results file and figure",
        description=f"experiment kinds: {_kinds_help()}",
    )
    run.add_argument("config", nargs="?", help=f"experiment TOML (default: {DEFAULT})")
    run.add_argument(
        "settings",
        nargs="*",
        help="section.key=value settings applied to the file, e.g. "
        "downstream.T=500 generators.sigma0=0.5 (values parsed as TOML)",
    )
    run.add_argument("--seeds", type=_positive, help="override [simulation] seeds")
    run.add_argument("--out", default="results", help="output folder (default: results)")
    run.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    sw = sub.add_parser("sweep", help="a grid of configs x seeds, chunked, resumable, shardable over processes")
    sw.add_argument(
        "config",
        help="sweep TOML: a regression sweep ([spectrum], [generators], [downstream], [grid], [simulation]) or an "
        "experiment file of any kind with a [grid] of its own keys",
    )
    sw.add_argument(
        "settings", nargs="*", help='section.key=value settings, e.g. simulation.seeds=200 grid."down.lam"=[0.1,1.0]'
    )
    sw.add_argument("--out", help="output folder (default: results/sweeps/NAME)")
    sw.add_argument("--shard", help="i/N: run the i-th of N slices (then `merge`); default 0/1, the whole sweep")
    sw.add_argument(
        "--distributed",
        nargs="+",
        metavar="ARG",
        help="HOST:PORT N ID: process ID of N under jax.distributed (HOST:PORT: process 0's coordinator), or `auto` "
        "(JAX detects them on Slurm, Open MPI, ...): the processes split the chunks and exchange them through JAX's "
        "collectives; process 0 writes the folder and merges",
    )
    sw.add_argument(
        "--heartbeat",
        type=_positive,
        help="with --distributed: seconds without a heartbeat after which a process counts as dead and the others "
        "stop (default 100)",
    )
    sw.add_argument(
        "--chunk-size", type=_positive, help="seeds per chunk of a regression sweep (default: bounded by memory)"
    )
    sw.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    va = sub.add_parser("validate", help="every closed form of the lab against simulation: table and report")
    mode = va.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        action="store_true",
        help="seeds for a 5%% statistical band, ~30 s on 2 cores, ~11 s once compiled (default)",
    )
    mode.add_argument("--full", action="store_true", help="seeds for a 1%% statistical band (25x quick)")
    va.add_argument(
        "--controls", action="store_true", help="also run the negative controls (theory scaled by 1 -+ 2 detects)"
    )
    va.add_argument("--family", help=f"comma-separated: {', '.join(protocol.families())} (default: all)")
    va.add_argument("--out", default="results/validate", help="report folder (default: results/validate)")
    va.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    mg = sub.add_parser("merge", help="join the chunks of a sweep run in slices")
    mg.add_argument("out", help="the sweep's output folder")
    args = parser.parse_args(argv)
    interrupted, distributed, failed = _watch_interrupts(), False, False
    try:
        compilation_cache.enable()  # a second run loads its programs instead of compiling them
        if args.command == "run":
            if args.config and "=" in args.config:  # `run key=value` on the default experiment
                args.settings, args.config = [args.config] + args.settings, None
            exp = experiment.load(experiment_file(args.config), args.settings, seeds=args.seeds)
            with compilation_cache.loading_ahead(_programs_named_by(args)):
                experiment.run(exp, args.out, progress=not args.quiet)
        elif args.command == "sweep":
            distributed = _start_distributed(args)
            _sweep(args, shard=None if distributed else _shard(args.shard or "0/1"))
            if distributed:
                collective.stop()
        elif args.command == "validate":
            from collapse_jax import validate

            with compilation_cache.loading_ahead(_programs_named_by(args)):
                return validate.main(args)
        else:
            from collapse_jax.regression.sweep import merge

            merge(args.out)  # a sweep of any family
    except ValueError as err:
        print(f"collapse-jax: {err}", file=sys.stderr)
        failed = True
        return 2
    except Exception as err:
        if os.environ.get("COLLAPSE_JAX_DEBUG"):
            raise
        print(f"collapse-jax: {_one_line(err, args)}", file=sys.stderr)
        failed = True
        return 2
    except KeyboardInterrupt:
        interrupted.append(True)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if timings:
            timing.write(timings, command=sys.argv[1:] if argv is None else list(argv))
        if distributed and failed:  # JAX's shutdown would wait for the failed or dead processes, then abort
            _exit_now(2)
    if interrupted:  # also a Ctrl-C whose KeyboardInterrupt was swallowed (inside JAX's garbage-collection callback)
        resume = " every finished chunk is on disk: the same command resumes" if args.command == "sweep" else ""
        print(f"collapse-jax: interrupted;{resume or ' results of this run may be incomplete'}", file=sys.stderr)
        return 130
    return 0


def _programs_named_by(args) -> str:
    """What decides the programs a `run` or `validate` builds: the parsed arguments but the output folder and the
    progress lines (a run into another folder loads the same programs ahead)."""
    return repr(sorted((k, v) for k, v in vars(args).items() if k not in ("out", "quiet")))


def _start_distributed(args) -> bool:
    """jax.distributed.initialize from --distributed (and --heartbeat), before any JAX computation; False without."""
    from collapse_jax.engine import collective

    if args.distributed is None:
        if args.heartbeat is not None:
            raise ValueError("--heartbeat applies with --distributed only")
        return False
    if args.shard is not None:
        raise ValueError("--shard and --distributed exclude each other: --distributed splits the sweep by itself")
    given = args.distributed
    if given == ["auto"]:
        collective.start(None, None, None, args.heartbeat or 100)
        return True
    if len(given) != 3:
        raise ValueError(f"--distributed takes HOST:PORT N ID (three values) or `auto`, got {' '.join(given)!r}")
    numbers = []
    for what, text in (("the number of processes N", given[1]), ("the process ID", given[2])):
        try:
            numbers.append(int(text))
        except ValueError:
            raise ValueError(f"--distributed: {what} must be an integer, got {text!r}") from None
    collective.start(given[0], numbers[0], numbers[1], args.heartbeat or 100)
    return True


def _exit_now(code: int):
    """End the process now, skipping JAX's shutdown (which, after another process failed or died, waits for it at
    a barrier, then aborts the process)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _watch_interrupts() -> list:
    """Install a SIGINT handler that remembers every Ctrl-C before raising KeyboardInterrupt: where Python swallows
    the exception (it is raised inside a garbage-collection callback, as JAX's are, and printed as "Exception
    ignored"), the run still ends with status 130 instead of 0. Returns the list it appends to."""
    seen: list = []

    def handler(signum, frame):
        seen.append(True)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    return seen


def _positive(text: str) -> int:
    """argparse type: an integer >= 1 (0 would silently mean 'the default')."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def _one_line(err: Exception, args) -> str:
    """An error from a bad folder or file as one line naming the path (the traceback with COLLAPSE_JAX_DEBUG=1)."""
    where = getattr(err, "filename", None) or getattr(args, "out", None) or getattr(args, "config", None)
    text = " ".join(str(err).split())[:300]
    return f"{type(err).__name__} at {str(where)!r}: {text} (COLLAPSE_JAX_DEBUG=1 shows the traceback)"


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/N, got {text!r}") from None
    return i, n


def _sweep(args, shard):
    from collapse_jax import experiment
    from collapse_jax.engine import checks
    from collapse_jax.regression.experiments import grid_values, problem
    from collapse_jax.regression.sweep import sweep

    path = experiment_file(args.config)
    cfg = experiment.read_toml(path, args.settings, "sweep file")
    if "kind" in cfg:  # an experiment of any family with a [grid] of its own keys: one chunk per grid point
        if args.chunk_size:
            raise ValueError(
                "--chunk-size applies to regression sweep files (no `kind`); an experiment sweep "
                "stores one chunk per grid point"
            )
        out = args.out or Path("results/sweeps") / checks.name(cfg.get("name", path.stem))
        res = experiment.sweep_file(cfg, out, progress=not args.quiet, shard=shard)
        if res is not None:
            print(f"sweep done: {len(res.arrays)} arrays over {list(res.grid)} written to {out}/sweep.npz")
            print("  " + res.summary["verdict"])
        return
    checks.sections(
        cfg,
        {"name", "description", "spectrum", "generators", "downstream", "grid", "simulation"},
        f"sweep file {str(path)!r}",
    )
    sim = cfg.get("simulation", {})
    checks.sections(sim, {"generations", "seeds", "key", "sampler", "chunk_size"}, "[simulation]")
    grid = {
        k: (
            list(v)
            if isinstance(v, list) and all(isinstance(x, (str, bool)) for x in v)
            else grid_values(f"grid.{k}", v)
        )
        for k, v in cfg.get("grid", {}).items()
    }
    res = sweep(
        *problem(cfg),
        grid,
        checks.size("simulation.generations", sim.get("generations", 10), lo=0),
        checks.size("simulation.seeds", sim.get("seeds", 1000)),
        checks.size("simulation.key", sim.get("key", 0), lo=0),
        out=args.out or Path("results/sweeps") / checks.name(cfg.get("name", path.stem)),
        sampler=sim.get("sampler", "auto"),
        chunk_size=args.chunk_size or sim.get("chunk_size"),
        shard=shard,
        progress=not args.quiet,
    )
    if res is not None:
        print(
            f"sweep done: test_error {res.test_error.shape} over axes {res.axes}; {len(res.invalid)} invalid "
            f"point(s), {len(res.no_theory)} without a formula"
        )
        for line in res.agreement():
            print("  " + line)


if __name__ == "__main__":
    sys.exit(main())
