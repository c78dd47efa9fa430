"""Text that may be stored and sent to a model: the one cleaning rule, used at every edge.

JSON lets a frame carry a lone UTF-16 surrogate (``"\\ud800"``): it decodes to a Python string
that cannot be encoded as UTF-8, so every later model request holding it fails. Control
characters other than tab and newline mean nothing in speech. Both are removed where text enters
(the protocol parser) and again where stored text leaves for a model (the history), so an item
written before this rule cannot break a call either.
"""

from __future__ import annotations

import re
from typing import Final

_UNSPEAKABLE: Final = re.compile(r"[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text: str) -> str:
    """``text`` without lone surrogates and control characters (tab, newline, return kept)."""
    return _UNSPEAKABLE.sub("", text)


def needs_cleaning(text: str) -> bool:
    return _UNSPEAKABLE.search(text) is not None
