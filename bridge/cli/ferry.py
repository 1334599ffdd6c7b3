"""``hub ferry pack | import | verify | keygen``: the operator's side of the disc ferry.

Known failures raise ``core.errors`` exceptions; hub.py prints them as one
translated line. ``import`` and ``verify`` print a summary table (or JSON with
``--json``) and end with an error when any image was refused, so scripts can
rely on the exit status.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from bdchub.core.audit import AuditLog, Rotation
from bdchub.core.cliopts import config_option
from bdchub.core.errors import BridgeError
from bdchub.core.i18n import _

from ..ferry import sign, spec
from ..ferry.importer import FerryImporter, ImportReport
from ..ferry.ledger import ranges
from ..ferry.packer import FerryPacker, PackReport, collect
from ..ferry.progress import RichProgress
from ..ferry.sequence import SequenceFile

VAR = Path("var/ferry")


def _audit(path: str, key_file: str | None) -> AuditLog:
    try:
        key = Path(key_file).read_bytes().strip() if key_file else None
    except OSError as exc:
        raise BridgeError(_("cannot read key file {path}: {error}", path=key_file,
                            error=exc.strerror or exc)) from exc
    return AuditLog(path, key=key, rotation=Rotation())  # rotated and kept as the hub's


def _audit_options(fn):
    fn = click.option("--audit-key", "audit_key", type=click.Path(dir_okay=False),
                      envvar="HUB_AUDIT_KEY_FILE",
                      help=_("file with the audit chain's HMAC key"))(fn)
    fn = click.option("--audit", "audit_path", default=str(VAR / "audit.jsonl"),
                      envvar="HUB_FERRY_AUDIT", show_default=True,
                      help=_("hash-chained audit log"))(fn)
    return fn


_config_option = config_option(help=_("the hub's config.yaml (for --publish)"))


def _publish(hub, batches: list, inbox: str, as_json: bool) -> None:  # noqa: ANN001
    from bdchub.bridge.publish import BridgePublisher, ferry_event_types
    from bdchub.core.errors import HubError, PolicyError

    try:
        # By hand as under hub run: a disc publishes only what the config allows.
        sent = BridgePublisher.for_hub(hub).publish_import(
            batches, inbox, allowed=ferry_event_types(hub.config))
    except PolicyError:
        raise
    except HubError as exc:
        folders = " ".join(str(b.delivered_to) for b in batches if b.delivered_to)
        raise BridgeError(_("delivered to the inbox but not published: {error}; publish again "
                            "with: hub ferry publish {folders}", error=exc,
                            folders=folders)) from exc
    click.echo(_("published {n} message(s) from {batches} batch(es)", n=len(sent),
                 batches=len(batches)), err=as_json)


@click.group("ferry", help=_("Offline disc ferry: pack discs, verify and import them."))
def ferry_group() -> None:
    pass


@ferry_group.command("pack", help=_("Pack messages and files into signed disc images."))
@click.argument("items", nargs=-1, type=click.Path(exists=True))
@click.option("--from", "from_dirs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help=_("folder of outbound items (repeatable)"))
@click.option("--list", "list_file", type=click.Path(exists=True, dir_okay=False),
              help=_("file listing items to pack, one path a line"))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help=_("folder for the disc images"))
@click.option("--medium", type=click.Choice(sorted(spec.MEDIA)), default="dvd", show_default=True,
              help=_("disc type; sets the capacity"))
@click.option("--medium-size", help=_("capacity in bytes (e.g. 700M), overrides --medium"))
@click.option("--headroom", default="5%", show_default=True,
              help=_("capacity kept free on every disc"))
@click.option("--key", "key_file", required=True, envvar="HUB_FERRY_KEY",
              type=click.Path(exists=True, dir_okay=False),
              help=_("signing key: Ed25519 private key (PEM) or shared HMAC secret file"))
@click.option("--sender", required=True, envvar="HUB_FERRY_SENDER",
              help=_("sender id written on every disc"))
@click.option("--sequence-file", default=str(VAR / "sequence.json"), show_default=True,
              envvar="HUB_FERRY_SEQUENCE", help=_("persistent batch counter"))
@click.option("--expires", default="7d", show_default=True,
              help=_("how long the discs may be imported (s, m, h, d, w)"))
@click.option("--no-udf", is_flag=True, help=_("ISO 9660 + Joliet only, without UDF"))
@click.option("--json", "as_json", is_flag=True, help=_("print the report as JSON"))
@_audit_options
def pack_command(items: tuple[str, ...], from_dirs: tuple[str, ...], list_file: str | None,
                 out_dir: str, medium: str, medium_size: str | None, headroom: str,
                 key_file: str, sender: str, sequence_file: str, expires: str, no_udf: bool,
                 as_json: bool, audit_path: str, audit_key: str | None) -> None:
    sources = [*items, *from_dirs]
    if list_file:
        lines = Path(list_file).read_text(encoding="utf-8-sig").splitlines()
        sources += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if not sources:
        raise BridgeError(_("nothing to pack: give items, --from or --list"))
    packer = FerryPacker(
        signer=sign.load_signer(key_file), sender=sender, sequence=SequenceFile(sequence_file),
        audit=_audit(audit_path, audit_key),
        medium_size=spec.parse_size(medium_size or medium),
        headroom=spec.parse_headroom(headroom), expires=spec.parse_duration(expires),
        udf=not no_udf, progress=RichProgress())
    report = packer.pack(collect(sources), out_dir)
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        _print_pack(report)


@ferry_group.command("import", help=_("Verify disc images and deliver what passes to the inbox."))
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--inbox", default=str(VAR / "inbox"), show_default=True,
              envvar="HUB_FERRY_INBOX", help=_("where verified batches are delivered"))
@click.option("--quarantine", default=str(VAR / "quarantine"), show_default=True,
              envvar="HUB_FERRY_QUARANTINE", help=_("where refused discs go, with a reason"))
@click.option("--ledger", default=str(VAR / "ledger.sqlite3"), show_default=True,
              envvar="HUB_FERRY_LEDGER", help=_("record of consumed batches (replay barrier)"))
@click.option("--key", "key_files", multiple=True, required=True, envvar="HUB_FERRY_KEY",
              type=click.Path(exists=True, dir_okay=False),
              help=_("sender's key: Ed25519 public key or shared HMAC secret (repeatable)"))
@click.option("--no-policy", is_flag=True, help=_("skip the content policy on payload files"))
@click.option("--json", "as_json", is_flag=True, help=_("print the report as JSON"))
@click.option("--publish", is_flag=True,
              help=_("publish what was delivered onto the hub as messages"))
@_config_option
@_audit_options
def import_command(images: tuple[str, ...], inbox: str, quarantine: str, ledger: str,
                   key_files: tuple[str, ...], no_policy: bool, as_json: bool, publish: bool,
                   config_path: str, audit_path: str, audit_key: str | None) -> None:
    audit = _audit(audit_path, audit_key)
    policy = None
    if not no_policy:
        from bdchub.bridge.policy import ContentPolicy

        policy = ContentPolicy(audit=audit)


    def importer(item_check=None) -> FerryImporter:  # noqa: ANN001
        return FerryImporter(verifiers=[sign.load_verifier(k) for k in key_files], audit=audit,
                             inbox=inbox, quarantine=quarantine, ledger=ledger, policy=policy,
                             progress=RichProgress(), item_check=item_check)
    if not publish:
        _finish(importer().import_images(images), as_json)
        return
    # The hub is opened first: a config that does not load must not cost a disc,
    # which the ledger consumes on import.
    from bdchub.bridge.publish import event_type_check, ferry_event_types, open_hub

    hub = open_hub(config_path)
    try:
        # A disc carrying a type the config does not allow is refused whole and
        # quarantined, as the ferry inbox of hub run does.
        report = importer(event_type_check(ferry_event_types(hub.config))).import_images(images)
        _show(report, as_json)
        _publish(hub, report.delivered, inbox, as_json)
        _raise_refused(report)
    finally:
        hub.close()


@ferry_group.command("publish", help=_("Publish batches already in the inbox onto the hub "
                                       "again (after a failed --publish)."))
@click.argument("batches", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--inbox", default=str(VAR / "inbox"), show_default=True,
              envvar="HUB_FERRY_INBOX", help=_("where verified batches are delivered"))
@_config_option
def publish_command(batches: tuple[str, ...], inbox: str, config_path: str) -> None:
    from bdchub.bridge.publish import open_hub, read_delivered_bag

    found = [read_delivered_bag(b) for b in batches]
    hub = open_hub(config_path)
    try:
        _publish(hub, found, inbox, as_json=False)
    finally:
        hub.close()


@ferry_group.command("verify", help=_("Verify disc images without importing them."))
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--key", "key_files", multiple=True, required=True, envvar="HUB_FERRY_KEY",
              type=click.Path(exists=True, dir_okay=False),
              help=_("sender's key: Ed25519 public key or shared HMAC secret (repeatable)"))
@click.option("--ledger", default=str(VAR / "ledger.sqlite3"), show_default=True,
              envvar="HUB_FERRY_LEDGER", help=_("read (never written) to report replays"))
@click.option("--json", "as_json", is_flag=True, help=_("print the report as JSON"))
@_audit_options
def verify_command(images: tuple[str, ...], key_files: tuple[str, ...], ledger: str,
                   as_json: bool, audit_path: str, audit_key: str | None) -> None:
    importer = FerryImporter(verifiers=[sign.load_verifier(k) for k in key_files],
                             audit=_audit(audit_path, audit_key), ledger=ledger,
                             progress=RichProgress())
    _finish(importer.verify_images(images), as_json)


@ferry_group.command("keygen", help=_("Create a ferry key (shared HMAC secret or Ed25519 pair)."))
@click.option("--type", "kind", type=click.Choice(["ed25519", "hmac"]), default="ed25519",
              show_default=True)
@click.option("--out", "prefix", required=True, help=_("path prefix of the key files"))
def keygen_command(kind: str, prefix: str) -> None:
    for path in sign.generate(kind, prefix):
        click.echo(str(path))


def _print_pack(report: PackReport) -> None:
    table = Table(title=_("{n} disc(s) packed for {sender}", n=len(report.discs),
                          sender=report.sender))
    for column in (_("disc"), _("sequence"), _("items"), _("payload bytes"), _("image bytes"),
                   _("image")):
        table.add_column(column)
    for d in report.discs:
        table.add_row(f"{d.disc_index}/{d.disc_count}", str(d.sequence), str(d.items),
                      f"{d.payload_bytes:,}", f"{d.image_size:,}", str(d.image))
    Console().print(table)


def _finish(report: ImportReport, as_json: bool) -> None:
    _show(report, as_json)
    _raise_refused(report)


def _show(report: ImportReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        _print_import(report)


def _raise_refused(report: ImportReport) -> None:
    refused = report.refused
    if refused:
        raise BridgeError(_("{n} of {total} image(s) refused: {names}", n=len(refused),
                            total=len(report.batches),
                            names=", ".join(os.path.basename(b.image) for b in refused)))


_STATUS = {"delivered": "green", "verified": "green", "refused": "red", "failed": "red"}


def _print_import(report: ImportReport) -> None:
    table = Table()
    for column in (_("image"), _("status"), _("sender"), _("sequence"), _("disc"), _("items")):
        table.add_column(column, overflow="fold")
    labels = {"delivered": _("delivered"), "verified": _("verified"), "refused": _("refused"),
              "failed": _("failed")}
    for b in report.batches:
        table.add_row(b.image.name, f"[{_STATUS[b.status]}]{labels[b.status]}[/]",
                      b.sender or "-", str(b.sequence or "-"), b.disc or "-", str(len(b.items)))
    console = Console()
    console.print(table)
    for b in report.batches:
        lines = []
        if b.reason:
            lines.append(b.reason)
        if b.quarantine:
            lines.append(_("quarantined in {path}", path=str(b.quarantine)))
        if b.delivered_to:
            lines.append(_("delivered to {path}", path=str(b.delivered_to)))
        lines.extend(b.notes)
        if lines:
            console.print(f"[bold]{b.image.name}[/]", highlight=False)
            for line in lines:
                console.print("  " + line, highlight=False, markup=False)
    for sender, missing in report.gaps.items():
        console.print(_("sender {sender}: sequences {missing} not received yet",
                        sender=sender, missing=ranges(missing)), highlight=False)
    for group, discs in report.incomplete_sets.items():
        console.print(_("disc set {group}: discs {discs} not imported yet", group=group[:8],
                        discs=", ".join(map(str, discs))), highlight=False)
