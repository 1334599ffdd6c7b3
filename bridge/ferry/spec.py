"""What a ferry disc is: names, fields, media, and the rules every path obeys.

One disc is one BagIt bag (RFC 8493) at the root of an ISO 9660 image with
Joliet (the names people read, Chinese included) and UDF 2.60 (for burning
tools and readers that prefer it). Each disc is also one *batch*: it carries
its own sequence number, expiry and signature, so it can be verified and
delivered on its own. A pack run that needs several discs makes a *set*
(``Bag-Group-Identifier`` plus ``Bag-Count: i of n``); see README.md.

Both sides apply the same path rules: the packer so that it never burns a
disc the importer would refuse, the importer because disc contents are
untrusted.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta

from bdchub.core.errors import BridgeError, PolicyError
from bdchub.core.i18n import _

FORMAT = "bdc-hub-ferry/1"
BAGIT_VERSION = "1.0"

BAGIT_TXT = "bagit.txt"
BAG_INFO = "bag-info.txt"
MANIFEST = "manifest-sha256.txt"
TAGMANIFEST = "tagmanifest-sha256.txt"
SIGNATURE = "ferry-signature.txt"
TAG_FILES = (BAGIT_TXT, BAG_INFO, MANIFEST, TAGMANIFEST, SIGNATURE)
# Tag files the tag manifest must cover; the signature signs the tag manifest.
COVERED_TAG_FILES = frozenset({BAGIT_TXT, BAG_INFO, MANIFEST})
MAX_TAG_FILE = 64 * 1024 * 1024
MAX_MESSAGE = 64 * 1024 * 1024  # a larger .json travels as a plain file

PAYLOAD_DIR = "data"
MESSAGES = "messages"
FILES = "files"
KIND_MESSAGE = "message"
KIND_FILE = "file"
KIND_BY_FOLDER = {MESSAGES: KIND_MESSAGE, FILES: KIND_FILE}

# bag-info.txt fields written by the packer and required by the importer.
F_FORMAT = "Ferry-Format"
F_SENDER = "Ferry-Sender"
F_BATCH = "Ferry-Batch-Id"
F_SEQUENCE = "Ferry-Sequence"
F_CREATED = "Ferry-Created"
F_EXPIRES = "Ferry-Expires"
F_GROUP = "Bag-Group-Identifier"
F_COUNT = "Bag-Count"
F_OXUM = "Payload-Oxum"
REQUIRED_INFO = (F_FORMAT, F_SENDER, F_BATCH, F_SEQUENCE, F_CREATED, F_EXPIRES,
                 F_GROUP, F_COUNT, F_OXUM)

SECTOR = 2048

# Recordable capacity in bytes of single-sided media.
MEDIA: dict[str, int] = {
    "cd": 737_280_000,
    "dvd": 4_707_319_808,
    "dvd-dl": 8_543_666_176,
    "bd": 25_025_314_816,
}
DEFAULT_HEADROOM = 0.05

SENDER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Joliet refuses * / : ; ? \ ; Windows (where an inbox may be shared) also < > " |.
_FORBIDDEN_CHARS = set('\\/:*?"<>|;')
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                     *(f"lpt{i}" for i in range(10))}
JOLIET_MAX_NAME = 64  # UTF-16 code units per component
MAX_DEPTH = 32


def check_component(name: str) -> str | None:
    """Why ``name`` cannot be one component of a payload path, or None."""
    if name in ("", ".", ".."):
        return _("empty, '.' or '..' component")
    bad = sorted({ch for ch in name if ch in _FORBIDDEN_CHARS
                  or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn")})
    if bad:
        return _("forbidden character {chars}", chars=" ".join(repr(c) for c in bad))
    if name[-1] in ". ":
        return _("ends with a dot or a space")
    if name.split(".")[0].lower() in _WINDOWS_RESERVED:
        return _("reserved device name")
    if len(name.encode("utf-16-be")) // 2 > JOLIET_MAX_NAME:
        return _("longer than {n} characters", n=JOLIET_MAX_NAME)
    return None


def check_payload_path(path: str) -> None:
    """Refuse a bag path that is not a safe ``data/messages/…`` or ``data/files/…`` path.

    Raises PolicyError (quarantine) naming the path and the rule it breaks.
    """
    parts = path.split("/")
    reason = None
    if len(parts) < 3 or parts[0] != PAYLOAD_DIR or parts[1] not in KIND_BY_FOLDER:
        reason = _("not under data/messages/ or data/files/")
    elif len(parts) > MAX_DEPTH:
        reason = _("deeper than {n} levels", n=MAX_DEPTH)
    else:
        for part in parts:
            reason = check_component(part)
            if reason:
                break
    if reason is None and parts[1] == MESSAGES and not parts[-1].lower().endswith(".json"):
        reason = _("a message must be a .json file")
    if reason:
        raise PolicyError(_("unsafe path {path!r}: {reason}", path=path, reason=reason))


def fold(path: str) -> str:
    """The key under which two names collide on a case-insensitive file system."""
    return unicodedata.normalize("NFC", path).casefold()


def kind_of(path: str) -> str:
    return KIND_BY_FOLDER[path.split("/")[1]]


def check_sender(sender: str) -> str:
    if not SENDER_RE.match(sender or ""):
        raise BridgeError(_("invalid sender id {sender!r}: use 1-64 letters, digits, '_', '.', '-'",
                            sender=sender))
    return sender


def parse_duration(text: str) -> timedelta:
    """``7d``, ``12h``, ``30m``, ``90s``, ``2w`` -> timedelta (must be positive)."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", str(text).lower())
    if not m or int(m.group(1)) <= 0:
        raise BridgeError(_("invalid duration {text!r}: use a number with s, m, h, d or w, e.g. 7d",
                            text=text))
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[m.group(2)]
    return timedelta(**{unit: int(m.group(1))})


def parse_size(text: str | int) -> int:
    """Bytes from ``737280000``, ``700M``, ``4.7G``, ``64K`` or a medium name (binary units)."""
    if isinstance(text, int):
        return text
    raw = str(text).strip().lower()
    if raw in MEDIA:
        return MEDIA[raw]
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?", raw)
    if not m:
        raise BridgeError(_("invalid size {text!r}: use bytes or a number with K, M, G",
                            text=text))
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2)]
    return int(float(m.group(1)) * scale)


def parse_headroom(text: str | float) -> float:
    """``5%`` or ``0.05`` -> 0.05; must leave some room on the disc."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < 0.9:
        raise BridgeError(_("invalid headroom {text!r}: use a percentage such as 5%", text=text))
    return value


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    moment = datetime.strptime(text.strip(), "%Y-%m-%dT%H:%M:%SZ")
    return moment.replace(tzinfo=UTC)
