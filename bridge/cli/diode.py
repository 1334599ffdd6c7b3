"""``hub bridge …``: send and receive through the diode, check the audit log.

The lead's ``hub.py`` mounts ``bridge_group``; ``python -m bdchub.bridge.cli.diode``
runs it standalone (the test rig uses that inside network namespaces).
Known failures are HubError subclasses, printed as "错误: …" without a
traceback.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import click

from bdchub.core.audit import AuditLog, Rotation
from bdchub.core.cliopts import config_option
from bdchub.core.errors import BridgeError, ConfigError, HubError
from bdchub.core.i18n import _

from ..diode.manifest import make_signer, make_verifier
from ..diode.settings import DiodeSettings, parse_hostport, parse_rate
from ..policy import ContentPolicy, PolicyConfig

DEFAULT_AUDIT = "var/audit/bridge.jsonl"


def _audit(path: str | None, key_file: str | None) -> AuditLog:
    key = None
    if key_file:
        try:
            raw = Path(key_file).read_bytes().strip()
        except OSError as exc:
            raise ConfigError(_("cannot read key file {path}: {error}", path=key_file,
                                error=exc.strerror)) from exc
        try:
            key = bytes.fromhex(raw.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            key = raw
    # Rotated and kept as the hub's log is by default: one chain across its files.
    return AuditLog(path or os.environ.get("BDC_BRIDGE_AUDIT") or DEFAULT_AUDIT, key=key,
                    rotation=Rotation())


def _load_policy(path: str | None, scanner: str | None, audit: AuditLog) -> ContentPolicy:
    data: dict[str, Any] = {}
    if path:
        import yaml

        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(_("cannot read policy file {path}: {error}", path=path,
                                error=exc)) from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(_("policy file {path} must hold a mapping", path=path))
        data = dict(loaded or {})
    if scanner:
        data["scanner"] = scanner
    return ContentPolicy(PolicyConfig.from_mapping(data), audit=audit)


_config_option = config_option(help=_("the hub's config.yaml (for --publish)"))


@click.group(name="bridge", help=_("One-way optical gate (diode) and bridge audit."))
def bridge_group() -> None:
    pass


def _key_options(fn: Any) -> Any:
    fn = click.option("--key-file", type=click.Path(dir_okay=False),
                      help=_("shared HMAC key (hex) for manifest signatures"))(fn)
    fn = click.option("--sig-alg", type=click.Choice(["hmac-sha256", "hmac-sm3"]),
                      default="hmac-sha256", show_default=True)(fn)
    fn = click.option("--audit-log", type=click.Path(dir_okay=False),
                      help=_("audit log file (default $BDC_BRIDGE_AUDIT or {path})",
                             path=DEFAULT_AUDIT))(fn)
    fn = click.option("--audit-key-file", type=click.Path(dir_okay=False),
                      help=_("key for the audit chain HMAC"))(fn)
    return fn


@bridge_group.command("send", help=_("Send files (or JSON batches) through the diode."))
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--to", "to", required=True, help="HOST:PORT")
@click.option("--rate", default="200M", show_default=True, help=_("bit rate, e.g. 200M, 1G"))
@click.option("--loss", type=float, default=0.02, show_default=True,
              help=_("loss rate the FEC is sized for"))
@click.option("--target", type=float, default=1e-9, show_default=True,
              help=_("acceptable probability that an object fails"))
@click.option("--overhead", type=float, default=None,
              help=_("parity/source ratio (default: derived from --loss and --target)"))
@click.option("--passes", type=int, default=1, show_default=True)
@click.option("--datagram-size", type=int, default=1472, show_default=True)
@click.option("--k-max", type=int, default=64, show_default=True,
              help=_("source symbols per Reed-Solomon block"))
@click.option("--hash", "hash_name", type=click.Choice(["sha256", "sm3"]), default="sha256",
              show_default=True)
@click.option("--sign-key", type=click.Path(dir_okay=False),
              help=_("Ed25519 private key (PEM) instead of the shared key"))
@click.option("--batch", is_flag=True, help=_("the files are JSON message batches"))
@_key_options
def send_cmd(paths: tuple[str, ...], to: str, rate: str, loss: float, target: float,
             overhead: float | None, passes: int, datagram_size: int, k_max: int,
             hash_name: str, sign_key: str | None, batch: bool, key_file: str | None,
             sig_alg: str, audit_log: str | None, audit_key_file: str | None) -> None:
    from ..diode.sender import DiodeSender

    settings = DiodeSettings(rate_bps=parse_rate(rate), datagram_size=datagram_size,
                             loss_rate=loss, target_failure=target, overhead=overhead,
                             passes=passes, k_max=k_max, hash_name=hash_name)
    signer = make_signer(key_file, sign_key, sig_alg)
    audit = _audit(audit_log, audit_key_file)
    with DiodeSender(parse_hostport(to), signer, settings, audit=audit) as sender:
        objects = []
        try:
            for path in paths:
                if batch:
                    data = Path(path).read_bytes()
                    try:
                        json.loads(data)
                    except ValueError as exc:
                        raise ConfigError(_("{path} is not JSON: {error}", path=path,
                                            error=exc)) from exc
                    objects.append(sender.prepare_bytes(data, Path(path).name))
                else:
                    objects.append(sender.prepare_file(path))
            report = sender.send(objects)
        finally:
            for o in objects:
                o.close()
    for o in objects:
        m = o.manifest
        click.echo(_("sent {name}: {size} bytes, {blocks} blocks, overhead {overhead:.1%}, "
                     "id {ref}", name=m.name, size=m.size, blocks=m.blocks,
                     overhead=m.plan.overhead, ref=m.ref))
    click.echo(_("{objects} objects, {bytes} bytes in {seconds:.2f} s ({rate:.1f} Mbit/s goodput)",
                 objects=report.objects, bytes=report.bytes, seconds=report.seconds,
                 rate=report.goodput_bps / 1e6))


@bridge_group.command("receive", help=_("Receive objects from the diode into an inbox."))
@click.option("--listen", required=True, help="HOST:PORT")
@click.option("--inbox", required=True, type=click.Path(file_okay=False))
@click.option("--staging", type=click.Path(file_okay=False),
              help=_("staging folder (default: INBOX/../staging)"))
@click.option("--quarantine", type=click.Path(file_okay=False),
              help=_("quarantine folder (default: INBOX/../quarantine)"))
@click.option("--verify-key", type=click.Path(dir_okay=False),
              help=_("Ed25519 public key (PEM) instead of the shared key"))
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False),
              help=_("content policy (YAML)"))
@click.option("--scanner", help=_("external scanner command; non-zero exit refuses"))
@click.option("--max-objects", type=int, help=_("stop after this many objects"))
@click.option("--timeout", type=float, help=_("stop after this many seconds"))
@click.option("--idle-timeout", type=float, help=_("stop after this many idle seconds"))
@click.option("--publish", is_flag=True,
              help=_("publish each delivered object onto the hub as messages"))
@click.option("--metrics-listen", metavar="HOST:PORT",
              help=_("serve the receiver's Prometheus metrics at this address"))
@_config_option
@_key_options
def receive_cmd(listen: str, inbox: str, staging: str | None, quarantine: str | None,
                verify_key: str | None, policy_file: str | None, scanner: str | None,
                max_objects: int | None, timeout: float | None, idle_timeout: float | None,
                publish: bool, metrics_listen: str | None, config_path: str,
                key_file: str | None, sig_alg: str, audit_log: str | None,
                audit_key_file: str | None) -> None:
    from ..diode.receiver import DiodeReceiver
    from ..diode.rxsocket import open_receive_socket
    from ..metrics import bridge_metrics

    verifier = make_verifier(key_file, verify_key, sig_alg)
    audit = _audit(audit_log, audit_key_file)
    policy = _load_policy(policy_file, scanner, audit)
    base = Path(inbox).resolve().parent
    metrics = None
    if metrics_listen:  # the receiving side is a process of its own: it serves its counts
        from bdchub.core.metrics import MetricsListener, parse_listen

        bridge_metrics()
        try:
            metrics = MetricsListener(*parse_listen(metrics_listen))
            metrics.start()
        except (ValueError, OSError) as exc:
            raise click.BadParameter(str(exc), param_hint="--metrics-listen") from exc
    hub = publisher = None
    if publish:
        from ..publish import BridgePublisher, InboxPublisher, open_hub

        hub = open_hub(config_path)
    try:
        if hub is not None:
            publisher = _Publishing(InboxPublisher(inbox, BridgePublisher.for_hub(hub)))
        sock = open_receive_socket(*parse_hostport(listen))
        click.echo(_("listening on {addr} (receive buffer {rcvbuf} bytes)",
                     addr=listen, rcvbuf=sock.rcvbuf), err=True)
        try:
            receiver = DiodeReceiver(sock, inbox, verifier=verifier,
                                     staging=staging or base / "staging",
                                     quarantine_dir=quarantine or base / "quarantine",
                                     policy=policy, audit=audit)
            stats = receiver.run(max_objects=max_objects, timeout=timeout,
                                 idle_timeout=idle_timeout)
        finally:
            sock.close()
            total = publisher.finish() if publisher is not None else None
    finally:
        if hub is not None:
            hub.close()
        if metrics is not None:
            metrics.stop()
    click.echo(_("delivered {delivered}, quarantined {quarantined}, rejected {rejected}, "
                 "incomplete {incomplete}; {datagrams} datagrams, {malformed} malformed",
                 **{k: v for k, v in stats.__dict__.items()}))
    for ref, info in receiver.status()["in_progress"].items():
        click.echo(_("incomplete {ref} {name}: {progress:.1%} staged for resume",
                     ref=ref, name=info["name"], progress=info["progress"]))
    if total is not None:
        _report_published(total)


class _Publishing:
    """Publishes the inbox from a thread while the receiver fills it."""

    def __init__(self, publisher: Any):
        import threading

        self.stop = threading.Event()
        self.total: Any = None
        self.thread = threading.Thread(target=self._run, args=(publisher,),
                                       name="diode-publish", daemon=True)
        self.thread.start()

    def _run(self, publisher: Any) -> None:
        try:
            self.total = publisher.run(self.stop, interval=0.5)
        except Exception as exc:  # noqa: BLE001 - reported by finish()
            self.error = exc

    error: BaseException | None = None

    def finish(self) -> Any:
        self.stop.set()
        self.thread.join()
        if self.error is not None:
            raise BridgeError(_("publishing the inbox stopped: {error}",
                                error=self.error)) from self.error
        return self.total


def _report_published(total: Any) -> None:
    click.echo(_("published {objects} object(s) as {messages} message(s)",
                 objects=total.objects, messages=total.messages))
    if total.left:
        raise BridgeError(_("{n} object(s) left in the inbox, not published: {error}; "
                            "they are published on the next run", n=len(total.left),
                            error=total.error))


@bridge_group.command("publish", help=_("Publish what the diode delivered into an inbox "
                                        "onto the hub, once."))
@click.option("--inbox", required=True, type=click.Path(file_okay=False))
@_config_option
def publish_cmd(inbox: str, config_path: str) -> None:
    from ..publish import BridgePublisher, InboxPublisher, open_hub

    hub = open_hub(config_path)
    try:
        total = InboxPublisher(inbox, BridgePublisher.for_hub(hub)).publish_pending()
    finally:
        hub.close()
    _report_published(total)


@bridge_group.group("audit", help=_("The bridge audit log."))
def audit_group() -> None:
    pass


@audit_group.command("verify", help=_("Check the hash chain; exit 1 at the first tampered line."))
@click.option("--log", "log_file", type=click.Path(dir_okay=False))
@click.option("--key-file", type=click.Path(dir_okay=False), help=_("key for the audit chain HMAC"))
def audit_verify_cmd(log_file: str | None, key_file: str | None) -> None:
    audit = _audit(log_file, key_file)
    if not audit.path.exists():
        raise ConfigError(_("audit log {path} does not exist", path=str(audit.path)))
    audit.check()
    click.echo(_("audit log {path} is intact: {count} records",
                 path=str(audit.path), count=len(audit.records())))


@bridge_group.command("keygen", help=_("Write a new shared diode key (or an Ed25519 pair)."))
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--ed25519", is_flag=True, help=_("write OUT (private) and OUT.pub"))
def keygen_cmd(out: str, ed25519: bool) -> None:
    path = Path(out)
    if path.exists():
        raise ConfigError(_("{path} exists; not overwriting a key", path=out))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        if ed25519:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

            key = Ed25519PrivateKey.generate()
            fh.write(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
            Path(out + ".pub").write_bytes(key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        else:
            fh.write(secrets.token_hex(32).encode() + b"\n")
    click.echo(_("wrote {path}", path=out))


def main(argv: list[str] | None = None) -> int:
    """Standalone entry: HubError -> "错误: …" on stderr and its exit code."""
    try:
        bridge_group.main(args=argv, prog_name="bridge", standalone_mode=False)
    except HubError as exc:
        click.echo(f"{_('Error')}: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
