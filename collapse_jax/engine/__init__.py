"""The engine every family stands on: what a chain family needs besides its own model and theory.

* `seeds`: one key per seed (fold_in(root, i)), vmapped batches, host-side chunks, sharding over devices;
* `checks`: the validation rules of every public door (`@checked`, TOML tables);
* `rng`: exact samplers JAX lacks or makes slow under vmap (chi-square, subsets, uniform indices);
* `wishart`: Bartlett factors of Wishart draws (regression designs, d-dimensional Gaussian scatters);
* `progress`: the one place progress lines are printed (stderr, silenced by progress=False);
* `strategies`: the data strategies, declared once (each family maps them to its steps and theory in one table);
* `fields`: a config's grid axes and static fields, read off its dataclass metadata;
* `calls`: the one calling convention of every chain, and the deprecation of older calls;
* `threefry`: JAX's own random bits, lowered on CPU as one fused loop (same bits, 5x faster), opt-in:
  `use_fused_threefry()` (the CLI, the tests and the benchmarks call it; importing the package does not);
* `lapack_threads`: one OpenBLAS thread for the factorisations inside XLA's own threads, opt-in the same way:
  `use_one_lapack_thread()`;
* `io`: results as .npz with a JSON sidecar of axes, coordinates and configuration;
* `plotting`: one style (theory as lines, simulation as markers with error bars) and figure output.

A family (`collapse_jax.regression`, `collapse_jax.kernels`, `collapse_jax.distributions`) adds a config, a
one-seed chain returning named metrics, the theory returning the same names, and its experiment kinds; the
package's top level (`experiment`, `validate`, `cli`) runs, sweeps, validates and plots every family the same way.
"""

from collapse_jax.engine.lapack_threads import use_one_lapack_thread
from collapse_jax.engine.threefry import use_fused_threefry

__all__ = ["use_fused_threefry", "use_one_lapack_thread"]
