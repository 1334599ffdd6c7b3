"""Operators' passwords: the policy, and argon2id hashes (argon2-cffi).

The policy (``check_policy``) is the 等保 level 3 complexity rule (GB/T
22239-2019 8.1.4.1 a: 口令具有复杂度要求), made concrete:

- at least ``MIN_LENGTH`` (12) characters and at most ``MAX_LENGTH`` (256);
- at least three of the four kinds: upper-case letters, lower-case letters,
  digits, other characters (punctuation, spaces, Chinese …);
- not containing the account's name (in any case), nor the name reversed.

``generate`` draws a password meeting the policy (the console's reset shows it
once). Only the argon2id hash is stored (``$argon2id$v=19$m=…``: salt and parameters
travel in it). Verifying is argon2's own comparison; an unknown account is
verified against a hash of nothing so it takes as long as a known one, and a
hash made with weaker parameters than today's is replaced at the next login.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from bdchub.core.errors import ConfigError
from bdchub.core.i18n import _

MIN_LENGTH = 12
MAX_LENGTH = 256
KINDS_NEEDED = 3


def check_policy(password: str, username: str) -> None:
    """Raise ``ConfigError`` (translated) when ``password`` breaks the policy."""
    if len(password) < MIN_LENGTH:
        raise ConfigError(_("the password must have at least {n} characters", n=MIN_LENGTH))
    if len(password) > MAX_LENGTH:
        raise ConfigError(_("the password must have at most {n} characters", n=MAX_LENGTH))
    kinds = sum((any(c.isupper() for c in password), any(c.islower() for c in password),
                 any(c.isdigit() for c in password),
                 any(not c.isalnum() or not c.isascii() for c in password)))
    if kinds < KINDS_NEEDED:
        raise ConfigError(_("the password must mix at least three of: upper-case letters, "
                            "lower-case letters, digits, other characters"))
    folded, name = password.casefold(), username.casefold()
    if name and (name in folded or name[::-1] in folded):
        raise ConfigError(_("the password must not contain the account name"))


#: Letters and digits read back without confusion (no 0/O, 1/l/I).
READABLE = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"


def generate(username: str) -> str:
    """A random password meeting the policy, for a security administrator to hand over
    once: four groups of five readable characters joined by '-' (over 110 bits)."""
    import secrets

    for _attempt in range(64):  # a draw failing the policy is rare: draw again
        password = "-".join("".join(secrets.choice(READABLE) for _i in range(5))
                            for _g in range(4))
        try:
            check_policy(password, username)
        except ConfigError:
            continue
        return password
    raise ConfigError(_("no password meeting the policy could be generated"))


class Passwords:
    """Hashing and verifying with one argon2 ``PasswordHasher`` (its defaults: RFC
    9106's low-memory profile, argon2id, 64 MiB, 3 passes; tests pass a cheaper one)."""

    def __init__(self, hasher: PasswordHasher | None = None):
        self.hasher = hasher or PasswordHasher()
        self._decoy: str | None = None

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored``; with ``stored`` None (no such
        account) a decoy hash is verified, so the answer takes as long."""
        if stored is None:
            if self._decoy is None:
                self._decoy = self.hasher.hash("no account has this password")
            stored = self._decoy
            password = password + "\0"  # never the decoy's own password
        try:
            return self.hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        try:
            return self.hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True
