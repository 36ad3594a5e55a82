"""What an exec request cannot do: client options, environment, quoting, slow patterns.

Each refused request answers 400 naming what it refused, writes no row, and runs nothing:
the side effect it tries to cause (a marker file) never happens.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.hoop.support import Hoop, b64, head_of
from tests.stack import git

GUARD_RUNBOOKS = {
    "ops/quoted.runbook.sh": 'echo start\necho "{{ .x | squote }}"\n',
    "py/fstring.runbook.py": "print(f{{ .value | dquote }})\n",
    "ops/redos.runbook.sh": 'echo {{ .x | pattern "^(a+)+$" | squote }}\n',
    "ops/bad-pattern.runbook.sh": 'echo {{ .x | pattern "a{99999999999}" | squote }}\n',
}


@pytest.fixture(scope="module")
async def guarded(hoop: Hoop) -> Hoop:
    """The module's repository with the runbooks these tests need committed on top."""
    for name, text in GUARD_RUNBOOKS.items():
        path = hoop.repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(hoop.repo, "add", "-A")
    git(hoop.repo, "commit", "-q", "-m", "guard runbooks")
    return hoop


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    """A file a refused request tries to create."""
    path = tmp_path / "marker"
    yield path
    assert not path.exists(), "a refused request ran something"


def _query(value: str = "x") -> dict[str, Any]:
    return {"file_name": "sql/query.runbook.sql", "parameters": {"value": value}}


HELLO = {"file_name": "ops/hello.runbook.sh", "parameters": {"name": "x"}}


def _refused(marker: str) -> list[tuple[str, dict[str, Any], str]]:
    """(connection, body, message): requests that would run something of the caller's."""
    py = {"file_name": "py/hello.runbook.py", "parameters": {"value": "v"}}
    return [
        (
            "lite",
            {**_query(), "client_args": ["-cmd", f".shell touch {marker}"]},
            "client_args[0]: '-cmd' is not allowed for connection lite",
        ),
        (
            "pg",
            {**_query(), "client_args": ["-h", "evil.invalid"]},
            "client_args[0]: '-h' is not allowed for connection pg",
        ),
        (
            "ops-shell",  # it allows -x only
            {**HELLO, "client_args": ["-x", "--rcfile", marker]},
            "client_args[1]: '--rcfile' is not allowed for connection ops-shell",
        ),
        (
            "pg",
            {**_query(), "env_vars": {"envvar:PGHOSTADDR": b64("127.0.0.2")}},
            "env_vars[envvar:PGHOSTADDR]: PGHOSTADDR belongs to the database client",
        ),
        (
            "pg",
            {**_query(), "env_vars": {"envvar": "PGPASSFILE:" + b64(marker)}},
            "env_vars[envvar]: PGPASSFILE belongs to the database client",
        ),
        (
            "ops-shell",
            {**HELLO, "env_vars": {"filesystem:BASH_ENV": b64(f"touch {marker}\n")}},
            "env_vars[filesystem:BASH_ENV]: BASH_ENV would let the caller change how programs run",
        ),
        (
            "ops-shell",
            {**HELLO, "env_vars": {"envvar:HOME": b64("/tmp")}},
            "env_vars[envvar:HOME]: HOME would let the caller change how programs run",
        ),
        (
            "py",
            {**py, "env_vars": {"filesystem:PYTHONSTARTUP": b64(f"open({marker!r}, 'w')\n")}},
            "env_vars[filesystem:PYTHONSTARTUP]: PYTHONSTARTUP would let the caller",
        ),
    ]


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("case", range(len(_refused(""))))
async def test_refused_exec_runs_nothing(guarded: Hoop, marker: Path, case: int) -> None:
    """A client option or variable the connection does not allow: 400 naming it, no session."""
    connection, body, message = _refused(str(marker))[case]
    response = await guarded.exec(connection, body)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"message"}
    assert message in response.json()["message"]


async def test_allowed_client_args_are_the_admins_list(guarded: Hoop) -> None:
    """An admin lists the arguments a connection accepts; those pass, word for word."""
    body = {
        "name": "lite-header",
        "type": "database",
        "subtype": "sqlite",
        "dsn": f"sqlite:///{guarded.sqlite_path}",
        "runbooks": {"path_prefix": "sql/"},
        "allowed_client_args": ["-header", "-header"],
    }
    created = await guarded.stack.api.post("/api/connections", json=body, headers=guarded.admin)
    assert created.status_code == 201, created.text
    assert created.json()["allowed_client_args"] == ["-header"]
    shown = (await guarded.get("/api/connections/lite-header")).json()
    assert shown["allowed_client_args"] == ["-header"]
    ran = await guarded.exec("lite-header", {**_query("kept"), "client_args": ["-header"]})
    assert ran.status_code == 200, ran.text
    assert ran.json()["output"] == "v\nkept\n"
    session = (await guarded.get(f"/api/sessions/{ran.json()['session_id']}")).json()
    assert session["client_args"] == ["-header"]
    refused = await guarded.exec(
        "lite-header", {**_query(), "client_args": ["-header", "-cmd", ".shell id"]}
    )
    assert refused.status_code == 400
    assert "client_args[1]: '-cmd' is not allowed" in refused.json()["message"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-x", "allowed_client_args: must be a list of strings"),
        ([1], "allowed_client_args: must be a list of strings"),
        ([""], "allowed_client_args: an argument is empty"),
        (["a\0b"], "allowed_client_args: an argument is empty or contains a NUL byte"),
    ],
)
async def test_bad_allowed_client_args(guarded: Hoop, value: Any, message: str) -> None:
    body = {"name": "bad-args", "type": "custom", "command": ["bash"], "allowed_client_args": value}
    response = await guarded.stack.api.post("/api/connections", json=body, headers=guarded.admin)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]


@pytest.mark.parametrize(
    ("connection", "file_name", "value", "where"),
    [
        (
            "ops-shell",
            "ops/quoted.runbook.sh",
            "$(touch {marker})",
            "line 2, col 7: the action {{ .x | squote }} in ops/quoted.runbook.sh sits inside "
            'a "…" string',
        ),
        (
            "py",
            "py/fstring.runbook.py",
            "{open('{marker}', 'w')}",
            "line 1, col 8: the action {{ .value | dquote }} in py/fstring.runbook.py sits right "
            "after the string prefix f",
        ),
    ],
)
async def test_action_inside_quotes_is_a_broken_runbook(
    guarded: Hoop, marker: Path, connection: str, file_name: str, value: str, where: str
) -> None:
    """Listed with an error naming the file and line; exec refuses it and runs nothing."""
    listed = (await guarded.get("/api/plugins/runbooks/templates")).json()
    item = {i["name"]: i for i in listed["items"]}[file_name]
    assert item["metadata"] == {}
    assert where in item["error"]
    before = guarded.counts()
    name = "x" if connection == "ops-shell" else "value"
    response = await guarded.exec(
        connection,
        {
            "file_name": file_name,
            "parameters": {name: value.replace("{marker}", str(marker))},
            "ref_hash": head_of(guarded.repo),
        },
    )
    assert response.status_code == 400, response.text
    assert where in response.json()["message"]
    assert guarded.counts() == before


@pytest.mark.timeout(60)
async def test_catastrophic_pattern_answers_at_once(guarded: Hoop) -> None:
    """`^(a+)+$` against 40 a's and a '!' is a prompt 400, and the API keeps answering."""
    started = time.monotonic()
    response, listing = await asyncio.gather(
        guarded.exec(
            "ops-shell", {"file_name": "ops/redos.runbook.sh", "parameters": {"x": "a" * 40 + "!"}}
        ),
        guarded.get("/api/connections"),
    )
    assert time.monotonic() - started < 10
    assert listing.status_code == 200
    assert response.status_code == 400, response.text
    assert response.json()["message"] == 'parameter "x": pattern didn\'t match:^(a+)+$'
    ok = await guarded.exec(
        "ops-shell", {"file_name": "ops/redos.runbook.sh", "parameters": {"x": "aaa"}}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["output"] == "aaa\n"


async def test_invalid_pattern_is_named_not_a_server_error(guarded: Hoop) -> None:
    """A pattern Go refuses: the file is listed with the error, and exec is 400 naming it."""
    listed = await guarded.get("/api/plugins/runbooks/templates")
    assert listed.status_code == 200, listed.text
    item = {i["name"]: i for i in listed.json()["items"]}["ops/bad-pattern.runbook.sh"]
    assert 'pattern "a{99999999999}": regexp error: invalid repeat count' in item["error"]
    response = await guarded.exec(
        "ops-shell", {"file_name": "ops/bad-pattern.runbook.sh", "parameters": {"x": "a"}}
    )
    assert response.status_code == 400, response.text
    assert 'pattern "a{99999999999}"' in response.json()["message"]
