"""The Docker image, as far as it can be checked without a Docker engine: its
entry point is ``hub run``, the shipped config under the image's environment
is valid and listens on every interface, everything the hub writes lands in
the data volume, and ``hub run`` with that listen address answers on a
non-loopback address of this machine. The compose file is tests/ops/test_compose.py's."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bdchub.core import config as config_mod

from .test_run import hub_run, own_secrets

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config.yaml"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _sep, rest = line.partition(" ")
        if word.upper() == "FROM":
            found = []  # only the last stage is the image
        found.append((word.upper(), rest.strip()))
    return found


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in instructions():
        if word == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(rest))
    return env


def test_the_image_runs_hub_run_listening_on_every_interface_with_its_data_on_a_volume():
    found = dict(instructions())
    assert json.loads(found["ENTRYPOINT"]) + json.loads(found["CMD"]) == ["hub", "run"]
    env = image_env()
    assert env["HUB_LISTEN_HOST"] == "0.0.0.0"
    data = env["HUB_DATA_DIR"]
    assert data in json.loads(found["VOLUME"])
    for url in (env["HUB_BROKER_URL"], env["HUB_STORE_URL"]):
        assert url.split(":///", 1)[1].startswith(data + "/"), url


def test_the_image_health_check_asks_readiness_not_mere_liveness():
    (check,) = [rest for word, rest in instructions() if word == "HEALTHCHECK"]
    assert "http://127.0.0.1:8080/readyz" in check
    # The check answers "unhealthy" for a 503: urlopen raises on it.
    assert "urlopen" in check
    assert image_env()["HUB_LOG_FORMAT"] == "json"  # the container's log goes to a collector


def test_the_image_carries_the_cjk_font_the_notices_are_rendered_in():
    from bdchub.routes.steps.domain.notice_pdf import FONT_CANDIDATES

    installs = " ".join(rest for word, rest in instructions() if word == "RUN")
    assert "fonts-wqy-microhei" in installs
    assert FONT_CANDIDATES[0].startswith("/usr/share/fonts/truetype/wqy/")


def test_hub_check_passes_on_the_shipped_config_under_the_image_environment():
    env = image_env()
    proc = subprocess.run([sys.executable, str(ROOT / "hub.py"), "--lang", "en", "check",
                           "-c", str(CONFIG)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    loaded = config_mod.load(CONFIG, environ=env)
    assert loaded["inbound"]["listen"]["host"] == "0.0.0.0"
    assert loaded["store"]["url"] == env["HUB_STORE_URL"]
    # Outside the image the hub stays on loopback.
    assert config_mod.load(CONFIG, environ={})["inbound"]["listen"]["host"] == "127.0.0.1"


def test_the_audit_log_data_key_and_databases_land_in_the_data_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from bdchub.app.service import HubService

    data, etc = tmp_path / "data", tmp_path / "etc"  # the volume; the image's config folder
    etc.mkdir()
    image = image_env()
    env = {k: v.replace(image["HUB_DATA_DIR"], str(data)) for k, v in image.items()}
    # As deployed: the published demo secrets replaced (a hub refuses them).
    env = own_secrets(env)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("BDCHUB_DATA_KEY", raising=False)
    config = config_mod.load(CONFIG, environ=env)
    config["__dir__"] = str(etc)
    service = HubService.from_config(config)
    try:
        service.hub.audit("test.written", id="image-layout")
    finally:
        service.hub.close()
    assert {p.name for p in data.iterdir()} >= {"audit.jsonl", "store.key", "hub.db"}
    # The embedded broker makes its file on first use, where its URL says.
    assert config["broker"]["url"] == f"sqla+sqlite:///{data / 'broker.db'}"
    assert list(etc.iterdir()) == []


def non_loopback_address() -> str | None:
    """An IPv4 address of this machine other than loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # UDP: picks the route, sends nothing
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_hub_run_with_the_image_listen_host_answers_on_a_non_loopback_address(
        clean_sandbox, tmp_path: Path):
    from bdchub.demo.environment import free_port, sandbox_environ

    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to reach the hub on")
    port = free_port("0.0.0.0")
    env = own_secrets(sandbox_environ(clean_sandbox, inbound_port=port,
                                      data_dir=tmp_path / "data", HUB_LISTEN_HOST="0.0.0.0"))
    # No proxy: the request must reach this machine's own address directly.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with hub_run(tmp_path, env) as output:
        out = output.until("stop with Ctrl-C or SIGTERM")
        assert f"inbound endpoints on http://0.0.0.0:{port}" in out
        with opener.open(f"http://{address}:{port}/api/v1/health", timeout=10) as resp:
            assert resp.status == 200
        # What the image's health check asks, on the address it asks it. Ready once
        # its workers and pollers have answered (a loaded machine takes a moment:
        # the health check's start period allows for it).
        deadline, last = time.monotonic() + 30, None
        while True:
            try:
                with opener.open(f"http://127.0.0.1:{port}/readyz", timeout=10) as resp:
                    assert resp.status == 200 and json.loads(resp.read())["status"] == "ready"
                    break
            except urllib.error.HTTPError as exc:
                last = exc.read()[:500]
            assert time.monotonic() < deadline, f"never ready: {last!r}"
            time.sleep(0.2)

