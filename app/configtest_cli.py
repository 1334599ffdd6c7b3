"""``hub test [PATH…]``: run a configuration's unit tests and report like pytest.

    hub test                         the tests of config.yaml: config.tests/*.yaml
    hub test -c haimen.yaml          those of haimen.yaml: haimen.tests/*.yaml
    hub test config.tests/court.yaml -k 查封 -v

One line per case (passed, failed, skipped), then each failure at the
``file:line:column`` of the expectation that did not hold with what differed,
then a summary. Exit 0 when every case passed, 1 when one failed, 2 when a test
file (or the config it tests) has problems; then nothing runs. docs/testing-config.md
is the guide.
"""

from __future__ import annotations

import logging
import sys

import click

from bdchub.core.cliopts import LANG_OPTION, config_option
from bdchub.core.errors import ConfigError
from bdchub.core.i18n import _

from . import configtest_spec as spec
from .configtest import CaseResult, Report, run

_WIDTH = 78


@click.command("test")
@click.argument("paths", nargs=-1, type=click.Path())
@config_option(help="the config whose tests run when no PATH is given (its <name>.tests/ "
                    "folder), and that test files outside such a folder test")
@click.option("-k", "select", default="", metavar="TEXT",
              help="only the cases whose name contains TEXT")
@click.option("-v", "--verbose", is_flag=True,
              help="also show, under each failure, every call, message and route run")
@click.option("--log-level", default="ERROR", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="the hub's own log lines, on stderr")
@LANG_OPTION
def test_command(paths: tuple[str, ...], config_path: str, select: str, verbose: bool,
                 log_level: str) -> None:
    """Run the config's unit tests (YAML files beside it); exit 0, 1 on a failure,
    2 on a bad test file."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("bdchub").setLevel(log_level.upper())
    files = spec.discover(paths, config_path)
    loaded, problems = [], []
    offers: dict = {}
    for file in files:
        try:
            loaded.append(spec.load(file, config_path, offers=offers))
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        click.echo(_("{n} problems in the test files; no case ran:", n=len(problems)), err=True)
        for problem in problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(2)
    report = run(loaded, select=select, on_result=_line)
    _failures(report, verbose)
    _summary(report)
    if report.failed:
        sys.exit(1)


def _word(outcome: str) -> str:
    words = {"passed": (_("PASSED"), "green"), "failed": (_("FAILED"), "red"),
             "skipped": (_("SKIPPED"), "yellow")}
    word, colour = words[outcome]
    return click.style(word, fg=colour)


def _line(result: CaseResult) -> None:
    click.echo(f"{result.file}::{result.name} {_word(result.outcome)}")


def _rule(title: str, char: str = "=") -> str:
    text = f" {title} " if title else ""
    side = max(3, (_WIDTH - len(text)) // 2)
    return char * side + text + char * side


def _failures(report: Report, verbose: bool) -> None:
    if not report.failed:
        return
    click.echo()
    click.echo(_rule(_("FAILURES")))
    for result in report.failed:
        click.echo(_rule(f"{result.file}::{result.name}", "_"))
        for failure in result.failures:
            what = f"{failure.what}: " if failure.what else ""
            click.echo(click.style(f"{failure.location}: {what}{failure.message}", bold=True))
            for detail in failure.details:
                click.echo(f"    {detail}")
        if verbose and result.trace:
            click.echo(_("  what happened:"))
            for line in result.trace:
                click.echo(f"    {line}")
        click.echo()


def _summary(report: Report) -> None:
    parts = []
    for outcome, label in (("failed", _("{n} failed")), ("passed", _("{n} passed")),
                           ("skipped", _("{n} skipped"))):
        n = report.count(outcome)
        if n:
            parts.append(label.format(n=n))
    text = ", ".join(parts) or _("no cases ran")
    colour = "red" if report.failed else "green"
    click.echo(click.style(_rule(_("{summary} in {seconds:.2f}s", summary=text,
                                   seconds=report.seconds)), fg=colour))
