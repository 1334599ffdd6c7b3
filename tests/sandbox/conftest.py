"""The sandbox fixtures, until tests/conftest.py lists the plugin itself."""

from __future__ import annotations


def pytest_configure(config):
    if not config.pluginmanager.has_plugin("bdchub.sandbox.pytest_plugin"):
        config.pluginmanager.import_plugin("bdchub.sandbox.pytest_plugin")
