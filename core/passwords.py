"""Password hashes: Argon2id for new ones, the older scrypt form still verified and upgraded.

`check_password` answers whether a password matches and, when the stored hash is of an older
kind or weaker parameters, the hash that should replace it. `check_password_of_nobody` costs
exactly what a real check costs, so a caller can refuse unknown users in the same time as
known ones.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict

from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.base import ensure_str

# OWASP's first Argon2id configuration (19 MiB, 2 passes, 1 lane): ~20 ms here, cheap enough
# for a sign-in on every Basic request that misses the cache below, costly for a guesser.
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1

LEGACY_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
LEGACY_PREFIX = "scrypt$"


class LegacyScryptHasher:
    """The `scrypt$salt$hash` form of earlier versions: verified, never produced."""

    @classmethod
    def identify(cls, hash: str | bytes) -> bool:
        return ensure_str(hash).startswith(LEGACY_PREFIX)

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        salt = salt or secrets.token_bytes(16)
        secret = password.encode() if isinstance(password, str) else password
        digest = hashlib.scrypt(secret, salt=salt, **LEGACY_SCRYPT)
        return f"{LEGACY_PREFIX}{salt.hex()}${digest.hex()}"

    def verify(self, password: str | bytes, hash: str | bytes) -> bool:
        try:
            _, salt_hex, digest_hex = ensure_str(hash).split("$", 2)
            salt = bytes.fromhex(salt_hex)
        except ValueError:
            return False
        secret = password.encode() if isinstance(password, str) else password
        digest = hashlib.scrypt(secret, salt=salt, **LEGACY_SCRYPT)
        return hmac.compare_digest(digest.hex(), digest_hex)

    def check_needs_rehash(self, hash: str | bytes) -> bool:
        return True


HASHER = PasswordHash(
    (
        Argon2Hasher(
            time_cost=ARGON2_TIME_COST,
            memory_cost=ARGON2_MEMORY_KIB,
            parallelism=ARGON2_PARALLELISM,
        ),
        LegacyScryptHasher(),
    )
)


def hash_password(password: str) -> str:
    """An Argon2id hash of `password` (PHC string: `$argon2id$v=19$m=...`)."""
    return HASHER.hash(password)


@functools.cache
def nobody_hash() -> str:
    """A hash of a random password nobody knows, checked in place of a missing user's."""
    return hash_password(secrets.token_urlsafe(24))


# Basic auth sends the password with every request and a good hash is slow on purpose, so
# successful checks are remembered for a while. The key covers the stored hash, so a changed
# (or upgraded) hash is never answered from here; only digests are kept, never passwords.
VERIFIED_TTL_SECONDS = 300.0
VERIFIED_MAX = 4096
_verified: OrderedDict[str, float] = OrderedDict()
_verified_lock = threading.Lock()


def _remembered(key: str, now: float) -> bool:
    with _verified_lock:
        seen = _verified.get(key)
    return seen is not None and now - seen < VERIFIED_TTL_SECONDS


def _remember(key: str, now: float) -> None:
    with _verified_lock:
        _verified[key] = now
        _verified.move_to_end(key)
        while len(_verified) > VERIFIED_MAX:
            _verified.popitem(last=False)


def check_password(password: str, stored: str) -> tuple[bool, str | None]:
    """(whether `password` matches `stored`, the hash to store instead when it is outdated).

    An unrecognised hash never matches; it still costs one hash, like every refusal.
    """
    key = hashlib.sha256(f"{stored}\0{password}".encode()).hexdigest()
    now = time.monotonic()
    if _remembered(key, now):
        return True, None
    try:
        valid, upgraded = HASHER.verify_and_update(password, stored)
    except UnknownHashError:
        HASHER.verify(password, nobody_hash())
        return False, None
    # An outdated hash is not remembered: it is replaced, and the new one is checked next time.
    if valid and upgraded is None:
        _remember(key, now)
    return valid, upgraded


def check_password_of_nobody(password: str) -> None:
    """Spend what checking a real password costs, for a user who does not exist."""
    HASHER.verify(password, nobody_hash())


def verify_password(password: str, stored: str | None) -> bool:
    """Whether `password` matches `stored` (False when there is no hash)."""
    if not stored:
        check_password_of_nobody(password)
        return False
    return check_password(password, stored)[0]
