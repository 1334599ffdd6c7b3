"""The command-line options every ``hub`` command shares, defined once.

``-c/--config`` is the same option in ``hub check``, ``hub run``, the dead
letter and trace commands and the bridge commands: one default
(``config.yaml``), one environment variable (``HUB_CONFIG``, which the Docker
image sets, so ``docker exec … hub dlq list`` finds the image's config), one
type. ``--lang`` and ``--log-level`` likewise. Commands of every floor use
this module, which is why it lives in core (click is a dependency of the hub).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from . import i18n

F = TypeVar("F", bound=Callable[..., Any])

CONFIG_ENV = "HUB_CONFIG"
CONFIG_HELP = "the hub's config file"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def config_option(*, default: str | None = "config.yaml",
                  help: str | None = None) -> Callable[[F], F]:
    """``-c/--config`` (parameter ``config_path``). ``help`` names what the command
    reads the config for; ``default=None`` lets a command choose its own."""
    return click.option("-c", "--config", "config_path", default=default,
                        show_default=default is not None, type=click.Path(dir_okay=False),
                        envvar=CONFIG_ENV, help=help or CONFIG_HELP)


CONFIG_OPTION = config_option()


def _set_lang(_ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        i18n.set_language(value)


#: ``--lang``: chosen before anything else is parsed (eager), so errors about the
#: other options already speak it.
LANG_OPTION = click.option("--lang", callback=_set_lang, expose_value=False, is_eager=True,
                           help="zh_CN (default) or en; also HUB_LANG.")

#: ``--log-level`` (parameter ``log_level``); pass it to ``setup_logging``.
LOG_LEVEL_OPTION = click.option("--log-level", default="INFO", show_default=True,
                                type=click.Choice(LOG_LEVELS, case_sensitive=False))


def setup_logging(level: str) -> None:
    """Log to stderr at ``level``: stdout is for what the command reports."""
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
