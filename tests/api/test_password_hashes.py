"""Password hashes: Argon2id for new passwords, earlier scrypt hashes upgraded at the next
sign-in, and the same hashing work for users who do not exist."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from core import passwords
from core.store.accounts import add_account_user, ensure_account
from core.store.session import transaction
from core.store.users import get_by_email, system_user
from tests.api.helpers import CATALOG, CONFIG_ID
from tests.conftest import TEST_SECRET_KEY
from tests.stack import ADMIN, Stack, basic, make_settings, stack_for

LIST = f"/playbook/list?config_id={CONFIG_ID}"


@pytest.fixture
async def bare(tmp_path: Path, temporal: Client) -> AsyncIterator[Stack]:
    """A runwright with a catalog and no worker (nothing here runs)."""
    settings = make_settings(tmp_path / "home", secret_key=TEST_SECRET_KEY)
    async with stack_for(settings, temporal, worker=False) as stack:
        await stack.apply(CATALOG)
        yield stack


def scrypt_hash(password: str) -> str:
    """A hash as earlier versions stored it: `scrypt$<salt hex>$<digest hex>`, N=2^14, r=8."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def stored_hash(stack: Stack, email: str) -> str:
    """The password hash the database holds for `email`."""
    with stack.sessions() as session:
        user = get_by_email(session, email)
        assert user is not None and user.password_hash
        return user.password_hash


def set_stored_hash(stack: Stack, email: str, value: str) -> None:
    """Write a hash straight into the database, as an earlier version would have."""
    with transaction(stack.sessions) as session:
        user = get_by_email(session, email)
        assert user is not None
        user.password_hash = value


async def test_new_passwords_are_stored_as_argon2id(bare: Stack) -> None:
    """A person applied with a password gets an Argon2id hash that never holds the password."""
    await bare.apply("kind: Person\nemail: new@example.com\nrole: viewer\npassword: s3cret-pw\n")
    stored = stored_hash(bare, "new@example.com")
    assert stored.startswith("$argon2id$v=19$")
    assert "s3cret-pw" not in stored
    response = await bare.api.get(LIST, headers=basic("new@example.com", "s3cret-pw"))
    assert response.status_code == 200, response.text


async def test_a_scrypt_hash_verifies_and_is_upgraded_at_the_next_basic_sign_in(
    bare: Stack,
) -> None:
    """An old scrypt hash still signs in; that sign-in replaces it with Argon2id for good."""
    await bare.apply("kind: Person\nemail: old@example.com\nrole: viewer\n")
    set_stored_hash(bare, "old@example.com", scrypt_hash("old-password"))
    wrong = await bare.api.get(LIST, headers=basic("old@example.com", "not-it"))
    assert wrong.status_code == 401, wrong.text
    assert stored_hash(bare, "old@example.com").startswith("scrypt$")

    response = await bare.api.get(LIST, headers=basic("old@example.com", "old-password"))
    assert response.status_code == 200, response.text
    upgraded = stored_hash(bare, "old@example.com")
    assert upgraded.startswith("$argon2id$")
    again = await bare.api.get(LIST, headers=basic("old@example.com", "old-password"))
    assert again.status_code == 200, again.text
    assert stored_hash(bare, "old@example.com") == upgraded
    wrong = await bare.api.get(LIST, headers=basic("old@example.com", "not-it"))
    assert wrong.status_code == 401, wrong.text


async def test_a_scrypt_hash_is_upgraded_at_a_runner_login(bare: Stack) -> None:
    """The Runner login upgrades the hash of the user who signs in."""
    with transaction(bare.sessions) as session:
        account = ensure_account(session, "ACME")
        add_account_user(session, account, "ada@acme.test", password="placeholder", role="admin")
    set_stored_hash(bare, "ada@acme.test", scrypt_hash("runner-pw"))
    response = await bare.api.post(
        "/v2/authentication/login", json={"username": "ada@acme.test", "password": "runner-pw"}
    )
    assert response.status_code == 200, response.text
    assert stored_hash(bare, "ada@acme.test").startswith("$argon2id$")


async def test_a_scrypt_hash_is_upgraded_at_an_automations_login(bare: Stack) -> None:
    """`POST /api/login` upgrades the hash of the platform user who signs in."""
    set_stored_hash(bare, ADMIN[0], scrypt_hash("automations-pw"))
    response = await bare.api.post(
        "/api/login", json={"username": ADMIN[0], "password": "automations-pw"}
    )
    assert response.status_code == 200, response.text
    assert stored_hash(bare, ADMIN[0]).startswith("$argon2id$")


class HashSpy:
    """Records the hash every stand-in check is made against, then does the real check."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.hashes: list[str] = []
        real = passwords.HASHER.verify

        def verify(password: str | bytes, hash: str | bytes) -> bool:
            self.hashes.append(str(hash))
            return real(password, hash)

        monkeypatch.setattr(passwords.HASHER, "verify", verify)


@pytest.mark.parametrize(
    "who", ["nobody@example.com", "nopass@example.com", "system@runwright.local"]
)
async def test_users_who_cannot_sign_in_cost_a_full_hash(
    bare: Stack, monkeypatch: pytest.MonkeyPatch, who: str
) -> None:
    """Unknown users, users without a password and the system user are refused only after an
    Argon2id check against a stand-in hash: the refusal takes as long as a wrong password."""
    await bare.apply("kind: Person\nemail: nopass@example.com\nrole: viewer\n")
    with transaction(bare.sessions) as session:
        system_user(session)
    spy = HashSpy(monkeypatch)
    response = await bare.api.get(LIST, headers=basic(who, "guess"))
    assert response.status_code == 401, response.text
    assert spy.hashes == [passwords.nobody_hash()]
    assert spy.hashes[0].startswith("$argon2id$")
    assert "nobody@example.com" not in spy.hashes[0]


async def test_an_unknown_runner_login_costs_a_full_hash(
    bare: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Runner login spends the same hash on a username that does not exist."""
    spy = HashSpy(monkeypatch)
    response = await bare.api.post(
        "/v2/authentication/login", json={"username": "ghost@acme.test", "password": "guess"}
    )
    assert response.status_code == 400, response.text
    assert spy.hashes == [passwords.nobody_hash()]
