"""Connectors: one module per endpoint type behind ``connectors.base.Connector``.

``build(name, block)`` is how the hub gets one: the type from the registry,
wrapped in the retries, breaker and limits of its block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import CallContext, Connector, Health

if TYPE_CHECKING:
    from .resilience import ResilientConnector

__all__ = ["CallContext", "Connector", "Health", "build"]


def build(name: str, block: dict[str, Any], **kwargs: Any) -> ResilientConnector:
    """See ``connectors.resilience.build`` (imported on first use)."""
    from .resilience import build as _build

    return _build(name, block, **kwargs)
