"""Time to first result: where each command's time goes, first run and second run (issue "Time to first result").

Every command runs twice, each time in a fresh process, sharing one new persistent-cache folder (as a researcher's
two runs on one machine do): the first run compiles and stores its programs, the second loads them. Each process
writes its own stages through COLLAPSE_JAX_TIMINGS (collapse_jax/engine/timing.py):

    startup   interpreter and imports, before the command starts (wall minus the command's own wall)
    trace     JAX tracing (Python running the model code to build programs)
    lower     lowering the traced programs to MLIR
    compile   XLA compilation, or loading the program from the persistent cache on a hit (for a program loaded
              ahead in the background, the time the run waited for it; the background seconds are noted apart)
    output    saving results and rendering figures
    rest      wall time in none of these: execution, and Python between the programs

trace, lower and compile are summed over threads (validate simulates two checks at once, so they may add up to
more than the wall time); the compile share is the wall time during which some thread was tracing, lowering or
compiling, over the whole wall time.

    python benchmarks/time_to_result.py                         make run, validate --quick, every experiment
    python benchmarks/time_to_result.py --seeds 40              experiments at 40 seeds (compile share: worst case)
    python benchmarks/time_to_result.py --only default,fig1b_scaling --no-cache   today's behaviour, no cache
    python benchmarks/time_to_result.py --tree /path/to/old/checkout              another checkout, wall time only
    python benchmarks/time_to_result.py --figures experiments/figures             and refresh the docs gallery

Writes the table to stdout and the records to results/time_to_result.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def commands(seeds: int | None, only: set | None) -> list[tuple[str, list[str]]]:
    """(label, CLI arguments): `make run`'s command, validate --quick, and every experiment file."""
    extra = ["--seeds", str(seeds)] if seeds else []
    out = [("make run", ["run"]), ("validate --quick", ["validate", "--quick"])]
    out += [(p.stem, ["run", f"experiments/{p.name}", *extra]) for p in sorted((ROOT / "experiments").glob("*.toml"))]
    return [c for c in out if only is None or c[0] in only or c[0].replace(" ", "_") in only]


def run_once(tree: Path, args: list[str], cache: str, scratch: Path, label: str) -> dict:
    """One fresh process of `collapse-jax ARGS` in `tree`; its wall time and, where the tree records them, stages."""
    record = scratch / f"{label}.json"
    record.unlink(missing_ok=True)
    env = dict(os.environ, COLLAPSE_JAX_CACHE=cache, COLLAPSE_JAX_TIMINGS=str(record), PYTHONPATH=str(tree))
    env.pop("XLA_FLAGS", None)
    out = ["--out", str(scratch / "out")] if args[0] == "run" or args[0] == "validate" else []
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "collapse_jax", *args, *out, "--quiet"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    failed = done.returncode not in (0, 1)  # validate returns 1 when a formula disagrees: still timed
    stages = json.loads(record.read_text()) if record.exists() and not failed else None
    return dict(wall=wall, stages=stages, error=done.stderr.strip().splitlines()[-1][:200] if failed else None)


def row(label: str, which: str, r: dict) -> str:
    s = r["stages"]
    if r.get("error"):
        return f"| {label} | {which} | failed: {r['error']} | | | | | | | | |"
    if s is None:
        return f"| {label} | {which} | {r['wall']:.1f} | | | | | | | | |"
    sec = s["seconds"]  # summed over threads
    covered = s.get("covered")  # wall time each stage covers (older trees: only the sums, one thread)
    compile_ = covered["build"] if covered else sec.get("trace", 0) + sec.get("lower", 0) + sec.get("compile", 0)
    output = sec.get("save", 0) + sec.get("figure", 0)
    rest = s["wall"] - (covered["all"] if covered else compile_ + output)
    cells = [
        f"{r['wall']:.1f}",
        f"{r['wall'] - s['wall']:.1f}",
        f"{sec.get('trace', 0):.1f}",
        f"{sec.get('lower', 0):.1f}",
        f"{sec.get('compile', 0):.1f}",
        f"{output:.1f}",
        f"{rest:.1f}",
        f"{s['programs']} ({s['cache_hits']} cached"
        + (f"; {sec['ahead']:.1f} s loaded ahead)" if "ahead" in sec else ")"),
        f"{compile_ / r['wall']:.0%}",
    ]
    return f"| {label} | {which} | " + " | ".join(cells) + " |"


HEADER = [
    "| command | run | wall s | startup | trace | lower | compile | output | rest | programs | compile share |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, help="override the experiments' [simulation] seeds")
    ap.add_argument("--only", help="comma-separated labels (make_run, validate_--quick, experiment names)")
    ap.add_argument("--no-cache", action="store_true", help="both runs without the persistent cache")
    ap.add_argument("--tree", default=str(ROOT), help="the checkout to time (default: this one)")
    ap.add_argument("--json", default=str(ROOT / "results" / "time_to_result.json"))
    ap.add_argument("--figures", help="copy each experiment's PNG here (experiments/figures: the docs gallery)")
    a = ap.parse_args(argv)
    only = set(a.only.split(",")) if a.only else None
    records = []
    print("\n".join(HEADER), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for label, args in commands(a.seeds, only):
            scratch = Path(tmp) / label.replace(" ", "_")
            scratch.mkdir()
            cache = "off" if a.no_cache else str(scratch / "cache")
            runs = [run_once(Path(a.tree), args, cache, scratch, f"run{i}") for i in (1, 2)]
            if a.figures and args[0] == "run":  # the gallery's figures, from this run
                for png in (scratch / "out").glob("*.png"):
                    shutil.copyfile(png, Path(a.figures) / png.name)
            for which, r in zip(("first", "second"), runs, strict=True):
                print(row(label, which, r), flush=True)
            records.append(dict(label=label, args=args, cache=not a.no_cache, runs=runs))
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(dict(seeds=a.seeds, tree=a.tree, records=records), indent=1))


if __name__ == "__main__":
    main()
