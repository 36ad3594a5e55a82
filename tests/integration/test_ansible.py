"""Real ansible-runner runs of small playbooks against local hosts."""

from __future__ import annotations

import os
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from activities.ansible import (
    HostSpec,
    PlaybookError,
    PlaybookOutcome,
    PlaybookRequest,
    run_playbook,
)
from core.events import EventLevel, EventRecord
from tests.stack import machine_sandbox

pytestmark = pytest.mark.slow

LOCAL = {"ansible_connection": "local"}
WEB_HOSTS = [HostSpec("web1", dict(LOCAL)), HostSpec("web2", dict(LOCAL))]

FAIL_ON_WEB2 = """
- hosts: all
  gather_facts: false
  tasks:
    - name: greet
      debug:
        msg: "hello {{ inventory_hostname }}"
    - name: break web2
      fail:
        msg: "web2 is broken"
      when: inventory_hostname == 'web2'
"""

SLEEP = """
- hosts: all
  gather_facts: false
  tasks:
    - name: nap
      shell: sleep 30
"""


def write_playbook(tmp_path: Path, text: str, name: str = "site.yml") -> Path:
    """The project directory, with the playbook written into it."""
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    (project / name).write_text(textwrap.dedent(text))
    return project


def run(
    tmp_path: Path,
    request: PlaybookRequest,
    *,
    cancelled: Callable[[], bool] = lambda: False,
    redact: Callable[[str], str] = lambda s: s,
) -> tuple[PlaybookOutcome, list[EventRecord]]:
    events: list[EventRecord] = []
    outcome = run_playbook(
        request,
        private_root=tmp_path / "private",
        on_event=events.append,
        cancelled=cancelled,
        redact=redact,
        sandbox=machine_sandbox(),
        writable=[tmp_path],  # a play that escapes its quoting must be able to show it
    )
    return outcome, events


def task_starts(events: list[EventRecord]) -> list[str | None]:
    return [e.task for e in events if e.event_type == "playbook_on_task_start"]


def pids_with_env(entry: str) -> list[int]:
    """Processes whose environment holds `entry` (NAME=value)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if entry.encode() in environ.split(b"\0"):
            found.append(int(pid))
    return found


def sleep_running(entry: str) -> bool:
    """Whether a `sleep` process carrying `entry` in its environment runs."""
    for pid in pids_with_env(entry):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "sleep":
                return True
        except OSError:
            continue
    return False


def assert_no_survivors(entry: str) -> None:
    deadline = time.monotonic() + 1.0
    while pids_with_env(entry) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pids_with_env(entry) == []


def test_three_task_playbook_succeeds_with_ordered_events(tmp_path: Path) -> None:
    """A 3-task play on localhost succeeds; events run from playbook_on_start to the result."""
    project = write_playbook(
        tmp_path,
        """
        - hosts: all
          gather_facts: false
          tasks:
            - name: say hello
              debug:
                msg: hello
            - name: run a command
              command: echo out
            - name: never
              debug:
                msg: skipped
              when: false
        """,
    )
    outcome, events = run(tmp_path, PlaybookRequest("site.yml", project, hosts=[]))

    assert (outcome.status, outcome.rc) == ("successful", 0)
    assert outcome.failed_hosts == [] and outcome.unreachable_hosts == []
    stats = {"ok": 2, "changed": 1, "failures": 0, "dark": 0, "skipped": 1, "rescued": 0}
    assert outcome.host_stats == {"localhost": {**stats, "ignored": 0}}
    types = [e.event_type for e in events]
    assert types[0] == "playbook_on_start"
    assert types[-2:] == ["playbook_on_stats", "playbook_result"]
    assert task_starts(events) == ["say hello", "run a command", "never"]
    assert types.index("playbook_on_play_start") < types.index("playbook_on_task_start")
    command_ok = next(
        e for e in events if e.event_type == "runner_on_ok" and e.task == "run a command"
    )
    assert command_ok.host == "localhost"
    assert command_ok.data["stdout"] == "out" and command_ok.data["changed"] is True
    assert "\x1b[" not in outcome.stdout and "PLAY RECAP" in outcome.stdout
    result = events[-1]
    assert result.level == EventLevel.RESULT and result.data == outcome.host_stats
    assert "successful" in result.message


def test_failing_host_is_reported(tmp_path: Path) -> None:
    """With web1 and web2 local, a task failing only on web2 fails the play for web2 alone."""
    project = write_playbook(tmp_path, FAIL_ON_WEB2)
    outcome, events = run(tmp_path, PlaybookRequest("site.yml", project, hosts=WEB_HOSTS))

    assert outcome.status == "failed" and outcome.rc != 0
    assert outcome.failed_hosts == ["web2"]
    assert outcome.unreachable_hosts == []
    assert outcome.host_stats["web1"]["failures"] == 0
    assert outcome.host_stats["web2"]["failures"] == 1
    failed = [e for e in events if e.event_type == "runner_on_failed"]
    assert [(e.host, e.task, e.level) for e in failed] == [("web2", "break web2", EventLevel.ERROR)]
    assert failed[0].data["msg"] == "web2 is broken"
    assert "web2" in events[-1].message


def test_limit_runs_only_named_hosts(tmp_path: Path) -> None:
    """limit=['web2'] re-runs the play on web2 only."""
    project = write_playbook(tmp_path, FAIL_ON_WEB2)
    request = PlaybookRequest("site.yml", project, hosts=WEB_HOSTS, limit=["web2"])
    outcome, events = run(tmp_path, request)

    assert list(outcome.host_stats) == ["web2"]
    assert outcome.failed_hosts == ["web2"]
    assert {e.host for e in events if e.host} == {"web2"}


def test_extra_vars_arrive_verbatim(tmp_path: Path) -> None:
    """Quotes, $(...) and {{ }} in an extra var reach the play as data: no shell, no template."""
    weird = f"""it's "quoted" $(touch {tmp_path}/pwned) `id` {{{{ 7 * 6 }}}} \\ ; end"""
    project = write_playbook(
        tmp_path,
        """
        - hosts: all
          gather_facts: false
          tasks:
            - name: show
              debug:
                msg: "{{ weird }}"
            - name: show number
              debug:
                msg: "{{ count + 1 }}"
        """,
    )
    request = PlaybookRequest(
        "site.yml", project, hosts=[], extra_vars={"weird": weird, "count": 41}
    )
    outcome, events = run(tmp_path, request)

    assert outcome.status == "successful"
    shown = {e.task: e.data["msg"] for e in events if e.event_type == "runner_on_ok"}
    assert shown["show"] == weird
    assert shown["show number"] == 42
    assert not (tmp_path / "pwned").exists()


def test_tags_select_tasks(tmp_path: Path) -> None:
    """tags run only the tagged tasks, skip_tags drops tasks from that selection."""
    project = write_playbook(
        tmp_path,
        """
        - hosts: all
          gather_facts: false
          tasks:
            - {name: task a, debug: {msg: a}, tags: [a]}
            - {name: task b, debug: {msg: b}, tags: [b]}
            - {name: task ab, debug: {msg: ab}, tags: [a, b]}
            - {name: untagged, debug: {msg: none}}
        """,
    )
    request = PlaybookRequest("site.yml", project, hosts=[], tags=["a"], skip_tags=["b"])
    outcome, events = run(tmp_path, request)

    assert outcome.status == "successful"
    assert task_starts(events) == ["task a"]


def test_cancel_stops_play_and_kills_task_processes(tmp_path: Path) -> None:
    """Cancel during `sleep 30` returns promptly as canceled, and no marked process survives."""
    project = write_playbook(tmp_path, SLEEP)
    mark = f"TEST_MARK={uuid.uuid4().hex}"
    asked: list[float] = []

    def cancelled() -> bool:
        if not asked and sleep_running(mark):
            asked.append(time.monotonic())
        return bool(asked)

    request = PlaybookRequest("site.yml", project, hosts=[], env=dict([mark.split("=", 1)]))
    started = time.monotonic()
    outcome, events = run(tmp_path, request, cancelled=cancelled)
    returned = time.monotonic()

    assert asked, "the sleep task never started"
    assert returned - asked[0] < 2.0
    assert returned - started < 15
    assert outcome.status == "canceled"
    assert events[-1].event_type == "playbook_result" and "canceled" in events[-1].message
    assert_no_survivors(mark)


def test_timeout_stops_play(tmp_path: Path) -> None:
    """timeout_seconds stops a play stuck in `sleep 30`: status timeout, no marked process left."""
    project = write_playbook(tmp_path, SLEEP)
    mark = f"TEST_MARK={uuid.uuid4().hex}"
    request = PlaybookRequest(
        "site.yml", project, hosts=[], env=dict([mark.split("=", 1)]), timeout_seconds=2.0
    )
    started = time.monotonic()
    outcome, _ = run(tmp_path, request)
    elapsed = time.monotonic() - started

    assert outcome.status == "timeout"
    assert 2.0 <= elapsed < 5.0
    assert_no_survivors(mark)


@pytest.mark.parametrize(
    ("playbook", "cause"),
    [
        ("missing.yml", "not found"),
        ("../escape.yml", "leaves the workdir"),
        ("link.yml", "leaves the workdir"),
        ("/etc/hostname", "relative"),
    ],
)
def test_bad_playbook_path_is_refused(tmp_path: Path, playbook: str, cause: str) -> None:
    """A missing playbook, or one outside the workdir (.., symlink, absolute): PlaybookError."""
    project = write_playbook(tmp_path, "- hosts: all\n  tasks: []\n")
    (tmp_path / "escape.yml").write_text("- hosts: all\n  tasks: []\n")
    (project / "link.yml").symlink_to(tmp_path / "escape.yml")

    with pytest.raises(PlaybookError, match=cause):
        run(tmp_path, PlaybookRequest(playbook, project, hosts=[]))
    assert not (tmp_path / "private").exists()


def test_private_dir_removed_and_no_secret_left(tmp_path: Path) -> None:
    """The ssh key is 0600 inside the private dir during the run; afterwards nothing is left."""
    secret = f"extra-{uuid.uuid4().hex}"
    key_body = f"key-{uuid.uuid4().hex}"
    key = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{key_body}\n-----END OPENSSH PRIVATE KEY-----"
    project = write_playbook(
        tmp_path,
        """
        - hosts: all
          gather_facts: false
          tasks:
            - name: look at the key
              stat:
                path: "{{ lookup('env', 'ANSIBLE_PRIVATE_KEY_FILE') }}"
              register: key_file
            - name: show the key file
              debug:
                msg: "{{ key_file.stat.path }} {{ key_file.stat.mode }} {{ secret | length }}"
        """,
    )
    request = PlaybookRequest(
        "site.yml", project, hosts=[], extra_vars={"secret": secret}, ssh_private_key=key
    )
    outcome, events = run(tmp_path, request)

    assert outcome.status == "successful"
    shown = next(
        e for e in events if e.task == "show the key file" and e.event_type == "runner_on_ok"
    )
    path, mode, length = shown.data["msg"].split()
    assert Path(path).is_relative_to(tmp_path / "private") and mode == "0600"
    assert int(length) == len(secret)
    assert list((tmp_path / "private").iterdir()) == []
    for file in tmp_path.rglob("*"):
        if file.is_file():
            content = file.read_bytes()
            assert secret.encode() not in content and key_body.encode() not in content, file


def test_redact_applies_to_event_messages(tmp_path: Path) -> None:
    """A debug task printing a secret var shows the mask in messages, data and stdout."""
    secret = f"tok-{uuid.uuid4().hex}"
    project = write_playbook(
        tmp_path,
        """
        - hosts: all
          gather_facts: false
          tasks:
            - name: leak
              debug:
                msg: "token is {{ api_token }}"
        """,
    )
    request = PlaybookRequest("site.yml", project, hosts=[], extra_vars={"api_token": secret})
    outcome, events = run(tmp_path, request, redact=lambda s: s.replace(secret, "********"))

    assert outcome.status == "successful"
    leak = next(e for e in events if e.event_type == "runner_on_ok")
    assert "token is ********" in leak.message
    assert leak.data["msg"] == "token is ********"
    assert all(secret not in e.message and secret not in str(e.data) for e in events)
    assert secret not in outcome.stdout and "token is ********" in outcome.stdout


def test_stop_finishes_current_task_on_every_host_and_starts_no_other(tmp_path: Path) -> None:
    """A graceful stop lets the running task end on all hosts, then no further task starts."""
    project = write_playbook(
        tmp_path,
        """
        - hosts: all
          gather_facts: false
          tasks:
            - name: slow
              shell: "sleep 1.5 && touch {{ playbook_dir }}/slow-{{ inventory_hostname }}"
            - name: next
              shell: "touch {{ playbook_dir }}/next-{{ inventory_hostname }}"
        """,
    )
    hosts = [HostSpec(n, {"ansible_connection": "local"}) for n in ("web1", "web2")]
    events: list[EventRecord] = []
    started = time.monotonic()
    outcome = run_playbook(
        PlaybookRequest(playbook="site.yml", workdir=project, hosts=hosts),
        private_root=tmp_path / "private",
        sandbox=machine_sandbox(),
        on_event=events.append,
        cancelled=lambda: False,
        # Ask to stop once the slow task runs on a host (at its mere announcement, holding the
        # play before it would be right too: no host would have started it).
        stop_requested=lambda: any(
            e.event_type == "runner_on_start" and e.task == "slow" for e in events
        ),
    )
    assert outcome.status == "stopped"
    assert sorted(p.name for p in project.glob("slow-*")) == ["slow-web1", "slow-web2"]
    assert list(project.glob("next-*")) == []
    # The next task may be announced, but no host ever started it.
    ran = {(e.task, e.host) for e in events if e.event_type in ("runner_on_start", "runner_on_ok")}
    assert ran == {("slow", "web1"), ("slow", "web2")}
    assert time.monotonic() - started < 10


def test_cancel_wins_over_a_pending_stop(tmp_path: Path) -> None:
    """A kill during a graceful stop ends the running task at once."""
    project = write_playbook(
        tmp_path,
        """
        - hosts: all
          gather_facts: false
          tasks:
            - name: long
              shell: "sleep 30"
        """,
    )
    events: list[EventRecord] = []
    stop_asked: list[float] = []

    def stop_requested() -> bool:
        if not stop_asked and "long" in task_starts(events):
            stop_asked.append(time.monotonic())
        return bool(stop_asked)

    # The kill comes a second after the stop, however long the play took to get there.
    outcome = run_playbook(
        PlaybookRequest(playbook="site.yml", workdir=project, hosts=[]),
        private_root=tmp_path / "private",
        sandbox=machine_sandbox(),
        on_event=events.append,
        cancelled=lambda: bool(stop_asked) and time.monotonic() - stop_asked[0] > 1.0,
        stop_requested=stop_requested,
    )
    assert outcome.status == "canceled"
    # Well short of the task's 30 s, with room for a loaded machine: the task did not finish.
    assert time.monotonic() - stop_asked[0] < 20
