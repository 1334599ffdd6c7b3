"""The systemd units in deploy/systemd: ``bdchub@PORT`` runs one worker on loopback
port PORT, every instance wanted by and restarted with ``bdchub.target``, and
``bdchub.service`` runs one ``hub run`` of several processes on one port. Each runs
``hub run`` as an unprivileged user with the config checked first, restarts when it
dies, reloads on SIGHUP and keeps its files in /var/lib/bdc-hub. ``systemd-analyze
verify`` reads them where systemd is installed (the hub's path put in for the
installed one); the host's load balancer config has a server for each example
worker."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .test_deploy import ROOT

UNITS = ROOT / "deploy" / "systemd"
TEMPLATE = UNITS / "bdchub@.service"
SINGLE = UNITS / "bdchub.service"
TARGET = UNITS / "bdchub.target"
INSTALLED_HUB = "/opt/bdc-hub/bin/hub"
DATA_DIR = "/var/lib/bdc-hub"


def unit(path: Path) -> dict[str, list[str]]:
    """``Section.Key`` -> its values, in order (a key may be given more than once)."""
    found: dict[str, list[str]] = {}
    section = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _sep, value = line.partition("=")
        found.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return found


def environment(found: dict[str, list[str]]) -> dict[str, str]:
    return dict(item.split("=", 1) for line in found.get("Service.Environment", [])
                for item in line.split())


def hub_command(found: dict[str, list[str]], key: str) -> list[str]:
    (command,) = found[f"Service.{key}"]
    words = command.split()
    assert words[0] == INSTALLED_HUB, command
    return words[1:]


@pytest.mark.parametrize("path", [TEMPLATE, SINGLE], ids=["template", "single"])
def test_each_unit_runs_hub_run_unprivileged_checked_first_restarted_and_reloadable(path):
    found = unit(path)
    assert hub_command(found, "ExecStart") == ["run"]
    assert hub_command(found, "ExecStartPre") == ["check"]
    env = environment(found)
    # hub run and hub check read the same config (HUB_CONFIG is -c's variable).
    assert env["HUB_CONFIG"] == "/etc/bdc-hub/config.yaml"
    assert found["Service.EnvironmentFile"] == ["/etc/bdc-hub/hub.env"]
    assert found["Service.User"] == ["bdchub"]
    assert found["Service.Restart"][0] in ("always", "on-failure")
    assert found["Service.ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert found["Service.KillSignal"] == ["SIGTERM"]
    # Where the hub writes (audit log, data key, ferry inbox) is the one folder the
    # service may write besides /tmp (ProtectSystem=strict).
    assert env["HUB_DATA_DIR"] == DATA_DIR
    assert found["Service.StateDirectory"] == [Path(DATA_DIR).name]
    assert found["Service.ProtectSystem"] == ["strict"]


def test_the_template_runs_one_worker_per_instance_on_loopback_port_instance():
    found = unit(TEMPLATE)
    env = environment(found)
    assert env["HUB_LISTEN_PORT"] == "%i"
    assert env["HUB_LISTEN_HOST"] == "127.0.0.1"  # the host's load balancer is the way in
    assert found["Install.WantedBy"] == ["bdchub.target"]
    assert found["Unit.PartOf"] == ["bdchub.target"]
    assert unit(TARGET)["Install.WantedBy"] == ["multi-user.target"]


def test_the_single_unit_runs_several_processes_and_lets_the_first_stop_the_others():
    found = unit(SINGLE)
    assert int(environment(found)["HUB_LISTEN_PROCESSES"]) > 1
    assert found["Service.KillMode"] == ["mixed"]


def test_the_shipped_config_takes_the_units_listen_settings_from_the_environment():
    from bdchub.core.config import load

    loaded = load(ROOT / "config.yaml", environ={"HUB_LISTEN_PORT": "8082",
                                                 "HUB_LISTEN_PROCESSES": "4"})
    assert loaded["inbound"]["listen"]["port"] == 8082
    assert loaded["inbound"]["listen"]["processes"] == 4
    assert loaded["inbound"]["listen"]["host"] == "127.0.0.1"


def test_the_host_load_balancer_has_a_server_for_each_example_worker():
    cfg = (ROOT / "deploy" / "haproxy" / "host.cfg").read_text(encoding="utf-8")
    ports = re.findall(r"^\s*server \S+ 127\.0\.0\.1:(\d+)\s*$", cfg, re.M)
    example = re.findall(r"bdchub@(\d+)", TEMPLATE.read_text(encoding="utf-8"))
    assert ports and sorted(set(ports)) == sorted(set(example))
    assert "option httpchk GET /readyz" in cfg


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        message = "systemd-analyze not found (Debian package systemd)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: the tools are required)")
        pytest.skip("SKIPPED LOUDLY: " + message)
    return found


def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path):
    hub = Path(sys.executable).with_name("hub")
    assert hub.exists()
    for path in (TEMPLATE, SINGLE, TARGET):
        text = path.read_text(encoding="utf-8").replace(INSTALLED_HUB, str(hub))
        (tmp_path / path.name).write_text(text, encoding="utf-8")
    (tmp_path / "bdchub@8081.service").symlink_to(tmp_path / TEMPLATE.name)
    names = ["bdchub@8081.service", SINGLE.name, TARGET.name]
    done = subprocess.run([systemd_analyze(), "verify", *[str(tmp_path / n) for n in names]],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    # Warnings (a misspelt key, a value it ignores) leave the exit code 0.
    assert not [line for line in done.stderr.splitlines() if "bdchub" in line], done.stderr
