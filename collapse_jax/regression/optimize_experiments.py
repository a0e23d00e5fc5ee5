"""Experiments that optimise a schedule through the theory (`collapse_jax.regression.optimize`) and check it in
simulation.

Kinds, each with [spectrum], [generators], [downstream], [scan] and [simulation] (seeds, key):

* "joint_regularisation": ridge generators and the downstream lambda tuned together, against the downstream
  lambda alone and the naive lambda (best for clean data), error against n (scan.n); and the optimal lam_k.
* "schedule_fit": the best (c, ell) of lambda = c T^-ell over scan.T_range for each n in scan.n, against
  lambda = T^-ell_crit; simulated at scan.T_sim.
* "real_data_budget": the least real fraction keeping the error at generation n within (1 + eps) of the clean
  error, constant and spread over the generations (scan.n, scan.eps); simulated at the optimum.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from collapse_jax.engine import agreement, checks, plotting, protocol
from collapse_jax.engine.agreement import mean_sem, zscore
from collapse_jax.engine.header import Header, read_header
from collapse_jax.engine.protocol import ExperimentOutput, Summary, subkey
from collapse_jax.regression import optimize, regularization, theory
from collapse_jax.regression.experiments import PROBLEM, problem
from collapse_jax.regression.problem import Downstream, Generators
from collapse_jax.regression.simulate import simulate
from collapse_jax.regression.spectra import Spectrum

SCAN = {
    "joint_regularisation": {"n"},
    "schedule_fit": {"n", "T_range", "T_sim", "points"},
    "real_data_budget": {"n", "eps"},
}


@dataclasses.dataclass(frozen=True)
class OptimizeExperiment(Header):
    spec: Spectrum
    gen: Generators
    down: Downstream
    scan: dict

    @property
    def chain(self) -> dict:
        return dict(d=self.spec.d, T0=self.gen.T0, T=self.down.T)


def read_problem(cfg: dict, default_name: str, scan_keys: dict) -> dict:
    """The header, problem and [scan] table (its keys checked against scan_keys[kind]) of an experiment whose
    config is a problem plus a scan: the fields of `OptimizeExperiment`."""
    head = read_header(cfg, default_name, PROBLEM | {"scan"}, seeds=400)
    scan = dict(cfg.get("scan", {}))
    checks.sections(scan, scan_keys[cfg["kind"]], "[scan]")
    spec, gen, down = problem(cfg)
    return dict(head, spec=spec, gen=gen, down=down, scan=scan)


def from_config(cfg: dict, default_name: str) -> OptimizeExperiment:
    return OptimizeExperiment(**read_problem(cfg, default_name, SCAN))


register = protocol.family("regression", from_config)


@register("joint_regularisation")
def _joint(exp, progress):
    """Generators' and downstream lambdas tuned together against the downstream alone and the naive lambda (DE)."""
    ns = [checks.size("scan.n", int(v), lo=1) for v in exp.scan.get("n", [1, 2, 4, 8])]
    naive_lam = float(regularization.optimal_lambda(exp.spec, exp.gen, exp.down, 0))
    names = ("naive λ", "downstream λ tuned", "joint (generators + downstream)")
    th, sim, lams = np.zeros((3, len(ns))), np.zeros((3, len(ns), exp.seeds)), {}
    for j, n in enumerate(ns):
        lam_gen = np.broadcast_to(np.asarray(exp.gen.per_generation(n)[2]), (n,))
        down_only = optimize.joint_lambdas(exp.spec, exp.gen, exp.down, n, tune_generators=False)
        joint = optimize.joint_lambdas(exp.spec, exp.gen, exp.down, n)
        lams[n] = joint.params["gen.lam"]
        configs = [
            (lam_gen, naive_lam),
            (lam_gen, float(down_only.params["down.lam"])),
            (joint.params["gen.lam"], float(joint.params["down.lam"])),
        ]
        for i, (lg, ld) in enumerate(configs):
            gen = dataclasses.replace(exp.gen, lam=tuple(np.asarray(lg, float)), T0=exp.gen.T0, sigma0=exp.gen.sigma0)
            down = dataclasses.replace(exp.down, lam=ld)
            th[i, j] = float(theory.test_error(exp.spec, gen, down, n))
            sim[i, j] = simulate(exp.spec, gen, down, n, exp.seeds, key=subkey(exp.key, j)).test_error[:, n]
    mean, sem = mean_sem(sim, axis=2)
    z, rel = zscore(mean, sem, th), mean / th - 1
    gain_th, gain_sim = 1 - th[2] / th[1], 1 - mean[2] / mean[1]
    # the three rules share each seed's random numbers, so the gain is measured seed by seed (paired)
    gain_z = np.array([mean_sem(sim[1, j] - sim[2, j])[0] / mean_sem(sim[1, j] - sim[2, j])[1] for j in range(len(ns))])
    rows = [
        f"{'n':>3} {'naive':>9} {'down only':>10} {'joint':>9} {'gain theory':>12} {'gain sim':>9} "
        f"{'gain/s.e. (paired)':>19} {'max |z|':>8} {'max |rel|':>9}  (DE)"
    ]
    rows += [
        f"{n:>3} {th[0, j]:>9.4g} {th[1, j]:>10.4g} {th[2, j]:>9.4g} {gain_th[j]:>12.1%} {gain_sim[j]:>9.1%} "
        f"{gain_z[j]:>19.1f} {np.abs(z[:, j]).max():>8.2f} {np.abs(rel[:, j]).max():>9.1%}"
        for j, n in enumerate(ns)
    ]
    fig, axs = plotting.panels(2, sharey=False)
    plotting.theory_vs_simulation(
        np.asarray(ns),
        th,
        np.asarray(ns),
        mean,
        sem,
        list(names),
        xlabel="generation n",
        ylabel="test error at n",
        title="tuned at each n",
        logx=False,
        logy=False,
        legend_title="regularisation",
        ax=axs[0],
    )
    for n, colour in zip(ns, plotting.ordered_colours(len(ns)), strict=True):
        axs[1].plot(np.arange(1, n + 1), lams[n], "o-", ms=4, color=colour, label=f"n = {n}")
    axs[1].set(
        yscale="log",
        xlabel="generation k",
        ylabel=r"optimal generator $\lambda_k$",
        title="jointly optimal generator λ",
    )
    axs[1].legend(fontsize=8)
    fig.suptitle(exp.description or "Joint regularisation of generators and downstream")
    summary = Summary(
        "DE",
        max_abs_z=float(np.abs(z).max()),
        max_rel_gap=float(np.abs(rel).max()),
        d=exp.spec.d,
        band=agreement.band(mean, sem),
        details=dict(
            gain_theory=gain_th.tolist(),
            gain_simulation=gain_sim.tolist(),
            gain_z=gain_z.tolist(),
            optimal_generator_lambdas={str(n): lams[n].tolist() for n in ns},
        ),
    )
    arrays = dict(n=np.asarray(ns), theory_test_error=th, test_error=sim)
    axes = dict(n=["n"], theory_test_error=["rule", "n"], test_error=["rule", "n", "seed"])
    return ExperimentOutput(arrays, axes, rows, summary, fig)


@register("schedule_fit")
def _schedule(exp, progress):
    """The best power-law schedule lambda = c T^-ell against ell_crit, simulated at the optimum (DE)."""
    ns = [int(v) for v in exp.scan.get("n", [0, 1, 5])]
    T_range = tuple(float(v) for v in exp.scan.get("T_range", [50, 1000]))
    T_sim = np.asarray([checks.size("scan.T_sim", int(v)) for v in exp.scan.get("T_sim", [50, 200, 800])])
    beta, r = exp.config["spectrum"].get("beta"), exp.config["spectrum"].get("r")
    if beta is None:
        raise ValueError("schedule_fit needs a power-law [spectrum] (beta, r), to compare ell with ell_crit")
    ell_crit = float(theory.ell_crit(beta, r))
    fine = np.geomspace(T_range[0], T_range[1], 30).round().astype(int)
    rows = [
        f"ell_crit = {ell_crit:.3f}",
        f"{'n':>3} {'c*':>8} {'ell*':>7} {'mean log err*':>14} "
        f"{'at ell_crit':>12} {'gain theory':>12} {'gain sim':>9} {'max |z|':>8} {'max |rel|':>9}  (DE)",
    ]
    lines, marks = [], []
    details: dict[str, Any] = dict(ell_crit=ell_crit, fits=[])
    sims = np.zeros((len(ns), 2, len(T_sim), exp.seeds))
    for j, n in enumerate(ns):
        fit = optimize.schedule(exp.spec, exp.gen, exp.down, [n], T_range, points=int(exp.scan.get("points", 12)))
        c, ell = float(fit.params["c"]), float(fit.params["ell"])
        rules = [(c, ell), (1.0, ell_crit)]
        th = np.array(
            [
                [
                    float(
                        theory.test_error(
                            exp.spec, exp.gen, dataclasses.replace(exp.down, T=int(T), lam=cc * T**-ll), n
                        )
                    )
                    for T in fine
                ]
                for cc, ll in rules
            ]
        )
        th_sim = np.array(
            [
                [
                    float(
                        theory.test_error(
                            exp.spec, exp.gen, dataclasses.replace(exp.down, T=int(T), lam=cc * T**-ll), n
                        )
                    )
                    for T in T_sim
                ]
                for cc, ll in rules
            ]
        )
        for i, (cc, ll) in enumerate(rules):
            for k, T in enumerate(T_sim):
                down = dataclasses.replace(exp.down, T=int(T), lam=cc * T**-ll)
                sims[j, i, k] = simulate(exp.spec, exp.gen, down, max(n, 1), exp.seeds, key=exp.key).test_error[:, n]
        mean, sem = mean_sem(sims[j], axis=2)
        z, rel = zscore(mean, sem, th_sim), mean / th_sim - 1
        gain_th = 1 - np.exp(np.mean(np.log(th[0])) - np.mean(np.log(th[1])))
        gain_sim = 1 - np.exp(np.mean(np.log(mean[0])) - np.mean(np.log(mean[1])))
        rows.append(
            f"{n:>3} {c:>8.3g} {ell:>7.3f} {fit.value:>14.4f} {np.mean(np.log(th[1])):>12.4f} "
            f"{gain_th:>12.1%} {gain_sim:>9.1%} {np.abs(z).max():>8.2f} {np.abs(rel).max():>9.1%}"
        )
        details["fits"].append(
            dict(
                n=n,
                c=c,
                ell=ell,
                gain_theory=float(gain_th),
                gain_simulation=float(gain_sim),
                max_abs_z=float(np.abs(z).max()),
                max_abs_rel_error=float(np.abs(rel).max()),
                band=agreement.band(mean, sem),
            )
        )
        lines.append(th)
        marks.append((mean, sem))
    fig, axs = plotting.panels(len(ns), sharey=False)
    for j, (n, ax) in enumerate(zip(ns, axs, strict=True)):
        f = details["fits"][j]
        plotting.theory_vs_simulation(
            fine,
            lines[j],
            T_sim,
            *marks[j],
            [f"best: {f['c']:.2g} T^-{f['ell']:.2f}", f"T^-ℓcrit (ℓcrit = {ell_crit:.2f})"],
            xlabel="downstream sample size T",
            ylabel="test error",
            title=f"n = {n}",
            legend_title="λ schedule",
            ax=ax,
        )
    fig.suptitle(exp.description or "Best power-law λ schedule against ℓcrit")
    summary = Summary(
        "DE",
        max_abs_z=max(f["max_abs_z"] for f in details["fits"]),
        max_rel_gap=max(f["max_abs_rel_error"] for f in details["fits"]),
        d=exp.spec.d,
        band=min(f["band"] for f in details["fits"]),
        details=details,
    )
    arrays = dict(n=np.asarray(ns), T=T_sim, test_error=sims)
    axes = dict(n=["n"], T=["T"], test_error=["n", "rule", "T", "seed"])
    return ExperimentOutput(arrays, axes, rows, summary, fig)


@register("real_data_budget")
def _budget(exp, progress):
    """The least real fraction keeping the error within (1 + eps) of the clean error, simulated there (exact)."""
    ns = [checks.size("scan.n", int(v), lo=1) for v in exp.scan.get("n", [1, 2, 5, 10])]
    eps = [float(v) for v in exp.scan.get("eps", [0.1, 0.3])]
    clean = float(theory.test_error(exp.spec, exp.gen, exp.down, 0))
    least = np.zeros((len(eps), 2, len(ns)))  # (eps, constant/spread, n)
    sim = np.zeros((len(eps), 2, len(ns), exp.seeds))
    th = np.zeros((len(eps), 2, len(ns)))
    rows = [
        f"clean error {clean:.4g}; the error at n must stay below (1 + eps) x clean (exact theory, OLS)",
        f"{'eps':>5} {'n':>3} {'least pi (constant)':>20} {'(spread)':>9} {'sim/clean const':>16} "
        f"{'sim/clean spread':>17} {'|z| const':>10} {'|z| spread':>11}  (|z| against the exact theory at the optimum)",
    ]
    zs, misses = [], []
    for a, e in enumerate(eps):
        for j, n in enumerate(ns):
            for b, spread in enumerate((False, True)):
                pi = optimize.least_real_schedule(exp.spec, exp.gen, exp.down, n, e, spread=spread)
                least[a, b, j] = np.mean(pi)  # rounded rows: exactly what the chain below realises
                gen = dataclasses.replace(
                    exp.gen,
                    T0=(exp.gen.T0,) * n if isinstance(exp.gen.T0, int) else exp.gen.T0,
                    real_fraction=tuple(pi.tolist()),
                )
                sim[a, b, j] = simulate(exp.spec, gen, exp.down, n, exp.seeds, key=subkey(exp.key, j)).test_error[:, n]
                th[a, b, j] = float(theory.test_error(exp.spec, gen, exp.down, n))  # exact, rows rounded as simulated
            mean, sem = mean_sem(sim[a, :, j], axis=1)
            z = zscore(mean, sem, th[a, :, j])
            zs += list(np.abs(z))
            # the optimum is judged against its target, not only against theory: the theory at the rounded
            # schedule must meet (1 + eps) x clean, and the simulation must not exceed it by more than Z_MAX sem
            target = (1 + e) * clean
            z_target = zscore(mean, sem, target)
            met = bool(np.all(th[a, :, j] <= target * (1 + 1e-12)) and np.all(z_target <= agreement.Z_MAX))
            misses += [] if met else [(e, n)]
            rows.append(
                f"{e:>5} {n:>3} {least[a, 0, j]:>20.4f} {least[a, 1, j]:>9.4f} {mean[0] / clean:>16.3f} "
                f"{mean[1] / clean:>17.3f} {abs(z[0]):>10.2f} {abs(z[1]):>11.2f}  target {'met' if met else 'MISSED'}"
            )
    fig, axs = plotting.panels(2, sharey=False)
    for a, e in enumerate(eps):
        (line,) = axs[0].plot(ns, least[a, 0], "o-", label=f"ε = {e}: constant π")
        axs[0].plot(ns, least[a, 1], "s--", color=line.get_color(), mfc="white", label=f"ε = {e}: spread")
        mean, sem = mean_sem(sim[a], axis=2)
        for b, fmt in ((0, "o"), (1, "s")):
            axs[1].errorbar(ns, mean[b] / clean, yerr=sem[b] / clean, fmt=fmt, color=line.get_color(), mfc="white")
        axs[1].axhline(1 + e, color=line.get_color(), lw=1)
    axs[0].set(xlabel="generation n", ylabel="least mean real fraction", title="real data needed")
    axs[0].legend(fontsize=8)
    axs[1].set(
        xlabel="generation n", ylabel="simulated error / clean error", title="simulation at the optimum (line: 1 + ε)"
    )
    fig.suptitle(exp.description or "The least real data that keeps the error near the clean error")
    summary = Summary(
        "exact",
        max_abs_z=float(max(zs)),
        band=agreement.band(*mean_sem(sim.reshape(-1, sim.shape[-1]), axis=1)),
        details=dict(
            clean=clean,
            least_constant=least[:, 0].tolist(),
            least_spread=least[:, 1].tolist(),
            target_met=not misses,
            target_missed=misses,
        ),
    )
    arrays = dict(
        n=np.asarray(ns), eps=np.asarray(eps), least_real_fraction=least, test_error=sim, theory_test_error=th
    )
    axes = dict(
        n=["n"],
        eps=["eps"],
        least_real_fraction=["eps", "layout", "n"],
        test_error=["eps", "layout", "n", "seed"],
        theory_test_error=["eps", "layout", "n"],
    )
    return ExperimentOutput(arrays, axes, rows, summary, fig)
