"""Progress lines: every family and the top level report on stderr through one function, so that `--quiet`
(progress=False) silences all of them and the format stays one."""

from __future__ import annotations

import sys


def reporter(enabled: bool):
    """A function msg -> None that prints msg to stderr when enabled, and does nothing otherwise.

    Example:
        >>> from collapse_jax.engine.progress import reporter
        >>> say = reporter(False)
        >>> say("chunk 1/2")  # silent
    """
    if not enabled:
        return lambda msg: None
    return lambda msg: print(msg, file=sys.stderr)
