"""`collapse-jax validate`: every closed form the lab ships, simulated at a few configurations and compared.

Each entry of CATALOGUE names a formula, its family, the configuration and a function returning per-seed
simulated values (seeds, points) with the theory at the same points. Exact formulas pass on |z| <= 4;
deterministic equivalents (DE) on |z| <= 4 or a relative gap within their finite-size bound 2/d
(`theory.agreement`). The test suite runs the same catalogue (quick), so the report and the tests cannot drift.

    collapse-jax validate [--quick | --full] [--family regression,distributions,kernels] [--out results/validate]

Example:
    >>> from collapse_jax import validate
    >>> rows = validate.run(validate.select("regression")[:1], full=False, progress=False)
    >>> rows[0]["kind"], rows[0]["agrees"]
    ('exact', True)
"""

from __future__ import annotations

import dataclasses
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from collapse_jax.engine import checks, plotting
from collapse_jax.engine.progress import reporter
from collapse_jax.regression import theory

FAMILIES = ("regression", "distributions", "kernels")


@dataclasses.dataclass(frozen=True)
class Check:
    family: str
    formula: str
    config: str
    kind: str  # "exact" or "DE"
    d: float  # the dimension that sets a DE's finite-size bound (inf for exact formulas)
    seeds: tuple[int, int]  # (quick, full)
    simulate: Callable  # (seeds, key) -> (x, simulated (seeds, points), theory (points,))


def _regression(formula, spec, gen, down, n=5):
    import collapse_jax as cj

    kind = theory.formula_kind(spec, gen, down)

    def sim(seeds, key):
        ns = np.arange(n + 1)
        res = cj.simulate(spec, gen, down, n, seeds, key=key)
        return ns, res.test_error, np.asarray(theory.test_error(spec, gen, down, ns))

    config = (
        f"d={spec.d}{'' if spec.is_isotropic else ' power law'}, T0={gen.T0}, T={down.T}, "
        f"lam={down.lam}, strategy={gen.strategy}"
        + (f", real {gen.real_fraction}" if gen.real_fraction is not None else "")
        + (f", synthetic {down.synthetic_fraction}" if down.synthetic_fraction is not None else "")
    )
    return Check("regression", formula, config, kind, spec.d if kind == "DE" else np.inf, (400, 4000), sim)


def _catalogue():
    import collapse_jax as cj
    from collapse_jax.distributions import bootstrap_chain, discrete_chain, gaussian_chain, kde_chain
    from collapse_jax.distributions import theory as dt

    iso, pl = cj.Spectrum.isotropic(20), cj.Spectrum.power_law(50, 2.0, 0.5)
    catalogue = [
        _regression("OLS chain (MATH §1.2)", iso, cj.Generators(T0=60), cj.Downstream(T=60)),
        _regression(
            "ridge downstream, deterministic equivalent (§1.3)",
            pl,
            cj.Generators(T0=150),
            cj.Downstream(T=100, lam=0.05),
        ),
        _regression("min-norm generators, isotropic (§1.5)", iso, cj.Generators(T0=12), cj.Downstream(T=60)),
        _regression(
            "accumulate, fresh designs (§1.7)", iso, cj.Generators(T0=30, strategy="accumulate"), cj.Downstream(T=60)
        ),
        _regression(
            "real rows mixed into OLS generators (§1.7)",
            iso,
            cj.Generators(T0=60, real_fraction=0.3),
            cj.Downstream(T=60),
        ),
        _regression(
            "downstream real/synthetic mixture, OLS (§1.7)",
            iso,
            cj.Generators(T0=60),
            cj.Downstream(T=60, synthetic_fraction=0.5),
        ),
        _regression(
            "downstream mixture, ridge DE (§1.7)",
            pl,
            cj.Generators(T0=150),
            cj.Downstream(T=100, lam=0.05, synthetic_fraction=0.5),
        ),
    ]

    def gaussian_var(seeds, key):
        n = np.arange(0, 51, 5)
        out = gaussian_chain(key=key, M=20, generations=50, seeds=seeds)
        return n, out.var[:, n], dt.gaussian_var_mean(20, n)

    def gaussian_logdet(seeds, key):
        n = np.array([10, 100, 1000])
        out = gaussian_chain(key=key, M=10, generations=1000, seeds=seeds, d=2, estimator="unbiased")
        return n, out.log_det[:, n], dt.gaussian_logdet_drift(10, n, 2, "unbiased")

    def gaussian_accumulate(seeds, key):
        n = np.arange(1, 21)
        out = gaussian_chain(key=key, M=10, generations=20, seeds=seeds, strategy="accumulate", real_fraction=0.2)
        return n, out.var[:, n], dt.gaussian_strategy_moments(10, n, strategy="accumulate", real_fraction=0.2)[1]

    def kde_fixed(seeds, key):
        out = kde_chain(key=key, M=50, generations=20, seeds=seeds, bandwidth=0.3)
        return out.generations, out.var[:, :, 0], dt.kde_var(50, out.generations, 1.0, 0.3)

    def bootstrap_distinct(seeds, key):
        t = np.array([1, 2, 5, 10, 20, 50])
        out = bootstrap_chain(30, 50, seeds, key=key)
        return t, out.distinct[:, t], dt.distinct_mean(30, t)

    def discrete_dev(seeds, key):
        p, N, n = np.array([0.5, 0.3, 0.2]), 20, np.array([0, 2, 5, 10])
        out = discrete_chain(p, N, 10, seeds, key=key)
        dev = np.sum((out.probs[:, n] - out.probs[:, 1:2]) ** 2, -1)
        return n, dev, dt.discrete_deviation(p, N, n)

    D = "distributions"
    catalogue += [
        Check(
            D,
            "Gaussian fit-and-resample, E sigma_n^2 (§2.1)",
            "1-D, M=20, mle",
            "exact",
            np.inf,
            (2000, 20000),
            gaussian_var,
        ),
        Check(
            D,
            "Gaussian, E log det Sigma_n drift (§2.1)",
            "d=2, M=10, unbiased, 1000 gens",
            "exact",
            np.inf,
            (200, 2000),
            gaussian_logdet,
        ),
        Check(
            D,
            "Gaussian accumulate + 20% real, E sigma_n^2 (§2.1)",
            "1-D, M=10",
            "exact",
            np.inf,
            (2000, 20000),
            gaussian_accumulate,
        ),
        Check(
            D, "KDE chain, fixed bandwidth, E s_n^2 (§2.2)", "M=50, h=0.3", "exact", np.inf, (1000, 10000), kde_fixed
        ),
        Check(D, "bootstrap, E distinct values (§2.3)", "M=30", "exact", np.inf, (1000, 10000), bootstrap_distinct),
        Check(
            D,
            "discrete resampling, E ‖p_n − p_1‖² (§2.4)",
            "3 categories, N=20",
            "exact",
            np.inf,
            (2000, 20000),
            discrete_dev,
        ),
    ]

    def krr(seeds, key):
        from collapse_jax.kernels import kernel_matrix, krr_chain, synthetic_power_law
        from collapse_jax.kernels import theory as kt

        data = synthetic_power_law(1000, 50, beta=1.5, r=0.5, key=1)
        K = kernel_matrix("linear", data.X)
        pool, n = np.arange(1000), np.arange(4)
        kw = dict(T0=150, T=150, sigma0=0.3, sigma=0.3, lam=0.01, lam_gen=0.01)
        out = krr_chain(K, data.Y, pool, pool, generations=3, seeds=seeds, key=key, **kw)
        return n, out.test_error[:, 0], np.asarray(kt.test_error(kt.empirical_spectrum(K, data.Y), n, **kw))

    catalogue.append(
        Check(
            "kernels",
            "KRR chain on the empirical spectrum (§1.3 via §3)",
            "linear kernel, power-law data p=50, T0=T=150",
            "DE",
            50,
            (200, 1000),
            krr,
        )
    )
    return catalogue


def select(families: str | None = None) -> list[Check]:
    """The catalogue, or the checks of the named families (comma-separated)."""
    wanted = FAMILIES if not families else tuple(f.strip() for f in families.split(","))
    for f in wanted:
        checks.choice("family", f, FAMILIES)
    return [c for c in _catalogue() if c.family in wanted]


def run(selected: list[Check], full: bool = False, key: int = 0, progress: bool = True) -> list[dict]:
    """Simulate every check; rows with largest |z|, largest relative gap and the verdict."""
    rows = []
    for i, c in enumerate(selected):
        seeds = c.seeds[1] if full else c.seeds[0]
        t0 = time.perf_counter()
        x, sim, th = c.simulate(seeds, key + i)
        sim, th = np.asarray(sim, float), np.asarray(th, float)
        mean, sem = sim.mean(0), sim.std(0, ddof=1) / np.sqrt(seeds)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(sem > 0, (mean - th) / sem, np.where(mean == th, 0.0, np.inf))
            rel = np.where(th != 0, np.abs(mean / th - 1), np.abs(mean - th))
        zmax, relmax = float(np.max(np.abs(z))), float(np.max(rel))
        ok, sentence = theory.agreement(c.kind, zmax, relmax, c.d)
        rows.append(
            dict(
                family=c.family,
                formula=c.formula,
                config=c.config,
                kind=c.kind,
                seeds=seeds,
                max_abs_z=zmax,
                max_rel_gap=relmax,
                agrees=ok,
                verdict=sentence,
                seconds=time.perf_counter() - t0,
                x=np.asarray(x),
                mean=mean,
                sem=sem,
                theory=th,
            )
        )
        reporter(progress)(
            f"[validate] {'ok  ' if ok else 'FAIL'} {c.formula} ({seeds} seeds, {rows[-1]['seconds']:.1f}s)"
        )
    return rows


def table(rows: list[dict]) -> list[str]:
    head = (
        "| family | formula | kind | configuration | seeds | largest \\|z\\| | largest rel. gap | verdict |\n"
        "|---|---|---|---|---:|---:|---:|---|"
    )
    return [head] + [
        f"| {r['family']} | {r['formula']} | {r['kind']} | {r['config']} | {r['seeds']} | "
        f"{r['max_abs_z']:.2f} | {r['max_rel_gap']:.2%} | {'pass' if r['agrees'] else '**FAIL**'} |"
        for r in rows
    ]


def report(rows: list[dict], out: str | Path, mode: str) -> Path:
    """results/validate/report.md with the table, the criteria, and one figure per family."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines = (
        [
            f"# collapse_jax validate ({mode})",
            "",
            f"Exact formulas pass on |z| <= {theory.Z_MAX:g}; deterministic equivalents (DE) on |z| <= "
            f"{theory.Z_MAX:g} or a relative gap within their finite-size bound 2/d.",
            "",
        ]
        + table(rows)
        + [""]
    )
    for family in dict.fromkeys(r["family"] for r in rows):
        mine = [r for r in rows if r["family"] == family]
        fig, axs = plotting.panels(len(mine), sharey=False, ncols=3)  # rows of three: every panel keeps its y label
        for ax, r in zip(axs, mine, strict=True):
            ax.plot(r["x"], r["theory"], "-", color="C0", label=f"theory ({r['kind']})")
            ax.errorbar(r["x"], r["mean"], yerr=r["sem"], fmt="o", ms=3, color="C1", label="simulation")
            ax.set_title(textwrap.fill(r["formula"], 40), fontsize=8)
            ax.set_xlabel("n")
            ax.set_ylabel("test error" if family == "regression" else "mean over seeds (title)", fontsize=8)
            ax.legend(fontsize=7)
        png, pdf = plotting.save(fig, out / family)
        lines.append(f"![{family}]({png.name})")  # markdown viewers show PNG; the PDF is for print
        lines.append(f"[{family} (PDF)]({pdf.name})")
        lines.append("")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(args) -> int:
    selected = select(args.family)
    mode = "full" if args.full else "quick"
    rows = run(selected, full=args.full, progress=not args.quiet)
    for line in table(rows):
        print(line)
    path = report(rows, args.out, mode)
    failed = [r for r in rows if not r["agrees"]]
    print(f"{len(rows) - len(failed)} of {len(rows)} formulas agree with simulation ({mode}); report: {path}")
    return 1 if failed else 0
