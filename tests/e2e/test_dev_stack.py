"""`runwright dev` as a newcomer uses it: one command, the document's curl calls, Ctrl-C, again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.servers import fixed_port
from tests.stack import make_repo

pytestmark = pytest.mark.slow

PLAYBOOK_ID = "1e624351-2e7c-4afd-a038-8b0fc9e179ef"
CONFIG_ID = "0189f7b0-e0c7-944f-1f86-3e554392fd2b"
AUTH = ("admin@local", "admin")


def documents(repo_url: str) -> str:
    return f"""
apiVersion: mission-control.flanksource.com/v1
kind: ConfigItem
id: {CONFIG_ID}
name: podinfo
type: Kubernetes::Deployment
tags: {{namespace: demo}}
---
apiVersion: mission-control.flanksource.com/v1
kind: Playbook
id: {PLAYBOOK_ID}
metadata: {{name: scale-deployment}}
spec:
  configs: [{{type: Kubernetes::Deployment}}]
  parameters: [{{name: replicas, default: "2"}}]
  actions:
    - name: play
      ansible: {{checkout: {{url: "{repo_url}"}}, playbook: site.yml}}
"""


class DevStack:
    """A `runwright dev` process on free ports, in its own working directory."""

    def __init__(self, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.cwd = cwd
        self.extra_env = env or {}
        self.api_port, self.temporal_port, self.ui_port = fixed_port(), fixed_port(), fixed_port()
        self.log = cwd / f"dev-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWRIGHT_")} | {
            "RUNWRIGHT_TEMPORAL_PORT": str(self.temporal_port),
            "RUNWRIGHT_UI_PORT": str(self.ui_port),
            **self.extra_env,
        }
        runwright = Path(sys.executable).parent / "runwright"
        self.proc = subprocess.Popen(
            [str(runwright), "dev", "--port", str(self.api_port)],
            cwd=self.cwd,
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while "runwright dev is up" not in self.log.read_text():
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.1)

    def interrupt(self) -> int:
        """Ctrl-C, as a terminal sends it; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=30)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in temporal_server_pids(self.cwd / ".runwright" / "temporal.db"):
            os.kill(pid, signal.SIGTERM)


def temporal_server_pids(db_file: Path) -> list[int]:
    """Live dev-server processes using this stack's Temporal state file."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"start-dev" in cmdline and str(db_file).encode() in cmdline:
                pids.append(int(entry.name))
    return pids


def test_dev_stack_runs_documented_calls_and_restarts(tmp_path: Path) -> None:
    """Apply, run and read back through curl-like calls; Ctrl-C stops all; a restart keeps runs."""
    repo = make_repo(
        tmp_path / "repo",
        {"site.yml": "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: {msg: hi}\n"},
    )
    (tmp_path / "podinfo.yaml").write_text(documents(repo))
    dev = DevStack(tmp_path)
    try:
        dev.start()
        log = dev.log.read_text()
        assert f"http://127.0.0.1:{dev.ui_port}" in log and "admin@local / admin" in log
        runwright = Path(sys.executable).parent / "runwright"
        applied = subprocess.run(
            [str(runwright), "apply", "-f", "podinfo.yaml", "--server", dev.url],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        assert f"Playbook default/scale-deployment created (id {PLAYBOOK_ID})" in applied.stdout
        # The document's own example, ids replaced.
        created = httpx.post(
            f"{dev.url}/playbook/run",
            auth=AUTH,
            json={"id": PLAYBOOK_ID, "config_id": CONFIG_ID, "params": {"replicas": "1"}},
        )
        assert created.status_code == 201, created.text
        run_id = created.json()["run_id"]
        deadline = time.monotonic() + 60
        while (
            status := httpx.get(f"{dev.url}/playbook/run/{run_id}", auth=AUTH).json()["status"]
        ) != "completed":
            assert status in ("scheduled", "running"), status
            assert time.monotonic() < deadline
            time.sleep(0.2)
        listed = httpx.get(f"{dev.url}/playbook/list", params={"config_id": CONFIG_ID}, auth=AUTH)
        assert [p["id"] for p in listed.json()] == [PLAYBOOK_ID]
        ui = httpx.get(f"http://127.0.0.1:{dev.ui_port}/api/v1/namespaces", timeout=10)
        assert ui.status_code == 200
        assert dev.interrupt() == 0
        assert "runwright dev stopped." in dev.log.read_text()
        assert temporal_server_pids(tmp_path / ".runwright" / "temporal.db") == []

        # Even SIGKILL (no chance to clean up) takes the Temporal server down with it.
        killed = DevStack(tmp_path)
        killed.start()
        assert killed.proc is not None
        killed.proc.kill()
        killed.proc.wait()
        deadline = time.monotonic() + 10
        while temporal_server_pids(tmp_path / ".runwright" / "temporal.db"):
            assert time.monotonic() < deadline, "the Temporal dev server outlived runwright dev"
            time.sleep(0.1)

        again = DevStack(tmp_path)
        again.start()
        try:
            body = httpx.get(f"{again.url}/playbook/run/{run_id}", auth=AUTH).json()
            assert body["status"] == "completed" and body["parameters"] == {"replicas": "1"}
            assert again.interrupt() == 0
        finally:
            again.kill()
    finally:
        dev.kill()


RUNBOOK_DOCUMENTS = """
kind: Connection
name: ops-shell
type: custom
command: [bash]
runbooks: {path_prefix: ops/}
---
kind: Connection
name: reviewed-shell
type: custom
command: [bash]
reviewers: [sre]
runbooks: {path_prefix: ops/}
---
kind: Person
email: approver@local
password: approver
role: operator
---
kind: Team
name: sre
members: [approver@local]
"""


def test_dev_stack_runs_the_runbook_walkthrough_and_a_review_outlives_it(tmp_path: Path) -> None:
    """The README's hoop calls against `runwright dev`; a review made before Ctrl-C is approved
    after a fresh start (Temporal, worker and API all restarted) and then runs."""
    runbooks = make_repo(
        tmp_path / "runbooks",
        {"ops/hello.runbook.sh": 'echo hello {{ .name | required "who?" | squote }}\n'},
    )
    env = {"RUNWRIGHT_RUNBOOKS_GIT_URL": runbooks}
    dev = DevStack(tmp_path, env)
    try:
        dev.start()
        runwright = Path(sys.executable).parent / "runwright"
        applied = subprocess.run(
            [str(runwright), "apply", "-f", "-", "--server", dev.url],
            input=RUNBOOK_DOCUMENTS,
            capture_output=True,
            text=True,
            check=True,
        )
        assert "Connection ops-shell created" in applied.stdout
        token = httpx.post(f"{dev.url}/api/tokens", auth=AUTH, json={"name": "cli"}).json()["token"]
        listed = httpx.get(
            f"{dev.url}/api/plugins/runbooks/templates",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert [i["name"] for i in listed.json()["items"]] == ["ops/hello.runbook.sh"]
        body = {"file_name": "ops/hello.runbook.sh", "parameters": {"name": "ops"}}
        done = httpx.post(
            f"{dev.url}/api/plugins/runbooks/connections/ops-shell/exec",
            headers={"Api-Key": token},
            json=body,
            timeout=60,
        )
        assert done.status_code == 200, done.text
        assert (done.json()["output"], done.json()["exit_code"]) == ("hello ops\n", 0)
        review = httpx.post(
            f"{dev.url}/api/plugins/runbooks/connections/reviewed-shell/exec",
            headers={"Api-Key": token},
            json=body,
            timeout=60,
        ).json()
        assert review["has_review"] is True
        assert dev.interrupt() == 0
    finally:
        dev.kill()

    again = DevStack(tmp_path, env)
    try:
        again.start()
        session_id = review["session_id"]
        decided = httpx.put(
            f"{again.url}/api/reviews/{session_id}",
            auth=("approver@local", "approver"),
            json={"status": "APPROVED"},
            timeout=60,
        )
        assert decided.status_code == 200, decided.text
        deadline = time.monotonic() + 60
        while (session := httpx.get(f"{again.url}/api/sessions/{session_id}", auth=AUTH).json())[
            "status"
        ] != "done":
            assert time.monotonic() < deadline, session
            time.sleep(0.2)
        assert (session["exit_code"], session["output"]) == (0, "hello ops\n")
        assert again.interrupt() == 0
    finally:
        again.kill()
