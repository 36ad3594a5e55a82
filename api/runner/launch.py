"""What one execution of a job runs: its hosts, keys and limit turned into the engine's
ansible action. Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from api.fields import FieldError, PutSecret, array, number, obj, plain_data, secret
from api.launch import LaunchRequest
from api.runner.fields import decode_key, host_id
from api.runner.lookups import DIALECT
from core.secrets import is_ref, refs_in
from core.store.models import Account, Definition
from workflows.contracts import ActionSpec, CallbackSpec, GitSource

MAX_EXPIRY_SECONDS = 86_400.0


@dataclass(frozen=True)
class HostChoice:
    """A host named in a start or restart body, with its key for this execution."""

    id: str
    ssh_key: dict[str, str] | None = None
    host_vars: dict[str, Any] | None = None


@dataclass(frozen=True)
class ExecutionOptions:
    """A start or restart body: hosts (None: not given) and the default key."""

    hosts: list[HostChoice] | None = None
    ssh_key: dict[str, str] | None = None


def parse_execution_body(raw: Any, put_secret: PutSecret) -> ExecutionOptions:
    """`{hosts: [{id, sshPrivateKey}], sshPrivateKey}` (or `{}`, or no body at all)."""
    body = obj(raw, "body")
    hosts: list[HostChoice] | None = None
    if body.get("hosts") is not None:
        hosts = []
        seen: set[str] = set()
        for i, item in enumerate(array(body["hosts"], "hosts")):
            entry = obj(item, f"hosts[{i}]", required=True)
            hid = host_id(entry.get("id"), f"hosts[{i}].id")
            if hid in seen:
                raise FieldError(f"hosts[{i}].id", f"host {hid!r} is listed twice")
            seen.add(hid)
            key = secret(
                entry.get("sshPrivateKey"), f"hosts[{i}].sshPrivateKey", put_secret,
                read=decode_key,
            )  # fmt: skip
            host_vars = None
            if entry.get("hostVars") is not None:
                host_vars = plain_data(
                    obj(entry["hostVars"], f"hosts[{i}].hostVars"), f"hosts[{i}].hostVars"
                )
            hosts.append(HostChoice(hid, key, host_vars))
    key = secret(body.get("sshPrivateKey"), "sshPrivateKey", put_secret, read=decode_key)
    return ExecutionOptions(hosts=hosts, ssh_key=key)


def parse_expiry(raw: Any) -> float:
    """`expiryDuration` of a stop or kill body, in seconds (default 0: at once)."""
    body = obj(raw, "body")
    return number(
        body.get("expiryDuration"),
        "expiryDuration",
        low=0,
        high=MAX_EXPIRY_SECONDS,
        default=0.0,
        unit="seconds",
    )


def known_hosts(
    spec: Mapping[str, Any], account_hosts: list[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The hosts an execution of this job may use, by id: its own, then (with dynamic
    inventory) every other job's of the account; the first definition of an id wins."""
    hosts: dict[str, dict[str, Any]] = {}
    pool = list(spec["hosts"]) + (account_hosts if spec.get("useDynamicInventory") else [])
    for host in pool:
        hosts.setdefault(host["id"], host)
    return hosts


def inventory(
    spec: Mapping[str, Any],
    account_hosts: list[dict[str, Any]],
    options: ExecutionOptions,
    *,
    replace: bool,
    limit: list[str],
) -> list[dict[str, Any]]:
    """The engine's ansible hosts `[{name, vars, sshKey?}]` for one execution.

    With `replace` (a start), hosts named in the body are the inventory; otherwise (a restart)
    they only bring their keys, and the limit picks the hosts to run on. A host the job does
    not know is taken with no variables; limited hosts are always in the inventory.
    """
    known = known_hosts(spec, account_hosts)
    chosen: dict[str, dict[str, Any]] = {}
    if replace and options.hosts is not None:
        for choice in options.hosts:
            chosen[choice.id] = dict(known.get(choice.id) or {"id": choice.id, "hostVars": {}})
    else:
        chosen = {hid: dict(host) for hid, host in known.items()}
    for name in limit:
        chosen.setdefault(name, {"id": name, "hostVars": {}})
    for choice in options.hosts or []:
        if choice.id in chosen:
            if choice.ssh_key is not None:
                chosen[choice.id]["sshPrivateKey"] = choice.ssh_key
            if choice.host_vars is not None:
                merged = {**chosen[choice.id].get("hostVars", {}), **choice.host_vars}
                chosen[choice.id]["hostVars"] = merged
    out = []
    for host in chosen.values():
        entry: dict[str, Any] = {"name": host["id"], "vars": dict(host.get("hostVars") or {})}
        if host.get("sshPrivateKey"):
            entry["sshKey"] = host["sshPrivateKey"]
        out.append(entry)
    return out


def effective_tags(spec: Mapping[str, Any]) -> list[str]:
    """The job's tags and its repository's, once each."""
    tags = list(spec.get("playbookTags") or []) + list(spec["repository"].get("playbookTags") or [])
    return list(dict.fromkeys(tags))


def _ref_id(value: Any) -> str | None:
    return str(value["secretRef"]) if is_ref(value) else None


def git_source(spec: Mapping[str, Any]) -> GitSource:
    """Where an execution checks the playbook out from."""
    repo = spec["repository"]
    creds = repo.get("credentials") or {}
    return GitSource(
        url=repo["url"],
        ref=repo.get("branch") or None,
        username=creds.get("username") or None,
        password_ref=_ref_id(creds.get("password")),
        ssh_key_ref=_ref_id(creds.get("sshPrivateKey")),
    )


def playbook_action(
    spec: Mapping[str, Any],
    hosts: list[dict[str, Any]],
    *,
    ssh_key: dict[str, str] | None,
    limit: list[str],
    ttl_seconds: float,
) -> ActionSpec:
    """The one ansible action of an execution."""
    playbook = spec["repository"]["defaultPlaybook"]
    body: dict[str, Any] = {
        "playbook": playbook,
        "hosts": hosts,
        "extraVars": spec.get("properties") or {},
        "tags": effective_tags(spec),
    }
    if limit:
        body["limit"] = list(limit)
    key = ssh_key or spec.get("sshPrivateKey")
    if key:
        body["sshKey"] = key
    return ActionSpec(
        name=playbook,
        kind="ansible",
        spec=body,
        # A job's strings are ansible's own (Jinja `{{ var }}` included), not the engine's.
        templated=False,
        # The TTL stops the play gracefully first; this only bounds a play that ignores it.
        timeout_seconds=ttl_seconds + 300,
        checkout=git_source(spec),
    )


def callbacks(spec: Mapping[str, Any]) -> list[CallbackSpec]:
    """The job's callbacks as the engine takes them."""
    return [CallbackSpec(url=c["url"], level=c["level"]) for c in spec.get("callbacks") or []]


def execution_secret_refs(action: ActionSpec) -> list[str]:
    """Every secret an execution may open (their values are redacted from its output)."""
    refs = refs_in(action.spec)
    if action.checkout is not None:
        refs += [r for r in (action.checkout.password_ref, action.checkout.ssh_key_ref) if r]
    return list(dict.fromkeys(refs))


def launch_request(
    account: Account,
    job: Definition,
    options: ExecutionOptions,
    account_hosts: list[dict[str, Any]],
    *,
    creator: str | None,
    limit: list[str],
    replace: bool,
    concurrency_limit: int,
) -> LaunchRequest:
    """An execution of `job` (a start with `replace`, else a restart limited to `limit`) in
    the engine's words; `account_hosts` are the other jobs' hosts, for dynamic inventory."""
    spec = job.spec
    hosts = inventory(spec, account_hosts, options, replace=replace, limit=limit)
    ttl_seconds = float(spec["executionTtl"]) * 60
    action = playbook_action(
        spec, hosts, ssh_key=options.ssh_key, limit=limit, ttl_seconds=ttl_seconds
    )
    title = spec.get("name") or spec.get("description") or job.id
    return LaunchRequest(
        definition_id=job.id,
        dialect=DIALECT,
        title=f"{account.alias}/{title[:120]}",
        creator=creator,
        actions=[action],
        account_id=account.id,
        account=account.alias,
        concurrency_limit=concurrency_limit,
        ttl_seconds=ttl_seconds,
        callbacks=callbacks(spec),
        secret_refs=execution_secret_refs(action),
        limit_hosts=list(limit),
        restartable=True,
    )
