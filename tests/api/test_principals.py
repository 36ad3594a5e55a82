"""Platform and account rights apart: what an account's users can no longer do elsewhere, and
what applying a Person may change."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import func, select, text

from api.catalog.apply import Applier, DocumentError
from core.secrets import SecretBox
from core.store.accounts import add_account_user, create_account
from core.store.migrate import alembic_config, upgrade
from core.store.models import Artifact, Definition, Run, User
from core.store.session import make_engine, make_session_factory, transaction
from core.store.users import authenticate, create_token, get_by_email, upsert_user
from tests.conftest import TEST_SECRET_KEY
from tests.stack import ADMIN, Stack, basic

YAML = {"Content-Type": "application/yaml"}
TAKEOVER = """
kind: Person
email: admin@local
password: taken-over
role: admin
"""


def _account_admin(stack: Stack) -> dict[str, str]:
    """A Bearer token of the admin of account ACME (no platform role)."""
    with transaction(stack.sessions) as session:
        account = create_account(session, "ACME")
        user, _ = add_account_user(session, account, "boss@acme.test", password="pw", role="admin")
        _, token = create_token(session, user)
    return {"Authorization": f"Bearer {token}"}


async def test_an_account_admin_cannot_take_over_the_platform_admin(stack: Stack) -> None:
    """`POST /api/apply` of a Person with the platform admin's email: refused, nothing changed,
    with the account admin's token and with their password."""
    bearer = _account_admin(stack)
    for headers in (bearer, basic("boss@acme.test", "pw")):
        response = await stack.api.post("/api/apply", content=TAKEOVER, headers=headers | YAML)
        assert response.status_code == 403, response.text
        assert "platform role" in response.json()["message"]
    with stack.sessions() as session:
        assert authenticate(session, *ADMIN) is not None
        assert authenticate(session, "admin@local", "taken-over") is None


async def test_apply_cannot_change_a_user_of_an_account(stack: Stack) -> None:
    """Even a platform admin's Person document leaves an account's user alone (400 naming them),
    and the whole request is refused."""
    _account_admin(stack)
    doc = "kind: Person\nemail: boss@acme.test\npassword: new\nrole: admin\n"
    other = "kind: Person\nemail: new@corp.test\nrole: viewer\n"
    response = await stack.api.post(
        "/api/apply", content=f"{other}---\n{doc}", headers=basic(*ADMIN) | YAML
    )
    assert response.status_code == 400, response.text
    assert "boss@acme.test is a user of a Runner account" in response.json()["message"]
    with stack.sessions() as session:
        boss = get_by_email(session, "boss@acme.test")
        assert boss is not None and boss.role is None and boss.account_role == "admin"
        assert authenticate(session, "boss@acme.test", "pw") is not None
        assert get_by_email(session, "new@corp.test") is None


@pytest.mark.parametrize(
    ("caller_role", "wanted", "refused"),
    [
        ("operator", "admin", True),
        ("operator", "operator", False),
        ("viewer", "operator", True),
        ("admin", "admin", False),
    ],
)
def test_a_person_is_never_raised_above_the_caller(
    tmp_path: Path, caller_role: str, wanted: str, refused: bool
) -> None:
    """The Applier refuses a role above its caller's own."""
    url = f"sqlite:///{tmp_path / 'roles.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions() as session:
        caller = upsert_user(session, "caller@corp.test", role=caller_role)
        applier = Applier(session, SecretBox(TEST_SECRET_KEY), ["https"], caller)
        doc = {"kind": "Person", "email": "someone@corp.test", "role": wanted}
        if refused:
            with pytest.raises(DocumentError, match=f"role {wanted} is above your own"):
                applier.apply([doc])
        else:
            applier.apply([doc])
            someone = get_by_email(session, "someone@corp.test")
            assert someone is not None and someone.role == wanted
    engine.dispose()


async def test_playbook_routes_do_not_show_other_apis_runs_or_their_artifacts(
    stack: Stack,
) -> None:
    """An artifact of a Runner account's run is not listed or served by the Mission Control
    artifact routes, not even to the platform admin."""
    with transaction(stack.sessions) as session:
        account = create_account(session, "ACME")
        job = Definition(dialect="runner", name="job", spec={}, account_id=account.id)
        session.add(job)
        session.flush()
        run = Run(definition_id=job.id, dialect="runner", status="succeeded", account_id=account.id)
        session.add(run)
        session.flush()
        artifact = Artifact(
            run_id=run.id, path="out.txt", filename="out.txt", content_type="text/plain",
            size=1, checksum="x", storage_key="k",
        )  # fmt: skip
        session.add(artifact)
        session.flush()
        run_id, artifact_id = run.id, artifact.id
    admin = basic(*ADMIN)
    listed = await stack.api.get(f"/artifacts/list/playbook_run/{run_id}", headers=admin)
    assert listed.status_code == 404, listed.text
    served = await stack.api.get(f"/artifacts/download/{artifact_id}", headers=admin)
    assert served.status_code == 404, served.text


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_upgrade_makes_account_roles_and_takes_platform_rights_from_account_users(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Users of an account keep their role as their account role and lose the platform one;
    platform users keep theirs."""
    url = (
        f"sqlite:///{tmp_path / 'old.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_database")
    )
    command.upgrade(alembic_config(url), "0002")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO accounts (id, alias, location_alias, created_at) VALUES"
                 " ('a1', 'ACME', '', CURRENT_TIMESTAMP)")
        )  # fmt: skip
        for row in [
            {"id": "u1", "email": "boss@acme.test", "account": "a1", "role": "admin"},
            {"id": "u2", "email": "ops@corp.test", "account": None, "role": "operator"},
        ]:
            conn.execute(
                text(
                    "INSERT INTO users (id, email, account_id, name, role, is_system, created_at)"
                    " VALUES (:id, :email, :account, '', :role, false, CURRENT_TIMESTAMP)"
                ),
                row,
            )
    upgrade(url)
    with make_session_factory(engine)() as session:
        roles = {u.email: (u.role, u.account_role) for u in session.scalars(select(User))}
        assert roles == {"boss@acme.test": (None, "admin"), "ops@corp.test": ("operator", None)}
        assert session.scalar(select(func.count()).select_from(User)) == 2
    engine.dispose()
