"""Mission Control playbook specs: validated at apply time, turned into engine actions at run time.

Pure functions. Secret fields are swapped for references by a callback before the spec is
stored, so the stored spec, the API and Temporal never hold a secret value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from api.fields import FieldError, PutSecret, array, choice, flag, obj, secret, text
from core.durations import parse_duration
from core.git_urls import GitUrlError, validate_commit, validate_git_url, validate_ref
from core.gotemplate import TemplateError, validate
from core.secrets import SECRET_REF, is_ref, refs_in
from workflows.conditions import normalize_condition
from workflows.contracts import ActionSpec, GateSpec, GitSource

SUPPORTED_KINDS = ("exec", "http", "ansible")
UNSUPPORTED_KINDS = ("sql", "gitops", "pod", "notification", "github", "azureDevopsPipeline")
PARAMETER_TYPES = (
    "check", "checkbox", "code", "component", "config", "list", "people", "team", "text",
    "configs", "duration", "millicores", "bytes", "secret",
)  # fmt: skip
APPROVAL_TYPES = ("any", "all")
# Files an action leaves are named by globs; these two name its captured output.
OUTPUT_ARTIFACTS = ("/dev/stdout", "/dev/stderr")


def _list(value: Any, path: str) -> list[Any]:
    """An array field, named a list as Mission Control's documents do."""
    return array(value, path, expect="a list")


def _check_templates(value: Any, path: str) -> None:
    """Every string in `value` must parse as a template."""
    if isinstance(value, str):
        try:
            validate(value)
        except TemplateError as exc:
            raise FieldError(path, f"template error: {exc}") from exc
    elif isinstance(value, dict) and not is_ref(value):
        for key, item in value.items():
            _check_templates(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_templates(item, f"{path}[{i}]")


def _secret(value: Any, path: str, put: PutSecret) -> Any:
    """A secret field's stored form: a reference; an empty value and a template (which
    holds no secret) are kept as they are."""
    if value is None or value == "" or (isinstance(value, str) and "{{" in value):
        return value
    return secret(value, path, put)


def _env_list(value: Any, path: str, put: PutSecret) -> list[dict[str, Any]]:
    """Mission Control's `[{name, value}]` (or a map): values become secrets."""
    if isinstance(value, dict):
        value = [{"name": k, "value": v} for k, v in value.items()]
    out = []
    for i, item in enumerate(_list(value, path)):
        entry = obj(item, f"{path}[{i}]")
        name = text(entry.get("name"), f"{path}[{i}].name", required=True)
        raw = entry.get("value", "")
        if not is_ref(raw) and not isinstance(raw, str):
            raw = str(raw)
        out.append({"name": name, "value": _secret(raw, f"{path}[{i}].value", put)})
    return out


def _git_check(path: str, check: Callable[..., None], *args: Any) -> None:
    """Run a git value check on `args`, reporting its failure at `path`."""
    try:
        check(*args)
    except GitUrlError as exc:
        raise FieldError(path, str(exc)) from exc


def _checkout(value: Any, path: str, allowed: list[str], put: PutSecret) -> dict[str, Any]:
    spec = obj(value, path)
    url = text(spec.get("url"), f"{path}.url", required=True)
    _git_check(f"{path}.url", validate_git_url, url, allowed)
    for key in ("branch", "tag", "ref"):
        if spec.get(key):
            _git_check(f"{path}.{key}", validate_ref, text(spec[key], f"{path}.{key}"))
    if spec.get("commit"):
        _git_check(f"{path}.commit", validate_commit, text(spec["commit"], f"{path}.commit"))
    path_in_repo = text(spec.get("path"), f"{path}.path")
    if path_in_repo.startswith("/") or ".." in path_in_repo.split("/"):
        raise FieldError(f"{path}.path", "must stay inside the repository")
    return {
        "url": url,
        **{k: spec[k] for k in ("branch", "tag", "ref", "commit") if spec.get(k)},
        "path": path_in_repo,
        "username": text(spec.get("username"), f"{path}.username"),
        "password": _secret(spec.get("password"), f"{path}.password", put),
        "sshKey": _secret(spec.get("sshKey"), f"{path}.sshKey", put),
    }


def _artifacts(value: Any, path: str) -> list[dict[str, str]]:
    out = []
    for i, item in enumerate(_list(value, path)):
        entry = {"path": item} if isinstance(item, str) else obj(item, f"{path}[{i}]")
        glob = text(entry.get("path"), f"{path}[{i}].path", required=True)
        if glob not in OUTPUT_ARTIFACTS and (glob.startswith("/") or ".." in glob.split("/")):
            raise FieldError(f"{path}[{i}].path", "must be relative to the working directory")
        out.append({"path": glob})
    return out


def _kind_spec(
    kind: str, raw: Any, path: str, allowed: list[str], put: PutSecret
) -> dict[str, Any]:
    spec = dict(obj(raw, path))
    if "checkout" in spec and spec["checkout"] is not None:
        spec["checkout"] = _checkout(spec["checkout"], f"{path}.checkout", allowed, put)
    if "artifacts" in spec:
        spec["artifacts"] = _artifacts(spec["artifacts"], f"{path}.artifacts")
    if "env" in spec:
        spec["env"] = _env_list(spec["env"], f"{path}.env", put)
    if kind == "exec":
        text(spec.get("script"), f"{path}.script", required=True)
    elif kind == "http":
        text(spec.get("url"), f"{path}.url", required=True)
        if "headers" in spec:
            spec["headers"] = _env_list(spec["headers"], f"{path}.headers", put)
        method = text(spec.get("method"), f"{path}.method") or "GET"
        if method.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"):
            raise FieldError(f"{path}.method", f"unsupported HTTP method {method!r}")
    elif kind == "ansible":
        playbook = text(spec.get("playbook"), f"{path}.playbook", required=True)
        if playbook.startswith("/") or ".." in playbook.split("/"):
            raise FieldError(f"{path}.playbook", "must be a path inside the repository")
        if not spec.get("checkout"):
            raise FieldError(f"{path}.checkout", "is required: the playbook comes from git")
        for i, host in enumerate(_list(spec.get("hosts"), f"{path}.hosts")):
            entry = obj(host, f"{path}.hosts[{i}]")
            text(entry.get("name"), f"{path}.hosts[{i}].name", required=True)
            obj(entry.get("vars"), f"{path}.hosts[{i}].vars")
        obj(spec.get("extraVars"), f"{path}.extraVars")
        for key in ("tags", "skipTags", "limit"):
            _list(spec.get(key), f"{path}.{key}")
        spec["sshKey"] = _secret(spec.get("sshKey"), f"{path}.sshKey", put)
    _check_templates({k: v for k, v in spec.items() if k != "checkout"}, path)
    return spec


def _action(raw: Any, path: str, allowed: list[str], put: PutSecret) -> dict[str, Any]:
    action = dict(obj(raw, path))
    text(action.get("name"), f"{path}.name", required=True)
    kinds = [k for k in (*SUPPORTED_KINDS, *UNSUPPORTED_KINDS) if k in action]
    if len(kinds) != 1:
        raise FieldError(path, f"needs exactly one action type of: {', '.join(SUPPORTED_KINDS)}")
    kind = kinds[0]
    if kind in UNSUPPORTED_KINDS:
        raise FieldError(f"{path}.{kind}", f"action type {kind!r} is not supported")
    action[kind] = _kind_spec(kind, action[kind], f"{path}.{kind}", allowed, put)
    condition = action.get("if", action.get("filter"))
    try:
        normalize_condition(condition)
    except ValueError as exc:
        raise FieldError(f"{path}.if", str(exc)) from exc
    for key in ("delay", "timeout"):
        if action.get(key) not in (None, ""):
            try:
                parse_duration(action[key])
            except ValueError as exc:
                raise FieldError(f"{path}.{key}", str(exc)) from exc
    return action


def _parameter(raw: Any, path: str, put: PutSecret) -> dict[str, Any]:
    param = dict(obj(raw, path))
    name = text(param.get("name"), f"{path}.name", required=True)
    if not name.replace("_", "").replace("-", "").isalnum():
        raise FieldError(f"{path}.name", "use letters, digits, '-' and '_' only")
    ptype = param.get("type") or "text"
    if ptype not in PARAMETER_TYPES:
        raise FieldError(f"{path}.type", f"unknown parameter type {ptype!r}")
    if "required" in param:
        flag(param["required"], f"{path}.required")
    if param.get("default") is not None:
        _check_templates(str(param["default"]), f"{path}.default")
        if ptype == "secret":
            # A secret's default is a secret: stored as a reference, masked when shown.
            param["default"] = _secret(str(param["default"]), f"{path}.default", put)
    return param


def _approval(raw: Any, path: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    approval = obj(raw, path)
    rule = choice(approval.get("type") or "all", f"{path}.type", APPROVAL_TYPES)
    approvers = obj(approval.get("approvers"), f"{path}.approvers")
    people = [
        text(p, f"{path}.approvers.people[{i}]", required=True).lower()
        for i, p in enumerate(_list(approvers.get("people"), f"{path}.approvers.people"))
    ]
    teams = [
        text(t, f"{path}.approvers.teams[{i}]", required=True)
        for i, t in enumerate(_list(approvers.get("teams"), f"{path}.approvers.teams"))
    ]
    return {"type": rule, "approvers": {"people": people, "teams": teams}}


def normalize_spec(
    raw: Any, *, allowed_schemes: list[str], put_secret: PutSecret
) -> dict[str, Any]:
    """A playbook spec checked field by field, with secret values swapped for references."""
    if refs_in(raw):
        # References are ours to write: one taken from input would open someone else's secret.
        raise FieldError("spec", f"{SECRET_REF!r} objects are reserved and cannot be given")
    spec: dict[str, Any] = dict(obj(raw, "spec"))
    text(spec.get("description"), "spec.description")
    spec["parameters"] = [
        _parameter(p, f"spec.parameters[{i}]", put_secret)
        for i, p in enumerate(_list(spec.get("parameters"), "spec.parameters"))
    ]
    names = [p["name"] for p in spec["parameters"]]
    if len(set(names)) != len(names):
        raise FieldError("spec.parameters", "parameter names must be unique")
    for key in ("configs", "checks", "components"):
        for i, flt in enumerate(_list(spec.get(key), f"spec.{key}")):
            entry = obj(flt, f"spec.{key}[{i}]")
            text(entry.get("type"), f"spec.{key}[{i}].type")
            tags = obj(entry.get("tags", entry.get("labels")), f"spec.{key}[{i}].tags")
            entry["tags"] = {str(k): str(v) for k, v in tags.items()}
            entry.pop("labels", None)
    approval = _approval(spec.get("approval"), "spec.approval")
    if approval is not None:
        spec["approval"] = approval
    actions = _list(spec.get("actions"), "spec.actions")
    if not actions:
        raise FieldError("spec.actions", "a playbook needs at least one action")
    spec["actions"] = [
        _action(a, f"spec.actions[{i}]", allowed_schemes, put_secret) for i, a in enumerate(actions)
    ]
    return spec


def has_approvers(spec: Mapping[str, Any]) -> bool:
    """Whether runs of this playbook wait for approval."""
    approvers = (spec.get("approval") or {}).get("approvers") or {}
    return bool(approvers.get("people") or approvers.get("teams"))


def gate_for(spec: Mapping[str, Any], approved: list[str]) -> GateSpec | None:
    """The approval gate of a run of this playbook (None when it needs no approval)."""
    if not has_approvers(spec):
        return None
    approval = spec["approval"]
    return GateSpec(
        rule=approval["type"],
        people=[f"person:{p}" for p in approval["approvers"]["people"]],
        teams=[f"team:{t}" for t in approval["approvers"]["teams"]],
        approved=approved,
    )


def _ref_id(value: Any) -> str | None:
    return str(value["secretRef"]) if is_ref(value) else None


def _git_source(checkout: Mapping[str, Any]) -> GitSource:
    password, ssh_key = checkout.get("password"), checkout.get("sshKey")
    return GitSource(
        url=checkout["url"],
        ref=checkout.get("branch") or checkout.get("tag") or checkout.get("ref") or None,
        commit=checkout.get("commit") or None,
        path=checkout.get("path") or "",
        username=checkout.get("username") or None,
        password_ref=_ref_id(password),
        ssh_key_ref=_ref_id(ssh_key),
    )


def action_specs(spec: Mapping[str, Any]) -> list[ActionSpec]:
    """The engine's actions for a stored (normalized) playbook spec."""
    out = []
    for action in spec["actions"]:
        kind = next(k for k in SUPPORTED_KINDS if k in action)
        body = dict(action[kind])
        checkout = body.pop("checkout", None)
        artifacts = [a["path"] for a in body.pop("artifacts", None) or []]
        artifacts += [a["path"] for a in action.get("artifacts") or []]
        delay, timeout = action.get("delay"), action.get("timeout")
        out.append(
            ActionSpec(
                name=action["name"],
                kind=kind,
                spec=body,
                condition=normalize_condition(action.get("if", action.get("filter"))),
                delay_seconds=parse_duration(delay) if delay not in (None, "") else 0.0,
                timeout_seconds=parse_duration(timeout) if timeout not in (None, "") else None,
                artifacts=artifacts,
                checkout=_git_source(checkout) if checkout else None,
                templated=True,  # playbooks are written in the engine's Go templates
            )
        )
    return out


def secret_refs(spec: Mapping[str, Any]) -> list[str]:
    """Every secret reference in a stored spec (their values are redacted from run output)."""
    return refs_in(dict(spec))
