"""Parts registered by name and imported on first use.

The hub is assembled from parts: connector types (``type: rest``), step kinds
(``- enrich: …``) and config sections (``inbound:``). Each registry maps a
name to its part, given either as the object or as ``"module:attribute"``
(imported only when the name is first used, as kombu does with transports),
so ``hub check`` does not pay for SOAP or the diode when the config uses
neither::

    CONNECTOR_TYPES = Registry("connector type", unknown=...)
    CONNECTOR_TYPES.register("rest", "bdchub.connectors.rest:RestConnector")
    CONNECTOR_TYPES.get("rest")        # the class, imported now

Packages above ``core`` say what they contribute in a ``parts`` module named
in the ``bdchub.parts`` entry-point group of their distribution (see
pyproject.toml); ``load_parts()`` imports those modules once, before any
registry answers. That is how ``core`` checks a whole config without naming a
single package above it, and how a third-party package adds a connector type:
declare ``[project.entry-points."bdchub.parts"] mine = "mypkg.parts"`` and call
``register`` there.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from .errors import ConfigError
from .i18n import _
from .suggest import did_you_mean

log = logging.getLogger("bdchub.registry")

PARTS_GROUP = "bdchub.parts"

T = TypeVar("T")

_parts_lock = threading.RLock()
_parts_state = {"loaded": False, "loading": False}
#: Parts modules that could not be imported, with why (shown when a name is unknown).
FAILED_PARTS: dict[str, str] = {}


def load_parts() -> None:
    """Import every ``bdchub.parts`` entry point once (they register their parts)."""
    if _parts_state["loaded"]:
        return
    with _parts_lock:
        if _parts_state["loaded"] or _parts_state["loading"]:
            return  # done meanwhile, or a parts module asking a registry while it loads
        _parts_state["loading"] = True
        try:
            for point in sorted(entry_points(group=PARTS_GROUP), key=lambda p: p.name):
                try:
                    point.load()
                except Exception as exc:  # noqa: BLE001 - one broken part must not hide the others
                    FAILED_PARTS[point.name] = f"{type(exc).__name__}: {exc}"
                    log.warning("parts %s (%s) cannot be loaded: %s", point.name, point.value, exc)
            _parts_state["loaded"] = True
        finally:
            _parts_state["loading"] = False


def resolve(target: str) -> object:
    """The object named by ``"package.module:attribute"``."""
    module_name, _sep, attr = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr) if attr else module


class Registry(Generic[T]):
    """Named parts of one kind; see the module docstring."""

    def __init__(self, kind: str, *,
                 unknown: Callable[[str, str, str], str] | None = None):
        self.kind = kind
        # (name, hint, known) -> the sentence for an unknown name
        self._unknown = unknown
        self._targets: dict[str, T | str] = {}
        self._loaded: dict[str, T] = {}
        self._lock = threading.Lock()

    def register(self, name: str, target: T | str) -> None:
        """Register ``name`` as ``target`` (an object, or ``"module:attribute"``)."""
        with self._lock:
            self._targets[name] = target
            self._loaded.pop(name, None)

    def unregister(self, name: str) -> None:
        """Forget ``name`` (a test's or a plug-in's own registration)."""
        with self._lock:
            self._targets.pop(name, None)
            self._loaded.pop(name, None)

    def names(self) -> list[str]:
        load_parts()
        return sorted(self._targets)

    def __contains__(self, name: object) -> bool:
        load_parts()
        return name in self._targets

    def unknown(self, name: str) -> ConfigError:
        """The error for a name nobody registered, with a "did you mean"."""
        known = self.names()
        hint = did_you_mean(name, known)
        if self._unknown is not None:
            text = self._unknown(name, hint, ", ".join(known))
        else:
            text = _("unknown {kind} '{name}'{hint}; known: {known}", kind=_(self.kind), name=name,
                     hint=hint, known=", ".join(known))
        if FAILED_PARTS:
            text += _(" (parts that could not be loaded: {parts})",
                      parts="; ".join(f"{k}: {v}" for k, v in sorted(FAILED_PARTS.items())))
        return ConfigError(text)

    def get(self, name: str) -> T:
        """The part registered as ``name``, imported now if it was given by name."""
        found = self._loaded.get(name)
        if found is not None:
            return found
        load_parts()
        target = self._targets.get(name)
        if target is None:
            raise self.unknown(name)
        if isinstance(target, str):
            try:
                obj = resolve(target)
            except (ImportError, AttributeError) as exc:
                raise ConfigError(_("{kind} '{name}' cannot be loaded: {error}",
                                    kind=_(self.kind), name=name, error=exc)) from exc
        else:
            obj = target
        with self._lock:
            self._loaded[name] = obj  # type: ignore[assignment]
        return obj  # type: ignore[return-value]

    def items(self) -> list[tuple[str, T]]:
        """Every part, imported."""
        return [(name, self.get(name)) for name in self.names()]
