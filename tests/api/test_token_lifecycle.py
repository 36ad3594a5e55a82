"""API tokens expire (90 days by default, a setting), admins list and revoke them, and a
password change revokes the tokens of that user, wherever the password is changed."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.client import Client

from core.store.accounts import add_account_user, create_service_account, ensure_account
from core.store.models import ApiToken
from core.store.session import transaction
from core.store.users import create_token, get_by_email
from tests.api.helpers import CATALOG, CONFIG_ID, UNKNOWN_ID, assert_error
from tests.conftest import TEST_SECRET_KEY
from tests.stack import ADMIN, Stack, basic, make_settings, stack_for

LIST = f"/playbook/list?config_id={CONFIG_ID}"
ADMIN_AUTH = basic(*ADMIN)
TOKEN_FIELDS = {"id", "name", "user_email", "created_at", "expires_at", "revoked_at"}


@pytest.fixture
async def bare(tmp_path: Path, temporal: Client) -> AsyncIterator[Stack]:
    """A runwright with a catalog and a viewer and an operator; no worker."""
    settings = make_settings(tmp_path / "home", secret_key=TEST_SECRET_KEY)
    async with stack_for(settings, temporal, worker=False) as stack:
        await stack.apply(CATALOG)
        await stack.apply(
            "kind: Person\nemail: viewer@example.com\nrole: viewer\npassword: viewer-pw\n---\n"
            "kind: Person\nemail: operator@example.com\nrole: operator\npassword: operator-pw\n"
        )
        yield stack


def bearer(token: str) -> dict[str, str]:
    """An Authorization header for a bearer token."""
    return {"Authorization": f"Bearer {token}"}


async def new_token(stack: Stack, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    """POST /api/tokens, which must answer 201; the created token."""
    response = await stack.api.post("/api/tokens", json=body, headers=auth)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def parse(moment: str) -> datetime:
    """An ISO timestamp of a response."""
    return datetime.fromisoformat(moment)


async def works(stack: Stack, token: str) -> int:
    """The status a request with this bearer token gets."""
    return (await stack.api.get(LIST, headers=bearer(token))).status_code


# ---- expiry --------------------------------------------------------------------------------


async def test_a_token_expires_after_ninety_days_by_default(bare: Stack) -> None:
    """A token asked for without a lifetime expires 90 days after it was made."""
    created = await new_token(bare, ADMIN_AUTH, name="ci")
    expires = parse(created["expires_at"])
    expected = datetime.now(UTC) + timedelta(days=90)
    assert abs((expires - expected).total_seconds()) < 60


@pytest.mark.parametrize("ttl", [90 * 24 + 1, 1e20])
async def test_a_lifetime_beyond_the_setting_is_400(bare: Stack, ttl: float) -> None:
    """ttl_hours above the deployment's token lifetime is refused naming the field."""
    response = await bare.api.post("/api/tokens", json={"ttl_hours": ttl}, headers=ADMIN_AUTH)
    assert_error(response, 400, "invalid", "ttl_hours: must be more than 0 and at most 2160")


async def test_the_token_lifetime_is_a_setting(tmp_path: Path, temporal: Client) -> None:
    """RUNWRIGHT_TOKEN_TTL_DAYS sets the default and the longest lifetime."""
    settings = make_settings(tmp_path / "home", secret_key=TEST_SECRET_KEY, token_ttl_days=2)
    async with stack_for(settings, temporal, worker=False) as stack:
        created = await new_token(stack, ADMIN_AUTH)
        expires = parse(created["expires_at"])
        assert abs((expires - datetime.now(UTC) - timedelta(days=2)).total_seconds()) < 60
        response = await stack.api.post("/api/tokens", json={"ttl_hours": 49}, headers=ADMIN_AUTH)
        assert_error(response, 400, "invalid", "ttl_hours: must be more than 0 and at most 48")


async def test_an_expired_token_is_401(bare: Stack) -> None:
    """A token past its expiry is refused like an unknown one."""
    created = await new_token(bare, ADMIN_AUTH)
    assert await works(bare, created["token"]) == 200
    with transaction(bare.sessions) as session:
        row = session.get(ApiToken, created["id"])
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    response = await bare.api.get(LIST, headers=bearer(created["token"]))
    assert_error(response, 401, "unauthorized", "invalid or expired token")


async def test_a_token_made_without_expiry_expires_ninety_days_after_it_was_made(
    bare: Stack,
) -> None:
    """Tokens stored without an expiry (by earlier versions) live 90 days, not forever."""
    with transaction(bare.sessions) as session:
        admin = get_by_email(session, ADMIN[0])
        assert admin is not None
        young, young_plain = create_token(session, admin, name="young")
        old, old_plain = create_token(session, admin, name="old")
        old.created_at = datetime.now(UTC) - timedelta(days=91)
        assert young.expires_at is None and old.expires_at is None
    assert await works(bare, young_plain) == 200
    response = await bare.api.get(LIST, headers=bearer(old_plain))
    assert_error(response, 401, "unauthorized", "invalid or expired token")


async def test_a_runner_login_token_lives_no_longer_than_the_setting(
    tmp_path: Path, temporal: Client
) -> None:
    """With a one-day token lifetime the Runner login's token lasts a day, not 14."""
    settings = make_settings(tmp_path / "home", secret_key=TEST_SECRET_KEY, token_ttl_days=1)
    async with stack_for(settings, temporal, worker=False) as stack:
        with transaction(stack.sessions) as session:
            account = ensure_account(session, "ACME")
            add_account_user(session, account, "ada@acme.test", password="pw-1", role="admin")
        response = await stack.api.post(
            "/v2/authentication/login", json={"username": "ada@acme.test", "password": "pw-1"}
        )
        assert response.status_code == 200, response.text
        with stack.sessions() as session:
            row = session.scalars(select(ApiToken).where(ApiToken.name == "runner login")).one()
            assert row.expires_at is not None
            life = row.expires_at - row.created_at
        assert abs(life.total_seconds() - 86400) < 60


# ---- listing and revoking --------------------------------------------------------------------


async def test_admins_list_tokens_without_their_secrets(bare: Stack) -> None:
    """GET /api/tokens shows each token's holder and dates, never the token or its hash."""
    mine = await new_token(bare, ADMIN_AUTH, name="admin-ci")
    theirs = await new_token(bare, basic("viewer@example.com", "viewer-pw"), name="laptop")
    response = await bare.api.get("/api/tokens", headers=ADMIN_AUTH)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    by_id = {item["id"]: item for item in items}
    assert set(by_id) >= {mine["id"], theirs["id"]}
    for item in items:
        assert set(item) == TOKEN_FIELDS
    laptop = by_id[theirs["id"]]
    assert (laptop["name"], laptop["user_email"], laptop["revoked_at"]) == (
        "laptop",
        "viewer@example.com",
        None,
    )
    assert laptop["expires_at"] == theirs["expires_at"]
    with bare.sessions() as session:
        hashes = list(session.scalars(select(ApiToken.token_hash)))
    for secret in [mine["token"], theirs["token"], *hashes]:
        assert secret not in response.text


async def test_the_token_list_filters_by_user_and_pages(bare: Stack) -> None:
    """`user` keeps one user's tokens; `limit` and `offset` page newest first."""
    for name in ("one", "two", "three"):
        await new_token(bare, basic("operator@example.com", "operator-pw"), name=name)
    response = await bare.api.get("/api/tokens?user=Operator@Example.com", headers=ADMIN_AUTH)
    assert response.status_code == 200, response.text
    assert [i["name"] for i in response.json()["items"]] == ["three", "two", "one"]
    page = await bare.api.get(
        "/api/tokens?user=operator@example.com&limit=1&offset=1", headers=ADMIN_AUTH
    )
    assert [i["name"] for i in page.json()["items"]] == ["two"]
    bad = await bare.api.get("/api/tokens?limit=0", headers=ADMIN_AUTH)
    assert bad.status_code == 400, bad.text
    assert bad.json()["message"].startswith("limit:")
    # Found by generated requests: an offset past 64 bits overflowed the database (500).
    huge = await bare.api.get("/api/tokens?offset=771266613138539937792", headers=ADMIN_AUTH)
    assert huge.status_code == 400, huge.text
    assert huge.json()["message"].startswith("offset:")


async def test_an_admin_revokes_a_token(bare: Stack) -> None:
    """DELETE /api/tokens/{id} revokes at once; revoking again changes nothing."""
    created = await new_token(bare, basic("operator@example.com", "operator-pw"), name="ci")
    assert await works(bare, created["token"]) == 200
    response = await bare.api.delete(f"/api/tokens/{created['id']}", headers=ADMIN_AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == TOKEN_FIELDS
    assert body["id"] == created["id"] and body["user_email"] == "operator@example.com"
    assert body["revoked_at"]
    refused = await bare.api.get(LIST, headers=bearer(created["token"]))
    assert_error(refused, 401, "unauthorized", "invalid or expired token")
    again = await bare.api.delete(f"/api/tokens/{created['id']}", headers=ADMIN_AUTH)
    assert again.status_code == 200, again.text
    assert again.json()["revoked_at"] == body["revoked_at"]


async def test_revoking_an_unknown_token_is_404(bare: Stack) -> None:
    """An id no token has is 404, and nothing else is revoked."""
    created = await new_token(bare, ADMIN_AUTH)
    response = await bare.api.delete(f"/api/tokens/{UNKNOWN_ID}", headers=ADMIN_AUTH)
    assert_error(response, 404, "not found", f"token {UNKNOWN_ID} not found")
    assert await works(bare, created["token"]) == 200


@pytest.mark.parametrize(
    "who", [("viewer@example.com", "viewer-pw"), ("operator@example.com", "operator-pw")]
)
async def test_only_admins_list_and_revoke_tokens(bare: Stack, who: tuple[str, str]) -> None:
    """Viewers and operators get 403 on both routes, even for their own token."""
    auth = basic(*who)
    created = await new_token(bare, auth)
    listed = await bare.api.get("/api/tokens", headers=auth)
    assert_error(listed, 403, "forbidden", "this needs the admin role")
    revoked = await bare.api.delete(f"/api/tokens/{created['id']}", headers=auth)
    assert_error(revoked, 403, "forbidden", "this needs the admin role")
    assert await works(bare, created["token"]) == 200


async def test_anonymous_callers_cannot_list_or_revoke(bare: Stack) -> None:
    """Both routes need credentials."""
    created = await new_token(bare, ADMIN_AUTH)
    for response in [
        await bare.api.get("/api/tokens"),
        await bare.api.delete(f"/api/tokens/{created['id']}"),
    ]:
        assert response.status_code == 401, response.text
    assert await works(bare, created["token"]) == 200


# ---- a password change revokes tokens ----------------------------------------------------


async def test_applying_a_new_password_revokes_that_persons_tokens(bare: Stack) -> None:
    """A Person applied with a new password loses every token; others keep theirs."""
    theirs = await new_token(bare, basic("operator@example.com", "operator-pw"))
    other = await new_token(bare, basic("viewer@example.com", "viewer-pw"))
    await bare.apply("kind: Person\nemail: operator@example.com\npassword: a-new-password\n")
    refused = await bare.api.get(LIST, headers=bearer(theirs["token"]))
    assert_error(refused, 401, "unauthorized", "invalid or expired token")
    assert await works(bare, other["token"]) == 200
    old = await bare.api.get(LIST, headers=basic("operator@example.com", "operator-pw"))
    assert old.status_code == 401, old.text
    listed = await bare.api.get("/api/tokens?user=operator@example.com", headers=ADMIN_AUTH)
    assert all(item["revoked_at"] for item in listed.json()["items"])


async def test_applying_the_same_password_again_keeps_tokens(bare: Stack) -> None:
    """Re-applying a document with the password the person already has is not a change."""
    theirs = await new_token(bare, basic("operator@example.com", "operator-pw"))
    await bare.apply("kind: Person\nemail: operator@example.com\npassword: operator-pw\n")
    assert await works(bare, theirs["token"]) == 200


async def test_a_service_account_password_change_revokes_its_tokens(bare: Stack) -> None:
    """PUT /serviceAccounts/{alias}/{name} with a password revokes the service account's
    tokens; the account admin's own token keeps working."""
    with transaction(bare.sessions) as session:
        account = ensure_account(session, "ACME")
        admin, _ = add_account_user(session, account, "ada@acme.test", password="pw", role="admin")
        _, robot = create_service_account(
            session, account, "deployer", username="robot@acme.test", password="robot-pw"
        )
        _, admin_token = create_token(session, admin, ttl=timedelta(days=1))
        _, robot_token = create_token(session, robot, ttl=timedelta(days=1))
    jobs = "/jobs/ACME"
    robot_jobs = await bare.api.get(jobs, headers=bearer(robot_token))
    assert robot_jobs.status_code == 200, robot_jobs.text
    response = await bare.api.put(
        "/serviceAccounts/ACME/deployer",
        json={"password": "rotated-pw"},
        headers=bearer(admin_token),
    )
    assert response.status_code == 200, response.text
    refused = await bare.api.get(jobs, headers=bearer(robot_token))
    assert refused.status_code == 401, refused.text
    still = await bare.api.get(jobs, headers=bearer(admin_token))
    assert still.status_code == 200, still.text


@pytest.mark.slow
async def test_user_add_with_a_new_password_revokes_tokens(bare: Stack) -> None:
    """`runwright user add` giving an account user a new password revokes their tokens."""
    with transaction(bare.sessions) as session:
        account = ensure_account(session, "ACME")
        user, _ = add_account_user(session, account, "ada@acme.test", password="pw", role="admin")
        _, token = create_token(session, user, ttl=timedelta(days=1))
    assert (await bare.api.get("/jobs/ACME", headers=bearer(token))).status_code == 200
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWRIGHT_")}
    env |= {
        "RUNWRIGHT_DATABASE_URL": bare.settings.database_url,
        "RUNWRIGHT_SECRET_KEY": TEST_SECRET_KEY,
    }
    command = [str(Path(sys.executable).parent / "runwright"), "user", "add"]
    done = subprocess.run(
        [*command, "ada@acme.test", "--account", "ACME", "--role", "admin", "--password-stdin"],
        input="another-pw\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    response = await bare.api.get("/jobs/ACME", headers=bearer(token))
    assert response.status_code == 401, response.text
    signed_in = await bare.api.post(
        "/v2/authentication/login", json={"username": "ada@acme.test", "password": "another-pw"}
    )
    assert signed_in.status_code == 200, signed_in.text
