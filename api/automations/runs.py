"""Runs of automations: an automation in the engine's words, started, read and cancelled.

Each type becomes engine actions (`exec` for scripts and local service control, `ssh` for a
host, `http` for webhooks, `notify` for notifications); a workflow or composite inlines its
steps' actions, in order, so a failed step skips the rest. Variables and a webhook's body
reach scripts as environment variables (`PARAM_<NAME>`, `NOBA_PAYLOAD`), never as text
spliced into a command line; webhook and notification fields may use them as templates.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.automations.catalog import DIALECT, approval_policy, automation_or_404, epoch
from api.automations.ids import (
    automation_engine_id,
    automation_public_id,
    run_engine_id,
    run_public_id,
)
from api.automations.params import DEFAULT_TIMEOUT, refs_of
from api.automations.report import report_action
from api.errors import ApiError, bad_request, not_found
from api.launch import LaunchRequest
from core.maintenance import Autonomy, effective_autonomy
from core.script_library import SCRIPTS
from core.secrets import SECRET_REF, refs_in
from core.statuses import automation_run_status
from core.store.maintenance import open_windows
from core.store.models import Definition, Run, RunEvent, User, utcnow
from core.store.runs import failed_action_error
from workflows.contracts import ActionSpec, GateSpec
from workflows.gate import ADMIN_KEY

# Every automation run shares one pool of slots, whatever account or user started it.
SLOT_KEY = "automations"
OUTPUT_CAP = 256 * 1024  # NOBA's cap on a run's output
OUTPUT_EVENTS = ("stdout", "stderr")
MAX_DEPTH = 5  # workflows of workflows: deep enough for real use, never a cycle
MAX_PAYLOAD = 64 * 1024
TRUNCATED_MARK = "\n[output truncated at 256 KB]\n"


@dataclass(frozen=True)
class Trigger:
    """What started a run: `manual`, `webhook` or `schedule`, by whom, with what."""

    kind: str
    by: User
    variables: Mapping[str, Any]
    payload: Any = None


def check_variables(raw: Any) -> dict[str, Any]:
    """`{variables}` of a run request: an object of names to scalars."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise bad_request("body: must be a JSON object")
    for key in raw:
        if key != "variables":
            raise bad_request(f"{key}: unknown field; allowed: variables")
    variables = raw.get("variables") or {}
    if not isinstance(variables, dict) or len(variables) > 100:
        raise bad_request("variables: an object of at most 100 names")
    for name, value in variables.items():
        if not name.isidentifier() or len(name) > 100:
            raise bad_request(f"variables.{name}: names are letters, digits and '_'")
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise bad_request(f"variables.{name}: a string, number or boolean")
        if len(str(value)) > 8192:
            raise bad_request(f"variables.{name}: at most 8192 characters")
    return dict(variables)


def _script_text(params: Mapping[str, Any]) -> str:
    if "command" in params:
        return str(params["command"])
    words = " ".join(shlex.quote(a) for a in params.get("args") or [])
    return f"set -- {words}\n{SCRIPTS[params['script']].text}"


def _ssh(session: Session, host: str, where: str) -> dict[str, Any]:
    # Imported here: the hosts catalog is optional for every other type.
    from core.store.hosts import host_target

    target = host_target(session, host)
    if target is None:
        raise bad_request(f"{where}: no host {host!r} (apply a `kind: Host` document first)")
    return target


def _approval_action(session: Session, step: Mapping[str, Any], index: int) -> ActionSpec:
    return ActionSpec(
        name=f"approval {index + 1}",
        kind="approval",
        spec={
            "message": step["message"],
            "approvers": approver_people(session, list(step["approvers"])),
            "rule": "any",
            "timeout_seconds": step["timeout_minutes"] * 60.0,
            "on_timeout": step["on_timeout"],
        },
        templated=False,
    )


def _env(trigger: Trigger) -> dict[str, str]:
    if trigger.payload is None:
        return {}
    return {"NOBA_PAYLOAD": json.dumps(trigger.payload)[:MAX_PAYLOAD]}


def actions_of(
    session: Session, row: Definition, trigger: Trigger, depth: int = 0
) -> list[ActionSpec]:
    """The engine actions that run automation `row`, its steps inlined."""
    spec = row.spec
    params: dict[str, Any] = spec.get("params") or {}
    kind = spec["type"]
    name = spec["name"]
    if kind == "script":
        return [
            ActionSpec(
                name=name,
                kind="exec",
                spec={"script": _script_text(params), "env": _env(trigger)},
                timeout_seconds=float(params["timeout"]),
                templated=False,
            )
        ]
    if kind == "service_control":
        argv = ["systemctl", params["action"], "--", params["service"]]
        # Automations stored before service control had a timeout get the default.
        limit = float(params.get("timeout", DEFAULT_TIMEOUT))
        if "host" in params:
            target = _ssh(session, params["host"], "params.host")
            remote = {**target, "argv": argv}
            return [
                ActionSpec(
                    name=name, kind="ssh", spec=remote, timeout_seconds=limit, templated=False
                )
            ]
        script = "exec " + " ".join(shlex.quote(a) for a in argv)
        return [
            ActionSpec(
                name=name,
                kind="exec",
                spec={"script": script},
                timeout_seconds=limit,
                templated=False,
            )
        ]
    if kind == "agent_command":
        target = _ssh(session, params["host"], "params.host")
        return [
            ActionSpec(
                name=name,
                kind="ssh",
                spec={**target, "command": params["command"]},
                timeout_seconds=float(params["timeout"]),
                templated=False,
            )
        ]
    if kind == "webhook":
        http: dict[str, Any] = {
            "url": params["url"],
            "method": params["method"],
            "headers": params.get("headers") or {},
        }
        if params.get("body"):
            http["body"] = params["body"]
        return [
            ActionSpec(name=name, kind="http", spec=http, timeout_seconds=float(params["timeout"]))
        ]
    if kind == "notification":
        notify = {
            "urls_ref": [c[SECRET_REF] for c in params["channels"]],
            "title": params.get("title") or name,
            "body": params["message"],
        }
        return [ActionSpec(name=name, kind="notify", spec=notify)]
    steps = params.get("steps") or params.get("automations") or []
    if depth >= MAX_DEPTH:
        raise bad_request(f"{automation_public_id(row.id)}: steps nest deeper than {MAX_DEPTH}")
    actions: list[ActionSpec] = []
    for i, step in enumerate(steps):
        if isinstance(step, dict):
            actions.append(_approval_action(session, step["approval"], i))
            continue
        child = _step(session, step, f"params.steps[{i}]")
        actions += actions_of(session, child, trigger, depth + 1)
    return actions


def _step(session: Session, public_id: str, where: str) -> Definition:
    engine_id = automation_engine_id(public_id)
    row = session.get(Definition, engine_id) if engine_id else None
    if row is None or row.dialect != DIALECT or row.deleted_at is not None:
        raise bad_request(f"{where}: automation {public_id} not found")
    return row


def launch_request(
    session: Session, row: Definition, trigger: Trigger, max_runs: int
) -> LaunchRequest:
    """Automation `row` as one run, started by `trigger`."""
    actions = actions_of(session, row, trigger)
    spec = row.spec
    public_id = automation_public_id(row.id)
    single_script = len(actions) == 1 and spec["type"] in (
        "script",
        "agent_command",
        "service_control",
    )
    return LaunchRequest(
        definition_id=row.id,
        dialect=DIALECT,
        title=f"{spec['name']} ({public_id})",
        creator=trigger.by.id,
        actions=actions,
        account=SLOT_KEY,
        concurrency_limit=max_runs,
        # A script past its timeout ends `timeout`, as NOBA reports it.
        ttl_seconds=float(spec["params"]["timeout"]) if single_script else None,
        resource_id=public_id,
        parameters={
            "trigger": trigger.kind,
            "triggered_by": trigger.by.email,
            "variables": dict(trigger.variables),
        },
        template_env={"params": dict(trigger.variables), "payload": trigger.payload},
        secret_refs=refs_in([a.spec for a in actions]),
    )


def subjects_of(session: Session, row: Definition, depth: int = 0) -> list[str]:
    """What a maintenance window's scope may name to cover this automation: its id, the host
    it acts on, and those of its steps (a step runs its automation's actions on its host)."""
    params = row.spec.get("params") or {}
    subjects = [automation_public_id(row.id), *([params["host"]] if params.get("host") else [])]
    if depth >= MAX_DEPTH:
        return subjects  # too deep to run at all: actions_of says so
    for step in params.get("steps") or params.get("automations") or []:
        if isinstance(step, str):
            engine_id = automation_engine_id(step)
            child = session.get(Definition, engine_id) if engine_id else None
            # A missing step is actions_of's 400 to report, not a subject.
            if child is not None and child.dialect == DIALECT and child.deleted_at is None:
                subjects += subjects_of(session, child, depth + 1)
    return subjects


def autonomy_now(session: Session, row: Definition) -> Autonomy:
    """The automation's autonomy for a trigger now, after the open maintenance windows."""
    own = str(row.spec.get("autonomy", "execute"))
    return effective_autonomy(own, subjects_of(session, row), open_windows(session, utcnow()))


def refusal(row: Definition, autonomy: Autonomy) -> str | None:
    """Why a trigger of `row` is refused (409), or None when it may run."""
    public_id = automation_public_id(row.id)
    if not row.spec.get("enabled", True):
        return f"automation {public_id} is disabled"
    if autonomy.level != "disabled":
        return None
    window = autonomy.window
    if window is not None:
        return (
            f"automation {public_id} is blocked by maintenance window {window.name!r} ({window.id})"
        )
    return f"automation {public_id} has autonomy disabled"


def prepare_run(session: Session, public_id: str, trigger: Trigger, max_runs: int) -> LaunchRequest:
    """Check that automation `public_id` may run now and build its run."""
    return prepare_row_run(session, automation_or_404(session, public_id), trigger, max_runs)


def prepare_row_run(
    session: Session, row: Definition, trigger: Trigger, max_runs: int
) -> LaunchRequest:
    """Check that automation `row` may run now and build its run, held for approval when its
    autonomy (or an open window) says `approve`, reported to its channels when `notify`."""
    autonomy = autonomy_now(session, row)
    reason = refusal(row, autonomy)
    if reason is not None:
        raise ApiError(409, reason)
    request = launch_request(session, row, trigger, max_runs)
    held_by = autonomy.window.id if autonomy.window is not None else None
    if autonomy.level == "notify":
        request = reported(request, row, trigger.kind)
    return dataclasses.replace(
        request,
        gate=start_gate(session, row, autonomy) if autonomy.level == "approve" else None,
        parameters={**request.parameters, "autonomy": autonomy.level, "window": held_by},
    )


def reported(request: LaunchRequest, row: Definition, trigger_kind: str) -> LaunchRequest:
    """`request` ending with a report to the automation's channels (the `notify` autonomy);
    unchanged without channels (a window's `notify` over an automation without any)."""
    refs = refs_of(row.spec.get("channels"))
    if not refs:
        return request
    report = report_action(row.spec["name"], automation_public_id(row.id), trigger_kind, refs)
    return dataclasses.replace(
        request,
        actions=[*request.actions, report],
        secret_refs=[*request.secret_refs, *refs],
    )


def approver_people(session: Session, usernames: list[str]) -> list[str]:
    """Gate keys of the named approvers, and of any admin (NOBA: "or an admin")."""
    people = [ADMIN_KEY]
    for name in usernames:
        user = session.scalar(select(User).where(User.email == name))
        if user is not None:
            people.append(f"person:{user.id}")
    return people


def start_gate(session: Session, row: Definition, autonomy: Autonomy) -> GateSpec:
    """What a trigger of an `approve` automation waits for: its approvers or an admin, for its
    `approval.timeout_minutes` (60), then approved or rejected as its `on_timeout` says
    (reject)."""
    policy = approval_policy(row.spec)
    message = f"Run {row.spec['name']} ({automation_public_id(row.id)})?"
    if autonomy.window is not None:
        message += f" Held by maintenance window {autonomy.window.name!r} ({autonomy.window.id})."
    return GateSpec(
        rule="any",
        people=approver_people(session, list(row.spec.get("approvers") or [])),
        teams=[],
        timeout_seconds=float(policy["timeout_minutes"]) * 60.0,
        message=message,
        on_timeout=str(policy["on_timeout"]),
    )


def automation_run(session: Session, public_id: str) -> Run:
    """The automation run `run_…`, or 404."""
    engine_id = run_engine_id(public_id)
    run = session.get(Run, engine_id) if engine_id else None
    if run is None or run.dialect != DIALECT:
        raise not_found(f"run {public_id} not found")
    return run


def output_of(session: Session, run_id: str) -> str:
    """What the run's programs printed, in order, up to NOBA's 256 KB."""
    parts: list[str] = []
    size = 0
    rows = session.scalars(
        select(RunEvent.message)
        .where(RunEvent.run_id == run_id, RunEvent.event_type.in_(OUTPUT_EVENTS))
        .order_by(RunEvent.seq)
    )
    for message in rows:
        line = message + "\n"
        size += len(line.encode())
        if size > OUTPUT_CAP:
            parts.append(TRUNCATED_MARK)
            break
        parts.append(line)
    return "".join(parts)


def run_view(session: Session, run: Run) -> dict[str, Any]:
    """`GET /api/automations/runs/{run_id}`."""
    params = run.parameters or {}
    return {
        "run_id": run_public_id(run.id),
        "automation_id": automation_public_id(run.definition_id),
        "status": automation_run_status(run.status),
        "started": epoch(run.start_time),
        "finished": epoch(run.end_time),
        "output": output_of(session, run.id),
        "error": run.error or failed_action_error(session, run.id),
        "trigger": params.get("trigger"),
        "triggered_by": params.get("triggered_by"),
        "variables": params.get("variables") or {},
        "autonomy": params.get("autonomy"),
        "window": params.get("window"),
        "created": epoch(run.created_at),
    }
