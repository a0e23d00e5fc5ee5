"""Bad input raises a ValueError that names the argument, never a silent NaN."""

import numpy as np
import pytest

import collapse_jax as cj

ISO = cj.Spectrum.isotropic(10)


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: cj.Downstream(lam=-0.1), "lam"),
        (lambda: cj.Downstream(sigma=-1.0), "sigma"),
        (lambda: cj.Downstream(lam=float("nan")), "lam"),
        (lambda: cj.Downstream(T=0), "T"),
        (lambda: cj.Downstream(T=2.5), "T"),
        (lambda: cj.Generators(sigma0=-1.0), "sigma0"),
        (lambda: cj.Generators(sigma0=(1.0, float("nan"))), "sigma0"),
        (lambda: cj.Generators(T0=(30, 0)), "T0"),
        (lambda: cj.Generators(lam=-1.0), "lam"),
        (lambda: cj.Generators(T0=(30, 40), fixed=True), "T0"),
        (lambda: cj.Generators(T0=(30, 40), sigma0=(1.0, 1.0, 1.0)), "same length"),
        (lambda: cj.Spectrum(np.array([1.0, 0.0]), np.ones(2)), "eigenvalues"),
        (lambda: cj.Spectrum(np.array([1.0, -2.0]), np.ones(2)), "eigenvalues"),
        (lambda: cj.Spectrum(np.ones(2), np.array([1.0, np.nan])), "w0"),
        (lambda: cj.Spectrum(np.ones(2), np.ones(3)), "w0"),
        (lambda: cj.Spectrum.power_law(10, beta=-1.0, r=0.5), "beta"),
        (lambda: cj.Spectrum.isotropic(0), "d"),
    ],
)
def test_bad_config(make, name):
    with pytest.raises(ValueError, match=name):
        make()


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(generations=-1), "generations"),
        (dict(seeds=0), "seeds"),
        (dict(sampler="fast"), "sampler"),
        (dict(chunk_size=0), "chunk_size"),
    ],
)
def test_bad_simulate_arguments(kwargs, name):
    args = dict(generations=2, seeds=4, key=0) | kwargs
    with pytest.raises(ValueError, match=name):
        cj.simulate(ISO, cj.Generators(T0=30), cj.Downstream(T=30), **args)


def test_suffstats_needs_enough_samples():
    with pytest.raises(ValueError, match="suffstats"):
        cj.simulate(ISO, cj.Generators(T0=5), cj.Downstream(T=30), 2, 4, sampler="suffstats")


def test_generations_beyond_per_generation_config():
    with pytest.raises(ValueError, match="generations"):
        cj.simulate(ISO, cj.Generators(T0=(30, 40)), cj.Downstream(T=30), 3, 4)


@pytest.mark.parametrize("T0", [9, 10, 11])
def test_theory_rejects_T0_near_d(T0):
    """T0 in [d-1, d+1]: the expected error is infinite; the exact formula needs T0 >= d+2 (or <= d-2)."""
    with pytest.raises(ValueError, match="T0"):
        cj.theory.test_error(ISO, cj.Generators(T0=T0), cj.Downstream(T=30), 1)


def test_theory_rejects_interpolation_threshold_downstream():
    with pytest.raises(ValueError, match="T must be"):
        cj.theory.test_error(ISO, cj.Generators(T0=30), cj.Downstream(T=11, lam=0.0), 1)


@pytest.mark.parametrize("n", [-1, 1.5, [0, -2]])
def test_theory_rejects_bad_n(n):
    with pytest.raises(ValueError, match="n must"):
        cj.theory.test_error(ISO, cj.Generators(T0=30), cj.Downstream(T=30), n)


def test_theory_says_where_it_has_no_formula():
    pow_spec = cj.Spectrum.power_law(10, beta=1.5, r=0.5)
    with pytest.raises(cj.theory.NoFormulaError, match="T0"):
        cj.theory.test_error(pow_spec, cj.Generators(T0=5), cj.Downstream(T=30), 1)
    with pytest.raises(cj.theory.NoFormulaError, match="fixed"):
        cj.theory.test_error(ISO, cj.Generators(T0=30, lam=0.1, fixed=True), cj.Downstream(T=30), 1)
    assert issubclass(cj.theory.NoFormulaError, ValueError)


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: cj.Generators(fixed="no"), "fixed"),
        (lambda: cj.Generators(sigma0="1.0"), "sigma0"),
        (lambda: cj.Generators(sigma0={"a": 1}), "sigma0"),
        (lambda: cj.Downstream(lam=1 + 2j), "lam"),
        (lambda: cj.Downstream(sigma=True), "sigma"),
        (lambda: cj.simulate(ISO, cj.Generators(T0=30), cj.Downstream(T=30), 2, 8, seed_offset=2**32 - 4), "seed"),
        (lambda: cj.simulate(ISO, cj.Generators(T0=30), cj.Downstream(T=30), 2, 10**12), "GiB"),
        (
            lambda: cj.regularization.optimal_lambda(
                ISO, cj.Generators(T0=30), cj.Downstream(T=30), 1, bounds=(10, 1e-3)
            ),
            "bounds",
        ),
        (
            lambda: cj.regularization.optimal_lambda(ISO, cj.Generators(T0=30), cj.Downstream(T=30), 1, bounds=(0, 1)),
            "bounds",
        ),
        (
            lambda: cj.regularization.optimal_lambda(ISO, cj.Generators(T0=30), cj.Downstream(T=30), 1, T=float("nan")),
            "T",
        ),
    ],
)
def test_types_seeds_and_bounds_are_checked(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_lists_are_arrays():
    """A list or tuple is one array, in the constructors, simulation and theory alike."""
    spec = cj.Spectrum([1.0, 2.0], [1.0, 1.0])
    assert float(spec.signal) == 3.0
    res = cj.simulate(spec, cj.Generators(T0=8), cj.Downstream(T=20, lam=[0.1, 0.2, 0.3]), 2, 4)
    assert np.all(np.isfinite(res.test_error))


@pytest.mark.parametrize("name", ["../escaped", "/tmp/abs", "", ".", "a/b"])
def test_results_names_stay_in_the_output_folder(name, tmp_path):
    from collapse_jax import experiment

    cfg = {
        "name": name,
        "spectrum": {"d": 5},
        "generators": {"T0": 20},
        "downstream": {"T": 20, "lam": 0.1},
        "simulation": {"seeds": 4},
    }
    with pytest.raises(ValueError, match="name"):
        experiment.from_config(cfg)


@pytest.mark.parametrize(
    "table, key, hint",
    [
        ("simulation", "sedes", "seeds"),
        ("generators", "sigam0", "sigma0"),
        ("downstream", "lamb", "lam"),
        ("scan", "gens", None),
    ],
)
def test_unknown_toml_keys_are_refused_with_the_nearest_name(table, key, hint):
    from collapse_jax import experiment

    cfg = {
        "spectrum": {"d": 5},
        "generators": {"T0": 20},
        "downstream": {"T": 20, "lam": 0.1},
        "simulation": {"seeds": 4},
    }
    cfg.setdefault(table, {})[key] = 1
    with pytest.raises(ValueError, match=key) as err:
        experiment.from_config(cfg)
    assert hint is None or f"did you mean {hint!r}" in str(err.value)


@pytest.mark.parametrize(
    "params, name",
    [
        ({"lengthscale": 0.0}, "lengthscale"),
        ({"lengthscale": -1.0}, "lengthscale"),
        ({"lengthscal": 1.0}, "lengthscale"),
    ],
)
def test_kernel_parameters_are_checked(params, name):
    from collapse_jax.kernels import kernel_matrix

    with pytest.raises(ValueError, match=name):
        kernel_matrix("rbf", np.ones((3, 2)), **params)
    with pytest.raises(ValueError, match="degree"):
        kernel_matrix("polynomial", np.ones((3, 2)), degree=2.5)


def test_arccos_on_a_zero_row_is_finite():
    from collapse_jax.kernels import kernel_matrix

    X = np.array([[0.0, 0.0], [1.0, 2.0]])
    for order in (0, 1, 2):
        K = kernel_matrix("arccos", X, order=order)
        assert np.all(np.isfinite(K)) and np.linalg.eigvalsh(K).min() >= -1e-12


def test_labels_and_mnist_pixels(tmp_path):
    from collapse_jax.kernels import load_mnist
    from collapse_jax.kernels.data import one_hot

    for bad in ([0, -1, 2], [0, 10]):
        with pytest.raises(ValueError, match="labels"):
            one_hot(bad, 10)
    X = np.random.default_rng(0).random((5, 784))  # floats already in [0, 1]: kept, not divided by 255 again
    np.savez(tmp_path / "m.npz", x_train=X, y_train=np.arange(5))
    np.testing.assert_allclose(load_mnist(tmp_path / "m.npz").X, X)
    import gzip

    raw = gzip.compress(b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02" * 3 + bytes(16))
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="readable"):
        load_mnist(tmp_path / "train-images-idx3-ubyte.gz")


def _chains():
    """Every chain at a tiny size, called the one way: configs, then generations, seeds, then key=, seed_offset=."""
    from collapse_jax.distributions import bootstrap_chain, discrete_chain, gaussian_chain, kde_chain
    from collapse_jax.kernels import kernel_matrix, krr_chain, split, synthetic_power_law

    data = synthetic_power_law(60, 4, beta=1.5, r=0.5)
    K, (pool, test) = kernel_matrix("linear", data.X), split(data, test=20)
    spec, gen, down = cj.Spectrum.isotropic(4), cj.Generators(T0=10), cj.Downstream(T=10)
    return {
        "simulate": lambda **kw: cj.simulate(spec, gen, down, 2, 6, **kw).test_error,
        "gaussian_chain": lambda **kw: gaussian_chain(5, 2, 6, **kw).var,
        "kde_chain": lambda **kw: kde_chain(8, 2, 6, bandwidth=0.3, **kw).var,
        "bootstrap_chain": lambda **kw: bootstrap_chain(8, 2, 6, **kw).distinct,
        "discrete_chain": lambda **kw: discrete_chain([0.5, 0.5], 8, 2, 6, **kw).probs,
        "krr_chain": lambda **kw: (
            krr_chain(K, data.Y, pool, test, T0=10, T=10, generations=2, seeds=6, **kw).test_error
        ),
    }


def test_every_chain_takes_key_and_seed_offset_by_keyword():
    """Seeds 2..5 of a run equal a run of 4 seeds from seed_offset=2 (bit for bit), for every chain; the older
    call with the key first (the 6th argument of simulate) still works, with a DeprecationWarning naming the
    keyword call; a bad seed_offset is refused by name."""
    from collapse_jax.distributions import gaussian_chain

    for name, run in _chains().items():
        whole, part = run(key=3), run(key=3, seed_offset=2)
        np.testing.assert_array_equal(part[:4], whole[2:], err_msg=name)
        with pytest.raises(ValueError, match="seed_offset must be >= 0"):
            run(key=3, seed_offset=-1)
    with pytest.warns(DeprecationWarning, match=r"call gaussian_chain\(M, generations, seeds, key=...\)"):
        old = gaussian_chain(3, 5, 2, 6)
    np.testing.assert_array_equal(old.var, gaussian_chain(5, 2, 6, key=3).var)
    spec, gen, down = cj.Spectrum.isotropic(4), cj.Generators(T0=10), cj.Downstream(T=10)
    with pytest.warns(DeprecationWarning, match=r"simulate\(spec, gen, down, generations, seeds, key=...\)"):
        old = cj.simulate(spec, gen, down, 2, 6, 3)
    np.testing.assert_array_equal(old.test_error, cj.simulate(spec, gen, down, 2, 6, key=3).test_error)
