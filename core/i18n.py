"""Messages to people, through one catalogue.

Source strings (msgids) are English and live in the code; translations live in
``locale/<lang>/*.po`` (one file per area of the hub, so teams do not collide).
Chinese (简体) is the default; English is chosen with ``--lang en`` or
``HUB_LANG=en``. Use::

    from bdchub.core.i18n import _
    raise ConfigError(_("unknown key {key}", key=name))

The .po files are read with Babel at first use, so no compile step is needed
and a missing translation falls back to the English text instead of failing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
DEFAULT_LANG = "zh_CN"
_ALIASES = {"zh": "zh_CN", "zh_cn": "zh_CN", "zh-cn": "zh_CN", "cn": "zh_CN",
            "en": "en", "en_us": "en", "en-us": "en", "c": "en"}

_current: str | None = None
# A per-request (per-thread, per-task) choice that wins over the process one:
# the web layer answers each caller in the language it asked for.
_scoped: ContextVar[str | None] = ContextVar("hub_language", default=None)


def normalise(lang: str) -> str:
    key = lang.strip().split(".")[0].lower()
    return _ALIASES.get(key, key)


def set_language(lang: str | None) -> None:
    """Choose the language for this process; ``None`` goes back to ``HUB_LANG``."""
    global _current
    _current = normalise(lang) if lang else None


def language() -> str:
    scoped = _scoped.get()
    if scoped:
        return scoped
    if _current:
        return _current
    return normalise(os.environ.get("HUB_LANG") or DEFAULT_LANG)


@contextmanager
def use_language(lang: str | None) -> Iterator[None]:
    """Use ``lang`` in this thread (or task) for the duration of the block only.

    Unlike ``set_language`` it leaves other threads alone, so a server can
    answer each request in the language that request asked for.
    """
    token = _scoped.set(normalise(lang) if lang else None)
    try:
        yield
    finally:
        _scoped.reset(token)


@cache
def _catalogue(lang: str) -> dict[str, str]:
    from babel.messages.pofile import read_po

    table: dict[str, str] = {}
    folder = LOCALE_DIR / lang
    if not folder.is_dir():
        return table
    for po in sorted(folder.glob("*.po")):
        with po.open("rb") as fh:
            for msg in read_po(fh):
                if msg.id and msg.string and not msg.fuzzy:
                    table[str(msg.id)] = str(msg.string)
    return table


def gettext(msgid: str, **params: object) -> str:
    """Translate ``msgid`` and fill in ``{name}`` placeholders from ``params``."""
    text = _catalogue(language()).get(msgid, msgid)
    if params:
        try:
            return text.format(**params)
        except (KeyError, IndexError, ValueError):
            # A broken translation must never hide the real message.
            return msgid.format(**params)
    return text


_ = gettext
