"""Personal data at rest: store columns that hold whole messages are sealed with SM4-GCM.

Parked messages, dead letters, correlation state, the correlation inbox,
verification records and step details carry applicants' names and ID numbers
(BRIEF section 7: encrypted at rest). ``core.store`` seals those columns with a
``Sealer`` on the way in and opens them on the way out, so callers see plain
text and a copied database file or backup shows none.

Sealed text is ``sm4g1:`` + base64(key id (4 bytes) | nonce (12) | ciphertext |
tag (16)); the column's name is bound in as associated data, so a value moved
to another column does not open. Text without the prefix (rows written before
sealing was on) is returned as it is.

The key (128 bits, SM4, GB/T 32907) comes from, in order:

1. ``BDCHUB_DATA_KEY``: 32 hex digits (from the deployment's secret store);
2. ``store.key_file`` in the config: a file holding those 32 hex digits;
3. ``store.key`` in the hub's data folder (``HUB_DATA_DIR``, default ``data/``
   beside the config), created on first start (mode 0600) when
   neither is given -- by a starting hub only: a one-shot command (``hub
   trace``, ``hub dlq``, ``hub send``, ``hub audit verify``) that finds no key
   says where it looked instead of making one, since a new key cannot open
   what the hub sealed. It protects copies of the database; a deployment whose
   store is shared by several hosts sets 1. or 2. to the same key on each.

Other keys are derived from the data key with HKDF-SHA256, each under its own
``info`` string, so none of them is the data key and none gives the others
away: the applicant lookup key (``LOOKUP_INFO``, ``routes.progress``) and the
audit chain's key (``AUDIT_INFO``, unless ``BDCHUB_AUDIT_KEY`` is set).

    sealer = Sealer(bytes.fromhex(hex_key))
    text = sealer.seal("dead_letters.envelope", '{"body": …}')
    sealer.open("dead_letters.envelope", text) == '{"body": …}'
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import ConfigError, StoreError
from .i18n import _

PREFIX = "sm4g1:"
KEY_ENV = "BDCHUB_DATA_KEY"
AUDIT_KEY_ENV = "BDCHUB_AUDIT_KEY"
KEY_FILE = "store.key"
#: HKDF ``info`` of each key derived from the data key; a new purpose gets a new string.
LOOKUP_INFO = b"bdc-hub/applicant-lookup/v1"
AUDIT_INFO = b"bdc-hub/audit-chain/v1"
_PROCESS_KEY = os.urandom(16)
_NONCE = 12
_TAG = 16
_KEY_ID = 4


class Sealer:
    """Seals and opens column text with one SM4 key."""

    def __init__(self, key: bytes):
        if len(key) != 16:
            raise ConfigError(_("the data key must be 128 bits (32 hex digits), not {bits}",
                                bits=len(key) * 8))
        self._key = key
        # Names the key in every sealed value: a wrong key is told apart from tampering.
        self.key_id = hashlib.sha256(b"bdc-hub data key\n" + key).digest()[:_KEY_ID]

    def seal(self, column: str, text: str) -> str:
        nonce = os.urandom(_NONCE)
        encryptor = Cipher(algorithms.SM4(self._key), modes.GCM(nonce)).encryptor()
        encryptor.authenticate_additional_data(column.encode())
        sealed = encryptor.update(text.encode("utf-8")) + encryptor.finalize()
        raw = self.key_id + nonce + sealed + encryptor.tag
        return PREFIX + base64.b64encode(raw).decode("ascii")

    def derive(self, info: bytes, length: int = 32) -> bytes:
        """A key for another purpose, named by ``info`` (HKDF-SHA256 over the data key)."""
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=None,
                    info=info).derive(self._key)

    def open(self, column: str, text: str) -> str:
        if not text.startswith(PREFIX):
            return text  # written before sealing was on
        try:
            raw = base64.b64decode(text[len(PREFIX):], validate=True)
        except ValueError:
            raise StoreError(_("store column {column}: a sealed value is damaged",
                               column=column)) from None
        if len(raw) < _KEY_ID + _NONCE + _TAG:
            raise StoreError(_("store column {column}: a sealed value is damaged",
                               column=column))
        key_id, nonce = raw[:_KEY_ID], raw[_KEY_ID:_KEY_ID + _NONCE]
        body, tag = raw[_KEY_ID + _NONCE:-_TAG], raw[-_TAG:]
        if key_id != self.key_id:
            raise StoreError(_("store column {column}: sealed with another data key "
                               "(id {found}, this one is {ours}); set {env} to the key "
                               "the store was written with", column=column,
                               found=key_id.hex(), ours=self.key_id.hex(), env=KEY_ENV))
        decryptor = Cipher(algorithms.SM4(self._key), modes.GCM(nonce, tag)).decryptor()
        decryptor.authenticate_additional_data(column.encode())
        try:
            return (decryptor.update(body) + decryptor.finalize()).decode("utf-8")
        except InvalidTag:
            raise StoreError(_("store column {column}: a sealed value was altered",
                               column=column)) from None


def _parse_key(text: str, where: str) -> bytes:
    value = text.strip()
    try:
        key = bytes.fromhex(value)
    except ValueError:
        key = b""
    if len(key) != 16:
        raise ConfigError(_("{where}: the data key must be 32 hex digits", where=where))
    return key


def load_sealer(config: Mapping[str, Any], default_dir: Path, *,
                create: bool = True) -> Sealer:
    """The hub's sealer: ``BDCHUB_DATA_KEY``, else ``store.key_file``, else the key
    file in ``default_dir``, made there on first use only when ``create`` (a
    starting hub); a one-shot command passes ``create=False`` and gets a
    ConfigError naming every place it looked."""
    env = os.environ.get(KEY_ENV)
    if env:
        return Sealer(_parse_key(env, KEY_ENV))
    store = config.get("store") or {}
    configured = store.get("key_file")
    if configured:
        path = Path(configured).expanduser()
        if not path.is_absolute():
            path = Path(config.get("__dir__") or os.getcwd()) / path
        try:
            return Sealer(_parse_key(path.read_text(encoding="ascii"), str(path)))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(_("store.key_file {path} cannot be read: {error}", path=path,
                                error=getattr(exc, "strerror", None) or exc)) from exc
    path = default_dir / KEY_FILE
    if not create and not path.exists():
        raise ConfigError(_(
            "no data key: {env} is not set, the config has no store.key_file and {path} "
            "does not exist. Point HUB_DATA_DIR at the data folder of the hub that wrote "
            "the store, or set store.key_file or {env} to its key; this command makes no "
            "key, since a new one cannot open what the hub sealed", env=KEY_ENV, path=path))
    try:
        return Sealer(_key_file(path))
    except (OSError, UnicodeDecodeError) as exc:  # the hub does not start without it
        raise ConfigError(_("the data key {path} can be neither read nor made: {error}; "
                            "set HUB_DATA_DIR to a folder the hub may write, or "
                            "store.key_file or {env}", path=path, env=KEY_ENV,
                            error=getattr(exc, "strerror", None) or exc)) from exc


def process_sealer() -> Sealer:
    """A key of this process alone, for what lives and dies with it: the lookup keys
    of an in-memory store, the audit chain of a hub that has no data key (tests)."""
    return Sealer(_PROCESS_KEY)


def audit_key(sealer: Sealer | None) -> bytes:
    """The key of the hub's audit chain: ``BDCHUB_AUDIT_KEY`` (at least 16
    characters, used as given), else derived from ``sealer``'s data key (never
    the data key itself), or from this process's key without one."""
    env = os.environ.get(AUDIT_KEY_ENV)
    if env:
        if len(env.strip()) < 16:
            raise ConfigError(_("{env} must be at least 16 characters", env=AUDIT_KEY_ENV))
        return env.strip().encode("utf-8")
    return (sealer or process_sealer()).derive(AUDIT_INFO)


def load_audit_key(config: Mapping[str, Any], default_dir: Path, *,
                   create: bool = True) -> bytes:
    """``audit_key`` of the hub ``config`` describes, its data key looked for as
    ``load_sealer`` does (not at all when ``BDCHUB_AUDIT_KEY`` is set)."""
    if os.environ.get(AUDIT_KEY_ENV):
        return audit_key(None)
    return audit_key(load_sealer(config, default_dir, create=create))


def _key_file(path: Path) -> bytes:
    """The key in ``path``, created (0600, exclusively: two processes starting
    together agree on one key) if it is not there yet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _attempt in range(50):  # the creator may not have written it yet
            text = path.read_text(encoding="ascii")
            if len(text.strip()) == 32:
                return _parse_key(text, str(path))
            time.sleep(0.02)
        return _parse_key(path.read_text(encoding="ascii"), str(path))
    key = os.urandom(16)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(key.hex() + "\n")
        out.flush()
        os.fsync(out.fileno())
    return key
