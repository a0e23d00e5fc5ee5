"""A griffe extension for the API reference: the package's Google-style `Example:` sections render as examples.

griffe reads `Examples:` (plural) as an examples section, and `Example:` (singular, the lab's docstring style and
Google's own) as an admonition whose `>>>` lines would then render as nested quotes. This renames the heading
in the text griffe parses, nothing in the source.
"""

from __future__ import annotations

import re

import griffe

_HEADING = re.compile(r"^(\s*)Example:\s*$", re.M)


class ExampleSections(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _HEADING.sub(r"\1Examples:", obj.docstring.value)
