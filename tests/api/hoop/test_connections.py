"""Connections through REST and `runwright apply`: stored encrypted, masked on read."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from core.store.models import Secret
from tests.api.hoop.conftest import libpq_dsn
from tests.api.hoop.support import OPERATOR, PG_PASSWORD, Hoop, b64


async def test_secrets_are_masked_and_encrypted_at_rest(hoop: Hoop) -> None:
    """The stored rows hold ciphertext only; reads show the mask in both forms."""
    body = {
        "name": "masked",
        "type": "custom",
        "command": ["bash"],
        "secret": {"envvar:TOKEN": b64("rest-token-5521")},
        "env": {"PLAIN_FORM": "yaml-form-8876"},
        "reviewers": ["dba"],
    }
    created = await hoop.stack.api.post("/api/connections", json=body, headers=hoop.admin)
    assert created.status_code == 201, created.text
    view = created.json()
    assert view["secret"] == {"envvar:PLAIN_FORM": "********", "envvar:TOKEN": "********"}
    assert view["env"] == {"PLAIN_FORM": "********", "TOKEN": "********"}
    assert view["reviewers"] == ["dba"]
    assert view["runbooks"] == {"enabled": True, "path_prefix": ""}
    listed = (await hoop.get("/api/connections")).json()
    assert "masked" in [c["name"] for c in listed]
    for text in (created.text, (await hoop.get("/api/connections/masked")).text):
        assert "rest-token-5521" not in text and "yaml-form-8876" not in text
    with hoop.stack.sessions() as session:
        stored = " ".join(session.scalars(select(Secret.ciphertext)))
    assert "rest-token-5521" not in stored and "yaml-form-8876" not in stored


async def test_update_keeps_masked_secrets_and_delete(hoop: Hoop) -> None:
    """PUT replaces the connection; a masked value keeps the stored secret; DELETE is 204."""
    body: dict[str, Any] = {
        "name": "updated",
        "type": "custom",
        "command": ["bash"],
        "env": {"GREETING": "kept-value"},
        "runbooks": {"path_prefix": "ops/"},
    }
    assert (
        await hoop.stack.api.post("/api/connections", json=body, headers=hoop.admin)
    ).status_code == 201
    body["env"] = {"GREETING": "********"}
    body["command"] = ["bash", "-e"]
    put = await hoop.stack.api.put("/api/connections/updated", json=body, headers=hoop.admin)
    assert put.status_code == 200, put.text
    assert put.json()["command"] == ["bash", "-e"]
    response = await hoop.exec(
        "updated", {"file_name": "ops/env.runbook.sh"}, auth=hoop.auth(OPERATOR)
    )
    assert response.status_code == 200, response.text
    # The kept secret reached the process (and, being a secret, is masked in its output).
    assert "greeting=********\n" in response.json()["output"]
    deleted = await hoop.stack.api.delete("/api/connections/updated", headers=hoop.admin)
    assert deleted.status_code == 204
    gone = await hoop.get("/api/connections/updated")
    assert (gone.status_code, gone.json()) == (404, {"message": "connection not found"})
    # Its session stays readable.
    session = await hoop.get(f"/api/sessions/{response.json()['session_id']}")
    assert session.status_code == 200


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"type": "custom", "command": ["bash"]}, "name:"),
        ({"name": "bad name!", "type": "custom", "command": ["bash"]}, "name:"),
        ({"name": "x1", "type": "ftp"}, "type: must be one of"),
        ({"name": "x1", "type": "custom"}, "command: a custom connection needs"),
        ({"name": "x1", "type": "database", "subtype": "oracle"}, "subtype:"),
        ({"name": "x1", "type": "custom", "command": "bash", "env": ["A"]}, "env:"),
        ({"name": "x1", "type": "custom", "command": ["bash"], "secret": {"A": "x"}}, "secret.A"),
        (
            {"name": "x1", "type": "custom", "command": ["bash"], "secret": {"envvar:A": "%"}},
            "secret.envvar:A: not valid base64",
        ),
        ({"name": "x1", "type": "custom", "command": ["bash"], "reviewers": "dba"}, "reviewers"),
        (
            {
                "name": "x1",
                "type": "custom",
                "command": ["bash"],
                "runbooks": {"path_prefix": "../"},
            },
            "runbooks.path_prefix",
        ),
        ({"name": "ops-shell", "type": "custom", "command": ["bash"]}, "already exists"),
        ({"name": "x1", "type": "custom", "command": ["bash"], "dsn": "postgres://"}, "dsn:"),
    ],
)
async def test_bad_connections(hoop: Hoop, body: dict[str, Any], message: str) -> None:
    """Each mistake: 400 naming the field, nothing stored."""
    response = await hoop.stack.api.post("/api/connections", json=body, headers=hoop.admin)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]


@pytest.mark.usefixtures("unchanged")
async def test_only_admins_manage_connections(hoop: Hoop) -> None:
    """An operator may read connections but not create them."""
    body = {"name": "x2", "type": "custom", "command": ["bash"]}
    response = await hoop.stack.api.post("/api/connections", json=body, headers=hoop.auth(OPERATOR))
    assert response.status_code == 403
    assert (await hoop.get("/api/connections", auth=hoop.auth(OPERATOR))).status_code == 200


async def test_apply_a_connection_document(hoop: Hoop) -> None:
    """The issue's YAML example, through `POST /api/apply` (what `runwright apply -f` sends)."""
    doc = """
kind: Connection
name: ops-shell-yaml
type: custom
command: [bash]
env: {GREETING: hello}
reviewers: []
runbooks: {path_prefix: ops/}
"""
    items = await hoop.stack.apply(doc, auth=hoop.admin)
    assert [(i["kind"], i["name"], i["result"]) for i in items] == [
        ("Connection", "ops-shell-yaml", "created")
    ]
    again = await hoop.stack.apply(doc, auth=hoop.admin)
    assert again[0]["result"] == "updated"
    view = (await hoop.get("/api/connections/ops-shell-yaml")).json()
    assert view["env"] == {"GREETING": "********"}
    assert view["runbooks"]["path_prefix"] == "ops/"
    bad = await hoop.stack.api.post(
        "/api/apply",
        content=b"kind: Connection\nname: y\ntype: custom\n",
        headers={**hoop.admin, "Content-Type": "application/yaml"},
    )
    assert bad.status_code == 400
    assert "command" in bad.json()["message"]


async def test_a_database_password_reaches_the_client_only(hoop: Hoop, postgres_url: str) -> None:
    """`password` is stored as the connection's PASS secret, masked on read, and psql gets it
    as PGPASSWORD (the runbook compares it to the expected value inside the process)."""
    dsn = libpq_dsn(postgres_url).replace(f":{PG_PASSWORD}@", "@")
    body = {
        "name": "pg-password",
        "type": "database",
        "subtype": "postgres",
        "dsn": dsn,
        "password": "separate-pass-3141",
        "runbooks": {"path_prefix": "sql/"},
    }
    created = await hoop.stack.api.post("/api/connections", json=body, headers=hoop.admin)
    assert created.status_code == 201, created.text
    assert created.json()["password"] == "********"
    assert "separate-pass-3141" not in created.text
    response = await hoop.exec(
        "pg-password",
        {
            "file_name": "sql/password.runbook.sql",
            "env_vars": {"envvar:EXPECTED": b64("separate-pass-3141")},
        },
    )
    assert response.status_code == 200, response.text
    assert "password-ok" in response.json()["output"], response.json()
    assert "separate-pass-3141" not in response.text
