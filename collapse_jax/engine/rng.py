"""Random variates the chains need often, drawn exactly and fast on CPU.

`jax.random.gamma` rejects per element inside its own loop; on a 2-core CPU that costs about 20 times a
normal draw. Here Marsaglia and Tsang's rejection step runs on the whole batch at once, and only the rare
rejected lanes are redrawn, a small pool of them at a time: one full proposal plus a little, and still exact.
`uniform_index` replaces `jax.random.randint`, whose three integer remainders per draw cost more than the
random bits themselves.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

WHOLE = 64  # arrays up to this size are redrawn as one pool (`log_gamma`)


def _known_at_least_one(a) -> bool:
    """True when `a` is a concrete array (not traced) whose entries are all >= 1: a branch can then be skipped."""
    try:
        return bool(np.all(np.asarray(a) >= 1))
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return False


def log_gamma(key, a):
    """log of Gamma(a, 1) draws, one per element of `a` (a > 0), exact (Marsaglia-Tsang 2000).

    Shapes below 1 use Gamma(a) = Gamma(a + 1) U^(1/a); on the log scale small shapes never underflow.
    Every lane gets one proposal; the rejected ones (about 0.06% at a = 50, 5% at a = 1) are then gathered into a
    pool of n/64 + 16 lanes and redrawn there, so a rejection costs a few pool-sized draws, not a full redraw.
    A proposal returns log v with NaN for a rejection (one fused loop, where a separate accept flag made XLA
    compute the normal three times), and the first pool pass runs outside any loop (a loop over passes, batched
    by the engine's vmap over seeds, copied the whole array each pass): 2,000 x 1,000 draws at a = 49.5 take
    0.75x the time of the loop version (measured side by side), and the draws are the same bit for bit. Up to
    WHOLE lanes (the chains' chi-squares of d <= 64 dimensions) the pool is the whole array, and the proposal and
    its redraws are one loop (`whole_pool`): the same draws, 0.93 of the compile time of validate's chains.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from collapse_jax.engine.rng import log_gamma
        >>> x = jnp.exp(log_gamma(jax.random.key(0), jnp.full(100_000, 3.0)))
        >>> round(float(x.mean()), 1)
        3.0
    """
    a = jnp.asarray(a, float)
    shape, n = a.shape, a.size
    flat = a.reshape(-1)
    boost = flat < 1
    d = jnp.where(boost, flat + 1, flat) - 1 / 3
    c = 1 / jnp.sqrt(9 * d)

    def propose(key, d, c, order=None):
        """log v of one proposal per lane, NaN where it is rejected. One output, not (log v, accepted): with two,
        XLA:CPU split the proposal over five fusions and recomputed the normal's threefry hash and inverse erf in
        three of them (seen in the optimised HLO); with one, the whole proposal is one fused loop. With `order`,
        lane i takes the draws at position order[i] (`whole_pool`)."""
        k1, k2 = jax.random.split(key)
        x = jax.random.normal(k1, d.shape)
        u = jax.random.uniform(k2, d.shape)  # compared with an exp rather than logged: exp is half log's cost here
        if order is not None:
            x, u = x[order], u[order]
        t = 1 + c * x
        positive = t > 0
        t = jnp.where(positive, t, 1.0)
        log_v = 3 * jnp.log(t)
        accepted = positive & (u < jnp.exp(0.5 * x**2 + d - d * t * t * t + d * log_v))
        return jnp.where(accepted, log_v, jnp.nan)

    # Up to WHOLE lanes the pool is the whole array (`whole_pool`), so the first pass settles every lane and the
    # loop over passes is left out of the program (a third of its compile time). The pool's first 16 lanes draw
    # what a pool of 16 draws (threefry bits depend on the index, not the shape), so the draws are those of the
    # 16-lane pool unless more than 16 lanes are rejected at once (about 1e-7 for 64 lanes at the highest
    # rejection rate, 5%).
    pool = n if n <= WHOLE else min(n, 16 + n // 64)

    def settle_pool(i, log_v):
        """Gather up to `pool` rejected lanes (a float32 top-k: fast on CPU), redraw them there until each is
        accepted, and scatter them back: the full arrays are touched once per pass, not once per redraw."""
        lanes = jax.lax.top_k(jnp.isnan(log_v).astype(jnp.float32), pool)[1] if n > 1 else jnp.zeros(1, int)
        d_pool, c_pool, k_pass = d[lanes], c[lanes], jax.random.fold_in(k_loop, i)

        def again(inner):
            j, v = inner
            return j + 1, jnp.where(jnp.isnan(v), propose(jax.random.fold_in(k_pass, j), d_pool, c_pool), v)

        _, v = jax.lax.while_loop(lambda s: jnp.any(jnp.isnan(s[1])), again, (0, log_v[lanes]))
        return log_v.at[lanes].set(v)

    def whole_pool(k_first, k_pass):
        """The pool is the whole array: the first proposal and the redraws of `settle_pool` as one loop with one
        proposal in it, where they were two copies, and no top-k, gather or scatter: 0.03-0.27 s less XLA compile
        per call (0.50-1.10 s before, 1 to 50 lanes), 1.5-2x faster to run at 20-64 lanes, 1.1x slower at one.
        Round 0 proposes for every lane in order with k_first. `settle_pool` would then put the rejected lanes
        first, in index order, and redraw at their positions there with fold_in(k_pass, j - 1) in round j: so a
        lane rejected in round 0 takes the draws at its rank among those lanes. The same draws, bit for bit, in a
        batch of two or more seeds; a batch of one now draws what a larger one does (the pool's one-lane draws took
        other last bits there)."""

        def round_(state):
            j, order, log_v = state
            key = jax.lax.cond(j == 0, lambda: k_first, lambda: jax.random.fold_in(k_pass, j - 1))
            rejected = jnp.isnan(log_v)
            if n == 1:  # one lane: it is always at position 0
                return j + 1, order, jnp.where(rejected, propose(key, d, c), log_v)
            order = jnp.where(j == 1, jnp.cumsum(rejected) - 1, order)  # fixed from round 1 on, as settle_pool's
            return j + 1, order, jnp.where(rejected, propose(key, d, c, order), log_v)

        start = (0, jnp.arange(n), jnp.full(n, jnp.nan, d.dtype))
        return jax.lax.while_loop(lambda s: jnp.any(jnp.isnan(s[2])), round_, start)[2]

    def next_pass(state):
        i, log_v = state
        return i + 1, settle_pool(i, log_v)

    k_boost, k_first, k_loop = jax.random.split(key, 3)
    if pool == n:
        log_v = whole_pool(k_first, jax.random.fold_in(k_loop, 0))
    else:
        # The first pass runs unconditionally, outside any loop: the pool almost always takes every rejected lane,
        # and a pass with nothing to redraw changes nothing, so the draws are those of a loop over passes, bit for
        # bit. Inside a while loop batched by the engine's vmap over seeds, a pass also selected and copied the
        # whole (seeds, n) array (optimised HLO); the loop only runs when a pool overflowed.
        log_v = settle_pool(0, propose(k_first, d, c))
        _, log_v = jax.lax.while_loop(lambda s: jnp.any(jnp.isnan(s[1])), next_pass, (1, log_v))
    out = (jnp.log(d) + log_v).reshape(shape)
    if _known_at_least_one(a):  # no shape below 1: skip the boost's uniforms and logarithms
        return out
    return jnp.where(boost.reshape(shape), out + jnp.log(jax.random.uniform(k_boost, shape)) / a, out)


def uniform_index(key, shape, n):
    """Integers drawn uniformly from 0..n-1 (1 <= n <= 2^31, an int or a traced scalar), exactly, as int32.

    Lemire's method: the high 32 bits of x * n for 32 random bits x, where the few x that would favour some
    values (their low bits below 2^32 mod n: probability < n / 2^32) are redrawn. One random word and a few
    integer products per draw, where `jax.random.randint` spends three integer remainders.

    Example:
        >>> import jax
        >>> from collapse_jax.engine.rng import uniform_index
        >>> i = uniform_index(jax.random.key(0), (100_000,), 7)
        >>> int(i.min()), int(i.max()), round(float(i.mean()), 1)
        (0, 6, 3.0)
    """
    n = jnp.asarray(n, jnp.uint32)
    threshold = (jnp.uint32(0) - n) % n  # 2^32 mod n, in uint32 arithmetic

    def draw(key):
        x = jax.random.bits(key, shape, jnp.uint32)
        high, low = _mul_32x32(x, n)
        return high.astype(jnp.int32), low >= threshold

    def redraw_rejected(state):
        i, index, ok = state
        new, new_ok = draw(jax.random.fold_in(k_loop, i))
        return i + 1, jnp.where(ok, index, new), ok | new_ok

    k_first, k_loop = jax.random.split(key)
    _, index, _ = jax.lax.while_loop(lambda s: ~jnp.all(s[2]), redraw_rejected, (0, *draw(k_first)))
    return index


def _mul_32x32(x, n):
    """High and low 32-bit words of the 64-bit product x * n of uint32 arrays, in 16-bit halves (no uint64, so
    it also runs with float64 switched off)."""
    mask = jnp.uint32(0xFFFF)
    x1, x0, n1, n0 = x >> 16, x & mask, n >> 16, n & mask
    cross = x1 * n0 + ((x0 * n0) >> 16)
    cross2 = x0 * n1 + (cross & mask)
    return x1 * n1 + (cross >> 16) + (cross2 >> 16), x * n


def chi_square(key, df):
    """chi^2_df draws (df > 0), one per element of `df`."""
    return 2.0 * jnp.exp(log_gamma(key, jnp.asarray(df, float) / 2))


_SPARE = 32  # candidates kept beyond m: a tie across all of them would take 33 equal float32 draws


def subset(key, filled, capacity: int, m: int):
    """m indices drawn uniformly without replacement from 0..filled-1 (filled is data, capacity and m static).

    The subset is the m smallest of i.i.d. scores (u, t): u a float32 uniform, t a float64 uniform breaking ties
    of u, so every m-subset is equally likely. XLA's CPU top-k is fast only for float32 (about 12 times faster than
    for float64 or integers), so it keeps the m + 32 smallest u, and the exact order of those is settled by (u, t).
    Needs filled >= m.

    Example:
        >>> import jax
        >>> from collapse_jax.engine.rng import subset
        >>> sorted(subset(jax.random.key(0), 5, 10, 5).tolist())
        [0, 1, 2, 3, 4]
    """
    k_u, k_t = jax.random.split(key)
    u = jnp.where(jnp.arange(capacity) < filled, jax.random.uniform(k_u, (capacity,), jnp.float32), 2.0)
    keep = min(capacity, m + _SPARE)
    candidates = jax.lax.top_k(-u, keep)[1]
    tie = jax.random.uniform(k_t, (keep,), jnp.zeros(()).dtype)
    order = jnp.lexsort((tie, u[candidates]))
    return candidates[order[:m]]
