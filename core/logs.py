"""The hub's log: its ``logging:`` config section, text or JSON lines, and the
context every line of a message's handling carries.

::

    logging:
      format: json        # text (default) | json | auto: text on a terminal, else JSON
      level: INFO         # DEBUG | INFO | WARNING | ERROR; hub run --log-level wins

A JSON line is one object: ``time`` (ISO 8601 with the offset), ``level``,
``logger``, ``message``, then what is known of the message being handled:
``message_id``, ``business_no`` (masked: the first and last four characters
kept), ``route``, ``step``, ``tenant``, then any ``extra`` the call passed
(``event``, ``connector``, ``state`` …) and ``exception`` with its traceback.
A text line is the usual ``time level logger: message`` with the same context
appended as ``[route=… step=… message_id=…]``.

The context is set where a message is handled (``log_context``, a
``contextvars`` scope: each worker thread and each request task has its own)
and put on every record as it is made (``install``), so a connector's warning deep in
a route's step still says which message it was about.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any, TextIO

from .masking import mask_middle

FORMATS = ("text", "json", "auto")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: The context keys, in the order a line shows them.
CONTEXT_KEYS = ("message_id", "business_no", "route", "step", "tenant")

SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "description": "the hub's log: format and level (hub run)",
    "properties": {
        "format": {"enum": list(FORMATS), "default": "text",
                   "description": "text lines, JSON lines (one object a line, for a log "
                                  "collector), or auto: text on a terminal, JSON otherwise"},
        "level": {"enum": [*LEVELS, *(lv.lower() for lv in LEVELS)], "default": "INFO",
                  "description": "the least severe level written; hub run --log-level wins"},
    },
}

_context: ContextVar[Mapping[str, str] | None] = ContextVar("hub_log_context", default=None)


def mask_business_no(value: str) -> str:
    """A business number as logs show it: its first and last four characters."""
    return mask_middle(value, 4, 4) if value else value


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Within the block, every log record carries ``fields`` (besides the outer
    block's); empty values are left out. ``business_no`` is masked here. A call
    within must not pass these names in ``extra`` too (``logging`` refuses to
    overwrite a record's attribute)."""
    added = {k: str(v) for k, v in fields.items() if v not in (None, "")}
    if "business_no" in added:
        added["business_no"] = mask_business_no(added["business_no"])
    token = _context.set({**(_context.get() or {}), **added})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, str]:
    return dict(_context.get() or {})


def _with_context(factory: Any) -> Any:
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        for key, value in (_context.get() or {}).items():
            setattr(record, key, value)
        return record

    make._bdchub = True  # type: ignore[attr-defined]
    return make


def install() -> None:
    """Every record made from now on carries the current ``log_context`` as
    attributes, whichever handler writes it (a test's ``caplog`` too). Idempotent;
    done when this module is imported."""
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "_bdchub", False):
        logging.setLogRecordFactory(_with_context(factory))


install()


#: Attributes every LogRecord has: what is left over came from ``extra``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "taskName"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    found = {k: record.__dict__[k] for k in CONTEXT_KEYS if k in record.__dict__}
    for key, value in record.__dict__.items():
        if key not in _STANDARD and key not in found and not key.startswith("_"):
            found[key] = value
    return found


class JsonFormatter(logging.Formatter):
    """One JSON object a line (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
            + f".{int(record.msecs):03d}" + time.strftime("%z", time.localtime(record.created)),
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        line.update(_extras(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: message [key=value …]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = _extras(record)
        if not extras:
            return text
        tail = " ".join(f"{k}={v}" for k, v in extras.items())
        head, newline, rest = text.partition("\n")  # a traceback stays below the line
        return f"{head} [{tail}]{newline}{rest}"


def formatter(fmt: str, stream: TextIO | None = None) -> logging.Formatter:
    if fmt == "auto":
        stream = stream or sys.stderr
        fmt = "text" if getattr(stream, "isatty", lambda: False)() else "json"
    return JsonFormatter() if fmt == "json" else TextFormatter()


def configure(block: Mapping[str, Any] | None = None, *, level: str | None = None,
              stream: TextIO | None = None) -> logging.Handler:
    """Send the process's log to ``stream`` (stderr: stdout is for what a command
    reports) as ``block`` says; ``level`` (the command line's) wins over the block's.
    Replaces the handlers a previous call installed; returns the new one."""
    block = block or {}
    stream = stream or sys.stderr
    name = str(level or block.get("level") or "INFO").upper()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter(str(block.get("format") or "text"), stream))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_bdchub", False):
            root.removeHandler(old)
    handler._bdchub = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(getattr(logging, name, logging.INFO))
    return handler
