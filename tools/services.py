"""Throwaway RabbitMQ and PostgreSQL servers on free loopback ports, for tests.

Used two ways:

- ``python tools/services.py run -- CMD...`` (what ``make test`` does): start
  the servers, export ``HUB_TEST_AMQP_URL`` / ``HUB_TEST_POSTGRES_URL`` to CMD,
  run it, and stop the servers whatever CMD's outcome.
- ``python tools/services.py ensure``: install the Debian packages when running
  as root and they are missing.
- from ``tests/conftest.py``, when those variables are not set, so a plain
  ``pytest`` also gets real servers (``RabbitNode`` can be stopped and started
  again on the same port and data, for broker-restart tests).

Every server gets its own data directory under a temporary folder and binds to
127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
PG_BIN_CANDIDATES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


class ServiceUnavailable(RuntimeError):
    """The server's binaries are missing or it did not come up."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceUnavailable(f"server exited with code {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.2)
    raise ServiceUnavailable(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f}s")


class RabbitNode:
    """One RabbitMQ node with its own name, ports and data directory."""

    def __init__(self, base: Path | None = None):
        if not (RABBIT_BIN / "rabbitmq-server").exists():
            raise ServiceUnavailable(
                "rabbitmq-server is not installed (Debian package rabbitmq-server)")
        self.base = Path(base or tempfile.mkdtemp(prefix="bdchub-rabbit-"))
        self.port = free_port()
        self.dist_port = free_port()
        self.name = f"bdchub{self.port}@localhost"
        self.proc: subprocess.Popen | None = None
        (self.base / "mnesia").mkdir(parents=True, exist_ok=True)
        (self.base / "log").mkdir(exist_ok=True)
        (self.base / "enabled_plugins").write_text("[].\n")
        (self.base / "rabbitmq.conf").write_text(
            "loopback_users = none\n"
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            "disk_free_limit.absolute = 50MB\n")
        cookie = self.base / ".erlang.cookie"
        cookie.write_text("BDCHUBTESTCOOKIE")
        cookie.chmod(0o400)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "HOME": str(self.base),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.base / "node.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        })
        return env

    def start(self, timeout: float = 90) -> None:
        log = (self.base / "log" / "console.log").open("ab")
        self.proc = subprocess.Popen([str(RABBIT_BIN / "rabbitmq-server")], env=self.env(),
                                     stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            _wait_port(self.port, timeout, self.proc)
            self._await_startup(timeout)
        except ServiceUnavailable as exc:
            self.kill()
            tail = (self.base / "log" / "console.log").read_text(errors="replace")[-2000:]
            raise ServiceUnavailable(f"RabbitMQ did not start: {exc}\n{tail}") from exc

    def _await_startup(self, timeout: float) -> None:
        # The port opens before the vhost is ready; await_startup waits for boot to finish.
        subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-n", self.name, "await_startup",
                        "--timeout", str(int(timeout))], env=self.env(), check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout + 5)

    def stop(self, timeout: float = 60) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(Exception):
            subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-n", self.name, "shutdown"],
                           env=self.env(), timeout=timeout, check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
        self.proc = None

    def kill(self) -> None:
        """Never raises."""
        if self.proc is not None:
            with contextlib.suppress(Exception):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                self.proc.wait(timeout=10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory (run as user postgres when root)."""

    def __init__(self, base: Path | None = None):
        if not PG_BIN_CANDIDATES:
            raise ServiceUnavailable("PostgreSQL is not installed (Debian package postgresql)")
        self.bin = PG_BIN_CANDIDATES[0]
        self.base = Path(base or tempfile.mkdtemp(prefix="bdchub-pg-"))
        self.data = self.base / "data"
        self.port = free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            # initdb refuses to run as root.
            shutil.chown(self.base, "postgres", "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as_user, *args], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=120)

    def start(self) -> None:
        try:
            if not self.data.exists():
                self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                          "--auth=trust", "-E", "UTF8", "--locale=C")
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60",
                      "-l", str(self.base / "server.log"), "-o",
                      f"-p {self.port} -c listen_addresses=127.0.0.1 "
                      f"-c unix_socket_directories={self.base} -c fsync=off",
                      "start")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            err = getattr(exc, "stderr", b"") or b""
            raise ServiceUnavailable(f"PostgreSQL did not start: {exc} {err.decode(errors='replace')}") from exc

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def fresh_database(postgres_url: str) -> str:
    """The URL of a new, empty database on the PostgreSQL server at ``postgres_url``
    (tests and benchmarks each take their own)."""
    import uuid

    import psycopg2

    name = f"bdchub_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(postgres_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return f"{postgres_url.rsplit('/', 1)[0]}/{name}"


def ensure() -> int:
    """Install the servers' Debian packages when root and missing."""
    missing = []
    if not (RABBIT_BIN / "rabbitmq-server").exists():
        missing.append("rabbitmq-server")
    if not PG_BIN_CANDIDATES:
        missing.append("postgresql")
    if shutil.which("promtool") is None:  # checks deploy/prometheus's alert rules
        missing.append("prometheus")
    if shutil.which("chromium") is None:  # the console's browser tests
        missing.append("chromium")
    if shutil.which("chromedriver") is None:
        missing.append("chromium-driver")
    if shutil.which("haproxy") is None:  # checks deploy/haproxy's load balancer configs
        missing.append("haproxy")
    if not missing:
        return 0
    if os.geteuid() != 0:
        print(f"services: missing {' '.join(missing)}; install them as root "
              f"(apt-get install {' '.join(missing)})", file=sys.stderr)
        return 0
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                   check=True, env=env)
    # The package starts a system node; ours use their own ports and data, so stop it.
    subprocess.run(["sh", "-c", "service rabbitmq-server stop; service postgresql stop; "
                    "service prometheus stop; service haproxy stop"],
                   check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return 0


def run(cmd: list[str]) -> int:
    started: list[RabbitNode | PostgresServer] = []
    env = dict(os.environ)
    try:
        for kind, var in ((RabbitNode, "HUB_TEST_AMQP_URL"), (PostgresServer, "HUB_TEST_POSTGRES_URL")):
            try:
                server = kind()
                server.start()
            except ServiceUnavailable as exc:
                print(f"services: {kind.__name__} unavailable: {exc}", file=sys.stderr)
                if os.environ.get("CI") == "true":
                    return 3
                continue
            started.append(server)
            env[var] = server.url
            print(f"services: {kind.__name__} on {server.url}", flush=True)
        return subprocess.call(cmd, env=env)
    finally:
        for server in reversed(started):
            server.cleanup()


def main(argv: list[str]) -> int:
    if argv[:1] == ["ensure"]:
        return ensure()
    if argv[:1] == ["run"]:
        cmd = argv[1:]
        if cmd[:1] == ["--"]:
            cmd = cmd[1:]
        return run(cmd)
    print("usage: services.py ensure | run -- CMD...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
