"""``hub dlq replay`` and ``hub dlq drop`` are written to the hub's audit log as the
console's replay and drop are (dead_letter.replayed / dead_letter.dropped, with
route, step, business number, tenant and reason), the operator being the
operating system's user and ``via`` the command line; a replay names the messages
it republished."""

from __future__ import annotations

import getpass

from click.testing import CliRunner

from bdchub.core.audit import AuditLog
from bdchub.core.config import load
from bdchub.routes.cli import dlq_group
from bdchub.routes.runtime import Hub
from tests.routes.helpers import application
from tests.routes.test_cli import _config, _work


def _audited(config) -> list[tuple[str, dict]]:
    hub = Hub.from_config(load(config))
    try:
        log: AuditLog = hub.audit_log()
        return [(r["event"], r["fields"]) for r in log.records()
                if r["event"].startswith("dead_letter.")]
    finally:
        hub.close()


def test_replay_and_drop_from_the_command_line_are_audited(tmp_path, monkeypatch):
    monkeypatch.delenv("HUB_DATA_DIR", raising=False)
    config = _config(tmp_path, {})  # no reply for submit: a permanent error
    hub = Hub.from_config(load(config))
    for no in ("C-5", "C-6"):
        hub.send("application.submitted", application(no))
    hub.close()
    _work(config, lambda h: len(h.dlq_list()) == 2)
    first = Hub.from_config(load(config))
    letters = {d["business_no"]: d["id"] for d in first.dlq_list()}
    first.close()
    runner = CliRunner()
    dropped = runner.invoke(dlq_group, ["drop", "-c", str(config), letters["C-5"][:13],
                                        "--reason", "申请人撤回"])
    assert dropped.exit_code == 0, dropped.output
    replayed = runner.invoke(dlq_group, ["replay", "-c", str(config), "all",
                                         "--reason", "税务系统已恢复"])
    assert replayed.exit_code == 0, replayed.output
    again = runner.invoke(dlq_group, ["drop", "-c", str(config), letters["C-5"]])
    assert again.exit_code == 1  # dropped already: nothing done, nothing audited
    user = getpass.getuser()
    [(drop_event, drop), (replay_event, replay)] = _audited(config)
    assert drop_event == "dead_letter.dropped"
    assert drop == {"operator": user, "via": "cli", "dead_letter": letters["C-5"],
                    "route": "intake", "step": "1:to", "business_no": "C-5",
                    "tenant": "320684", "reason": "申请人撤回"}
    assert replay_event == "dead_letter.replayed"
    [republished] = replay.pop("replays")
    assert republished in replayed.output
    assert replay == {"operator": user, "via": "cli", "dead_letter": letters["C-6"],
                      "route": "intake", "step": "1:to", "business_no": "C-6",
                      "tenant": "320684", "reason": "税务系统已恢复"}
