"""Simulated departments on loopback, each speaking the protocol a real one would.

Used by ``hub sandbox``, the demo and tests (``sandbox.pytest_plugin``)::

    from bdchub.sandbox import Sandbox
    with Sandbox(seed=42) as sb:
        sb.url("gov"); sb.wsdl_url("tax"); sb.credentials["tax"]
        sb.faults("tax").set(error_rate=0.5)

See ``sandbox/README.md``.
"""

from .sandbox import DEFAULT_OPTIONS, ENDPOINTS, Sandbox, SandboxError

__all__ = ["DEFAULT_OPTIONS", "ENDPOINTS", "Sandbox", "SandboxError"]
