"""Distribution chains (MATH §2; Shumailov et al. 2024, Borji 2024): fit a model to M samples, draw M new
points from the fit, refit, repeat; with their closed forms (`theory`) and distances (`distances`).

Example:
    >>> from collapse_jax.distributions import gaussian_chain, theory
    >>> out = gaussian_chain(0, M=50, generations=20, seeds=2000, estimator="unbiased")
    >>> sim, th = out.var[:, 20].mean(), theory.gaussian_var_mean(50, 20, "unbiased")
    >>> bool(abs(sim - th) < 4 * out.var[:, 20].std() / 2000**0.5)
    True
"""

from collapse_jax.distributions import distances, theory
from collapse_jax.distributions.bootstrap import BootstrapChain, bootstrap_chain
from collapse_jax.distributions.discrete import DiscreteChain, discrete_chain
from collapse_jax.distributions.gaussian import GaussianChain, gaussian_chain
from collapse_jax.distributions.kde import KDEChain, Mixture, kde_chain

__all__ = [
    "BootstrapChain",
    "DiscreteChain",
    "GaussianChain",
    "KDEChain",
    "Mixture",
    "bootstrap_chain",
    "discrete_chain",
    "distances",
    "gaussian_chain",
    "kde_chain",
    "theory",
]
