"""Characters no submitted text may hold, wherever it sits in the body.

A NUL in a name was accepted and then dead-lettered at the registration system
on every replay; a right-to-left override passed into an e-certificate, where
it reorders what a reader sees. Nothing the hub takes in needs either, so the
intake refuses (422, each offending field's JSON path) any string, or object
key, holding:

- a C0 control (U+0000-U+001F) other than tab, line feed and carriage return,
  DEL (U+007F) or a C1 control (U+0080-U+009F);
- an invisible formatting character (Unicode category Cf): the bidi embeddings,
  overrides and isolates U+202A-U+202E and U+2066-U+2069, the marks U+200E,
  U+200F and U+061C, zero-width spaces and joiners, the soft hyphen, the byte
  order mark, tag characters …;
- a line or paragraph separator (U+2028, U+2029) or a lone surrogate;
- tab or a line break in a one-line field: a key ``name``, ``address`` or
  ``location``, or one ending ``_name``, ``_address`` or ``_location``.

Ordinary text passes: Chinese, full-width punctuation, the ideographic space
U+3000, private-use characters (legacy systems put rare name characters
there) and variation selectors (ideographic variation sequences in names).
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import cache
from typing import Any

from bdchub.core.i18n import _
from bdchub.schemas.catalog import json_path

#: Keys of one-line fields: tab and line breaks are refused there too.
ONE_LINE_KEY = re.compile(r"(?:^|_)(?:name|address|location)$", re.IGNORECASE)
LINE_BREAKS = "\t\n\r"
#: Violations reported at most: enough to fix a body, little to audit.
MAX_VIOLATIONS = 50

_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def refused_ranges() -> list[tuple[int, int]]:
    """Every refused code point as (first, last) ranges, from the interpreter's
    Unicode tables (about 0.2 s: a pass over all 1.1 million code points)."""
    categories = map(unicodedata.category, map(chr, range(sys.maxunicode + 1)))
    refused = [code for code, category in enumerate(categories)
               if category in _REFUSED_CATEGORIES and chr(code) not in LINE_BREAKS]
    ranges: list[tuple[int, int]] = []
    for code in refused:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    return ranges


@cache
def _refused() -> re.Pattern[str]:
    """One character class over every refused code point. The ranges ship computed
    for one Unicode version (``web.refused_chars``, a third of ``hub run``'s start-up
    when computed each time); an interpreter with other Unicode tables computes its
    own, so characters added to Cf later are covered."""
    from . import refused_chars

    ranges = (refused_chars.RANGES if refused_chars.UNIDATA_VERSION == unicodedata.unidata_version
              else refused_ranges())
    return re.compile("[" + "".join(
        f"\\U{lo:08x}" if lo == hi else f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in ranges) + "]")


def warm() -> None:
    """Build the character class now, not on the first request."""
    _refused()


def _describe(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X} {name}" if name else f"U+{ord(char):04X}"


def _problem(text: str, one_line: bool) -> str | None:
    found = _refused().search(text)
    if found is not None:
        char = found.group()
        if unicodedata.category(char) == "Cc":
            return _("must not contain the control character {char}", char=_describe(char))
        return _("must not contain the invisible character {char}", char=_describe(char))
    if one_line:
        for char in LINE_BREAKS:
            if char in text:
                return _("must be one line: {char} is not allowed here", char=_describe(char))
    return None


def violations(body: Any) -> list[dict[str, str]]:
    """Each string (and key) of ``body`` that holds a refused character, as
    ``{"path", "keyword", "message"}`` in document order; the message names the
    character, never the text."""
    found: list[dict[str, str]] = []
    # Iterative: a JSON body may nest deeper than Python's recursion limit.
    stack: list[tuple[Any, tuple[str | int, ...], bool]] = [(body, (), False)]
    while stack and len(found) < MAX_VIOLATIONS:
        value, path, one_line = stack.pop()
        if isinstance(value, str):
            problem = _problem(value, one_line)
            if problem is not None:
                found.append({"path": json_path(path), "keyword": "characters",
                              "message": problem})
        elif isinstance(value, dict):
            for key, item in reversed(list(value.items())):
                key = str(key)
                problem = _problem(key, True)
                if problem is not None:
                    # The path would carry the character itself: name the object instead.
                    found.append({"path": json_path(path), "keyword": "characters",
                                  "message": _("a field name {problem}", problem=problem)})
                    continue
                stack.append((item, (*path, key), bool(ONE_LINE_KEY.search(key))))
        elif isinstance(value, list):
            stack.extend((item, (*path, n), one_line)
                         for n, item in reversed(list(enumerate(value))))
    return found
