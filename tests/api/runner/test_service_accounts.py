"""Service accounts: operator users of an account that schedules run as."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from core.store.models import ServiceAccount, User
from tests.api.runner.support import ACME, OTHER, Runner, bearer, message_of


async def create(runner: Runner, body: dict[str, Any]) -> dict[str, Any]:
    """POST /serviceAccounts/ACME, which must answer 201."""
    response = await runner.request("POST", f"/serviceAccounts/{ACME}", json=body)
    assert response.status_code == 201, response.text
    document: dict[str, Any] = response.json()
    return document


async def login(runner: Runner, username: str, password: str) -> dict[str, Any]:
    """Sign in; the login document (or the 400's)."""
    response = await runner.request(
        "POST",
        "/v2/authentication/login",
        who=None,
        json={"username": username, "password": password},
    )
    body: dict[str, Any] = response.json()
    return body


async def test_create_answers_the_document_with_a_masked_password(runner: Runner) -> None:
    """The new service account comes back with its id and alias; the password is masked."""
    document = await create(
        runner, {"alias": "sched-1", "username": "Sched1@acme.test", "password": "pw-1"}
    )
    assert set(document) == {"id", "accountAlias", "alias", "username", "password"}
    assert document["accountAlias"] == ACME and document["alias"] == "sched-1"
    assert document["username"] == "sched1@acme.test"
    assert document["password"] == "********"
    with runner.stack.sessions() as session:
        link = session.get(ServiceAccount, document["id"])
        assert link is not None
        user = session.get(User, link.user_id)
        assert user is not None and user.account_role == "operator" and user.role is None
        assert user.password_hash != "pw-1"


async def test_a_service_account_signs_in_as_an_operator_of_the_account(runner: Runner) -> None:
    """Its credentials log in to the account with the ServerOperator role."""
    await create(runner, {"alias": "sched-2", "username": "sched2@acme.test", "password": "pw-2"})
    body = await login(runner, "sched2@acme.test", "pw-2")
    assert body["accountAlias"] == ACME and body["roles"] == ["ServerOperator"]
    jobs = await runner.request(
        "GET", f"/jobs/{ACME}", who=None, headers=bearer(body["bearerToken"])
    )
    assert jobs.status_code == 200


async def test_list_names_the_accounts_service_accounts(runner: Runner) -> None:
    """GET /serviceAccounts/{alias} is `{accounts: [aliases]}` of that account only."""
    await create(runner, {"alias": "sched-3", "username": "sched3@acme.test", "password": "pw"})
    response = await runner.request("GET", f"/serviceAccounts/{ACME}", who="viewer")
    assert response.status_code == 200, response.text
    assert "sched-3" in response.json()["accounts"]
    other = await runner.request("GET", f"/serviceAccounts/{OTHER}", who="other")
    assert "sched-3" not in other.json()["accounts"]


async def test_update_changes_the_credentials(runner: Runner) -> None:
    """PUT sets a new username and password; the old ones stop working."""
    await create(runner, {"alias": "sched-4", "username": "sched4@acme.test", "password": "old"})
    response = await runner.request(
        "PUT",
        f"/serviceAccounts/{ACME}/sched-4",
        json={"username": "sched4b@acme.test", "password": "new"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["username"] == "sched4b@acme.test"
    assert response.json()["password"] == "********"
    assert "bearerToken" in await login(runner, "sched4b@acme.test", "new")
    assert "bearerToken" not in await login(runner, "sched4@acme.test", "old")
    only_password = await runner.request(
        "PUT", f"/serviceAccounts/{ACME}/sched-4", json={"password": "newer"}
    )
    assert only_password.status_code == 200, only_password.text
    assert "bearerToken" in await login(runner, "sched4b@acme.test", "newer")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"username": "x@acme.test", "password": "p"}, "alias: is required"),
        ({"alias": "a", "password": "p"}, "username: is required"),
        ({"alias": "a", "username": "y@acme.test"}, "password: is required"),
        (
            {"alias": "bad alias", "username": "z@acme.test", "password": "p"},
            "alias: must be 1 to 100",
        ),
        (
            {"alias": "dup", "username": "ada@acme.test", "password": "p"},
            "username: 'ada@acme.test' is already taken",
        ),
        (
            {"alias": "a", "username": "with space", "password": "p"},
            "username: must be 1 to 320 characters",
        ),
        ({"alias": 5, "username": "q@acme.test", "password": "p"}, "alias: must be a string"),
    ],
)
@pytest.mark.usefixtures("unchanged")
async def test_bad_service_account_is_400(
    runner: Runner, body: dict[str, Any], message: str
) -> None:
    """Missing or bad fields, and a username someone has, are 400 naming the field."""
    response = await runner.request("POST", f"/serviceAccounts/{ACME}", json=body)
    assert message_of(response, 400).startswith(message)


async def test_an_alias_is_taken_once_per_account(runner: Runner) -> None:
    """A second service account with the same alias is 400; nothing is added."""
    await create(runner, {"alias": "sched-5", "username": "sched5@acme.test", "password": "pw"})
    before = runner.counts()
    response = await runner.request(
        "POST",
        f"/serviceAccounts/{ACME}",
        json={"alias": "sched-5", "username": "sched5b@acme.test", "password": "pw"},
    )
    assert message_of(response, 400) == "alias: service account 'sched-5' already exists"
    assert runner.counts() == before
    with runner.stack.sessions() as session:
        assert session.scalar(select(User).where(User.email == "sched5b@acme.test")) is None


async def test_update_needs_something_to_change(runner: Runner) -> None:
    """A PUT with neither username nor password is 400; an unknown alias is 404."""
    await create(runner, {"alias": "sched-6", "username": "s6@acme.test", "password": "p"})
    before = runner.counts()
    empty = await runner.request("PUT", f"/serviceAccounts/{ACME}/sched-6", json={})
    assert message_of(empty, 400) == "body: give a username, a password or both"
    taken = await runner.request(
        "PUT", f"/serviceAccounts/{ACME}/sched-6", json={"username": "otto@acme.test"}
    )
    assert message_of(taken, 400) == "username: 'otto@acme.test' is already taken"
    missing = await runner.request("PUT", f"/serviceAccounts/{ACME}/nobody", json={"password": "x"})
    assert message_of(missing, 404) == "service account nobody not found"
    assert runner.counts() == before
