"""Bad exec requests: a clear 4xx in hoop's `{"message"}` shape, and nothing written."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.hoop.support import VIEWER, Hoop, b64

pytestmark = pytest.mark.usefixtures("unchanged")

HELLO = "ops/hello.runbook.sh"


@pytest.mark.parametrize(
    ("connection", "body", "status", "message"),
    [
        ("nope", {"file_name": HELLO}, 404, "connection not found"),
        ("disabled", {"file_name": "ops/hello.runbook.sh"}, 422, "not enabled"),
        ("ops-shell", {}, 400, "file_name: Field required"),
        ("ops-shell", {"file_name": 7}, 400, "file_name: Input should be a valid string"),
        ("ops-shell", {"file_name": HELLO, "parameters": {"name": 5}}, 400, "parameters.name"),
        ("ops-shell", {"file_name": HELLO, "metadata": [1]}, 400, "metadata"),
        ("ops-shell", {"file_name": HELLO, "client_args": "-x"}, 400, "client_args"),
        ("ops-shell", {"file_name": HELLO}, 400, "the following inputs are missing [name]"),
        ("ops-shell", {"file_name": HELLO, "parameters": {"name": ""}}, 400, "name is required"),
        (
            "ops-shell",
            {"file_name": "ops/fail.runbook.sh", "parameters": {"code": "1; rm -rf /"}},
            400,
            "pattern didn't match:^[0-9]+$",
        ),
        (
            "ops-shell",
            {"file_name": HELLO, "parameters": {"name": "x"}, "env_vars": {"envvar:A": "%%"}},
            400,
            "env_vars[envvar:A]: value is not valid base64",
        ),
        (
            "ops-shell",
            {"file_name": HELLO, "parameters": {"name": "x"}, "env_vars": {"other:A": b64("1")}},
            400,
            'unknow environment variable type "other"',
        ),
        (
            "ops-shell",
            {"file_name": HELLO, "parameters": {"name": "x"}, "ref_hash": "0" * 40},
            400,
            "mismatch git commit, want=" + "0" * 40,
        ),
        ("ops-shell", {"file_name": "other/outside.runbook.sh"}, 404, "not found"),
        ("ops-shell", {"file_name": "ops/notes.txt"}, 404, "runbook file ops/notes.txt not found"),
        ("ops-shell", {"file_name": "ops/missing.runbook.sh"}, 404, "not found"),
        ("ops-shell", {"file_name": "ops/../other/outside.runbook.sh"}, 400, "file_name"),
        ("ops-shell", {"file_name": "/etc/passwd"}, 400, "file_name"),
        ("ops-shell", {"file_name": "ops/broken.runbook.sh"}, 400, "require"),
        ("ops-shell", {"file_name": "ops/shell.runbook.sh"}, 400, 'function "exec" not defined'),
        (
            "ops-shell",
            {"file_name": "ops/inject-plain.runbook.sh", "parameters": {"value": "$(id)"}},
            400,
            "value",
        ),
    ],
)
async def test_bad_exec_requests(
    hoop: Hoop, connection: str, body: Any, status: int, message: str
) -> None:
    """Each mistake is named; no run, secret or event is written."""
    response = await hoop.exec(connection, body)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"message"}
    assert message in response.json()["message"]


async def test_malformed_json(hoop: Hoop) -> None:
    """A body that is not JSON: 400 naming the body."""
    response = await hoop.stack.api.post(
        "/api/plugins/runbooks/connections/ops-shell/exec",
        content=b"{not json",
        headers={**hoop.admin, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "invalid JSON" in response.json()["message"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer not-a-token"}, 401),
        ({"Api-Key": "not-a-token"}, 401),
    ],
)
async def test_unauthenticated(hoop: Hoop, headers: dict[str, str], status: int) -> None:
    """No credentials or unknown ones: 401 before anything is read."""
    response = await hoop.exec("ops-shell", {"file_name": HELLO}, auth=headers)
    assert response.status_code == status
    assert set(response.json()) == {"message"}


async def test_viewer_may_not_exec(hoop: Hoop) -> None:
    """A viewer reads but does not run."""
    response = await hoop.exec("ops-shell", {"file_name": HELLO}, auth=hoop.auth(VIEWER))
    assert response.status_code == 403


async def test_api_key_header_authenticates(hoop: Hoop) -> None:
    """`Api-Key: <token>` is accepted like a Bearer token (here the request then fails 404)."""
    token = hoop.tokens[VIEWER]
    response = await hoop.get("/api/connections/nope", auth={"Api-Key": token})
    assert response.status_code == 404
    assert response.json() == {"message": "connection not found"}
