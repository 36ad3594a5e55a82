"""A worker process keeps its credentials to itself: playbooks and scripts cannot read them."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.sandbox import detect
from core.settings import scrub_environment
from core.statuses import RunStatus
from core.store.models import Run
from tests.conftest import TEST_SECRET_KEY
from tests.stack import Stack, make_repo, make_settings, stack_for, worker_process

SITE = """
- hosts: all
  gather_facts: false
  tasks:
    - debug: {msg: "key=[{{ lookup('env', 'RUNWRIGHT_SECRET_KEY') }}]"}
"""


def test_scrub_removes_settings_and_cloud_credentials() -> None:
    """RUNWRIGHT_* and AWS credentials go; everything else stays."""
    env = {"RUNWRIGHT_SECRET_KEY": "k", "AWS_SECRET_ACCESS_KEY": "s", "PATH": "/bin", "HOME": "/"}
    assert sorted(scrub_environment(env)) == ["AWS_SECRET_ACCESS_KEY", "RUNWRIGHT_SECRET_KEY"]
    assert env == {"PATH": "/bin", "HOME": "/"}


async def run_on_worker_process(
    stack: Stack, playbook_id: str, log: Path, extra_env: dict[str, str] | None = None
) -> tuple[str, Run]:
    """Run the playbook on `runwright worker` as its own process (with `extra_env` in its
    environment), stopped once the run has ended; (run id, its final row)."""
    proc = worker_process(stack.settings, stack.temporal, log, extra_env=extra_env)
    try:
        run_id = await stack.run({"id": playbook_id})
        return run_id, await stack.wait_status(run_id, timeout=90)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.slow
async def test_playbook_cannot_read_the_worker_secret_key(tmp_path: Path, temporal: Client) -> None:
    """A play run by `runwright worker` sees no RUNWRIGHT_SECRET_KEY in its environment."""
    settings = make_settings(tmp_path / "home", secret_key=TEST_SECRET_KEY)
    url = make_repo(tmp_path / "repo", {"site.yml": SITE})
    async with stack_for(settings, temporal, worker=False) as stack:
        items = await stack.apply(f"""
apiVersion: mission-control.flanksource.com/v1
kind: Playbook
metadata: {{name: snoop}}
spec:
  actions:
    - name: play
      ansible: {{checkout: {{url: "{url}"}}, playbook: site.yml}}
    - name: script
      exec: {{script: 'echo "key=[$RUNWRIGHT_SECRET_KEY]"'}}
""")
        run_id, row = await run_on_worker_process(stack, items[0]["id"], tmp_path / "worker.log")
        assert row.status == RunStatus.SUCCEEDED, row.error
        actions = (await stack.get_run(run_id))["actions"]
        assert '"msg": "key=[]"' in actions[0]["result"]["stdout"]
        assert actions[1]["result"]["stdout"] == "key=[]"


# Every environment a process of the action can find: pid 1's, its parent's and every other
# /proc entry it can see. The play runs it as a shell task on localhost, as in the recipe.
READ_ENVIRONS = (
    r"tr '\0' '\n' </proc/1/environ; tr '\0' '\n' </proc/$PPID/environ; "
    r"""for f in /proc/[0-9]*/environ; do tr '\0' '\n' <"$f"; done 2>/dev/null; true"""
)


def snoop_playbook(url: str, home: Path) -> str:
    """A Playbook (JSON, which is YAML): the environ reads in a localhost play and a script,
    and the script also looks for the worker's files."""
    runs = home / "work" / "runs"
    worker_files = [home / "runwright.db", home / "secret.key", home / "work" / "cache"]
    worker_files.append(runs / "earlier-run")
    look = "".join(f"[ -e {p} ] && echo visible: {p}; " for p in worker_files)
    script = (
        f"{READ_ENVIRONS}; {look}"
        f'echo "runwright home:[$(ls -A {home})] runs:[$(ls -A {runs})]"; '
        'echo "home:[$(ls -A "$HOME")]"'
    )
    play = {
        "checkout": {"url": url},
        "playbook": "site.yml",
        "hosts": [{"name": "localhost", "vars": {"ansible_connection": "local"}}],
    }
    return json.dumps(
        {
            "apiVersion": "mission-control.flanksource.com/v1",
            "kind": "Playbook",
            "metadata": {"name": "snoop-proc"},
            "spec": {
                "actions": [
                    {"name": "play", "ansible": play},
                    {"name": "script", "exec": {"script": script}},
                ]
            },
        }
    )


@pytest.mark.slow
async def test_actions_cannot_find_the_worker_credentials_in_proc(
    tmp_path: Path, temporal: Client
) -> None:
    """`tr '\\0' '\\n' </proc/1/environ` (or `</proc/$PPID/environ`) in a localhost play or a
    script prints none of the worker's credentials, and none of the worker's files (database,
    key, checkout cache, other runs, its home) can be seen from inside."""
    settings = make_settings(tmp_path / "home", secret_key=TEST_SECRET_KEY)
    tasks = [
        {"shell": READ_ENVIRONS, "register": "read"},
        {"debug": {"var": "read.stdout_lines"}},
    ]
    site = json.dumps([{"hosts": "all", "gather_facts": False, "tasks": tasks}])
    url = make_repo(tmp_path / "repo", {"site.yml": site})
    aws_secret = f"aws-{uuid.uuid4().hex}"
    pg_password = f"pg-{uuid.uuid4().hex}"
    (settings.workspace / "runs" / "earlier-run").mkdir(parents=True)
    async with stack_for(settings, temporal, worker=False) as stack:
        items = await stack.apply(snoop_playbook(url, settings.home.resolve()))
        extra = {"AWS_SECRET_ACCESS_KEY": aws_secret, "PGPASSWORD": pg_password}
        run_id, row = await run_on_worker_process(
            stack, items[0]["id"], tmp_path / "worker.log", extra_env=extra
        )
        assert row.status == RunStatus.SUCCEEDED, row.error
        actions = (await stack.get_run(run_id))["actions"]
    play, script = actions[0]["result"]["stdout"], actions[1]["result"]["stdout"]
    # The reads worked: each saw at least its own process marker.
    assert "RUNWRIGHT_PROCESS_MARK=" in play and "RUNWRIGHT_PROCESS_MARK=" in script
    for secret in (settings.secret_key, aws_secret, pg_password, settings.database_url):
        assert secret not in play and secret not in script
    for name in ("RUNWRIGHT_SECRET_KEY", "RUNWRIGHT_DATABASE_URL", "AWS_SECRET_ACCESS_KEY"):
        assert name not in play and name not in script
    assert "visible:" not in script
    # Of RUNWRIGHT_HOME only the way down to this run's own directory shows.
    assert f"runwright home:[work] runs:[{run_id}]" in script
    # HOME is empty, but for the way down to this Python when it is installed there.
    listed = script.rsplit("home:[", 1)[1].rstrip("]").split()
    sandbox = detect()
    under_home = [Path(p) for p in sandbox.readonly if p.startswith(sandbox.home + "/")]
    python_dirs = {p.relative_to(sandbox.home).parts[0] for p in under_home}
    assert set(listed) <= python_dirs, listed


def wait_for_log(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> str:
    """The worker's log once it contains `text`; fails if the worker exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log.read_text(errors="replace")
        if text in content:
            return content
        assert proc.poll() is None, f"worker exited {proc.returncode}: {content[-2000:]}"
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in the worker's log: {log.read_text()[-2000:]}")


@pytest.mark.slow
async def test_worker_without_bubblewrap_refuses_to_start(tmp_path: Path, temporal: Client) -> None:
    """No bwrap on PATH: `runwright worker` exits at once, naming the package and the opt-out
    setting; with RUNWRIGHT_SANDBOX=off it starts and runs actions, warning at start and for
    every action that it runs them unconfined."""
    settings = make_settings(tmp_path / "home", secret_key=TEST_SECRET_KEY)
    bin_dir = tmp_path / "bin"  # git (GitPython looks for it when imported) and bash only
    bin_dir.mkdir()
    for program in ("git", "bash"):
        (bin_dir / program).symlink_to(shutil.which(program) or f"/usr/bin/{program}")
    no_bwrap = {"PATH": str(bin_dir)}
    log = tmp_path / "refused.log"
    proc = worker_process(settings, temporal, log, extra_env=no_bwrap)
    assert proc.wait(timeout=60) != 0
    said = log.read_text()
    assert "Debian package `bubblewrap`" in said, said
    assert "RUNWRIGHT_SANDBOX=off" in said, said
    assert "worker polling" not in said

    log = tmp_path / "unconfined.log"
    async with stack_for(settings, temporal, worker=False) as stack:
        items = await stack.apply("""
apiVersion: mission-control.flanksource.com/v1
kind: Playbook
metadata: {name: unconfined}
spec:
  actions:
    - name: say
      exec: {script: "echo unconfined"}
""")
        opted_out = {**no_bwrap, "RUNWRIGHT_SANDBOX": "off"}
        proc = worker_process(settings, temporal, log, extra_env=opted_out)
        try:
            wait_for_log(log, "worker polling", proc)
            run_id = await stack.run({"id": items[0]["id"]})
            row = await stack.wait_status(run_id, timeout=60)
            said = wait_for_log(log, run_id, proc)
        finally:
            proc.kill()
            proc.wait()
    assert row.status == RunStatus.SUCCEEDED, row.error
    assert "RUNWRIGHT_SANDBOX=off: actions run without a sandbox" in said
    assert f"RUNWRIGHT_SANDBOX=off: action 'say' of run {run_id} runs without a sandbox" in said
