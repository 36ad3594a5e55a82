"""Launching a run: each dialect's request translated into the engine's, table by table, and
what the engine builds from it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from api.hoop import sessions as hoop
from api.hoop.schemas import ExecRequest
from api.launch import LaunchRequest, initial_status, run_input, run_row, scheduled_input
from api.mission_control import service as mission_control
from api.runner import launch as runner
from api.runner.launch import ExecutionOptions
from core.runbook_templates import parse_runbook
from core.statuses import RunStatus
from core.store.models import Account, Definition, Resource
from workflows.contracts import ActionSpec, CallbackSpec, GateSpec, Registration

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ECHO = ActionSpec(name="echo", kind="exec", spec={"script": "echo {{ .params.x }}"})

# ---- Mission Control ---------------------------------------------------------------------


def playbook(approval: dict[str, Any] | None = None) -> Definition:
    """A stored playbook with one exec action and a secret in its spec."""
    spec: dict[str, Any] = {
        "actions": [{"name": "say", "exec": {"script": "echo {{ .params.x }}"}}],
        "parameters": [{"name": "pw", "type": "secret", "default": {"secretRef": "pw-default"}}],
    }
    if approval is not None:
        spec["approval"] = approval
    return Definition(id="pb-1", name="restart", namespace="ops", spec=spec)


POD = Resource(id="res-1", kind="config", name="web", type="Kubernetes::Pod", tags={})
APPROVAL = {"type": "any", "approvers": {"people": ["a@x.io"], "teams": ["sre"]}}


@pytest.mark.parametrize(
    ("approval", "resource", "approved", "gate", "kind", "status"),
    [
        (None, None, [], None, "", RunStatus.SCHEDULED),
        (None, POD, [], None, "config", RunStatus.SCHEDULED),
        (
            APPROVAL,
            None,
            [],
            GateSpec(rule="any", people=["person:a@x.io"], teams=["team:sre"], approved=[]),
            "",
            RunStatus.PENDING_APPROVAL,
        ),
        (
            APPROVAL,
            POD,
            ["team:sre"],
            GateSpec(
                rule="any", people=["person:a@x.io"], teams=["team:sre"], approved=["team:sre"]
            ),
            "config",
            RunStatus.SCHEDULED,  # the creator's own approval satisfies an `any` gate
        ),
    ],
)
def test_mission_control_run_request(
    approval: dict[str, Any] | None,
    resource: Resource | None,
    approved: list[str],
    gate: GateSpec | None,
    kind: str,
    status: RunStatus,
) -> None:
    """A playbook run: templated actions, the playbook's gate with the creator's approvals,
    the resource it is about, the sealed parameters, every secret of spec and parameters."""
    params = {"x": "1", "token": {"secretRef": "param-secret"}}
    env = {"config": None, "check": None, "component": None, "params": params}
    request = mission_control.launch_request(playbook(approval), resource, env, "u-1", approved)
    assert (request.definition_id, request.dialect, request.title) == (
        "pb-1",
        "mission_control",
        "ops/restart",
    )
    assert request.creator == "u-1"
    assert [(a.name, a.kind, a.spec, a.templated) for a in request.actions] == [
        ("say", "exec", {"script": "echo {{ .params.x }}"}, True)
    ]
    assert request.gate == gate
    assert (request.resource_kind, request.resource_id) == (kind, resource.id if resource else "")
    assert request.parameters == params and request.template_env == env
    assert request.secret_refs == ["pw-default", "param-secret"]
    assert (request.account, request.concurrency_limit, request.restartable) == ("", None, False)
    assert initial_status(request) == status


# ---- Runner -------------------------------------------------------------------------------

ACCOUNT = Account(id="acc-1", alias="acme")


def job(**fields: Any) -> Definition:
    """A stored Runner job."""
    spec: dict[str, Any] = {
        "name": "deploy",
        "executionTtl": 30,
        "callbacks": [{"url": "https://hooks.example.com/x", "level": "RESULT"}],
        "repository": {
            "url": "https://github.com/example/p.git",
            "defaultPlaybook": "site.yml",
            "credentials": {},
        },
        "hosts": [{"id": "web1", "hostVars": {"v": "{{ inventory_hostname }}"}}],
        "properties": {},
        "sshPrivateKey": {"secretRef": "job-key"},
    }
    spec.update(fields)
    return Definition(id="job-1", spec=spec)


@pytest.mark.parametrize(
    ("definition", "limit", "replace", "title", "hosts"),
    [
        (job(), [], True, "acme/deploy", ["web1"]),
        (job(name=None, description="d" * 200), [], True, "acme/" + "d" * 120, ["web1"]),
        (job(name=None), ["web1", "gone"], False, "acme/job-1", ["web1", "gone"]),
    ],
)
def test_runner_execution_request(
    definition: Definition, limit: list[str], replace: bool, title: str, hosts: list[str]
) -> None:
    """An execution: one untemplated ansible action, the account as concurrency key with
    Runner's limit, the TTL in seconds, the job's callbacks, the limit, restartable."""
    request = runner.launch_request(
        ACCOUNT,
        definition,
        ExecutionOptions(),
        [],
        creator="u-1",
        limit=limit,
        replace=replace,
        concurrency_limit=4,
    )
    assert (request.definition_id, request.dialect, request.title) == ("job-1", "runner", title)
    assert (request.creator, request.account_id, request.account) == ("u-1", "acc-1", "acme")
    [action] = request.actions
    assert (action.kind, action.templated) == ("ansible", False)
    assert [h["name"] for h in action.spec["hosts"]] == hosts
    assert action.spec["hosts"][0]["vars"] == {"v": "{{ inventory_hostname }}"}
    assert request.concurrency_limit == 4 and request.ttl_seconds == 1800
    assert request.callbacks == [CallbackSpec(url="https://hooks.example.com/x", level="RESULT")]
    assert request.limit_hosts == limit and request.restartable
    assert request.gate is None and request.parameters == {} and request.template_env == {}
    assert request.secret_refs == ["job-key"]


# ---- hoop ---------------------------------------------------------------------------------


def connection(reviewers: list[str]) -> Definition:
    """A stored hoop connection."""
    spec = {"type": "custom", "subtype": "bash", "command": ["bash"], "reviewers": reviewers}
    return Definition(id="conn-1", name="shell", spec=spec)


RUNBOOK = parse_runbook(
    'echo {{ .who | squote }}\n{{ .pw | type "password" | asenv "PW" }}\n', "ops/hello.runbook.sh"
)


@pytest.mark.parametrize(
    ("reviewers", "gate", "status"),
    [
        ([], None, RunStatus.SCHEDULED),
        (
            ["dba", "sre"],
            GateSpec(rule="all", people=[], teams=["group:dba", "group:sre"]),
            RunStatus.PENDING_APPROVAL,
        ),
    ],
)
def test_hoop_exec_request(reviewers: list[str], gate: GateSpec | None, status: RunStatus) -> None:
    """An exec: one untemplated runbook action with the rendered text, gated by every
    reviewer group, its sensitive parameters masked in what the row shows."""
    body = ExecRequest(file_name="ops/hello.runbook.sh", parameters={"who": "{{ x }}", "pw": "s"})
    rendered = RUNBOOK.render(body.parameters or {})
    request = hoop.launch_request(
        connection(reviewers),
        "u-1",
        body,
        RUNBOOK,
        rendered,
        commit="abc123",
        client_args=["-x"],
        env_vars={"A": {"secretRef": "a"}},
        files={"F": {"secretRef": "f"}},
        template_env={"PW": {"secretRef": "pw"}},
        output_cap=1024,
    )
    assert (request.definition_id, request.dialect, request.title) == (
        "conn-1",
        "hoop",
        "shell: ops/hello.runbook.sh",
    )
    assert request.resource_id == "conn-1" and request.resource_kind == ""
    [action] = request.actions
    assert (action.name, action.kind, action.templated) == (
        "ops/hello.runbook.sh",
        "runbook",
        False,
    )
    assert action.spec["input"] == rendered.text and "echo '{{ x }}'" in rendered.text
    assert action.spec["template_env"] == {"PW": {"secretRef": "pw"}}
    assert request.gate == gate and initial_status(request) == status
    shown = request.parameters
    assert shown["parameters"] == {"who": "{{ x }}", "pw": "********"}
    assert shown["env_var_names"] == ["envvar:A", "filesystem:F"]
    assert (shown["reviewed"], shown["review_groups"]) == (bool(reviewers), reviewers)
    assert sorted(request.secret_refs) == ["a", "f", "pw"]


# ---- what the engine builds ---------------------------------------------------------------


def request(**fields: Any) -> LaunchRequest:
    """A launch request with what every run has."""
    base: dict[str, Any] = {
        "definition_id": "d-1",
        "dialect": "mission_control",
        "title": "ops/x",
        "creator": "u-1",
        "actions": [ECHO],
    }
    base.update(fields)
    return LaunchRequest(**base)


@pytest.mark.parametrize(
    ("gate", "status"),
    [
        (None, RunStatus.SCHEDULED),
        (GateSpec(rule="any", people=["person:a"], teams=[]), RunStatus.PENDING_APPROVAL),
        (GateSpec(rule="any", people=["person:a"], teams=[], approved=["person:a"]), "scheduled"),
        (
            GateSpec(rule="all", people=["person:a", "person:b"], teams=[], approved=["person:a"]),
            RunStatus.PENDING_APPROVAL,
        ),
    ],
)
def test_initial_status(gate: GateSpec | None, status: str) -> None:
    """Pending approval until the creator's own approvals satisfy the gate."""
    assert initial_status(request(gate=gate)) == status


@pytest.mark.parametrize(
    ("kind", "columns"),
    [
        ("", (None, None, None)),
        ("config", ("r-1", None, None)),
        ("check", (None, "r-1", None)),
        ("component", (None, None, "r-1")),
    ],
)
def test_the_row_names_its_resource(kind: str, columns: tuple[str | None, ...]) -> None:
    """The resource's own column holds its id; other ids are only searchable."""
    row = run_row(request(resource_kind=kind, resource_id="r-1"), "run-1", NOW)
    assert (row.config_id, row.check_id, row.component_id) == columns
    assert (row.id, row.status, row.created_by, row.attempt) == ("run-1", "scheduled", "u-1", 1)
    assert row.created_at == row.scheduled_time == NOW


def test_run_input_carries_the_request() -> None:
    """Every field of the request reaches the workflow, for the given attempt."""
    gate = GateSpec(rule="any", people=["person:a"], teams=[])
    full = request(
        account_id="acc-1",
        account="acme",
        concurrency_limit=4,
        gate=gate,
        ttl_seconds=60.0,
        callbacks=[CallbackSpec(url="https://h.example.com")],
        resource_id="r-1",
        template_env={"params": {"x": "1"}},
        secret_refs=["s"],
        limit_hosts=["web1"],
        restartable=True,
    )
    inp = run_input(full, run_id="run-1", created_at=NOW, attempt=2)
    assert (inp.run_id, inp.definition_id, inp.dialect, inp.title) == (
        "run-1",
        "d-1",
        "mission_control",
        "ops/x",
    )
    assert inp.actions == [ECHO] and inp.template_env == {"params": {"x": "1"}}
    assert (inp.created_at, inp.attempt) == (NOW.isoformat(), 2)
    assert (inp.resource_id, inp.account, inp.concurrency_limit) == ("r-1", "acme", 4)
    assert (inp.gate, inp.ttl_seconds, inp.secret_refs, inp.limit_hosts) == (
        gate,
        60.0,
        ["s"],
        ["web1"],
    )
    assert inp.callbacks == [CallbackSpec(url="https://h.example.com")] and inp.fail_workflow
    assert inp.registration is None


def test_a_scheduled_run_registers_itself() -> None:
    """A schedule's run has no id of its own and writes its row as the creator's."""
    inp = scheduled_input(request(account_id="acc-1", parameters={"a": 1}), NOW)
    assert inp.run_id == ""
    assert inp.registration == Registration(
        created_by="u-1", account_id="acc-1", parameters={"a": 1}
    )
