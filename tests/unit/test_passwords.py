"""Password checks: which stored hashes match, and which are replaced after a match."""

from __future__ import annotations

import pytest

from core.passwords import LegacyScryptHasher, check_password, hash_password, verify_password

LEGACY = LegacyScryptHasher().hash("pw")
CURRENT = hash_password("pw")


@pytest.mark.parametrize(
    ("password", "stored", "valid", "upgraded"),
    [
        ("pw", CURRENT, True, False),
        ("nope", CURRENT, False, False),
        ("pw", LEGACY, True, True),
        ("nope", LEGACY, False, False),
        ("pw", "scrypt$not-hex$00", False, False),
        ("pw", "scrypt$", False, False),
        ("pw", "md5$abc", False, False),
        ("pw", "$argon2id$v=19$m=1,t=1,p=1$bad$bad", False, False),
    ],
)
def test_check_password(password: str, stored: str, valid: bool, upgraded: bool) -> None:
    """Current hashes match as they are; scrypt ones match and come back as Argon2id;
    malformed and unknown hashes never match and never raise."""
    matched, new_hash = check_password(password, stored)
    assert matched is valid
    assert (new_hash is not None) is upgraded
    if new_hash is not None:
        assert new_hash.startswith("$argon2id$")
        assert check_password(password, new_hash) == (True, None)


@pytest.mark.parametrize("stored", [None, ""])
def test_no_hash_never_matches(stored: str | None) -> None:
    """A user without a password matches nothing, not even the empty password."""
    assert verify_password("", stored) is False
