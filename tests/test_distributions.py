"""Distribution chains (theory/distributions.md) against their closed forms: |z| <= 4 at fixed keys, exact identities tightly,
and bad inputs for the error they raise."""

import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from stats import ks_2samp_pvalue

from collapse_jax.distributions import (
    Mixture,
    bootstrap_chain,
    discrete_chain,
    distances,
    gaussian_chain,
    kde_chain,
    theory,
)
from collapse_jax.distributions.gaussian import _chain_1d
from collapse_jax.engine import agreement
from collapse_jax.engine.seeds import _seed_batch

# tests/run_files.py runs these optimised, in a process of their own: they spend their time running, not compiling
EXECUTION_BOUND = pytest.mark.execution_bound


def z(samples, expected):
    """z-scores of the mean over axis 0 against `expected` (0 where a column is constant and equals it)."""
    return agreement.zscore(*agreement.mean_sem(samples), expected)


def assert_z(samples, expected, label=""):
    """The lab's rule for an exact formula (engine/agreement.py); prints what the check detects (pytest -s)."""
    v = agreement.judge("exact", np.asarray(samples, float).reshape(len(samples), -1), np.ravel(expected))
    print(f"{label}: {v.sentence}")
    assert v.verdict != "disagrees", f"{label}: z = {np.round(z(samples, expected), 2)}; {v.sentence}"


@pytest.mark.parametrize("a", [0.5, 1.0, 3.0, 49.5])
def test_fast_gamma_draws_agree_with_jax(a):
    """a = 1 rejects about 5% of first proposals, so the rounds that redraw rejected lanes are exercised."""
    import jax

    from collapse_jax.engine.rng import log_gamma

    ours = np.exp(np.asarray(log_gamma(jax.random.key(0), jnp.full(20_000, a))))
    ref = np.asarray(jax.random.gamma(jax.random.key(1), a, (20_000,)))
    assert ks_2samp_pvalue(ours, ref) > 1e-3
    assert_z(ours, a, "E Gamma(a)")
    assert_z((ours - a) ** 2, a, "Var Gamma(a)")


# --- Gaussian chain ---------------------------------------------------------------------------------------------

# The moments of sigma_n^2 are means of a multiplicative random walk: for small M and large n the seed mean is
# carried by rare paths and its standard error is itself unreliable (M = 5, n = 50 gives z = -39 with 4000
# seeds, although E sigma_n^2 is exact). The settings below keep n psi'((M-1)/2) ~ 2n/M below 1; the log-scale
# law is tested at M = 5, where it is an ordinary random walk.
GAUSSIAN_SETTINGS = [
    (100, 50, "mle"),
    (100, 50, "unbiased"),
    (20, 10, "mle"),
    (20, 10, "unbiased"),
    (tuple(10 + 5 * k for k in range(20)), 20, "mle"),
    (tuple(10 + 5 * k for k in range(20)), 20, "unbiased"),
]


@pytest.mark.parametrize("M,G,estimator", GAUSSIAN_SETTINGS)
def test_gaussian_moments_and_w2(M, G, estimator):
    out = gaussian_chain(M, G, 4000, key=3, estimator=estimator)
    ns = np.unique(np.linspace(0, G, 6).astype(int))
    assert_z(out.var[:, ns], theory.gaussian_var_mean(M, ns, estimator), "E sigma_n^2")
    assert_z(out.mean[:, ns] ** 2, theory.gaussian_mean_var(M, ns, estimator), "Var mu_n")
    assert_z(np.sqrt(out.var[:, ns]), theory.gaussian_sd_mean(M, ns, estimator), "E sigma_n")
    w2 = distances.w2sq_gaussian(0.0, 1.0, out.mean[:, ns], out.var[:, ns])
    assert_z(w2, theory.gaussian_w2(M, ns, estimator), "E W2^2")


@pytest.mark.parametrize("estimator", ["mle", "unbiased"])
def test_gaussian_log_variance_is_a_random_walk(estimator):
    ns = np.array([1, 5, 20, 50])
    out = gaussian_chain(5, 50, 4000, key=4, estimator=estimator, sigma0=2.0)
    mean, var = theory.gaussian_log_var(5, ns, estimator, sigma0=2.0)
    assert_z(out.log_var[:, ns], mean, "E log sigma_n^2")
    assert_z((out.log_var[:, ns] - mean) ** 2, var, "Var log sigma_n^2")
    # the drift is negative under both estimators: sigma_n -> 0 almost surely, even where E sigma_n^2 = 1
    assert np.all(np.diff(mean) < 0) and np.median(out.log_var[:, 50]) < np.log(4.0) - 10


def test_gaussian_chain_in_two_chunks_is_the_chain_in_one():
    """The 1-D chain's default splits 600 seeds into two chunks of 300, both in flight at once: the same arrays,
    bit for bit, as one chunk of 600 or chunks of 7 (seed i draws from fold_in(key, i) whatever the chunk)."""
    runs = [gaussian_chain(20, 30, 600, key=9, chunk_size=c) for c in (None, 600, 7)]
    for r in runs[1:]:
        np.testing.assert_array_equal(r.mean, runs[0].mean)
        np.testing.assert_array_equal(r.log_var, runs[0].log_var)
    assert runs[0].mean.flags.writeable and runs[0].log_var.flags.writeable


WIDE_VECTORS_SCRIPT = """
import jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
from collapse_jax.engine import compile_options, use_fused_threefry
from collapse_jax.engine.compilation_cache import Stored
from collapse_jax.distributions import gaussian_chain
use_fused_threefry()

def chains():
    runs = [
        gaussian_chain(100, 200, 600, key=3),  # two chunks of 300 in flight
        gaussian_chain(2, 60, 40, key=4, estimator="unbiased", mu0=1.5, sigma0=0.3),
        gaussian_chain((5, 9, 30), 3, 50, key=5),
    ]
    with jax.enable_x64(False):
        runs.append(gaussian_chain(20, 40, 64, key=6))
    return [np.concatenate([r.mean.ravel(), r.log_var.ravel()]) for r in runs]

A = jax.random.normal(jax.random.key(1), (100, 300))
x = jax.random.normal(jax.random.key(2), (300,))
matvec = lambda: [np.asarray(Stored(lambda A, x: A @ x, wide_vectors=w)(A, x)) for w in (True, False)]
wide, moved = chains(), matvec()
compile_options.WIDE_VECTORS = {}  # the same programs at XLA's own vector width
narrow, kept = chains(), matvec()
print([bool(np.array_equal(a, b)) for a, b in zip(wide, narrow)], np.array_equal(*moved), np.array_equal(*kept))
"""


def test_the_1d_gaussian_chain_asks_for_wide_vectors_and_keeps_its_bits():
    """The 1-D chain's program is computed lane by lane (draws and a running sum), so it is compiled with
    512-bit vectors (engine/compile_options.py): in a process with XLA's defaults, four chains (two chunks in
    flight; M = 2 unbiased; M per generation; float32) give the same arrays bit for bit at XLA's own width.
    Negative control: the option reaches XLA through `Stored`: a matrix-vector product's last bits move with it,
    and stop moving once WIDE_VECTORS is emptied."""
    steps = ((5.0,) * 3, (5.0,) * 3)
    assert _seed_batch(_chain_1d(0.0, 1.0, steps, 5, "suffstats")).wide_vectors
    assert not _seed_batch(_chain_1d(0.0, 1.0, steps, 5, "direct")).wide_vectors  # sums over M points
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run(
        [sys.executable, "-c", WIDE_VECTORS_SCRIPT], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["[True,", "True,", "True,", "True]", "False", "True"], done.stdout


def test_run_chunks_reads_a_chunk_back_after_dispatching_the_next():
    """Two chunks in flight where asked (`ahead`, as `map_seeds` does): chunk i + 1 is dispatched before chunk i
    is read back; one at a time otherwise. The padded last chunk is cut to the seeds asked for."""
    from collapse_jax.engine.seeds import run_chunks

    events = []

    class Result:  # stands for a jax array whose computation is still running: reading its values waits
        def __init__(self, ids):
            self.ids = np.asarray(ids)
            self.shape, self.dtype = self.ids.shape, np.dtype(float)

        def __array__(self, dtype=None, copy=None):
            events.append(("read", int(self.ids[0])))
            return self.ids.astype(float)

    def call(ids):
        events.append(("dispatch", int(np.asarray(ids)[0])))
        return Result(ids)

    out = run_chunks(call, seeds=10, chunk=4)  # one at a time (the regression chain's way)
    np.testing.assert_array_equal(out, np.arange(10.0))
    assert [e[0] for e in events] == ["dispatch", "read"] * 3
    events.clear()
    out = run_chunks(call, seeds=10, chunk=4, ahead=True)
    np.testing.assert_array_equal(out, np.arange(10.0))
    assert events == [
        ("dispatch", 0),
        ("dispatch", 4),
        ("read", 0),
        ("dispatch", 8),
        ("read", 4),
        ("read", 8),
    ]


def test_gaussian_closed_forms_by_hand():
    M, n = 100, np.array([0, 1, 7])
    a = (M - 1) / M
    np.testing.assert_allclose(theory.gaussian_var_mean(M, n), a**n, rtol=1e-13)
    np.testing.assert_allclose(theory.gaussian_mean_var(M, n), 1 - a**n, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(theory.gaussian_mean_var(M, n, "unbiased"), n / M, rtol=1e-13)
    c = theory.chi_mean(M - 1)
    np.testing.assert_allclose(theory.gaussian_w2(M, n), 2 * (1 - (c * np.sqrt(a)) ** n), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(theory.gaussian_w2(M, n, "unbiased"), n / M + 2 * (1 - c**n), rtol=1e-12, atol=1e-15)
    # c_k -> 1 - 1/(4k): the first-order W2 of (3/2) sum 1/M_k
    np.testing.assert_allclose(
        theory.gaussian_w2(10_000, 3, "unbiased"), theory.gaussian_w2_first_order(10_000, 3), rtol=1e-3
    )


@pytest.mark.parametrize(
    "M,estimator,cov0",
    [
        (30, "mle", np.array([[2.0, 0.6, 0.0], [0.6, 1.0, -0.3], [0.0, -0.3, 0.5]])),
        (12, "unbiased", np.array([[1.0, -0.4], [-0.4, 0.5]])),
    ],
)
def test_gaussian_covariance_chain(M, estimator, cov0):
    d, ns = len(cov0), np.array([1, 4, 10])
    out = gaussian_chain(M, 10, 4000, key=5, d=d, sigma0=cov0, mu0=np.linspace(-1, 1, d), estimator=estimator)
    factor = theory.gaussian_cov_mean(M, ns, d, estimator)
    assert_z(out.var[:, ns].reshape(4000, 3, d * d), factor[:, None] * cov0.ravel(), "E Sigma_n")
    logdet = np.linalg.slogdet(out.var[:, ns])[1] - np.linalg.slogdet(cov0)[1]
    assert_z(logdet, theory.gaussian_logdet_drift(M, ns, d, estimator), "E log det Sigma_n")


@pytest.mark.parametrize("M,d", [(5, 1), ((4, 9, 30), 1), (6, 2)])
def test_sufficient_statistics_agree_with_drawing_every_point(M, d):
    G = 3
    suff = gaussian_chain(M, G, 3000, key=6, d=d)
    direct = gaussian_chain(M, G, 3000, key=7, d=d, sampler="direct")
    for n in (1, G):
        for pick in ((lambda o, n=n: o.var[:, n]), (lambda o, n=n: o.mean[:, n])):
            a, b = pick(suff), pick(direct)
            a, b = a.reshape(3000, -1), b.reshape(3000, -1)
            for j in range(a.shape[1]):
                assert ks_2samp_pvalue(a[:, j], b[:, j]) > 1e-3


# --- KDE chains -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("M,h,init", [(200, 0.3, None), (50, 1.0, Mixture.gaussian_uniform())])
def test_kde_variance_recursion_fixed_bandwidth(M, h, init):
    init = init or Mixture.gaussian()
    out = kde_chain(M, 20, 2000, key=8, bandwidth=h, init=init, measure=(1, 5, 20))
    var0 = init.var()[0]
    assert_z(out.var[:, :, 0], theory.kde_var(M, out.generations, var0, h), "E s_n^2")
    pooled = out.var[:, :, 0] + (out.mean[:, :, 0] - init.mean()[0]) ** 2
    assert_z(pooled, theory.kde_pooled_var(M, out.generations, var0, h), "pooled variance")


@pytest.mark.parametrize(
    "rule,init",
    [("scott", Mixture.gaussian()), ("silverman", Mixture.gaussian_uniform()), ("scott", Mixture.gaussian(d=2))],
)
def test_kde_variance_grows_geometrically_with_a_rule(rule, init):
    M, d = 100, init.d
    out = kde_chain(M, 15, 2000, key=9, bandwidth=rule, init=init, measure=(1, 5, 15))
    var0 = init.var()[0]
    for j in range(d):
        assert_z(out.var[:, :, j], theory.kde_var(M, out.generations, var0, rule, d), f"E s_n^2 ({rule}, d={d})")
    pooled = out.var[:, :, 0] + (out.mean[:, :, 0] - init.mean()[0]) ** 2
    assert_z(pooled, theory.kde_pooled_var(M, out.generations, var0, rule, d), "pooled variance")


def test_kde_chain_keeps_samples_and_does_not_depend_on_measure():
    full = kde_chain(64, 12, 8, key=10, bandwidth=0.2, keep=(0, 12))
    sparse = kde_chain(64, 12, 8, key=10, bandwidth=0.2, keep=(0, 12), measure=(3, 12))
    np.testing.assert_array_equal(sparse.generations, [0, 3, 12])
    np.testing.assert_array_equal(full.var[:, [0, 3, 12]], sparse.var)
    np.testing.assert_array_equal(full.samples, sparse.samples)
    np.testing.assert_allclose(full.samples[:, 1].var(1), full.var[:, 12], rtol=1e-12)
    assert full.w2sq[:, 0].max() < full.w2sq[:, 12].mean()  # the reference floor at n = 0 is below the drift


# --- Bootstrap (Wright-Fisher) -----------------------------------------------------------------------------------


@pytest.mark.parametrize("M", [30, 100])
def test_bootstrap_distinct_values_and_collisions(M):
    out = bootstrap_chain(M, 40, 3000, key=11)
    t = np.array([1, 2, 5, 10, 40])
    assert_z(out.distinct[:, t], theory.distinct_mean(M, t), "E distinct")
    assert_z(out.collision[:, t], theory.collision_mean(M, t), "E collision")
    np.testing.assert_allclose(theory.distinct_mean(M, 1), M * (1 - (1 - 1 / M) ** M), rtol=1e-12)


@EXECUTION_BOUND
def test_bootstrap_repeated_start_fixation_probability_and_time():
    M = 40
    initial = np.concatenate([np.zeros(M // 2, int), np.arange(1, M // 2 + 1)])  # value 0 holds half the points
    out = bootstrap_chain(M, 1500, 3000, key=12, initial=initial)
    counts = np.bincount(initial, minlength=M)
    t = np.array([1, 5, 30])
    assert_z(out.distinct[:, t], theory.distinct_mean(M, t, counts[counts > 0]), "E distinct, repeated start")
    assert_z(out.collision[:, t], theory.collision_mean(M, t, np.sum((counts / M) ** 2)), "E collision")
    assert np.all(out.fixation_time > 0)
    assert_z((out.winner == 0).astype(float), 0.5, "P(value 0 takes over)")


@EXECUTION_BOUND
@pytest.mark.parametrize("M", [20, 30])
def test_bootstrap_fixation_time_against_the_coalescent(M):
    """The coalescent fixation time is an approximation: judged as one, within its stated bound 2/M plus the
    statistical band, and the check can fail (the theory scaled by 1 -+ 2 detects is refused)."""
    from collapse_jax.engine import agreement

    out = bootstrap_chain(M, 1500, 3000, key=13)
    assert np.all(out.fixation_time > 0)
    mean, sd = theory.fixation_time(M)
    gap = theory.fixation_time_gap(M)
    v = agreement.judge("approximation", out.fixation_time[:, None].astype(float), mean, gap=gap)
    assert v.agrees, v.sentence
    m, s = agreement.mean_sem(out.fixation_time.astype(float))
    for sign in (-1, 1):
        assert agreement.excess_z(m, s, mean * (1 + sign * 2 * v.detects), gap) > agreement.Z_MAX
    assert abs(out.fixation_time.std() / sd - 1) < 0.1  # sd ~ 1.08 M is itself an approximation


# --- Discrete distributions ---------------------------------------------------------------------------------------


@EXECUTION_BOUND
@pytest.mark.parametrize(
    "p,N,synthetic", [([0.4, 0.3, 0.2, 0.1], 50, 100), ([0.4, 0.3, 0.2, 0.1], 50, None), (np.full(10, 0.1), 200, 50)]
)
def test_discrete_deviation_recursion(p, N, synthetic):
    out = discrete_chain(p, N, 30, 4000, key=14, synthetic=synthetic)
    m = np.array([0, 2, 5, 30])
    dev = np.sum((out.probs[:, m] - out.probs[:, 1:2]) ** 2, -1)
    assert_z(dev, theory.discrete_deviation(p, N, m, synthetic), "E ||p^(m) - p^(1)||^2")
    np.testing.assert_allclose(out.tv, 0.5 * np.abs(out.probs - np.asarray(p)).sum(-1), atol=1e-12)


def test_discrete_collapse_without_real_data_and_the_limit_with_it():
    p = [0.4, 0.3, 0.2, 0.1]
    alone = discrete_chain(p, 20, 300, 500, key=15)
    mixed = discrete_chain(p, 20, 300, 500, key=15, synthetic=20)
    assert np.all(alone.support[:, -1] == 1)  # one category left in every chain
    assert np.all(mixed.support[:, -1] == mixed.support[:, 1])  # real data keep every category seen
    np.testing.assert_allclose(
        theory.discrete_deviation(p, 20, 300, 20), theory.discrete_deviation_limit(p, 20, 20), rtol=1e-12
    )


# --- Distances ------------------------------------------------------------------------------------------------------


def test_gaussian_distances_exact_identities():
    m1, m2 = np.array([0.5, -1.0]), np.array([0.0, 2.0])
    v1, v2 = np.array([1.0, 4.0]), np.array([2.0, 0.5])
    w2_1d = sum(float(distances.w2sq_gaussian(m1[i], v1[i], m2[i], v2[i])) for i in range(2))
    kl_1d = sum(float(distances.kl_gaussian(m1[i], v1[i], m2[i], v2[i])) for i in range(2))
    np.testing.assert_allclose(distances.w2sq_gaussian(m1, np.diag(v1), m2, np.diag(v2)), w2_1d, rtol=1e-12)
    np.testing.assert_allclose(distances.kl_gaussian(m1, np.diag(v1), m2, np.diag(v2)), kl_1d, rtol=1e-12)
    # rotation invariance of both, and zero at equality
    R = np.array([[np.cos(0.7), -np.sin(0.7)], [np.sin(0.7), np.cos(0.7)]])
    S1, S2 = R @ np.diag(v1) @ R.T, R @ np.diag(v2) @ R.T
    np.testing.assert_allclose(distances.w2sq_gaussian(R @ m1, S1, R @ m2, S2), w2_1d, rtol=1e-10)
    np.testing.assert_allclose(distances.kl_gaussian(R @ m1, S1, R @ m2, S2), kl_1d, rtol=1e-10)
    assert abs(float(distances.kl_gaussian(m1, S1, m1, S1))) < 1e-12


def test_sample_w2_is_the_quantile_integral():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=7), rng.normal(1.0, 2.0, size=11)
    u = (np.arange(7 * 11) + 0.5) / (7 * 11)  # both quantile functions are constant on these cells
    brute = np.mean((np.sort(x)[(u * 7).astype(int)] - np.sort(y)[(u * 11).astype(int)]) ** 2)
    np.testing.assert_allclose(distances.w2sq_samples(jnp.asarray(x), jnp.asarray(y)), brute, rtol=1e-12)
    np.testing.assert_allclose(distances.w2sq_samples(jnp.asarray(y), jnp.asarray(x)), brute, rtol=1e-12)


def test_nearest_neighbour_kl_estimates_the_gaussian_kl():
    rng = np.random.default_rng(1)
    reps = np.array(
        [
            float(
                distances.kl_samples(jnp.asarray(rng.normal(size=2000)), jnp.asarray(rng.normal(1.0, 1.5, size=2000)))
            )
            for _ in range(200)
        ]
    )
    assert_z(reps, float(distances.kl_gaussian(0.0, 1.0, 1.0, 2.25)), "kNN KL")


def test_discrete_distances():
    p, q = jnp.array([0.5, 0.5, 0.0]), jnp.array([0.25, 0.25, 0.5])
    assert float(distances.tv(p, q)) == 0.5
    np.testing.assert_allclose(distances.kl_discrete(p, q), np.log(2), rtol=1e-14)
    assert np.isinf(distances.kl_discrete(q, p))


# --- Bad inputs ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: gaussian_chain(1, 5, 10, key=0), "M must be >= 2"),
        (lambda: gaussian_chain((5, 6), 5, 10, key=0), "one per generation"),
        (lambda: gaussian_chain(3, 5, 10, key=0, d=3), "M must be >= d \\+ 1"),
        (lambda: gaussian_chain(10, 5, 10, key=0, estimator="ddof"), "estimator"),
        (lambda: gaussian_chain(10, 5, 10, key=0, sigma0=-1.0), "sigma0"),
        (lambda: kde_chain(1, 5, 10, key=0), "M must be >= 2"),
        (lambda: kde_chain(10, 5, 10, key=0, bandwidth=-0.1), "bandwidth must be > 0"),
        (lambda: kde_chain(10, 5, 10, key=0, bandwidth="wide"), "bandwidth must be one of"),
        (lambda: kde_chain(10, 5, 10, key=0, keep=(6,)), "keep and measure"),
        (
            lambda: kde_chain(10**6, 3000, 1, key=0, strategy="accumulate"),
            r"M \* \(generations \+ 1\) must be < 2\*\*31",
        ),
        (lambda: Mixture((0.5, 0.6), ("gaussian", "uniform"), ((0.0,), (1.0,)), (1.0, 1.0)), "sum to 1"),
        (lambda: discrete_chain([0.5, 0.6], 10, 5, 10, key=0), "sum to 1"),
        (lambda: discrete_chain([1.2, -0.2], 10, 5, 10, key=0), "non-negative"),
        (lambda: bootstrap_chain(5, 5, 10, key=0, initial=[0, 1, 2, 3, 9]), "labels in 0..4"),
        (lambda: theory.gaussian_w2(10, -1), "n must be >= 0"),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --- Experiments ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["shumailov_gaussian", "gaussian_w2", "kde_borji", "bootstrap", "discrete_mixing"])
def test_distribution_experiments_run_and_save(name, tmp_path):
    import tomllib
    from pathlib import Path

    from collapse_jax import experiment
    from collapse_jax.engine import io

    cfg = tomllib.loads((Path(__file__).parents[1] / "experiments" / f"{name}.toml").read_text())
    cfg["chain"]["generations"] = 60  # the full runs are in experiments/README.md; here: that they work
    cfg["chain"].pop("keep", None)
    if "bandwidths" in cfg["chain"]:
        cfg["chain"]["bandwidths"] = cfg["chain"]["bandwidths"][-2:]
    # shumailov_gaussian checks means of squared deviations, (sigma_n - 1)^2 and mu_n^2: chi-square(1)-like, whose
    # t-statistic is left-skewed (measured for chi-square(1) data: P(t < -4) = 8e-4 at 200 seeds, 1e-4 at 1000,
    # 3e-5 for a normal). At 200 seeds |z| passed 4 for 2 of 9 keys (-4.09 at n = 2, -5.96 at n = 23, M = 100)
    # while 40 000 seeds put the formula within |z| 1.1; 1000 seeds make |z| <= 4 the test it means to be.
    cfg["simulation"]["seeds"] = 1000 if name == "shumailov_gaussian" else 200
    summary = experiment.run(experiment.from_config(cfg, name), tmp_path, progress=False)
    assert summary.max_abs_z <= 4 and summary.formula == "exact"
    # a smoke run at 200 seeds may be too weak to conclude (gaussian_w2: detects ~26%): then it says so, never agrees
    assert summary.agrees or summary.verdict.endswith(f"inconclusive (detects only {summary.band:.1%})"), summary
    arrays, meta = io.load(tmp_path / name)
    assert meta["config"]["kind"] == cfg["kind"] and (tmp_path / f"{name}.png").stat().st_size > 10_000
    assert all(np.all(np.isfinite(a)) for a in arrays.values() if a.dtype.kind == "f")
    for k, axes in meta["axes"].items():  # every array's generations axis matches the saved n (kde_borji's did not)
        for axis, size in zip(axes, arrays[k].shape, strict=True):
            if axis in arrays and axis != k:
                assert size == arrays[axis].size, (k, axis)


def test_integer_key_sort_is_exact():
    x = jnp.asarray(
        np.concatenate([np.random.default_rng(2).normal(size=999) * 1e3, [0.0, -0.0, 1e-310, -1e-310, np.inf, -np.inf]])
    )
    np.testing.assert_array_equal(np.asarray(distances.sort(x)), np.sort(np.asarray(x)))
    np.testing.assert_array_equal(np.asarray(distances.sort(x.astype(jnp.float32))), np.sort(np.asarray(x, np.float32)))


@pytest.mark.parametrize("sampler", ["suffstats", "direct"])
def test_d_dimensional_chain_stays_finite_for_thousands_of_generations(sampler):
    """The covariance collapses (scale below 1e-300, condition number past 1e16 within a few hundred
    generations at M = 10); the chain carries a scaled Cholesky factor and stays finite and exact: log det
    Sigma_n against its exact drift, |z| <= 4 (seen: 1.5 at most)."""
    out = gaussian_chain(key=0, M=10, generations=5000, seeds=64, d=2, estimator="unbiased", sampler=sampler)
    assert all(np.all(np.isfinite(a)) for a in (out.mean, out.var, out.log_det))
    ns = np.array([100, 1000, 5000])
    ld, th = out.log_det[:, ns], theory.gaussian_logdet_drift(10, ns, 2, "unbiased")
    assert_z(ld, th, "log det Sigma_n")
