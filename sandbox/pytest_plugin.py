"""pytest fixtures on the sandbox: ``pytest_plugins = ["bdchub.sandbox.pytest_plugin"]``.

- ``sandbox`` (session): one ``Sandbox(seed=42)`` started for the whole run.
- ``clean_sandbox`` (function): the same sandbox with faults, received logs,
  callbacks and options back to their start values before the test.

Tests that need other options or a private stage machine make their own
``Sandbox(...)`` in a ``with`` block (starting one takes milliseconds).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .sandbox import Sandbox


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    sb = Sandbox(seed=42)
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def clean_sandbox(sandbox: Sandbox) -> Sandbox:
    sandbox.clear_faults()
    sandbox.clear_received()
    sandbox.reset_options()
    sandbox.tax_set_callback(None)
    sandbox.legacy_set_callback(None)
    for name in sandbox.names():
        sandbox.up(name)
    return sandbox
