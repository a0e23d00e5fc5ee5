"""One calling convention for every chain: configs first, then `generations, seeds`, then keyword-only
`*, key, seed_offset`. `key_moved` keeps calls written for an older signature working, with a DeprecationWarning
that names the new call."""

from __future__ import annotations

import functools
import inspect
import warnings


def key_moved(*old_positional: str):
    """Decorator for a chain whose positional parameters were `old_positional` (in that order, `key` among them)
    before the key became keyword-only. A call that binds to the new signature runs as is; one that binds only to
    the old order (the key passed positionally) runs with a DeprecationWarning naming the keyword call.

    Example:
        >>> import warnings
        >>> from collapse_jax.engine.calls import key_moved
        >>> @key_moved("key", "M", "generations", "seeds")
        ... def chain(M, generations, seeds, *, key=0, seed_offset=0):
        ...     return M, key
        >>> chain(10, 3, 5, key=7)
        (10, 7)
        >>> with warnings.catch_warnings(record=True) as w:
        ...     warnings.simplefilter("always")
        ...     chain(7, 10, 3, 5), str(w[0].message)[:60]
        ((10, 7), 'chain(key, M, generations, seeds, ...) is deprecated: call c')
    """

    def wrap(fn):
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())
        # the old positional parameters without defaults (an old call gave them all), every other one keyword-only
        old = [
            sig.parameters[n].replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD, default=inspect.Parameter.empty)
            for n in old_positional
        ]
        rest = [
            p if p.kind == p.VAR_KEYWORD else p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for p in params
            if p.name not in old_positional
        ]
        old_sig = sig.replace(parameters=old + rest)
        new_call = ", ".join(p.name for p in params if p.kind == p.POSITIONAL_OR_KEYWORD) + ", key=..."

        @functools.wraps(fn)
        def inner(*args, **kwargs):
            try:
                sig.bind(*args, **kwargs)
            except TypeError:
                try:
                    bound = old_sig.bind(*args, **kwargs)
                except TypeError:
                    pass  # neither: let fn (and its checks) report the call as it stands
                else:
                    warnings.warn(
                        f"{fn.__name__}({', '.join(old_positional)}, ...) is deprecated: call "
                        f"{fn.__name__}({new_call}) with the key by keyword",
                        DeprecationWarning,
                        stacklevel=2,
                    )
                    return fn(**bound.arguments)
            return fn(*args, **kwargs)

        inner.__signature__ = sig  # type: ignore[attr-defined]
        return inner

    return wrap
