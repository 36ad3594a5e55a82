"""Exec against each connection kind: synchronous answers, exit codes, output, sessions."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.api.hoop.support import OPERATOR, PG_PASSWORD, VIEWER, Hoop, b64, head_of
from tests.integration.test_secrets import payloads_in, root_logging_captured

pytestmark = pytest.mark.slow


async def exec_ok(hoop: Hoop, connection: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await hoop.exec(connection, body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_bash_runbook_runs_and_answers_with_its_output(hoop: Hoop) -> None:
    """A custom bash connection: exit 0, stdout and stderr interleaved, a session to read."""
    result = await exec_ok(
        hoop,
        "ops-shell",
        {"file_name": "ops/hello.runbook.sh", "parameters": {"name": "world"},
         "metadata": {"ticket": "OPS-1"}, "ref_hash": head_of(hoop.repo)},
    )  # fmt: skip
    assert result["exit_code"] == 0, result
    assert result["output"] == "hello world\nto-stderr\ndone\n"
    assert result["output_status"] == "success"
    assert result["has_review"] is False
    assert result["truncated"] is False
    assert isinstance(result["execution_time"], int) and result["execution_time"] >= 0
    url = f"/api/sessions/{result['session_id']}"
    assert (await hoop.get(url, auth=hoop.auth(OPERATOR))).status_code == 200  # its owner
    hidden = await hoop.get(url, auth=hoop.auth(VIEWER))  # neither owner, reviewer nor admin
    assert (hidden.status_code, hidden.json()) == (404, {"message": "session not found"})
    session = (await hoop.get(url)).json()
    assert session["status"] == "done"
    assert session["exit_code"] == 0
    assert session["connection"] == "ops-shell"
    assert session["verb"] == "exec"
    assert session["user"] == OPERATOR
    assert session["script"]["data"] == "echo hello 'world'\necho to-stderr >&2\necho done\n"
    assert session["labels"]["runbookFile"] == "ops/hello.runbook.sh"
    assert session["labels"]["runbookParameters"] == {"name": "world"}
    assert session["metadata"] == {"ticket": "OPS-1"}


async def test_exit_code_of_a_failing_runbook(hoop: Hoop) -> None:
    """The process's own exit code; any non-zero is `failed`."""
    result = await exec_ok(
        hoop, "ops-shell", {"file_name": "ops/fail.runbook.sh", "parameters": {"code": "3"}}
    )
    assert (result["exit_code"], result["output_status"]) == (3, "failed")
    assert result["output"] == "before\n"
    default = await exec_ok(hoop, "ops-shell", {"file_name": "ops/fail.runbook.sh"})
    assert default["exit_code"] == 3  # the template's default


async def test_client_args_reach_the_command(hoop: Hoop) -> None:
    """client_args are appended to the connection's command: here bash's -x traces."""
    result = await exec_ok(
        hoop,
        "ops-shell",
        {"file_name": "ops/hello.runbook.sh", "parameters": {"name": "x"}, "client_args": ["-x"]},
    )
    assert "+ echo hello x" in result["output"]


@pytest.mark.parametrize("connection", ["py", "app"])
async def test_python_runbook(hoop: Hoop, connection: str) -> None:
    """A custom and an application python3 connection run a .runbook.py from stdin."""
    result = await exec_ok(
        hoop, connection, {"file_name": "py/hello.runbook.py", "parameters": {"value": "snake"}}
    )
    assert (result["exit_code"], result["output"]) == (0, "py snake\n")


async def test_sqlite_runbook(hoop: Hoop) -> None:
    """A sqlite database connection runs a .runbook.sql through sqlite3."""
    result = await exec_ok(
        hoop, "lite", {"file_name": "sql/query.runbook.sql", "parameters": {"value": "lite"}}
    )
    assert (result["exit_code"], result["output"]) == (0, "lite\n")
    assert hoop.sqlite_path.exists()


async def test_postgres_runbook_without_leaking_the_password(hoop: Hoop) -> None:
    """A postgres connection runs a .runbook.sql through psql; its DSN's password never
    appears in the answer, the session or the run's events."""
    result = await exec_ok(
        hoop, "pg", {"file_name": "sql/query.runbook.sql", "parameters": {"value": "pg rows"}}
    )
    assert result["exit_code"] == 0, result
    assert "pg rows" in result["output"]
    session = (await hoop.get(f"/api/sessions/{result['session_id']}")).text
    connection = (await hoop.get("/api/connections/pg")).text
    assert PG_PASSWORD not in result["output"] + session + connection


async def test_env_vars_reach_the_process_and_never_the_outside(hoop: Hoop) -> None:
    """envvar: values become variables, filesystem: values 0600 files removed afterwards;
    neither value is in the answer, the session, the DB in plain text or the run's history."""
    password, content = "pw-value-4821", "file-value-7734"
    body = {
        "file_name": "ops/env.runbook.sh",
        "env_vars": {
            "envvar:PASSWORD": b64(password),
            "envvar:EXPECTED_PASSWORD": b64(password),
            "filesystem:SECRET_FILE": b64(content),
            "envvar:EXPECTED_FILE": b64(content),
        },
    }
    with root_logging_captured() as capture:
        result = await exec_ok(hoop, "ops-shell", body)
    assert len(capture.lines) > 5, "the capture saw (almost) no log records"
    assert [line for line in capture.lines if password in line or content in line] == []
    output = result["output"]
    assert "password-ok\nfile-ok\nmode=600\n" in output, output
    assert "greeting=********\n" in output  # the connection's own secret, masked
    path = next(line[5:] for line in output.splitlines() if line.startswith("path="))
    assert not Path(path).exists()
    session = (await hoop.get(f"/api/sessions/{result['session_id']}")).text
    assert sorted((await hoop.get(f"/api/sessions/{result['session_id']}")).json()["env_vars"]) == [
        "envvar:EXPECTED_FILE", "envvar:EXPECTED_PASSWORD", "envvar:PASSWORD",
        "filesystem:SECRET_FILE",
    ]  # fmt: skip
    for secret in (password, content):
        assert secret not in output + session
    # Decrypted with the codec, no payload of the run's history holds a value.
    history = await hoop.stack.temporal.get_workflow_handle(result["session_id"]).fetch_history()
    codec = hoop.stack.temporal.data_converter.payload_codec
    assert codec is not None
    texts = []
    for event in history.events:
        for _, payload in payloads_in(event):
            (plain,) = await codec.decode([payload])
            texts.append(plain.data.decode(errors="replace"))
    assert any("env.runbook.sh" in t for t in texts)  # the decoding saw the run's input
    assert [t for t in texts if password in t or content in t] == []


async def test_asenv_parameter_becomes_an_environment_variable(hoop: Hoop) -> None:
    """`asenv` renders nothing and passes the value in the environment."""
    result = await exec_ok(
        hoop,
        "ops-shell",
        {"file_name": "ops/asenv.runbook.sh", "parameters": {"token": "tok-93"},
         "env_vars": {"envvar:EXPECTED_TOKEN": b64("tok-93")}},
    )  # fmt: skip
    assert result["output"] == "token-ok\n", result
    session = (await hoop.get(f"/api/sessions/{result['session_id']}")).json()
    assert session["labels"]["runbookParameters"] == {"token": "********"}
    assert "tok-93" not in session["script"]["data"]


async def test_slow_runbook_answers_202_then_the_session_reports_it(hoop: Hoop) -> None:
    """Past the wait limit: 202 with exit_code -2 and `running`; the session then ends."""
    settings = hoop.stack.settings
    saved = settings.runbooks_exec_wait_seconds
    settings.runbooks_exec_wait_seconds = 0.5
    try:
        response = await hoop.exec(
            "ops-shell", {"file_name": "ops/slow.runbook.sh", "parameters": {"seconds": "3"}}
        )
    finally:
        settings.runbooks_exec_wait_seconds = saved
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["exit_code"], body["output_status"], body["output"]) == (-2, "running", "")
    url = f"/api/sessions/{body['session_id']}"
    assert (await hoop.get(url)).json()["status"] == "open"
    deadline = time.monotonic() + 30
    while (session := (await hoop.get(url)).json())["status"] != "done":
        assert time.monotonic() < deadline, session
        await asyncio.sleep(0.2)
    assert (session["exit_code"], session["output"]) == (0, "slept\n")
    assert 2900 <= session["execution_time"] < 30_000  # the program's own run time, in ms


async def test_output_is_cut_at_the_cap_on_a_character_boundary(hoop: Hoop) -> None:
    """A 201-byte output of two-byte characters cut at 9 bytes keeps 4 whole characters."""
    settings = hoop.stack.settings
    saved = settings.runbooks_output_cap_bytes
    settings.runbooks_output_cap_bytes = 9
    try:
        result = await exec_ok(hoop, "ops-shell", {"file_name": "ops/big.runbook.sh"})
    finally:
        settings.runbooks_output_cap_bytes = saved
    assert (result["output"], result["truncated"], result["exit_code"]) == ("éééé", True, 0)
