"""The regression family's entries in `collapse-jax validate`'s catalogue: each closed form of the chain's test
error (exact or DE) against `simulate` at one configuration.

To add a formula: append one `_entry(...)` to `entries()`, with cv from `validate.calibrate`.
"""

from __future__ import annotations

import numpy as np

from collapse_jax.engine import agreement
from collapse_jax.engine.catalogue import Check
from collapse_jax.regression import theory
from collapse_jax.regression.problem import Downstream as D
from collapse_jax.regression.problem import Generators as G
from collapse_jax.regression.simulate import simulate
from collapse_jax.regression.spectra import Spectrum

STRATEGIES = "theory/strategies.md"


def _entry(formula, note, spec, gen, down, cv, n=5):
    kind = theory.formula_kind(spec, gen, down)

    def sim(seeds, key):
        ns = np.arange(n + 1)
        res = simulate(spec, gen, down, n, seeds, key=key)
        return ns, res.test_error, theory.compiled_metrics(spec, gen, down, ns).test_error  # one program

    config = (
        f"d={spec.d}{'' if spec.is_isotropic else ' power law'}, T0={gen.T0}, T={down.T}, "
        f"lam={down.lam}, strategy={gen.strategy}"
        + (f", real {gen.real_fraction}" if gen.real_fraction is not None else "")
        + (f", synthetic {down.synthetic_fraction}" if down.synthetic_fraction is not None else "")
    )
    gap = agreement.de_gap(spec.d) if kind == "DE" else 0.0
    return Check("regression", formula, note, config, kind, gap, cv, sim)


def entries() -> list[Check]:
    """The family's checks, in the catalogue's order (a check's key is its position in the run).

    Example:
        >>> [c.formula for c in entries()][:2]
        ['OLS chain', 'ridge downstream']
    """
    iso, pl = Spectrum.isotropic(20), Spectrum.power_law(50, 2.0, 0.5)
    return [
        _entry("OLS chain", 'theory/moments.md "OLS generators"', iso, G(T0=60), D(T=60), 0.336),
        _entry(
            "ridge downstream",
            'theory/ridge.md "Composition with any generators"',
            pl,
            G(T0=150),
            D(T=100, lam=0.05),
            0.509,
        ),
        _entry("min-norm generators, isotropic", "theory/overparam.md", iso, G(T0=12), D(T=60), 0.395),
        _entry(
            "accumulate, fresh designs",
            f'{STRATEGIES} "Accumulate, fresh designs"',
            iso,
            G(T0=30, strategy="accumulate"),
            D(T=60),
            0.395,
        ),
        _entry(
            "real rows mixed into OLS generators",
            f'{STRATEGIES} "Real rows mixed in"',
            iso,
            G(T0=60, real_fraction=0.3),
            D(T=60),
            0.345,
        ),
        _entry(
            "downstream real/synthetic mixture, OLS",
            f'{STRATEGIES} "The downstream on a mixture"',
            iso,
            G(T0=60),
            D(T=60, synthetic_fraction=0.5),
            0.387,
        ),
        _entry(
            "downstream mixture, ridge",
            f'{STRATEGIES} "The downstream on a mixture"',
            pl,
            G(T0=150),
            D(T=100, lam=0.05, synthetic_fraction=0.5),
            0.531,
        ),
        _entry(
            "weighted real/synthetic OLS generators and downstream",
            "theory/weighted.md",
            pl,
            G(T0=150, real_fraction=0.5, real_weight=0.618),
            D(T=100, synthetic_fraction=0.5, real_weight=0.7),
            0.280,
        ),
        _entry(
            "width-m model on random projections, DE",
            "theory/projection.md",
            pl,
            G(T0=150),
            D(T=100, lam=0.05, width=30, synthetic_fraction=0.5),
            0.456,
        ),
        _entry(
            "min-norm generators, power law, DE",
            "theory/overparam.md",
            pl,
            G(T0=10, sigma0=0.3),
            D(T=100),
            0.283,
        ),
    ]
