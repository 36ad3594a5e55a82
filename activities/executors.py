"""One action kind each: exec (bash), http, ansible, runbook, notify, ssh, runbook_step;
called by the execute activity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from activities.ansible import HostSpec, PlaybookError, PlaybookRequest, run_playbook
from activities.control import ControlWatch
from activities.event_log import EventLog
from activities.http_requests import HttpLimits, send_request
from activities.sandbox import Sandbox
from activities.scripts import RESULT_OUTPUT_CAP, base_env, param_env, run_script
from core.secrets import Redactor
from workflows.contracts import RUNBOOK_STEP_KIND, ActionSpec


@dataclass(frozen=True)
class Executed:
    """An executor's answer before it becomes an ActionResult."""

    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    error: str | None = None
    data: dict[str, Any] | None = None


@dataclass(frozen=True)
class ActionContext:
    """Where and how one action runs."""

    action: ActionSpec
    spec: dict[str, Any]  # templated, secrets resolved
    workdir: Path
    run_dir: Path
    index: int
    params: dict[str, Any]
    limit_hosts: list[str]
    events: EventLog
    control: ControlWatch
    http: HttpLimits = field(default_factory=HttpLimits)
    sandbox: Sandbox | None = None  # None: RUNWRIGHT_SANDBOX=off, programs run unconfined
    # Opens a secret reference the spec names by id (`*_ref`), teaching the run's redactor.
    open_ref: Callable[[str], str] | None = None
    # The git URL schemes this worker accepts (RUNWRIGHT_GIT_ALLOWED_SCHEMES).
    git_schemes: list[str] = field(default_factory=list)
    # RUNWRIGHT_STEP_AGENT_COMMAND as argv: what carries out runbook steps (empty: their own
    # commands).
    step_agent: list[str] = field(default_factory=list)
    # RUNWRIGHT_STEP_AGENT_ENV: what the agent gets from the worker's environment (secrets).
    step_agent_env: dict[str, str] = field(default_factory=dict)

    @property
    def redactor(self) -> Redactor:
        """The run's own redactor (the one its events pass through)."""
        return self.events.redactor

    def write_output(self, stdout: str, stderr: str = "") -> None:
        """Keep the action's output for its /dev/stdout and /dev/stderr artifacts."""
        out_dir = self.run_dir / "out"
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"{self.index}.stdout").write_text(stdout)
        (out_dir / f"{self.index}.stderr").write_text(stderr)


def env_list(raw: Any) -> dict[str, str]:
    """Environment from Mission Control's `[{name, value}]` list or a plain map."""
    if not raw:
        return {}
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    return {str(e["name"]): str(e.get("value", "")) for e in raw}


def run_exec(ctx: ActionContext) -> Executed:
    """The author's bash script, parameters in its environment."""
    out = run_script(
        str(ctx.spec.get("script", "")),
        workdir=ctx.workdir,
        env=base_env() | param_env(ctx.params) | env_list(ctx.spec.get("env")),
        out_dir=ctx.run_dir / "out",
        index=ctx.index,
        events=ctx.events,
        timeout_seconds=ctx.action.timeout_seconds,
        cancelled=ctx.control.kill,
        stop_requested=ctx.control.stop,
        sandbox=ctx.sandbox,
        writable=[ctx.run_dir],
    )
    return Executed(out.stdout, out.stderr, out.exit_code, out.error)


RESULT_CUT_MARKER = "\n[runwright: the result shows the start; the whole body is in /dev/stdout]"


def run_http(ctx: ActionContext) -> Executed:
    """One HTTP request."""
    resp = send_request(
        ctx.spec,
        timeout_seconds=ctx.action.timeout_seconds,
        limits=ctx.http,
        redact=ctx.redactor.redact,
    )
    ctx.write_output(resp.body)
    data: dict[str, Any] = {"code": resp.code, "headers": resp.headers}
    if resp.truncated:
        data["truncated"] = True
    # The whole kept body is the stdout artifact; the result (in the run's history) its head.
    stdout = resp.body
    if len(stdout) > RESULT_OUTPUT_CAP:
        stdout = stdout[:RESULT_OUTPUT_CAP] + RESULT_CUT_MARKER
    return Executed(stdout=stdout, error=resp.error, data=data)


def run_ansible(ctx: ActionContext) -> Executed:
    """A playbook from the checkout, through ansible-runner."""
    spec = ctx.spec
    hosts = [
        HostSpec(
            name=str(h["name"]),
            vars=dict(h.get("vars") or {}),
            ssh_private_key=h.get("sshKey") or None,
        )
        for h in spec.get("hosts") or []
    ]
    request = PlaybookRequest(
        playbook=str(spec["playbook"]),
        workdir=ctx.workdir,
        hosts=hosts,
        extra_vars={**ctx.params, **(spec.get("extraVars") or {})},
        tags=list(spec.get("tags") or []),
        skip_tags=list(spec.get("skipTags") or []),
        limit=list(ctx.limit_hosts or spec.get("limit") or []),
        ssh_private_key=spec.get("sshKey") or None,
        env=param_env(ctx.params) | env_list(spec.get("env")),
        timeout_seconds=spec.get("timeoutSeconds"),
    )
    try:
        outcome = run_playbook(
            request,
            private_root=ctx.run_dir / "private",
            on_event=ctx.events.emit,
            cancelled=ctx.control.kill,
            redact=ctx.redactor.redact,
            stop_requested=ctx.control.stop,
            sandbox=ctx.sandbox,
            writable=[ctx.run_dir],
        )
    except PlaybookError as exc:
        return Executed(error=str(exc))
    ctx.write_output(outcome.stdout)
    error = None
    if outcome.status == "canceled":
        error = "killed"
    elif outcome.status != "successful":
        failed = ", ".join(outcome.failed_hosts) or "none"
        error = f"playbook {outcome.status} (rc={outcome.rc}; failed hosts: {failed})"
    return Executed(
        stdout=outcome.stdout[-RESULT_OUTPUT_CAP:],
        exit_code=outcome.rc,
        error=error,
        data={
            "failedHosts": outcome.failed_hosts,
            "unreachableHosts": outcome.unreachable_hosts,
            "hostStats": outcome.host_stats,
        },
    )


def run_notify(ctx: ActionContext) -> Executed:
    """A message to notification channels through Apprise."""
    # Imported here: that module builds on this one's ActionContext and Executed.
    from activities import notifications

    return notifications.run_notify(ctx)


def run_runbook(ctx: ActionContext) -> Executed:
    """A rendered runbook fed to a connection's command (hoop.dev's runbooks exec)."""
    # Imported here: that module builds on this one's ActionContext and Executed.
    from activities import runbook_exec

    return runbook_exec.run_runbook(ctx)


def run_runbook_step(ctx: ActionContext) -> Executed:
    """One leaf step of an Aviator runbook: run it, commit what it changed, push its branch."""
    # Imported here: that module builds on this one's ActionContext and Executed.
    from activities import runbook_steps

    return runbook_steps.run_step(ctx)


def run_ssh(ctx: ActionContext) -> Executed:
    """A command on a remote host over SSH."""
    # Imported here: that module builds on this one's ActionContext and Executed.
    from activities import remote

    return remote.run_ssh(ctx)


EXECUTORS: dict[str, Callable[[ActionContext], Executed]] = {
    "ssh": run_ssh,
    "exec": run_exec,
    "http": run_http,
    "ansible": run_ansible,
    "runbook": run_runbook,
    "notify": run_notify,
    RUNBOOK_STEP_KIND: run_runbook_step,
}
