"""The "did you mean …" hint for names a user mistyped (config keys, step kinds,
connector types, operations, code kinds). One helper, so the hint reads the
same everywhere and is translated once."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from .i18n import _


def closest(word: object, candidates: Iterable[object]) -> str | None:
    """The candidate most like ``word``, if any is close enough to be a typo."""
    found = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(word: object, candidates: Iterable[object]) -> str:
    """`` (did you mean 'x'?)`` in the user's language, or an empty string."""
    found = closest(word, candidates)
    return _(" (did you mean '{name}'?)", name=found) if found else ""
