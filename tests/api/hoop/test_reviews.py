"""Reviewed connections: exec waits on the gate until every reviewer group approves."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from core.store.session import transaction
from core.store.users import upsert_team
from tests.api.hoop.conftest import libpq_dsn
from tests.api.hoop.support import BOTH, DBA, OPERATOR, SEC, Hoop, make_runbook_repo, seed
from tests.conftest import TEST_SECRET_KEY
from tests.stack import ADMIN, make_settings, stack_for

HELLO = {"file_name": "ops/hello.runbook.sh", "parameters": {"name": "reviewed"}}


async def decide(hoop: Hoop, review_id: str, status: str, email: str) -> Any:
    return await hoop.stack.api.put(
        f"/api/reviews/{review_id}", json={"status": status}, headers=hoop.auth(email)
    )


async def wait_done(hoop: Hoop, session_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        session: dict[str, Any] = (await hoop.get(f"/api/sessions/{session_id}")).json()
        if session["status"] == "done":
            return session
        assert time.monotonic() < deadline, session
        await asyncio.sleep(0.1)


async def start_review(hoop: Hoop, email: str = OPERATOR) -> str:
    response = await hoop.exec("reviewed", HELLO, auth=hoop.auth(email))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["has_review"] is True
    assert (body["exit_code"], body["output_status"]) == (0, "success")
    assert body["output"].endswith(f"/api/reviews/{body['session_id']}")
    session_id: str = body["session_id"]
    return session_id


async def test_two_groups_must_approve_before_it_runs(hoop: Hoop) -> None:
    """One group's approval is not enough; the second one runs the session."""
    review_id = await start_review(hoop)
    review = (await hoop.get(f"/api/reviews/{review_id}", auth=hoop.auth(DBA))).json()
    assert review["status"] == "PENDING"
    assert review["session"] == review_id
    assert [(g["group"], g["status"]) for g in review["review_groups_data"]] == [
        ("dba", "PENDING"), ("sec", "PENDING"),
    ]  # fmt: skip
    assert review["input"] == "echo hello 'reviewed'\necho to-stderr >&2\necho done\n"
    listed = (await hoop.get("/api/reviews", auth=hoop.auth(SEC))).json()
    assert review_id in [r["id"] for r in listed]

    first = await decide(hoop, review_id, "APPROVED", DBA)
    assert first.status_code == 200, first.text
    assert [g["status"] for g in first.json()["review_groups_data"]] == ["APPROVED", "PENDING"]
    assert first.json()["status"] == "PENDING"
    await asyncio.sleep(0.5)
    assert (await hoop.get(f"/api/sessions/{review_id}")).json()["status"] == "open"

    again = await decide(hoop, review_id, "APPROVED", DBA)
    assert again.status_code == 400  # the dba group has already decided

    second = await decide(hoop, review_id, "APPROVED", SEC)
    assert second.status_code == 200, second.text
    session = await wait_done(hoop, review_id)
    assert (session["exit_code"], session["output"]) == (0, "hello reviewed\nto-stderr\ndone\n")
    final = (await hoop.get(f"/api/reviews/{review_id}")).json()
    assert final["status"] == "EXECUTED"
    assert final["review_groups_data"][1]["reviewed_by"]["email"] == SEC


async def test_a_member_of_both_groups_approves_for_both(hoop: Hoop) -> None:
    """One decision covers every reviewer group the reviewer belongs to."""
    review_id = await start_review(hoop)
    response = await decide(hoop, review_id, "APPROVED", BOTH)
    assert response.status_code == 200, response.text
    assert (await wait_done(hoop, review_id))["exit_code"] == 0


async def test_a_rejection_rejects_and_nothing_runs(hoop: Hoop) -> None:
    """Any rejection ends the session without running it."""
    review_id = await start_review(hoop)
    response = await decide(hoop, review_id, "REJECTED", SEC)
    assert response.status_code == 200, response.text
    session = await wait_done(hoop, review_id)
    assert session["output_status"] == "failed"
    assert session["exit_code"] == -2
    assert "hello" not in session["output"]
    review = (await hoop.get(f"/api/reviews/{review_id}")).json()
    assert review["status"] == "REJECTED"
    late = await decide(hoop, review_id, "APPROVED", DBA)
    assert late.status_code == 400
    assert "not pending" in late.json()["message"]


async def test_self_approval_and_outsiders_are_refused(hoop: Hoop) -> None:
    """The requester may not approve their own session; a non-member may not review."""
    review_id = await start_review(hoop, email=DBA)
    own = await decide(hoop, review_id, "APPROVED", DBA)
    assert own.status_code == 400
    assert "self approve" in own.json()["message"]
    outsider = await decide(hoop, review_id, "APPROVED", OPERATOR)
    assert outsider.status_code == 403
    revoke = await decide(hoop, review_id, "REVOKED", SEC)
    assert revoke.status_code == 400
    bad = await decide(hoop, review_id, "MAYBE", SEC)
    assert bad.status_code == 400 and "status" in bad.json()["message"]
    missing = await decide(hoop, "00000000-0000-4000-8000-000000000000", "APPROVED", SEC)
    assert (missing.status_code, missing.json()) == (404, {"message": "review not found"})
    # Admins may approve their own; here the admin is no member, so the groups decide.
    assert (await decide(hoop, review_id, "REJECTED", SEC)).status_code == 200


async def test_a_review_survives_a_restart_of_the_api_and_worker(
    hoop: Hoop, tmp_path: Path, postgres_url: str
) -> None:
    """Exec on one API and worker, stop both, approve on new ones over the same DB: it runs."""
    repo = tmp_path / "runbooks"
    settings = make_settings(
        tmp_path / "home",
        secret_key=TEST_SECRET_KEY,
        runbooks_git_url=make_runbook_repo(repo),
        runbooks_refresh_seconds=0,
    )
    async with stack_for(settings, hoop.stack.temporal) as first:
        seeded = await seed(first, repo, tmp_path / "lite.db", libpq_dsn(postgres_url))
        review_id = await start_review(seeded)
    async with stack_for(settings, hoop.stack.temporal) as second:
        seeded.stack = second
        for email in (DBA, SEC):
            assert (await decide(seeded, review_id, "APPROVED", email)).status_code == 200
        session = await wait_done(seeded, review_id)
    assert (session["exit_code"], session["output"]) == (0, "hello reviewed\nto-stderr\ndone\n")


async def test_an_admin_may_approve_their_own_session(hoop: Hoop) -> None:
    """The exception to the self-approval rule: an admin in both groups approves their own."""
    with transaction(hoop.stack.sessions) as session:
        upsert_team(session, "dba", [DBA, BOTH, ADMIN[0]])
        upsert_team(session, "sec", [SEC, BOTH, ADMIN[0]])
    try:
        review_id = await start_review(hoop, email=ADMIN[0])
        response = await decide(hoop, review_id, "APPROVED", ADMIN[0])
        assert response.status_code == 200, response.text
        assert (await wait_done(hoop, review_id))["exit_code"] == 0
    finally:
        with transaction(hoop.stack.sessions) as session:
            upsert_team(session, "dba", [DBA, BOTH])
            upsert_team(session, "sec", [SEC, BOTH])
