"""The CLI's persistent compilation cache (engine/compilation_cache.py) and its timings (engine/timing.py).

The suite itself runs with the cache off (conftest.py); these tests turn it on in a folder of their own.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collapse_jax.engine import compilation_cache, compile_options, io

ROOT = Path(__file__).resolve().parents[1]
TINY = ["spectrum.d=12", "generators.T0=40", "downstream.T=30", "--seeds", "40", "--quiet"]


def _run(tmp_path, cache, label):
    env = dict(os.environ, COLLAPSE_JAX_CACHE=str(cache), COLLAPSE_JAX_TIMINGS=str(tmp_path / f"{label}.json"))
    env.pop("XLA_FLAGS", None)  # a user's process: XLA's default compile (the conftest's quick flags aside)
    out = tmp_path / label
    cmd = [
        sys.executable,
        "-m",
        "collapse_jax",
        "run",
        str(ROOT / "experiments/default.toml"),
        *TINY,
        "--out",
        str(out),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return done, json.loads((tmp_path / f"{label}.json").read_text()), io.load(out / "default")[0]


def test_a_second_run_loads_every_program_and_gives_the_same_numbers(tmp_path, monkeypatch):
    """Run 1 compiles and stores its programs; run 2 (a fresh process) loads all of them and compiles none, with
    the same arrays bit for bit, and neither prints XLA's false alarm about tuning options (module docstring)."""
    cache = tmp_path / "cache"
    first, t1, a1 = _run(tmp_path, cache, "first")
    second, t2, a2 = _run(tmp_path, cache, "second")
    assert t1["programs"] >= 3 and t1["cache_hits"] == 0
    assert t2["programs"] == t1["programs"] and t2["cache_hits"] == t2["programs"]
    assert t2["seconds"]["compile"] < t1["seconds"]["compile"]
    assert "ahead" not in t1["seconds"] and t2["seconds"]["ahead"] > 0  # run 2 loaded run 1's stored programs ahead
    monkeypatch.delenv("XLA_FLAGS")  # as in the runs: their folder is the one this machine gets without flags
    assert [p.name for p in cache.iterdir()] == [compilation_cache.folder(cache).name]
    for k in a1:
        np.testing.assert_array_equal(a1[k], a2[k])
    assert "cpu_aot_loader" not in first.stderr + second.stderr


def test_the_cache_folder_is_keyed_by_the_machine_and_xla_flags(tmp_path, monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    plain = compilation_cache.folder(tmp_path)
    assert plain.parent == tmp_path and plain.name == f"xla-{compilation_cache.machine_key()}"
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_max_isa=AVX2")
    assert compilation_cache.folder(tmp_path) != plain  # programs compiled for another ISA live apart
    monkeypatch.setenv("COLLAPSE_JAX_CACHE", "off")
    assert compilation_cache.folder() is None and compilation_cache.enable() is None
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("COLLAPSE_JAX_CACHE", str(tmp_path / "file"))
    with pytest.raises(ValueError, match=r"COLLAPSE_JAX_CACHE .* is a file"):
        compilation_cache.folder()


def test_a_second_run_that_loads_stored_programs_gives_the_same_numbers_even_after_they_are_deleted(
    tmp_path, monkeypatch
):
    """The chain's programs are kept by `Stored` in the folder's programs/: run 2 loads them without tracing. With
    them deleted, run 3 finds the programs in JAX's own cache, builds them afresh anyway (the bypass: a program
    JAX loaded serializes into a blob that fails when run) and run 4 loads those. Every run, the same arrays."""
    cache = tmp_path / "cache"
    _, t1, a1 = _run(tmp_path, cache, "first")
    monkeypatch.delenv("XLA_FLAGS")  # as in the runs: their folder is the one this machine gets without flags
    programs = compilation_cache.folder(cache) / "programs"
    stored = sorted(programs.rglob("*.program"))
    assert len(stored) >= 1
    _, t2, a2 = _run(tmp_path, cache, "second")
    built, loaded = "jit(_lambda_batch)", "collapse_jax.regression.simulate._lambda_batch"  # JAX's name; Stored's
    assert built in t1["top"] and loaded not in t1["top"]
    assert built not in t2["top"] and t2["top"][loaded] == 1  # loaded: not traced, lowered or compiled
    for p in stored:
        p.unlink()
    _, t3, a3 = _run(tmp_path, cache, "third")
    assert built in t3["top"]  # built again
    assert sorted(programs.rglob("*.program")) == stored
    _, t4, a4 = _run(tmp_path, cache, "fourth")
    assert t4["programs"] == t1["programs"] == t4["cache_hits"]
    for k in a1:
        for other in (a2, a3, a4):
            np.testing.assert_array_equal(a1[k], other[k])


def test_a_program_that_jax_loaded_from_its_cache_does_not_survive_serialization(tmp_path):
    """The negative control of the bypass: without it, the stored program of a JAX cache hit fails when run. If a
    new jaxlib makes this pass, `_BypassableCache` can go."""
    script = f"""
import pickle, sys, jax, jax.numpy as jnp
from jax.experimental.serialize_executable import serialize, deserialize_and_load
jax.config.update("jax_compilation_cache_dir", {str(tmp_path / "jax")!r})
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
f = jax.jit(lambda x: (jnp.arange(16.0).reshape(4, 4) + jnp.sin(x)) @ x.T)
x = jnp.ones((4, 4))
blob = {str(tmp_path / "blob")!r}
if sys.argv[1] == "store":
    open(blob, "wb").write(pickle.dumps(serialize(f.trace(x).lower().compile())))
else:
    print(round(float(deserialize_and_load(*pickle.loads(open(blob, "rb").read()))(x).sum()), 2))
"""
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    run = lambda step: subprocess.run(
        [sys.executable, "-c", script, step], capture_output=True, text=True, env=env, timeout=120
    )
    assert run("store").returncode == 0  # compiled: JAX writes its cache, and the blob is sound
    assert run("load").stdout.strip() == "533.85"
    assert run("store").returncode == 0  # now a hit in JAX's cache
    broken = run("load")
    assert broken.returncode != 0 and "not found" in broken.stderr


def _counting_traces(traces: list):
    """fn(x, power) for Stored that appends `power` to `traces` each time JAX traces it: a program taken from a
    file (or from the loading thread) leaves `traces` as it was."""

    def fn(x, power):
        traces.append(power)
        return jnp.cumsum(jnp.sin(x) ** power)

    return fn


def test_stored_loads_what_it_built_and_rebuilds_what_does_not_load(tmp_path, monkeypatch):
    """In one process: a second Stored of the same name loads the program (fn is not traced again: its body
    counts the traces), with the same numbers; a file cut short is compiled again, with a warning that names it."""
    monkeypatch.setattr(compilation_cache, "_programs", tmp_path)
    traces = []
    fn = _counting_traces(traces)
    x = jnp.linspace(0.0, 3.0, 7)
    first = compilation_cache.Stored(fn, ("power",), name="test.fn")(x, power=3)
    again = compilation_cache.Stored(fn, ("power",), name="test.fn")
    np.testing.assert_array_equal(again(x, power=3), first)
    assert traces == [3]
    [path] = tmp_path.glob("*.program")
    path.write_bytes(path.read_bytes()[:100])
    jax.clear_caches()  # or the rebuild would take JAX's in-memory trace of fn, and not count
    with pytest.warns(UserWarning, match=r"compiling again: the stored program .*\.program did not load"):
        np.testing.assert_array_equal(compilation_cache.Stored(fn, ("power",), name="test.fn")(x, power=3), first)
    assert traces == [3, 3] and path.stat().st_size > 100  # rebuilt, and the file replaced
    assert not list(tmp_path.glob("*.part"))
    monkeypatch.setattr(compilation_cache, "_programs", None)  # no folder: the plain jit, nothing written
    compilation_cache.Stored(fn, ("power",), name="test.other")(x, power=2)
    assert len(list(tmp_path.iterdir())) == 1


def test_a_program_compiled_for_latency_is_another_program_with_the_same_numbers(tmp_path, monkeypatch):
    """Inside `compile_options.for_latency()` a Stored function is compiled with FOR_LATENCY: another key and another
    stored program, the same numbers; a second Stored of the name loads it in the block. The options reach XLA
    (an option XLA does not know is refused, by name, where options that were dropped would pass), and the block
    closes on an error."""
    monkeypatch.setattr(compilation_cache, "_programs", tmp_path)
    fn, x = _counting_traces([]), jnp.linspace(0.0, 3.0, 7)
    stored = compilation_cache.Stored(fn, ("power",), name="test.latency")
    plain, key = stored(x, power=2), compilation_cache.program_key("test.latency", (x,), {"power": 2})
    assert compile_options.current() == {}
    with compile_options.for_latency():
        assert compile_options.current() == compile_options.FOR_LATENCY
        assert compilation_cache.program_key("test.latency", (x,), {"power": 2}) != key
        np.testing.assert_array_equal(stored(x, power=2), plain)
        traces: list = []
        again = compilation_cache.Stored(_counting_traces(traces), ("power",), name="test.latency")
        np.testing.assert_array_equal(again(x, power=2), plain)
        assert traces == []  # loaded from its file, not traced
    assert len(list(tmp_path.glob("*.program"))) == 2 and len(stored.jits) == 2
    assert compile_options.current() == {}
    monkeypatch.setattr(compile_options, "FOR_LATENCY", {"xla_no_such_option": True})
    with pytest.raises(Exception, match="xla_no_such_option"), compile_options.for_latency():
        stored(x, power=3)
    assert compile_options.current() == {}


def test_a_stored_function_called_under_a_transformation_is_part_of_the_outer_program(tmp_path, monkeypatch):
    """Tracers have no key (a compiled program cannot take them): under jax.vmap a Stored function is traced into
    the outer program and stores nothing. `optimal_lambda` (a Stored search) gives the same lambdas built and
    loaded from its file (bit for bit) and vmapped over T (the outer program's own rounding: to 1e-12)."""
    from collapse_jax.regression import Downstream, Generators, Spectrum, regularization

    monkeypatch.setattr(compilation_cache, "_programs", tmp_path)
    traces = []
    stored = compilation_cache.Stored(_counting_traces(traces), ("power",), name="test.vmapped")
    xs = jnp.linspace(0.0, 1.0, 6).reshape(2, 3)
    keys = []

    def inner(x):
        keys.append(compilation_cache.program_key("f", (x,), {}))
        return stored(x, power=2)

    np.testing.assert_allclose(jax.vmap(inner)(xs), jnp.cumsum(jnp.sin(xs) ** 2, -1), rtol=1e-6)
    assert keys == [None] and traces == [2] and not list(tmp_path.iterdir())
    spec, gen, down = Spectrum.isotropic(20), Generators(T0=60), Downstream(T=60, lam=0.1)
    T = np.array([100.0, 300.0])
    with jax.enable_x64(True):
        built = regularization.optimal_lambda(spec, gen, down, n=1, T=T)
        [program] = tmp_path.glob("*.program")
        regularization._argmin.loaded.clear()  # the next call loads the file
        loaded = regularization.optimal_lambda(spec, gen, down, n=1, T=T)
        vmapped = jax.vmap(lambda t: regularization.optimal_lambda(spec, gen, down, n=1, T=t))(T)
    np.testing.assert_array_equal(loaded, built)
    np.testing.assert_allclose(vmapped, built, rtol=1e-12)
    assert list(tmp_path.glob("*.program")) == [program]


def test_the_key_of_a_stored_program_names_what_its_lowering_depends_on():
    key = compilation_cache.program_key
    x = jnp.ones(3, jnp.float32)
    base = key("f", (x,), {"n": 1})
    assert key("f", (x + 1,), {"n": 1}) == base  # values are data
    assert key("g", (x,), {"n": 1}) != base  # another function, or a closure with another recipe
    assert key("f", (x,), {"n": 2}) != base  # a static argument
    assert key("f", (jnp.ones(4, jnp.float32),), {"n": 1}) != base  # a shape
    assert key("f", (x.astype(jnp.int32),), {"n": 1}) != base  # a dtype
    assert key("f", ((x,),), {"n": 1}) != base  # the arguments' structure
    with jax.enable_x64(not jax.config.jax_enable_x64):
        assert key("f", (x,), {"n": 1}) != base  # the precision: float64 programs differ
    with jax.numpy_rank_promotion("warn" if jax.config.jax_numpy_rank_promotion != "warn" else "allow"):
        assert key("f", (x,), {"n": 1}) != base  # JAX's tracing configuration


def test_a_chain_built_by_a_cached_builder_is_named_by_its_recipe():
    """builder_cache names one_seed by its builder and arguments where their repr says everything (so its
    program can be stored), and not where it may differ between processes (a set's order, an object's address)."""
    from collapse_jax.engine import seeds

    @seeds.builder_cache(4)
    def build(n, scale):
        return lambda key: jnp.full(n, scale)

    assert build(3, (0.5, "a", None)).recipe.endswith("build(3, (0.5, 'a', None))")
    assert not hasattr(build(3, frozenset({"a", "b"})), "recipe")  # its order differs between processes
    assert not hasattr(build(3, object()), "recipe")
    assert isinstance(seeds._seed_batch(build(3, 1.0)), compilation_cache.Stored)


def test_a_closure_is_stored_under_a_digest_of_the_values_it_closes_over(tmp_path, monkeypatch):
    """The theory's programs hold their configuration as constants: two configurations that differ in one value,
    one bit, or a dtype get two programs; one that cannot be digested (a callable, a tracer) gets the plain jit."""
    monkeypatch.setattr(compilation_cache, "_programs", tmp_path)
    a = np.linspace(0.0, 1.0, 5)
    name = lambda values: compilation_cache.stored_closure("t", lambda: 0, values).name
    assert name((a, 2)) == name((a.copy(), 2))
    nudged = a.copy()
    nudged[3] = np.nextafter(nudged[3], 2.0)
    names = {name((a, 2)), name((nudged, 2)), name((a.astype(np.float32), 2)), name((a, 3)), name((a, 2.0))}
    assert len(names) == 5
    assert not isinstance(compilation_cache.stored_closure("t", lambda: 0, (a, np.sin)), compilation_cache.Stored)
    inside = jax.jit(lambda x: compilation_cache.stored_closure("t", lambda: x * 2, x)())
    np.testing.assert_array_equal(inside(jnp.arange(3.0)), [0.0, 2.0, 4.0])  # a tracer: jitted inside, not stored
    assert not list(tmp_path.iterdir())


def test_a_remembered_value_is_read_back_instead_of_computed(tmp_path, monkeypatch):
    """`remembered` calls fn once per label and inputs by value, then reads the file (fn is not called again);
    inputs that are not data call fn every time and write nothing; a damaged file is computed and written again;
    with no folder nothing is written."""
    monkeypatch.setattr(compilation_cache, "_programs", tmp_path)
    calls = []
    remember = lambda label, value, inputs: compilation_cache.remembered(
        label, lambda: calls.append(value) or value, inputs
    )
    a = np.arange(3.0)
    assert remember("t", "x", (a, 2)) == "x"
    assert remember("t", "y", (a.copy(), 2)) == "x" and calls == ["x"]  # equal inputs: read back, fn not called
    assert remember("t", "z", (a, 3)) == "z" and remember("u", "w", (a, 2)) == "w"  # other inputs, other label
    assert len(list(tmp_path.glob("*.value"))) == 3
    assert remember("t", "s", (a, np.sin)) == "s" and remember("t", "s", (a, np.sin)) == "s"  # not data
    assert calls == ["x", "z", "w", "s", "s"] and len(list(tmp_path.glob("*.value"))) == 3
    for path in tmp_path.glob("*.value"):
        path.write_text('"cut')
    assert remember("t", "x2", (a, 2)) == "x2" and remember("t", "x3", (a, 2)) == "x2"  # damaged: computed again
    assert not list(tmp_path.glob("*.part"))
    assert remember("t", {1}, (a, 4)) == {1} and not list(tmp_path.glob("*.part"))  # not JSON: returned, not kept
    monkeypatch.setattr(compilation_cache, "_programs", None)
    assert remember("t", "v", (a, 2)) == "v" and remember("t", "v2", (a, 2)) == "v2"  # no folder: fn every time
    with pytest.raises(ValueError, match="fn must be a function"):
        compilation_cache.remembered("t", "exact", (a, 2))
    with pytest.raises(ValueError, match="label must be a string"):
        compilation_cache.remembered(3, lambda: "exact", (a, 2))
    with pytest.raises(ValueError, match="valid must be a function"):
        compilation_cache.remembered("t", lambda: "exact", (a, 2), valid=True)


def test_formula_kind_is_traced_once_per_configuration_with_a_folder(tmp_path, monkeypatch):
    """With a folder (the CLI), the kinds that formula_kind finds by tracing the formulas are read back by later
    calls and later processes; the negative control shows the file is what is read: edited, it is returned."""
    import collapse_jax as cj
    from collapse_jax.regression import theory

    monkeypatch.setattr(compilation_cache, "_programs", tmp_path)
    traced = []
    original = theory._formula_kind
    monkeypatch.setattr(theory, "_formula_kind", lambda *config: traced.append(config) or original(*config))
    spec, gen = cj.Spectrum.isotropic(10), cj.Generators(T0=40)
    kinds = [theory.formula_kind(spec, gen, cj.Downstream(T=40, lam=lam)) for lam in (0.0, 0.1, 0.0, 0.1)]
    assert kinds == ["exact", "DE", "exact", "DE"] and len(traced) == 2
    assert theory.formula_kind(spec, gen, cj.Downstream(T=40, lam=lambda T, n: 0.1)) == "DE"  # a callable: traced
    assert len(traced) == 3 and len(list(tmp_path.glob("*.value"))) == 2
    for path in tmp_path.glob("*.value"):
        path.write_text('"none"')
    assert theory.formula_kind(spec, gen, cj.Downstream(T=40, lam=0.1)) == "none" and len(traced) == 3
    for path in tmp_path.glob("*.value"):
        path.write_text('"maybe"')  # not a kind: traced again, and written again
    assert theory.formula_kind(spec, gen, cj.Downstream(T=40, lam=0.1)) == "DE" and len(traced) == 4
    assert theory.formula_kind(spec, gen, cj.Downstream(T=40, lam=0.1)) == "DE" and len(traced) == 4


def test_stored_takes_its_static_arguments_by_keyword_and_nothing_else():
    double = compilation_cache.Stored(lambda x, times: x * times, static_argnames=("times",), name="test.double")
    with pytest.raises(ValueError, match=r"test.double: pass exactly \['times'\] by keyword, got \['times', 'x'\]"):
        double(times=2, x=jnp.ones(2))
    with pytest.raises(ValueError, match=r"pass exactly \['times'\] by keyword, got \[\]"):
        double(jnp.ones(2), 2)


def test_an_argument_named_by_its_address_is_not_stored(tmp_path, monkeypatch):
    """A Partial's function is part of the argument structure, and its repr names an address that no other process
    shares: such a program runs as the plain jit and writes nothing."""
    monkeypatch.setattr(compilation_cache, "_programs", tmp_path)
    apply = compilation_cache.Stored(lambda f, x: f(x), name="test.apply")
    partial = jax.tree_util.Partial(lambda x, y: x * y, 3.0)
    assert compilation_cache.program_key("test.apply", (partial, jnp.ones(2)), {}) is None
    np.testing.assert_array_equal(apply(partial, jnp.ones(2)), [3.0, 3.0])
    assert not list(tmp_path.iterdir())


def test_stored_keeps_only_its_newest_programs_in_memory(tmp_path, monkeypatch):
    """A sweep over many static sizes must not hold every program it ever loaded: the newest `keep` stay."""
    monkeypatch.setattr(compilation_cache, "_programs", tmp_path)
    monkeypatch.setattr(compilation_cache.Stored, "keep", 2)
    total = compilation_cache.Stored(jnp.sum, name="test.sum")
    assert [float(total(jnp.ones(n))) for n in (1, 2, 3, 4)] == [1.0, 2.0, 3.0, 4.0]
    assert len(total.loaded) == 2 and len(list(tmp_path.glob("*.program"))) == 4


def test_stored_refuses_what_it_cannot_compile_by_name():
    with pytest.raises(ValueError, match="fn must be a function to compile, got array"):
        compilation_cache.Stored(np.ones(2))
    with pytest.raises(ValueError, match="static_argnames must be a tuple of argument names, got 'times'"):
        compilation_cache.Stored(jnp.sum, static_argnames="times")
    with pytest.raises(ValueError, match="name must be a string or None, got 3"):
        compilation_cache.Stored(jnp.sum, name=3)
    with pytest.raises(ValueError, match=r"fn must be a function to compile, got 1\.5"):
        compilation_cache.stored_closure("t", 1.5, ())
    with pytest.raises(ValueError, match="label must be a string, got None"):
        compilation_cache.stored_closure(None, jnp.sum, ())


def test_programs_used_by_a_command_are_loaded_ahead_by_its_next_run(tmp_path, monkeypatch):
    """`loading_ahead` writes down the keys a command used, in order; the next run of the same command loads them
    in a background thread and Stored takes them from there (not traced: the body counts traces), with the same
    numbers. Another command loads nothing ahead; a key whose program is gone is skipped; a key the run did not use
    is dropped at the end, and the list is rewritten with what this run used."""
    monkeypatch.setattr(compilation_cache, "_programs", tmp_path)
    traces = []
    fn = _counting_traces(traces)
    x = jnp.linspace(0.0, 2.0, 5)
    with compilation_cache.loading_ahead("cmd"):
        first = [compilation_cache.Stored(fn, ("power",), name="test.ahead")(x, power=p) for p in (1, 2)]
    keys = [compilation_cache.program_key("test.ahead", (x,), {"power": p}) for p in (1, 2)]
    [manifest] = (tmp_path / "runs").glob("*.keys")
    assert manifest.read_text().split() == keys
    jax.clear_caches()
    with compilation_cache.loading_ahead("cmd"):
        assert set(compilation_cache._ahead.pending) == set(keys)
        compilation_cache._ahead.pending[keys[1]].result()  # loaded in the background
        stored = tmp_path / f"{keys[1]}.program"
        stored.rename(tmp_path / "aside")  # so that the call can take it from the background thread only
        again = compilation_cache.Stored(fn, ("power",), name="test.ahead")
        np.testing.assert_array_equal(again(x, power=2), first[1])
        assert set(compilation_cache._ahead.pending) == {keys[0]}
        (tmp_path / "aside").rename(stored)
    assert traces == [1, 2] and compilation_cache._ahead.pending == {}
    assert manifest.read_text().split() == [keys[1]]  # what the second run used
    with compilation_cache.loading_ahead("another command"):
        assert compilation_cache._ahead.pending == {}
    (tmp_path / f"{keys[1]}.program").unlink()
    with compilation_cache.loading_ahead("cmd"):
        assert compilation_cache._ahead.pending == {}  # its program is gone: nothing to load
    assert not list(tmp_path.rglob("*.part"))
    with pytest.raises(ValueError, match="command must be a string, got 3"):
        with compilation_cache.loading_ahead(3):
            pass
    with compilation_cache.loading_ahead("cmd"):
        with pytest.raises(ValueError, match="loading_ahead: a block is already open"):
            with compilation_cache.loading_ahead("cmd"):
                pass


def test_a_program_that_does_not_load_ahead_is_built_again_with_one_warning(tmp_path, monkeypatch):
    """A stored file cut short fails in the background thread: the call builds the program again (and rewrites
    the file) without trying the file a second time, so the warning that names it comes once."""
    monkeypatch.setattr(compilation_cache, "_programs", tmp_path)
    fn, x = (lambda x: jnp.sin(x) * 2), jnp.arange(3.0)
    with compilation_cache.loading_ahead("cmd"):
        first = compilation_cache.Stored(fn, name="test.cut")(x)
    [path] = tmp_path.glob("*.program")
    path.write_bytes(path.read_bytes()[:100])
    # warnings raised in the loading thread reach pytest.warns: Python 3.11-3.13 keep one warnings state per process
    with pytest.warns(UserWarning, match=r"compiling again: the stored program .*\.program did not load") as seen:
        with compilation_cache.loading_ahead("cmd"):
            [future] = compilation_cache._ahead.pending.values()
            assert future.result() is None  # it failed in the background
            np.testing.assert_array_equal(compilation_cache.Stored(fn, name="test.cut")(x), first)
    assert sum("did not load" in str(w.message) for w in seen) == 1
    assert path.stat().st_size > 100


def test_a_damaged_list_loads_nothing_ahead_and_a_failed_run_keeps_the_last_list(tmp_path, monkeypatch):
    """The list of keys is the cache's own file: bytes that are not text, or lines that are not keys (a path out of
    the folder), cost the run its loading ahead and nothing else. A run that fails inside the block leaves the list
    of the last run that finished, not its own shorter one."""
    monkeypatch.setattr(compilation_cache, "_programs", tmp_path)
    x = jnp.arange(3.0)
    with compilation_cache.loading_ahead("cmd"):
        compilation_cache.Stored(jnp.cumsum, name="test.listed")(x)
    [manifest] = (tmp_path / "runs").glob("*.keys")
    listed = manifest.read_text()
    (tmp_path / "outside.program").write_bytes(b"")
    path_line = f"../{tmp_path.name}/outside\n".encode()  # names outside.program, an existing file, by a path
    for damaged in (b"\xff\xfe\x00", path_line + listed.encode()):
        manifest.write_bytes(damaged)
        with compilation_cache.loading_ahead("cmd"):
            assert list(compilation_cache._ahead.pending) == listed.split()[: damaged.startswith(b"..")]
    manifest.write_text(listed)
    with pytest.raises(RuntimeError, match="stopped"):
        with compilation_cache.loading_ahead("cmd"):
            compilation_cache.Stored(jnp.sum, name="test.other")(x)
            raise RuntimeError("stopped")
    assert manifest.read_text() == listed
    with compilation_cache.loading_ahead("cmd"):  # the block closed: a new one opens
        pass


def test_the_timings_keep_a_stored_programs_name_short():
    """A stored chain is named by its builder's arguments: the 1-D Gaussian chain's spell out every generation
    (15,000 characters at 1,000 generations), which made time_to_result.json 70 kB for four commands."""
    from collapse_jax.engine import timing

    times = timing.record()
    long = "collapse_jax.distributions.gaussian._chain_1d(0.0, 1.0, ((" + "100.0, " * 1000 + "),), 100, 'suffstats')"
    before = times.names[timing.shortened(long)]
    jax.monitoring.record_event_duration_secs(compilation_cache.LOADED, 0.01, fun_name=long)
    assert times.names[timing.shortened(long)] == before + 1 and long not in times.names
    assert len(timing.shortened(long)) == timing.NAME_MAX and timing.shortened(long).endswith("...")
    assert timing.shortened("jit(add)") == "jit(add)"  # short names stay as they are
