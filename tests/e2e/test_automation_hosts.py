"""Automations that act on a host, end to end: a `kind: Host` applied through the apply route,
then `agent_command` and `service_control` automations run against real sshd on loopback.

The hosts are this machine logged in to over SSH, so files a test writes are "on the host"
too. The test machines run no init system: a recording `systemctl` first on a host's PATH
(its sshd sets PATH for every session) stands in for it, and records each call's words.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import sys
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.store.models import Definition
from tests import servers
from tests.e2e.test_automation_runs import (
    ADMIN_AUTH,
    OPERATOR,
    count_runs,
    create,
    noba,
    start,
    wait_for,
)
from tests.e2e.test_ssh_action import host_document
from tests.e2e.test_ssh_hosts import files_containing, key_lines
from tests.servers import SshServer
from tests.stack import Stack

__all__ = ["noba"]  # the fixture, used by name

pytestmark = pytest.mark.slow

# Writes each call's arguments, NUL-terminated, to a file of its own next to itself.
RECORDING_SYSTEMCTL = """#!/bin/sh
out=$(mktemp "$(dirname "$0")/call.XXXXXX")
printf '%s\\0' "$@" > "$out"
echo "systemctl: $*"
case "$*" in *hung.service*) sleep 30; echo never ;; esac
"""
# The same for the worker's PATH, where the sandbox shows the directory read-only: it prints
# each word in brackets instead, and the run's output is the record (and whether it could
# write beside itself: in the sandbox it cannot).
PRINTING_SYSTEMCTL = """#!/bin/sh
for word in "$@"; do printf '[%s]\\n' "$word"; done
touch "$(dirname "$0")/touched" 2>/dev/null && echo writable || echo read-only
"""


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture(scope="module")
def init_bin() -> Iterator[Path]:
    """The directory of the recording `systemctl` on the host `web1`."""
    path = Path(tempfile.mkdtemp(prefix="rw-init-"))
    _executable(path / "systemctl", RECORDING_SYSTEMCTL)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def web1(init_bin: Path) -> Iterator[SshServer]:
    """An sshd whose sessions find the recording `systemctl` first on their PATH."""
    path = f"{init_bin}:{os.environ.get('PATH') or '/usr/bin:/bin'}"
    try:
        with servers.sshd_server(path=path) as server:
            yield server
    except servers.ServerUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def calls(init_bin: Path) -> Iterator[Path]:
    """The recorder's directory, with no call recorded yet."""
    for old in init_bin.glob("call.*"):
        old.unlink()
    yield init_bin


def recorded(init_bin: Path) -> list[list[str]]:
    """The words of every call to the host's `systemctl`."""
    return [
        [w.decode() for w in p.read_bytes().split(b"\0")[:-1]]
        for p in sorted(init_bin.glob("call.*"))
    ]


@pytest.fixture
def worker_systemctl(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A printing `systemctl` first on the worker's PATH. Under this Python's prefix: the
    sandbox shows that directory and hides the usual temporary ones."""
    bin_dir = Path(sys.prefix) / f".systemctl-{uuid.uuid4().hex[:8]}"
    bin_dir.mkdir()
    _executable(bin_dir / "systemctl", PRINTING_SYSTEMCTL)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    yield bin_dir
    shutil.rmtree(bin_dir)


async def apply_host(stack: Stack, sshd: SshServer, name: str = "box") -> None:
    """Apply a Host as users do: a document through the apply route, as an admin."""
    items = await stack.apply(host_document(sshd, name=name, host_key=sshd.host_public_key))
    assert [(i["kind"], i["name"], i["result"]) for i in items] == [("Host", name, "created")]


async def count_automations(stack: Stack) -> int:
    with stack.sessions() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Definition)
                .where(Definition.dialect == "automations", Definition.deleted_at.is_(None))
            )
            or 0
        )


async def test_agent_command_runs_on_the_host_and_fails_with_it(
    noba: Stack, sshd: SshServer
) -> None:
    """The remote command's output is the run's; a non-zero exit fails the run with its code."""
    await apply_host(noba, sshd)
    ok = await create(
        noba,
        {"name": "Who", "type": "agent_command",
         "params": {"hostname": "box", "command": "id -un; printf 'b\\na\\n' | sort"}},
        OPERATOR,
    )  # fmt: skip
    doc = await wait_for(noba, (await start(noba, ok))["run_id"])
    assert doc["status"] == "done", doc
    assert doc["output"] == f"{sshd.user}\na\nb\n"
    assert doc["automation_id"] == ok and doc["trigger"] == "manual"

    bad = await create(
        noba,
        {"name": "Broken", "type": "agent_command",
         "params": {"host": "box", "command": "echo partial; echo oops >&2; exit 7"}},
        OPERATOR,
    )  # fmt: skip
    doc = await wait_for(noba, (await start(noba, bad))["run_id"])
    assert doc["status"] == "failed", doc
    # stdout and stderr come through two pipes: each line is there, in either order.
    assert sorted(doc["output"].splitlines()) == ["oops", "partial"]
    assert "7" in doc["error"], doc  # why it failed, as NOBA's run rows say it
    item = (await noba.api.get(f"/api/automations/{bad}", headers=OPERATOR)).json()
    assert item["last_status"] == "failed"
    assert item["params"] == {"host": "box", "command": "echo partial; echo oops >&2; exit 7",
                              "timeout": 300}  # fmt: skip


async def test_service_control_on_a_host_runs_its_systemctl(
    noba: Stack, web1: SshServer, calls: Path
) -> None:
    """`systemctl restart -- <unit>` on the host, exactly those words, once."""
    await apply_host(noba, web1, "web1")
    auto_id = await create(
        noba,
        {"name": "Restart nginx", "type": "service_control",
         "params": {"service": "nginx", "action": "restart", "host": "web1"}},
        OPERATOR,
    )  # fmt: skip
    doc = await wait_for(noba, (await start(noba, auto_id))["run_id"])
    assert doc["status"] == "done", doc
    assert doc["output"] == "systemctl: restart -- nginx\n"
    assert recorded(calls) == [["restart", "--", "nginx"]]


async def test_a_hung_service_control_ends_timeout(
    noba: Stack, web1: SshServer, calls: Path
) -> None:
    """A `systemctl` that hangs is ended at the automation's `timeout` (300 s unless set)."""
    await apply_host(noba, web1, "web1")
    auto_id = await create(
        noba,
        {"name": "Hung", "type": "service_control",
         "params": {"service": "hung.service", "action": "restart", "host": "web1",
                    "timeout": 2}},
        OPERATOR,
    )  # fmt: skip
    shown = (await noba.api.get(f"/api/automations/{auto_id}", headers=OPERATOR)).json()
    assert shown["params"]["timeout"] == 2
    doc = await wait_for(noba, (await start(noba, auto_id))["run_id"])
    assert doc["status"] == "timeout", doc
    assert "never" not in doc["output"]
    assert doc["finished"] - doc["started"] < 15


async def test_a_unit_name_is_one_word_and_injection_is_refused(
    noba: Stack, web1: SshServer, calls: Path, tmp_path: Path
) -> None:
    """A service name with shell syntax is refused naming the field, on create and on
    update, and nothing runs; a legal name the shell would read (`\\`, `@`) arrives whole."""
    await apply_host(noba, web1, "web1")
    marker = tmp_path / "injected"
    injected = f"nginx; touch {marker}"
    refused = await noba.api.post(
        "/api/automations",
        json={"name": "Evil", "type": "service_control",
              "params": {"service": injected, "action": "stop", "host": "web1"}},
        headers=OPERATOR,
    )  # fmt: skip
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"].startswith("params.service:")
    assert await count_automations(noba) == 0

    unit = "dev-disk-by\\x2duuid@x.service"  # a legal unit name; the shell would eat its backslash
    auto_id = await create(
        noba,
        {"name": "Escaped", "type": "service_control",
         "params": {"service": unit, "action": "stop", "host": "web1"}},
        OPERATOR,
    )  # fmt: skip
    bad_params = [
        {"service": injected, "action": "stop", "host": "web1"},
        {"service": "nginx", "action": "stop", "host": f"web1; touch {marker}"},
        {"service": "nginx", "action": f"stop; touch {marker}", "host": "web1"},
    ]
    for params in bad_params:
        changed = await noba.api.put(
            f"/api/automations/{auto_id}", json={"params": params}, headers=OPERATOR
        )
        assert changed.status_code == 400, changed.text
        bad_field = next(k for k, v in params.items() if str(marker) in v)
        assert changed.json()["error"].startswith(f"params.{bad_field}:")
    item = (await noba.api.get(f"/api/automations/{auto_id}", headers=OPERATOR)).json()
    assert item["params"] == {"service": unit, "action": "stop", "host": "web1", "timeout": 300}

    doc = await wait_for(noba, (await start(noba, auto_id))["run_id"])
    assert doc["status"] == "done", doc
    assert recorded(calls) == [["stop", "--", unit]]
    assert not marker.exists()


async def test_service_control_without_a_host_runs_on_the_worker(
    noba: Stack, web1: SshServer, calls: Path, worker_systemctl: Path
) -> None:
    """Without `host`, the worker's own `systemctl` runs, in the sandbox; no host is reached."""
    await apply_host(noba, web1, "web1")
    logins = web1.log().count("Accepted publickey")
    auto_id = await create(
        noba,
        {"name": "Local", "type": "service", "params": {"service": "cron.service",
                                                       "action": "start"}},
        OPERATOR,
    )  # fmt: skip
    doc = await wait_for(noba, (await start(noba, auto_id))["run_id"])
    assert doc["status"] == "done", doc
    assert doc["output"] == "[start]\n[--]\n[cron.service]\nread-only\n"
    assert not (worker_systemctl / "touched").exists()
    assert recorded(calls) == []
    assert web1.log().count("Accepted publickey") == logins


async def test_an_unknown_host_is_a_400_naming_it_and_starts_nothing(noba: Stack) -> None:
    """A host that is not in the catalog: the run is refused, naming params.host."""
    agent = await create(
        noba,
        {"name": "Nowhere", "type": "agent_command",
         "params": {"host": "nowhere", "command": "true"}},
        OPERATOR,
    )  # fmt: skip
    service = await create(
        noba,
        {"name": "Nowhere svc", "type": "service_control",
         "params": {"service": "nginx", "host": "nowhere"}},
        OPERATOR,
    )  # fmt: skip
    for auto_id in (agent, service):
        refused = await noba.api.post(f"/api/automations/{auto_id}/run", headers=OPERATOR)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"].startswith("params.host: no host 'nowhere'")
        item = (await noba.api.get(f"/api/automations/{auto_id}", headers=OPERATOR)).json()
        assert item["last_run"] is None and item["last_status"] is None
    flow = await create(
        noba, {"name": "Flow", "type": "workflow", "params": {"steps": [agent]}}, OPERATOR
    )
    refused = await noba.api.post(f"/api/automations/{flow}/run", headers=OPERATOR)
    assert refused.status_code == 400, refused.text
    assert "no host 'nowhere'" in refused.json()["error"]
    assert await count_runs(noba) == 0


async def test_the_key_is_never_shown(
    noba: Stack, sshd: SshServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A command that prints the key the run logged in with shows it masked; the key is in no
    answer of the API (apply, GET, list, export, run, live log), no log record, no file."""
    caplog.set_level(logging.DEBUG)
    answers: list[str] = []
    response = await noba.api.post(
        "/api/apply",
        content=host_document(sshd, host_key=sshd.host_public_key).encode(),
        headers={**ADMIN_AUTH, "Content-Type": "application/yaml"},
    )
    assert response.status_code == 200, response.text
    answers.append(response.text)
    runs = noba.settings.workspace / "runs"
    auto_id = await create(
        noba,
        {"name": "Leak", "type": "agent_command",
         "params": {"host": "box", "command": f"cat {runs}/*/ssh/*/identity"}},
        OPERATOR,
    )  # fmt: skip
    run_id = (await start(noba, auto_id))["run_id"]
    doc = await wait_for(noba, run_id)
    assert doc["status"] == "done", doc
    assert "********" in doc["output"]
    for url in (
        f"/api/automations/runs/{run_id}",
        f"/api/automations/runs/{run_id}/stream",
        f"/api/automations/{auto_id}",
        "/api/automations",
        "/api/automations/export",
    ):
        response = await noba.api.get(url, headers=OPERATOR)
        assert response.status_code == 200, (url, response.text)
        answers.append(response.text)
    assert "event: done" in answers[2]
    needles = key_lines(sshd.private_key_text)
    assert len(needles) >= 3
    assert caplog.records  # the API and the worker did log
    places = {"answers": "\n".join(answers), "logs": caplog.text}
    for where, text in places.items():
        assert not [n for n in needles if n in text], f"key material in {where}"
    assert files_containing(noba.settings.home, needles) == []
    assert not list(runs.rglob("identity"))


async def test_a_window_scoped_to_the_host_refuses_its_automations(
    noba: Stack, sshd: SshServer, tmp_path: Path
) -> None:
    """A window naming the host (not the automation) with override `disabled`: every
    automation acting on that host, directly or as a workflow's step, is refused with 409
    naming the window, by hand and by webhook; nothing runs on the host. Others still run.
    A window naming a workflow's step holds the workflow as well."""
    await apply_host(noba, sshd)
    marker = tmp_path / "ran"
    agent = await create(
        noba,
        {"name": "Touch", "type": "agent_command",
         "params": {"host": "box", "command": f"touch {marker}"}},
        OPERATOR,
    )  # fmt: skip
    service = await create(
        noba,
        {"name": "Svc", "type": "service_control", "params": {"service": "nginx", "host": "box"}},
        OPERATOR,
    )
    flow = await create(
        noba, {"name": "Flow", "type": "workflow", "params": {"steps": [agent]}}, OPERATOR
    )
    elsewhere = await create(
        noba, {"name": "Local", "type": "script", "params": {"command": "echo local"}}
    )
    now = datetime.now(UTC)
    window = await noba.api.post(
        "/api/maintenance",
        json={"name": "Box patching", "start": (now - timedelta(minutes=5)).isoformat(),
              "end": (now + timedelta(hours=1)).isoformat(), "scope": ["box"],
              "autonomy_override": "disabled"},
        headers=OPERATOR,
    )  # fmt: skip
    assert window.status_code == 201, window.text
    window_id = window.json()["id"]
    for auto_id in (agent, service, flow):
        blocked = await noba.api.post(f"/api/automations/{auto_id}/run", headers=OPERATOR)
        assert blocked.status_code == 409, (auto_id, blocked.text)
        reason = blocked.json()["error"]
        assert "Box patching" in reason and window_id in reason, reason
        token = (await noba.api.get(f"/api/automations/{auto_id}", headers=OPERATOR)).json()[
            "webhook_token"
        ]
        by_hook = await noba.api.post(f"/api/automations/webhook/{token}", json={})
        assert by_hook.status_code == 409 and window_id in by_hook.json()["error"]
    assert await count_runs(noba) == 0
    assert not marker.exists()
    doc = await wait_for(noba, (await start(noba, elsewhere))["run_id"])
    assert doc["status"] == "done", doc

    await noba.api.post(f"/api/maintenance/{window_id}/deactivate", headers=OPERATOR)
    # A window naming a step's automation holds the workflow too: the step would run in it.
    step_window = await noba.api.post(
        "/api/maintenance",
        json={"name": "Touch freeze", "start": (now - timedelta(minutes=5)).isoformat(),
              "end": (now + timedelta(hours=1)).isoformat(), "scope": [agent],
              "autonomy_override": "disabled"},
        headers=OPERATOR,
    )  # fmt: skip
    assert step_window.status_code == 201, step_window.text
    blocked = await noba.api.post(f"/api/automations/{flow}/run", headers=OPERATOR)
    assert blocked.status_code == 409 and "Touch freeze" in blocked.json()["error"]
    await noba.api.delete(f"/api/maintenance/{step_window.json()['id']}", headers=OPERATOR)
    assert await count_runs(noba) == 1  # the local script's, nothing else
    doc = await wait_for(noba, (await start(noba, flow))["run_id"])
    assert doc["status"] == "done", doc
    assert marker.exists()


async def test_agent_command_timeout_and_cancel(noba: Stack, sshd: SshServer) -> None:
    """A remote command past its timeout ends `timeout`; a cancelled one ends `cancelled`;
    both within seconds, the remote program's later lines never printed."""
    await apply_host(noba, sshd)
    slow = await create(
        noba,
        {"name": "Slow", "type": "agent_command",
         "params": {"host": "box", "command": "echo started; sleep 30; echo never",
                    "timeout": 2}},
        OPERATOR,
    )  # fmt: skip
    long = await create(
        noba,
        {"name": "Long", "type": "agent_command",
         "params": {"host": "box", "command": "echo started; sleep 60; echo never"}},
        OPERATOR,
    )  # fmt: skip
    timed = (await start(noba, slow))["run_id"]
    cancelled = (await start(noba, long))["run_id"]
    doc = await wait_for(noba, timed)
    assert doc["status"] == "timeout", doc
    assert doc["output"] == "started\n"
    assert doc["finished"] - doc["started"] < 15
    await wait_for(noba, cancelled, {"running"})
    response = await noba.api.post(f"/api/automations/runs/{cancelled}/cancel", headers=OPERATOR)
    assert response.status_code == 200, response.text
    doc = await wait_for(noba, cancelled)
    assert doc["status"] == "cancelled", doc
    assert "never" not in doc["output"]
