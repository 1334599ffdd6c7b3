"""docker-compose.yml runs the hub as several workers behind one load balancer, on
RabbitMQ and PostgreSQL: each worker listens on every interface of its container and
publishes no port, the load balancer publishes the only one and reaches every worker
by the service's name, checking each one's /readyz; every service restarts, reports
its health and keeps its data on a volume; secrets come from hub.env and the shell,
never from defaults written in the file.

The file is read as ``docker compose config`` resolves it where Docker Compose is
installed, and otherwise as YAML with the same ``${VAR…}`` interpolation (there is
no Docker engine in the tests: no image is pulled or run). HAProxy's own check
(``haproxy -c``) reads the load balancer's config where HAProxy is installed."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .test_deploy import ROOT

COMPOSE = ROOT / "docker-compose.yml"
LB_CONFIG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
HOST_LB_CONFIG = ROOT / "deploy" / "haproxy" / "host.cfg"
ENV_EXAMPLE = ROOT / "deploy" / "hub.env.example"
#: What the shell gives ``docker compose``: the values the file requires (``:?``).
SHELL = {"BDCHUB_DATA_KEY": "00112233445566778899aabbccddeeff",
         "POSTGRES_PASSWORD": "pg-secret-of-this-test", "RABBITMQ_PASSWORD": "mq-secret-of-this-test"}
HAPROXY_CFG_IN_IMAGE = "/usr/local/etc/haproxy/haproxy.cfg"


def docker_compose() -> bool:
    if shutil.which("docker") is None:
        return False
    done = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    return done.returncode == 0


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` (what the file uses)."""
    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if op == ":?":
            raise AssertionError(f"{name} is required: {arg}")
        return arg if op == ":-" else ""
    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, text)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The compose project as the compose tool sees it, given hub.env and the shell's values."""
    if not docker_compose():
        return yaml.safe_load(interpolate(COMPOSE.read_text(encoding="utf-8"), SHELL))
    folder = tmp_path_factory.mktemp("compose")
    shutil.copy(COMPOSE, folder / "docker-compose.yml")
    shutil.copy(ENV_EXAMPLE, folder / "hub.env")
    done = subprocess.run(["docker", "compose", "config", "--format", "json"], cwd=folder,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **SHELL})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def published(service: dict[str, Any]) -> list[tuple[str, int]]:
    """(host side, container port) of each published port, short or long syntax."""
    found = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            found.append((str(port.get("published", "")), int(port["target"])))
        else:
            host, _sep, container = str(port).rpartition(":")
            found.append((host, int(container)))
    return found


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (a volume's name or a host path) of each mount."""
    found = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            found[volume["target"]] = str(volume.get("source", ""))
        else:
            source, target = str(volume).split(":")[:2]
            found[target] = source
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def env_files(service: dict[str, Any]) -> list[str]:
    files = service.get("env_file") or []
    files = [files] if isinstance(files, str) else files
    return [Path(f["path"] if isinstance(f, dict) else f).name for f in files]


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def image_env() -> dict[str, str]:
    from tests.app.test_docker import image_env as dockerfile_env

    return dockerfile_env()


def hub_port(project: dict[str, Any]) -> int:
    return int(environment(project["services"]["hub"]).get("HUB_LISTEN_PORT", 8080))


def backend(cfg: str, name: str = "hub") -> list[str]:
    """The lines of HAProxy section ``backend name``."""
    lines, inside = [], False
    for raw in cfg.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if not raw[0].isspace():
            inside = line == f"backend {name}"
            continue
        if inside:
            lines.append(line)
    return lines


def test_the_services_are_the_workers_their_load_balancer_rabbitmq_and_postgresql(project):
    services = project["services"]
    assert set(services) == {"hub", "lb", "rabbitmq", "postgres"}
    assert int(services["hub"]["deploy"]["replicas"]) >= 2
    env = environment(services["hub"])
    assert env["HUB_BROKER_URL"].startswith("amqp://hub:" + SHELL["RABBITMQ_PASSWORD"] + "@rabbitmq:")
    assert env["HUB_STORE_URL"].startswith("postgresql")
    assert f":{SHELL['POSTGRES_PASSWORD']}@postgres:" in env["HUB_STORE_URL"]
    # The workers start once their broker and store answer.
    assert depends_on(services["hub"]) == {"rabbitmq": "service_healthy",
                                           "postgres": "service_healthy"}


def test_each_worker_listens_on_every_interface_and_publishes_no_port(project):
    hub = project["services"]["hub"]
    listen = environment(hub).get("HUB_LISTEN_HOST") or image_env()["HUB_LISTEN_HOST"]
    assert listen == "0.0.0.0"
    assert published(hub) == []


def test_only_the_load_balancer_publishes_a_port_and_it_is_the_workers_one(project):
    publishing = {name for name, s in project["services"].items() if published(s)}
    assert publishing == {"lb"}
    ((_host, container),) = published(project["services"]["lb"])
    assert re.search(rf"^\s*bind\s+:{container}\s*$", LB_CONFIG.read_text(), re.M)


def test_the_load_balancer_reaches_every_worker_and_asks_each_for_readiness(project):
    lb = project["services"]["lb"]
    # A Debian-based image, its config the one in deploy/haproxy.
    assert lb["image"].startswith("haproxy:") and lb["image"].endswith("-bookworm")
    assert mounts(lb)[HAPROXY_CFG_IN_IMAGE].endswith("deploy/haproxy/haproxy.cfg")
    lines = backend(LB_CONFIG.read_text(encoding="utf-8"))
    (template,) = [line.split() for line in lines if line.startswith("server-template ")]
    _word, _prefix, slots, address = template[:4]
    # One slot per replica at least, each an address Docker's DNS gives for the service.
    assert int(slots.split("-")[-1]) >= int(project["services"]["hub"]["deploy"]["replicas"])
    assert address == f"hub:{hub_port(project)}"
    defaults = next(line for line in lines if line.startswith("default-server "))
    assert " check" in f" {defaults}" and "resolvers docker" in defaults
    assert re.search(r"^\s*nameserver \w+ 127\.0\.0\.11:53", LB_CONFIG.read_text(), re.M)
    assert "option httpchk GET /readyz" in lines
    assert "http-check expect status 200" in lines


def test_every_service_restarts_reports_its_health_and_keeps_its_data_on_a_volume(project):
    services = project["services"]
    for name, service in services.items():
        assert service.get("restart") in ("always", "unless-stopped"), name
        assert service.get("healthcheck", {}).get("test"), name
    named = set(project.get("volumes") or {})
    data = {"rabbitmq": "/var/lib/rabbitmq", "postgres": "/var/lib/postgresql/data",
            "hub": image_env()["HUB_DATA_DIR"]}
    for name, path in data.items():
        assert mounts(services[name]).get(path) in named, name


def test_the_workers_health_check_asks_readiness_on_the_port_they_listen_on(project):
    (command,) = [part for part in project["services"]["hub"]["healthcheck"]["test"]
                  if "urlopen" in part]
    assert f"http://127.0.0.1:{hub_port(project)}/readyz" in command


def test_secrets_come_from_hub_env_and_the_shell_never_from_the_file():
    text = COMPOSE.read_text(encoding="utf-8")
    hub = yaml.safe_load(text)["services"]["hub"]
    assert env_files(hub) == ["hub.env"]
    assert not any("SECRET" in key or ("PASSWORD" in key and "POSTGRES" not in key)
                   for key in hub["environment"])
    # Passwords and the data key have no default a reader of this file would know.
    for name in ("BDCHUB_DATA_KEY", "POSTGRES_PASSWORD", "RABBITMQ_PASSWORD"):
        uses = re.findall(rf"\$\{{{name}([^}}]*)\}}", text)
        assert uses and all(use.startswith(":?") for use in uses), (name, uses)


def test_hub_env_example_names_every_secret_hub_run_refuses_at_its_demo_value():
    from bdchub.core.config import load
    from bdchub.core.secrets import DEMO_SECRETS_KEY

    listed = {line.split("=", 1)[0] for line in ENV_EXAMPLE.read_text().splitlines()
              if line and not line.startswith("#")}
    demo = {s.variables[0] for s in load(ROOT / "config.yaml", environ={})[DEMO_SECRETS_KEY]}
    assert demo <= listed, sorted(demo - listed)


def haproxy() -> str:
    found = shutil.which("haproxy")
    if found is None:
        message = "haproxy not found (Debian package haproxy)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: the tools are required)")
        pytest.skip("SKIPPED LOUDLY: " + message)
    return found


@pytest.mark.parametrize("config", [LB_CONFIG, HOST_LB_CONFIG], ids=["compose", "host"])
def test_the_load_balancers_keep_the_metrics_to_the_inside(config: Path):
    assert re.search(r"^\s*http-request deny .*if \{ path /metrics \}", config.read_text(),
                     re.M)


@pytest.mark.parametrize("config", [LB_CONFIG, HOST_LB_CONFIG], ids=["compose", "host"])
def test_haproxy_accepts_the_load_balancer_configs(config: Path):
    done = subprocess.run([haproxy(), "-c", "-f", str(config)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
