"""`POST /api/login` of the Automations API: a platform user's token, NOBA's error shape, the
platform's sign-in throttle."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core.store.accounts import add_account_user, ensure_account
from core.store.models import ApiToken, utcnow
from core.store.session import transaction
from core.store.users import upsert_user
from tests.stack import ADMIN, Stack


async def login(stack: Stack, body: object) -> tuple[int, dict[str, object]]:
    response = await stack.api.post("/api/login", json=body)
    return response.status_code, response.json()


def tokens(stack: Stack) -> int:
    with stack.sessions() as session:
        return session.scalar(select(func.count()).select_from(ApiToken)) or 0


async def test_a_platform_user_gets_a_24_hour_token_that_works(stack: Stack) -> None:
    """200 `{token, role, username}`; the token is a Bearer token for the platform's routes and
    expires a day later."""
    with transaction(stack.sessions) as session:
        upsert_user(session, "ops@corp.test", password="pw-ops", role="operator")
    status, body = await login(stack, {"username": "Ops@Corp.test", "password": "pw-ops"})
    assert status == 200, body
    assert body["role"] == "operator" and body["username"] == "ops@corp.test"
    token = body["token"]
    assert isinstance(token, str) and len(token) == 64
    listed = await stack.api.get("/api/connections", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200, listed.text
    with stack.sessions() as session:
        row = session.scalars(select(ApiToken).order_by(ApiToken.created_at.desc())).first()
        assert row is not None and row.expires_at is not None
        assert abs(row.expires_at - (utcnow() + timedelta(hours=24))) < timedelta(minutes=1)


@pytest.mark.parametrize(
    "body",
    [
        {"username": ADMIN[0], "password": "wrong"},
        {"username": "nobody@corp.test", "password": "whatever"},
    ],
)
async def test_bad_credentials_are_401_invalid_credentials(stack: Stack, body: object) -> None:
    """Wrong password and unknown user answer alike, NOBA's way, and issue no token."""
    before = tokens(stack)
    assert await login(stack, body) == (401, {"error": "Invalid credentials"})
    assert tokens(stack) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": "pw"}, "username"),
        ({"username": "a@b.test"}, "password"),
        ({"username": "a@b.test", "password": 5}, "password"),
        ({"username": "a@b.test", "password": "x" * 1025}, "password"),
        ([], "body"),
    ],
)
async def test_malformed_bodies_are_400_naming_the_field(
    stack: Stack, body: object, field: str
) -> None:
    status, answer = await login(stack, body)
    assert status == 400, answer
    assert set(answer) == {"error"} and field in str(answer["error"])


async def test_an_account_user_without_a_platform_role_gets_no_token(stack: Stack) -> None:
    """The Automations API is a platform API: an account's own user is refused (403)."""
    with transaction(stack.sessions) as session:
        account = ensure_account(session, "ACME")
        add_account_user(session, account, "boss@acme.test", password="pw", role="admin")
    before = tokens(stack)
    status, body = await login(stack, {"username": "boss@acme.test", "password": "pw"})
    assert status == 403, body
    assert "platform role" in str(body["error"])
    assert tokens(stack) == before


async def test_five_failures_lock_the_pair_out_with_429(stack: Stack) -> None:
    """The platform's rule: after 5 failures even the right password gets 429 and Retry-After."""
    for _ in range(5):
        assert (await login(stack, {"username": ADMIN[0], "password": "no"}))[0] == 401
    response = await stack.api.post("/api/login", json={"username": ADMIN[0], "password": ADMIN[1]})
    assert response.status_code == 429, response.text
    assert int(response.headers["Retry-After"]) > 0
    assert set(response.json()) == {"error"}
