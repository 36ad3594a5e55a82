"""Cache directory names: one per URL and credential, the credential never readable from them."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from activities.checkout import cache_key, cache_salt, url_key

URL = "https://git.example.com/org/private.git"
SALT = b"s" * 32
ANONYMOUS = cache_key(URL, SALT)
WITH_PASSWORD = cache_key(URL, SALT, username="deploy", password="hunter2-pass")


@pytest.mark.parametrize(
    ("kwargs", "same_as_password_key"),
    [
        ({"username": "deploy", "password": "hunter2-pass"}, True),
        ({"username": "deploy", "password": "other-pass"}, False),
        ({"username": "other", "password": "hunter2-pass"}, False),
        ({"password": "hunter2-pass"}, False),
        ({"username": "deploy"}, False),
        ({"ssh_key": "-----BEGIN KEY-----"}, False),
        # Field boundaries are part of the key: moving a character across one changes it.
        ({"username": "deployh", "password": "unter2-pass"}, False),
    ],
)
def test_credentials_have_keys_of_their_own(
    kwargs: dict[str, Any], same_as_password_key: bool
) -> None:
    """Only the same URL with the same credential shares a directory; none shares anonymous'."""
    key = cache_key(URL, SALT, **kwargs)
    assert (key == WITH_PASSWORD) is same_as_password_key
    assert key != ANONYMOUS
    assert len(key) == 16 and int(key, 16) >= 0


def test_without_credentials_the_key_is_the_url_key() -> None:
    """Checkouts without credentials keep the URL's own directory (and share it)."""
    assert ANONYMOUS == url_key(URL) == cache_key(URL, SALT, username="", password=None)


def test_the_key_depends_on_the_salt() -> None:
    """Without the cache's salt, a key cannot be recomputed to test a guessed password."""
    assert cache_key(URL, b"t" * 32, username="deploy", password="hunter2-pass") != WITH_PASSWORD


def test_salt_is_made_once_private_and_kept(tmp_path: Path) -> None:
    """The salt file is created 0600 on first use and read back unchanged afterwards."""
    root = tmp_path / "cache"
    first = cache_salt(root)
    assert len(first) == 32
    assert stat.S_IMODE(os.stat(root / "salt").st_mode) == 0o600
    assert cache_salt(root) == first
    assert sorted(p.name for p in root.iterdir()) == ["salt"]
