"""Measured cost of simulation at scale (sweeps issue): rates, growth exponents, memory, devices.

    python benchmarks/bench_simulate.py is the foundation's side-by-side at d = 100; this script extends it:
    1. seeds/s for the numpy loop, the direct and the sufficient-statistics samplers, for d in {50, 100, 200, 400},
       T/d in {1.5, 4, 16} (T = T0), OLS and ridge (generators and downstream lam = 0.1), 5 generations;
    2. fitted exponents of time against seeds, generations, d and T (sufficient statistics, OLS);
    3. peak memory against chunk size (fresh processes);
    4. 1, 2 and 4 simulated CPU devices (fresh processes; on 2 cores this shows correctness more than speed);
    5. the 200-point x 1000-seed x 20-generation sweep of experiments/sweeps/default_grid.toml: time and memory.
Use --quick for a smaller table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import jax
from bench_simulate import numpy_chain

jax.config.update("jax_enable_x64", True)
import collapse_jax as cj  # noqa: E402

cj.engine.use_fused_threefry()  # as the CLI runs (same draws, faster); importing the package does not
cj.engine.use_one_lapack_thread()  # as the CLI runs: one OpenBLAS thread inside XLA's


def rate(fn, budget=1.0):
    """Seeds per second of fn(seeds, chunk_size), compilation excluded: a small call estimates the cost per
    seed, then one chunk size sized to the budget is compiled (warm-up) and timed on the same shape."""
    fn(16, 16)
    t = time.perf_counter()
    fn(16, 16)
    per_seed = (time.perf_counter() - t) / 16
    chunk = int(2 ** np.clip(np.round(np.log2(budget / per_seed)), 4, 11))
    fn(chunk, chunk)
    t = time.perf_counter()
    fn(chunk, chunk)
    return chunk / (time.perf_counter() - t)


def numpy_rate(d, T, lam, generations, budget):
    import bench_simulate as bs

    spec = cj.Spectrum.isotropic(d)
    rng = np.random.default_rng(0)
    bs.D, bs.T, bs.GENERATIONS = d, T, generations  # the reference loop reads its sizes from the module
    t, n = time.perf_counter(), 0
    while time.perf_counter() - t < budget or n < 2:
        numpy_chain(rng, spec.eigenvalues, spec.w0, lam, lam)
        n += 1
    return n / (time.perf_counter() - t)


def jax_rate(d, T, lam, generations, sampler, budget):
    spec = cj.Spectrum.isotropic(d)
    gen = cj.Generators(T0=T, lam=lam if lam > 0 else None)
    down = cj.Downstream(T=T, lam=lam)
    return rate(lambda s, c: cj.simulate(spec, gen, down, generations, s, key=0, sampler=sampler, chunk_size=c), budget)


def table(ds, ratios, budget):
    rows = []
    for d in ds:
        for ratio in ratios:
            T = int(ratio * d)
            for label, lam in (("OLS", 0.0), ("ridge", 0.1)):
                row = dict(
                    d=d,
                    T=T,
                    problem=label,
                    numpy=numpy_rate(d, T, lam, 5, budget),
                    direct=jax_rate(d, T, lam, 5, "direct", budget),
                    suffstats=jax_rate(d, T, lam, 5, "suffstats", budget),
                )
                rows.append(row)
                print(
                    f"{d:>4} {T:>6} {label:>6} {row['numpy']:>10.1f} {row['direct']:>10.1f} "
                    f"{row['suffstats']:>10.1f} {row['suffstats'] / row['numpy']:>8.1f}x",
                    flush=True,
                )
    return rows


def growth():
    """Exponents of time in seeds, generations, d and T (sufficient statistics, OLS generators, ridge down)."""

    def seconds(d=100, T=None, generations=20, seeds=1000):
        T = T or 3 * d  # T = 3d keeps every size in the same (sufficient-statistics) regime
        spec = cj.Spectrum.isotropic(d)
        args = (spec, cj.Generators(T0=T), cj.Downstream(T=T, lam=0.1), generations, seeds, 0)
        cj.simulate(*args)
        t = time.perf_counter()
        cj.simulate(*args)
        return time.perf_counter() - t

    out = {}
    for name, grid in [
        ("seeds", [500, 1000, 2000, 4000]),
        ("generations", [10, 20, 40, 80]),
        ("d", [50, 100, 200, 400]),
        ("T", [500, 1000, 2000, 4000]),
    ]:
        times = [seconds(**{name: v}) for v in grid]
        out[name] = float(np.polyfit(np.log(grid), np.log(times), 1)[0])
        print(
            f"time ∝ {name}^{out[name]:.2f}   ({', '.join(f'{v}: {t:.2f}s' for v, t in zip(grid, times, strict=True))})",
            flush=True,
        )
    return out


PEAK = """
def peak_gb():
    # VmHWM: this process's own high-water mark (ru_maxrss would carry the parent's over fork + exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
"""

SUB = (
    PEAK
    + """
import os, sys, time
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=" + sys.argv[1]
import jax
jax.config.update("jax_enable_x64", True)
import collapse_jax as cj
cj.engine.use_fused_threefry()
args = (cj.Spectrum.isotropic(100), cj.Generators(T0=300), cj.Downstream(T=300, lam=0.1), 20, int(sys.argv[3]), 0)
cj.simulate(*args, chunk_size=int(sys.argv[2]))
t = time.perf_counter()
cj.simulate(*args, chunk_size=int(sys.argv[2]))
print(time.perf_counter() - t, peak_gb())
"""
)


def fresh(devices, chunk, seeds):
    out = subprocess.run(
        [sys.executable, "-c", SUB, str(devices), str(chunk), str(seeds)], check=True, capture_output=True, text=True
    ).stdout.split()
    return float(out[0]), float(out[1])


def grid_sweep():
    import tempfile

    code = (
        PEAK
        + f"""
from collapse_jax import cli
cli.main(["sweep", "experiments/sweeps/default_grid.toml", "--quiet", "--out", {tempfile.mkdtemp()!r}])
print("peak", peak_gb())
"""
    )
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    lines = out.stdout.strip().splitlines()
    peak = float(lines[-1].split()[1])
    out.stdout = "\n".join(lines[:-1])
    print(
        f"sweep 200 points x 1000 seeds x 20 generations (d=100): {seconds:.0f}s wall (compile included), "
        f"peak RSS {peak:.2f} GB; {out.stdout.strip()}",
        flush=True,
    )
    return dict(seconds=seconds, peak_rss_gb=peak)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-table", action="store_true")
    args = parser.parse_args()
    print(f"jax {jax.__version__}, {len(jax.devices())} device(s), float64", flush=True)
    results = {}
    ds, ratios = ([50, 100], [1.5, 4]) if args.quick else ([50, 100, 200, 400], [1.5, 4, 16])
    print(f"{'d':>4} {'T=T0':>6} {'':>6} {'numpy/s':>10} {'direct/s':>10} {'suff/s':>10} {'suff/np':>9}")
    if not args.skip_table:
        results["table"] = table(ds, ratios, 0.5 if args.quick else 1.0)
    results["growth"] = growth()
    results["memory"] = {c: fresh(1, c, 20000)[1] for c in (250, 2000, 20000)}
    print("peak RSS (GB) against chunk size, 20,000 seeds:", results["memory"], flush=True)
    results["devices"] = {n: fresh(n, 1000, 4000)[0] for n in (1, 2, 4)}
    print("seconds for 4,000 seeds on 1, 2, 4 simulated devices:", results["devices"], flush=True)
    results["sweep"] = grid_sweep()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
