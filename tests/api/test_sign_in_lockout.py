"""Failed sign-ins lock a (client address, user) pair out: 5 failures in 60 s, then 429 with
`Retry-After` for 300 s, on HTTP Basic everywhere and on the Runner login."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from core.store.accounts import add_account_user, ensure_account
from core.store.session import transaction
from tests.api.helpers import CATALOG, CONFIG_ID
from tests.conftest import TEST_SECRET_KEY
from tests.stack import ADMIN, Stack, basic, make_settings, stack_for

LIST = f"/playbook/list?config_id={CONFIG_ID}"
RUNNER_PASSWORD = "correct horse"
BAD_CREDENTIALS = "We didn't recognize the username or password you entered. Please try again."


@pytest.fixture
async def bare(tmp_path: Path, temporal: Client) -> AsyncIterator[Stack]:
    """A runwright with the default sign-in rules and a catalog; no worker (nothing runs)."""
    settings = make_settings(tmp_path / "home", secret_key=TEST_SECRET_KEY)
    async with stack_for(settings, temporal, worker=False) as stack:
        await stack.apply(CATALOG)
        yield stack


def client_from(stack: Stack, address: str) -> httpx.AsyncClient:
    """A client of the same app whose requests come from `address`."""
    transport = httpx.ASGITransport(app=stack.app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://runwright")


async def fail_basic(client: httpx.AsyncClient, email: str, times: int) -> None:
    """`times` requests with a wrong password, each refused with 401."""
    for _ in range(times):
        response = await client.get(LIST, headers=basic(email, "wrong"))
        assert response.status_code == 401, response.text


def assert_locked_out(response: httpx.Response, body_keys: set[str]) -> None:
    """429 with whole seconds to wait (at most the 300 s lockout) and the API's error shape."""
    assert response.status_code == 429, response.text
    wait = int(response.headers["Retry-After"])
    assert 1 <= wait <= 300
    body = response.json()
    assert set(body) == body_keys
    assert body["message"] == f"too many failed sign-in attempts: try again in {wait} seconds"


async def test_five_failed_basic_checks_refuse_even_the_right_password(bare: Stack) -> None:
    """After 5 wrong passwords the 6th request, with the right one, gets 429 and Retry-After."""
    await fail_basic(bare.api, ADMIN[0], 5)
    response = await bare.api.get(LIST, headers=basic(*ADMIN))
    assert_locked_out(response, {"error", "message"})
    assert response.json()["error"] == "too many requests"


async def test_four_failures_do_not_lock_out(bare: Stack) -> None:
    """Below the limit the right password still works."""
    await fail_basic(bare.api, ADMIN[0], 4)
    response = await bare.api.get(LIST, headers=basic(*ADMIN))
    assert response.status_code == 200, response.text


async def test_successes_do_not_count(bare: Stack) -> None:
    """Many successful checks between failures never add up to a lockout."""
    for _ in range(3):
        for _ in range(4):
            ok = await bare.api.get(LIST, headers=basic(*ADMIN))
            assert ok.status_code == 200, ok.text
        await fail_basic(bare.api, ADMIN[0], 1)
    response = await bare.api.get(LIST, headers=basic(*ADMIN))
    assert response.status_code == 200, response.text


async def test_the_lockout_is_per_address_and_user(bare: Stack) -> None:
    """A locked-out pair does not lock the same user elsewhere, nor other users here."""
    await bare.apply("kind: Person\nemail: ops@example.com\nrole: viewer\npassword: ops-password\n")
    await fail_basic(bare.api, ADMIN[0], 5)
    locked = await bare.api.get(LIST, headers=basic(*ADMIN))
    assert locked.status_code == 429, locked.text
    other_user = await bare.api.get(LIST, headers=basic("ops@example.com", "ops-password"))
    assert other_user.status_code == 200, other_user.text
    async with client_from(bare, "192.0.2.7") as elsewhere:
        response = await elsewhere.get(LIST, headers=basic(*ADMIN))
        assert response.status_code == 200, response.text


async def test_unknown_users_are_locked_out_like_known_ones(bare: Stack) -> None:
    """Guessing at a user who does not exist ends the same way: no hint that it does not."""
    await fail_basic(bare.api, "nobody@example.com", 5)
    response = await bare.api.get(LIST, headers=basic("nobody@example.com", "wrong"))
    assert_locked_out(response, {"error", "message"})


async def test_the_lockout_holds_on_every_api(bare: Stack) -> None:
    """Failures on one API's routes lock the pair out of the others' (hoop, catalog)."""
    await fail_basic(bare.api, ADMIN[0], 5)
    hoop = await bare.api.get("/api/plugins/runbooks/templates", headers=basic(*ADMIN))
    assert hoop.status_code == 429, hoop.text
    assert "Retry-After" in hoop.headers
    tokens = await bare.api.post("/api/tokens", json={}, headers=basic(*ADMIN))
    assert tokens.status_code == 429, tokens.text


async def test_runner_login_failures_lock_out(bare: Stack) -> None:
    """Five failed Runner logins refuse the next, right one with 429 in the Runner's shape."""
    with transaction(bare.sessions) as session:
        account = ensure_account(session, "ACME")
        add_account_user(session, account, "ada@acme.test", password=RUNNER_PASSWORD, role="admin")
    login = "/v2/authentication/login"
    for _ in range(5):
        response = await bare.api.post(login, json={"username": "ada@acme.test", "password": "x"})
        assert response.status_code == 400, response.text
        assert response.json() == {"message": BAD_CREDENTIALS}
    right = {"username": "ada@acme.test", "password": RUNNER_PASSWORD}
    response = await bare.api.post(login, json=right)
    assert_locked_out(response, {"message"})
    async with client_from(bare, "198.51.100.9") as elsewhere:
        response = await elsewhere.post(login, json=right)
        assert response.status_code == 200, response.text


async def test_basic_and_runner_login_share_the_count(bare: Stack) -> None:
    """Failures are counted per pair whichever door they knock on."""
    await fail_basic(bare.api, ADMIN[0], 3)
    for _ in range(2):
        response = await bare.api.post(
            "/v2/authentication/login", json={"username": ADMIN[0], "password": "wrong"}
        )
        assert response.status_code == 400, response.text
    response = await bare.api.get(LIST, headers=basic(*ADMIN))
    assert response.status_code == 429, response.text


async def test_the_lockout_ends(tmp_path: Path, temporal: Client) -> None:
    """Once the lockout has passed, the right password works again (a 1 s lockout here)."""
    settings = make_settings(tmp_path / "home", secret_key=TEST_SECRET_KEY, login_lockout_seconds=1)
    async with stack_for(settings, temporal, worker=False) as stack:
        await stack.apply(CATALOG)
        await fail_basic(stack.api, ADMIN[0], 5)
        locked = await stack.api.get(LIST, headers=basic(*ADMIN))
        assert locked.status_code == 429, locked.text
        assert locked.headers["Retry-After"] == "1"
        await asyncio.sleep(1.2)
        response = await stack.api.get(LIST, headers=basic(*ADMIN))
        assert response.status_code == 200, response.text
