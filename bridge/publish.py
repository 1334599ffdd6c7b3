"""Hand what crossed the bridge to the hub as messages.

Both receiving sides end in an inbox: the ferry importer delivers verified
bags (``ImportReport`` / ``DeliveredItem``), the diode receiver delivers
verified objects (``DeliveredObject``). This module turns them into envelopes
and publishes them:

- a JSON message that is itself an envelope (``type``, ``tenant``, ``body``)
  is published as that envelope, with its own id, so a message that crosses
  twice is absorbed by the engine's idempotency;
- any other JSON message is wrapped as ``bridge.message_received`` (the
  message is the body);
- a file becomes ``bridge.file_received`` whose body says where it lies
  (inbox-relative), its size, SHA-256, content kind and origin.

Ids are derived from the origin (ferry batch id or diode object ref), the
item's name and SHA-256, anchored on the origin's creation time so they still
sort by time: publishing the same item again, after a crash or by hand, never
makes a second message. Provenance goes into ``x-bridge-*`` headers.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bdchub.core.envelope import TENANT_PATTERN, Envelope
from bdchub.core.errors import BridgeError, HubError, MessageError, PolicyError
from bdchub.core.i18n import _
from bdchub.core.ids import derive_id

from .diode.inbound import DeliveredObject, InboxWatcher
from .ferry import spec
from .ferry.importer import DELIVERED, BatchResult, DeliveredItem, ImportReport

log = logging.getLogger("bdchub.bridge")

MESSAGE_RECEIVED = "bridge.message_received"
FILE_RECEIVED = "bridge.file_received"

H_VIA = "x-bridge-via"  # ferry | diode
H_ORIGIN = "x-bridge-origin"  # ferry batch id or diode object ref
H_SENDER = "x-bridge-sender"
H_ITEM = "x-bridge-item"  # the item's path in the bag, or the diode object's name

# Files that came through the diode are linked here (inside the diode inbox)
# before their message is published: the watcher moves or deletes the
# original once acknowledged, the published path must stay valid.
PUBLISHED = ".published"

#: ``bridge.ferry_inbox``: the folder ``bridge.ferry_inbox.FerryWatch`` watches.
FERRY_INBOX: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["path", "key"],
    "description": "import the disc images and unpacked bags that arrive in this folder, "
                   "publish what passes, quarantine what fails",
    "properties": {
        "path": {"type": "string", "minLength": 1,
                 "description": "the folder where discs arrive (relative to this file)"},
        "key": {"oneOf": [{"type": "string", "minLength": 1},
                          {"type": "array", "minItems": 1,
                           "items": {"type": "string", "minLength": 1}}],
                "description": "the sender's key file(s): Ed25519 public key (PEM) or "
                               "shared HMAC secret"},
        "inbox": {"type": "string", "minLength": 1,
                  "description": "where verified batches are delivered "
                                 "(default: ferry/inbox in the hub's data folder)"},
        "quarantine": {"type": "string", "minLength": 1,
                       "description": "where refused discs go, with the reason "
                                      "(default: ferry/quarantine in the data folder)"},
        "ledger": {"type": "string", "minLength": 1,
                   "description": "record of consumed batches, the replay barrier "
                                  "(default: ferry/ledger.sqlite3 in the data folder)"},
        "audit": {"type": "string", "minLength": 1,
                  "description": "hash-chained audit log of the imports "
                                 "(default: ferry/audit.jsonl in the data folder)"},
        "policy": {"type": "boolean",
                   "description": "apply the content policy to payload files (default true)"},
        "poll_interval": {"type": "number", "exclusiveMinimum": 0,
                          "description": "seconds between looks at the folder"},
        "keep_processed": {"type": "boolean",
                           "description": "keep imported images under .processed/ "
                                          "(default true)"},
        "event_types": {"type": "array", "minItems": 1, "uniqueItems": True,
                        "items": {"type": "string", "minLength": 1},
                        "description": "the message types a disc may publish (default: "
                                       "bridge.message_received, bridge.file_received); a "
                                       "disc with any other is refused and quarantined"},
        "enabled": {"type": "boolean"},
    },
}

#: What a disc may publish unless ``bridge.ferry_inbox.event_types`` says otherwise: what
#: the shipped flows take from the internal network (review results arrive as plain
#: messages, wrapped). A disc that is an envelope of any other type would otherwise
#: publish it as the hub's own event, past the ``owns`` rule the inbound API keeps.
FERRY_EVENT_TYPES: tuple[str, ...] = ("bridge.message_received", "bridge.file_received")

#: The ``bridge:`` section of config.yaml (registered by ``bridge.parts``).
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "the receiving side of the bridge, watched by hub run (diode inbox, "
                   "ferry inbox)",
    "properties": {
        "diode_inbox": {
            "type": "object", "additionalProperties": False, "required": ["path"],
            "description": "publish what the diode receiver delivers into this inbox",
            "properties": {
                "path": {"type": "string", "minLength": 1,
                         "description": "the receiver's --inbox (relative to this file)"},
                "poll_interval": {"type": "number", "exclusiveMinimum": 0,
                                  "description": "seconds between looks at the inbox"},
                "keep_processed": {"type": "boolean",
                                   "description": "keep published objects under .processed/"},
                "enabled": {"type": "boolean"},
            },
        },
        "ferry_inbox": FERRY_INBOX,
    },
}

Publish = Callable[[Envelope], None]


def anchor(seconds: float) -> str:
    """A UUIDv7 carrying only a time: the parent of derived ids, so they sort by it."""
    ms = max(0, int(seconds * 1000)) & ((1 << 48) - 1)
    return str(uuid.UUID(int=(ms << 80) | (0x7 << 76) | (0b10 << 62)))


def item_id(created: float, via: str, origin: str, name: str, sha256: str) -> str:
    return derive_id(anchor(created), "bridge", via, origin, name, sha256)


def _looks_like_envelope(message: Mapping[str, Any]) -> bool:
    return (isinstance(message.get("type"), str) and isinstance(message.get("tenant"), str)
            and isinstance(message.get("body"), Mapping))


def published_type(item: DeliveredItem) -> str:
    """The type the ferry item ``item`` is published as (``ferry_item_envelope``)."""
    if item.kind != spec.KIND_MESSAGE or item.message is None:
        return FILE_RECEIVED
    if _looks_like_envelope(item.message):
        try:
            return Envelope.from_dict({**item.message, "id": item.message.get("id")
                                       or "00000000-0000-7000-8000-000000000000"}).type
        except MessageError:
            pass  # wrapped, as message_envelope does
    return MESSAGE_RECEIVED


def ferry_event_types(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The event types a disc may publish under ``config`` (``bridge.ferry_inbox``)."""
    block = (config.get("bridge") or {}).get("ferry_inbox") or {}
    return tuple(block.get("event_types") or FERRY_EVENT_TYPES)


def event_type_check(allowed: Iterable[str]) -> Callable[[DeliveredItem], None]:
    """A ``FerryImporter`` item check refusing an item published as a type not in
    ``allowed``: the whole disc is then refused and quarantined with the reason."""
    allowed = frozenset(allowed)

    def check(item: DeliveredItem) -> None:
        found = published_type(item)
        if found not in allowed:
            raise PolicyError(_("{path} would publish {type}, which a disc may not carry "
                                "(bridge.ferry_inbox.event_types: {allowed})",
                                path=item.relpath, type=found[:80],
                                allowed=", ".join(sorted(allowed))))
    return check


def message_envelope(message: Mapping[str, Any], *, message_id: str, tenant: str, source: str,
                     headers: Mapping[str, str]) -> Envelope:
    """``message`` as it is if it is an envelope, else wrapped as ``bridge.message_received``."""
    if _looks_like_envelope(message):
        try:
            env = Envelope.from_dict({**message, "id": message.get("id") or message_id})
        except MessageError as exc:
            # Not a usable envelope: hand it on wrapped rather than lose it.
            log.warning("bridge message %s is not a valid envelope (%s); wrapped", message_id,
                        exc)
        else:
            return env.with_headers(**headers)
    business_no = message.get("business_no")
    return Envelope(type=MESSAGE_RECEIVED, tenant=tenant, body=dict(message),
                    business_no=business_no if isinstance(business_no, str) else "",
                    source=source, headers=dict(headers), id=message_id)


# -- ferry ---------------------------------------------------------------------

def ferry_item_envelope(item: DeliveredItem, *, created: datetime, inbox: str | os.PathLike[str],
                        tenant: str) -> Envelope:
    """The envelope of one delivered ferry item (a pure function of the item)."""
    message_id = item_id(created.timestamp(), "ferry", item.batch_id, item.relpath, item.sha256)
    headers = {H_VIA: "ferry", H_ORIGIN: item.batch_id, H_SENDER: item.sender,
               H_ITEM: item.relpath}
    source = f"ferry:{item.sender}"
    if item.kind == spec.KIND_MESSAGE and item.message is not None:
        return message_envelope(item.message, message_id=message_id, tenant=tenant,
                                source=source, headers=headers)
    body = {"path": _relative(item.path, inbox), "name": item.relpath.rsplit("/", 1)[-1],
            "size": item.size, "sha256": item.sha256, "kind": item.content_type or item.kind,
            "via": "ferry", "batch_id": item.batch_id, "sender": item.sender,
            "sequence": item.sequence, "item": item.relpath}
    return Envelope(type=FILE_RECEIVED, tenant=tenant, body=body, source=source,
                    headers=headers, id=message_id)


def ferry_envelopes(batches: ImportReport | Iterable[BatchResult], *,
                    inbox: str | os.PathLike[str], tenant: str) -> list[Envelope]:
    """Envelopes of every item of the delivered batches (refused ones carry none)."""
    found = batches.batches if isinstance(batches, ImportReport) else batches
    out = []
    for batch in found:
        if batch.status != DELIVERED or not batch.created:
            continue
        created = spec.parse_time(batch.created)
        out += [ferry_item_envelope(i, created=created, inbox=inbox, tenant=tenant)
                for i in batch.items]
    return out


def read_delivered_bag(bag_dir: str | os.PathLike[str]) -> BatchResult:
    """A batch already in the ferry inbox, read back so it can be published again.

    The bag was verified when it was imported; this reads its tag files and
    messages, not the signature. The content policy's verdict is not kept, so
    files come back as kind ``file`` (their ids do not depend on it)."""
    import json

    from .ferry import bag

    folder = Path(bag_dir)
    try:
        payload = bag.parse_manifest((folder / spec.MANIFEST).read_bytes(), spec.MANIFEST)
        header, _reader = bag.read_with_bagit(folder, payload)
        items = []
        for relpath, sha in payload.items():
            path = folder.joinpath(*relpath.split("/"))
            kind = spec.kind_of(relpath)
            message = None
            if kind == spec.KIND_MESSAGE:
                message = json.loads(path.read_text(encoding="utf-8"))
            items.append(DeliveredItem(path=path, relpath=relpath, kind=kind,
                                       size=path.stat().st_size, sha256=sha,
                                       batch_id=header.batch_id, sender=header.sender,
                                       sequence=header.sequence, message=message))
    except (OSError, ValueError) as exc:
        raise BridgeError(_("{path} is not a delivered ferry batch: {error}",
                            path=str(folder), error=exc)) from exc
    return BatchResult(image=folder, status=DELIVERED, batch_id=header.batch_id,
                       sender=header.sender, sequence=header.sequence,
                       created=spec.format_time(header.created), delivered_to=folder,
                       items=items)


# -- diode ---------------------------------------------------------------------

def _sha256_of(obj: DeliveredObject) -> str:
    if str(obj.meta.get("hash", "sha256")) == "sha256" and obj.digest:
        return obj.digest
    h = hashlib.sha256()
    with obj.path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _created(obj: DeliveredObject) -> float:
    for key in ("created", "received"):
        with contextlib.suppress(TypeError, ValueError):
            return float(obj.meta[key])
    return 0.0


def diode_envelopes(obj: DeliveredObject, *, inbox: str | os.PathLike[str], tenant: str,
                    link: bool = True) -> list[Envelope]:
    """The envelopes of one delivered diode object.

    A ``batch`` holding a JSON object or a list of objects gives one message
    per object; anything else (a file, or a batch that is not JSON objects)
    gives one ``bridge.file_received``. With ``link``, a file is first linked
    under ``.published/`` in the inbox, where the message says it is."""
    sha = _sha256_of(obj)
    created = _created(obj)
    sender = str(obj.meta.get("sender") or "")
    headers = {H_VIA: "diode", H_ORIGIN: obj.id, H_SENDER: sender, H_ITEM: obj.name}
    source = f"diode:{sender}" if sender else "diode"
    if obj.kind == "batch":
        try:
            data = obj.messages()
        except BridgeError:
            data = None
        batch = data if isinstance(data, list) else [data]
        if batch and all(isinstance(m, dict) for m in batch):
            return [message_envelope(
                m, message_id=item_id(created, "diode", obj.id, f"{obj.name}#{i}", sha),
                tenant=tenant, source=source, headers=headers) for i, m in enumerate(batch)]
    message_id = item_id(created, "diode", obj.id, obj.name, sha)
    path = _link(obj, Path(inbox), message_id) if link else obj.path
    body = {"path": _relative(path, inbox), "name": obj.name, "size": obj.size or
            path.stat().st_size, "sha256": sha, "kind": str(obj.meta.get("policy_kind") or
                                                            obj.kind),
            "via": "diode", "session": obj.id, "sender": sender}
    return [Envelope(type=FILE_RECEIVED, tenant=tenant, body=body, source=source,
                     headers=headers, id=message_id)]


def _link(obj: DeliveredObject, inbox: Path, message_id: str) -> Path:
    """Hard-link (or copy) the object where its message will say it is; idempotent."""
    dest = inbox / PUBLISHED / message_id / obj.path.name
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(obj.path, dest)
    except OSError:
        import shutil

        tmp = dest.with_name(f".{dest.name}.part")
        shutil.copyfile(obj.path, tmp)
        os.replace(tmp, dest)
    return dest


def _relative(path: Path, inbox: str | os.PathLike[str]) -> str:
    root = Path(inbox)
    for a, b in ((path, root), (path.resolve(), root.resolve())):
        with contextlib.suppress(ValueError):
            return a.relative_to(b).as_posix()
    return path.as_posix()


# -- publishing ----------------------------------------------------------------

class BridgePublisher:
    """Publishes bridge deliveries through ``publish`` (usually ``Hub.publish``)."""

    def __init__(self, publish: Publish, tenant: str):
        if not TENANT_PATTERN.match(tenant or ""):
            raise BridgeError(_("publishing needs the hub's tenant (6-digit code) in the config"))
        self.publish = publish
        self.tenant = tenant

    @classmethod
    def for_hub(cls, hub: Any) -> BridgePublisher:
        return cls(hub.publish, hub.tenant)

    def publish_import(self, batches: ImportReport | Iterable[BatchResult],
                       inbox: str | os.PathLike[str], *,
                       allowed: Iterable[str] | None = None) -> list[Envelope]:
        """Publish every item of ``batches``; with ``allowed``, nothing at all when an
        item would publish a type it does not name (``PolicyError``)."""
        envelopes = ferry_envelopes(batches, inbox=inbox, tenant=self.tenant)
        if allowed is not None:
            allowed = frozenset(allowed)
            refused = sorted({env.type for env in envelopes if env.type not in allowed})
            if refused:
                raise PolicyError(_("a disc may not carry {types} (bridge.ferry_inbox."
                                    "event_types: {allowed}): nothing published",
                                    types=", ".join(t[:80] for t in refused),
                                    allowed=", ".join(sorted(allowed))))
        for env in envelopes:
            self.publish(env)
        return envelopes

    def publish_object(self, obj: DeliveredObject, inbox: str | os.PathLike[str]
                       ) -> list[Envelope]:
        envelopes = diode_envelopes(obj, inbox=inbox, tenant=self.tenant)
        for env in envelopes:
            self.publish(env)
        return envelopes


@dataclass
class PassResult:
    objects: int = 0
    messages: int = 0
    error: str | None = None
    left: list[str] = field(default_factory=list)


class InboxPublisher:
    """Publishes what the diode delivered into ``inbox``; acknowledges each object
    only after all of its messages were published (at-least-once: an object
    whose publishing failed stays for the next pass, and its ids do not change)."""

    def __init__(self, inbox: str | os.PathLike[str], publisher: BridgePublisher, *,
                 keep_processed: bool = True):
        self.inbox = Path(inbox)
        self.publisher = publisher
        self.watcher = InboxWatcher(self.inbox, keep_processed=keep_processed)

    def publish_pending(self) -> PassResult:
        """One pass over the inbox, oldest first; stops at the first failure so the
        order of what crossed is kept."""
        result = PassResult()
        pending = self.watcher.poll()
        for i, obj in enumerate(pending):
            try:
                sent = self.publisher.publish_object(obj, self.inbox)
            except (HubError, OSError) as exc:
                result.error = str(exc) or type(exc).__name__
                result.left = [o.name for o in pending[i:]]
                log.warning("diode inbox %s: %s not published, retried next pass: %s",
                            self.inbox, obj.name, result.error)
                return result
            self.watcher.ack(obj)
            result.objects += 1
            result.messages += len(sent)
        return result

    def run(self, stop: threading.Event, interval: float = 1.0) -> PassResult:
        """Publish until ``stop`` is set; a last pass after it. Returns the totals."""
        total = PassResult()
        while True:
            last = stop.is_set()
            try:
                one = self.publish_pending()
            except Exception as exc:  # noqa: BLE001 - a long-running watcher must survive
                log.exception("diode inbox %s: unexpected failure; retried next pass", self.inbox)
                one = PassResult(error=str(exc) or type(exc).__name__, left=["?"])
            total.objects += one.objects
            total.messages += one.messages
            total.error, total.left = one.error, one.left
            if last:
                return total
            stop.wait(interval)


def open_hub(config_path: str | os.PathLike[str]) -> Any:
    """A hub that only publishes (no route runs here): ``Hub.from_config`` without
    connectors. The caller closes it."""
    from bdchub.core.config import load
    from bdchub.routes.runtime import Hub

    # A one-shot command never makes a data key: one made here could not open
    # what the running hub sealed (and its messages could not be opened there).
    return Hub.from_config(load(config_path), build_connectors=False, create_key=False)


class Watch:
    """A folder looked at from a daemon thread for as long as the hub runs
    (``hub run``): subclasses say what one run does with ``run(stop)``."""

    thread_name = "bridge-watch"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self, stop: threading.Event) -> None:
        raise NotImplementedError

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, args=(self._stop,),
                                        name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Asks the thread to stop and waits up to ``timeout`` for the work under way."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


class InboxWatch(Watch):
    """``bridge.diode_inbox`` of the config: publishes the inbox from a thread for
    as long as the hub runs (``hub run``)."""

    thread_name = "diode-inbox"

    def __init__(self, publisher: InboxPublisher, interval: float = 1.0):
        super().__init__()
        self.publisher = publisher
        self.interval = interval

    @classmethod
    def from_config(cls, config: Mapping[str, Any], hub: Any) -> InboxWatch | None:
        block = (config.get("bridge") or {}).get("diode_inbox")
        if not block or not block.get("enabled", True):
            return None
        path = Path(str(block["path"])).expanduser()
        if not path.is_absolute():
            path = Path(config.get("__dir__") or os.getcwd()) / path
        publisher = InboxPublisher(path, BridgePublisher.for_hub(hub),
                                   keep_processed=bool(block.get("keep_processed", True)))
        return cls(publisher, float(block.get("poll_interval", 1.0)))

    def run(self, stop: threading.Event) -> None:
        self.publisher.run(stop, self.interval)
