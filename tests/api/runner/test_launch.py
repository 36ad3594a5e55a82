"""What an execution runs, from a stored job: pure mapping, table by table."""

from __future__ import annotations

from typing import Any

from activities.runs import rendered_spec
from api.runner.documents import git_date
from api.runner.launch import (
    ExecutionOptions,
    HostChoice,
    execution_secret_refs,
    inventory,
    playbook_action,
)

REF = {"secretRef": "job-key"}


def spec(**fields: Any) -> dict[str, Any]:
    """A stored job spec."""
    base: dict[str, Any] = {
        "executionTtl": 180,
        "callbacks": [],
        "playbookTags": ["a"],
        "repository": {
            "url": "https://github.com/example/p.git",
            "branch": "main",
            "defaultPlaybook": "site.yml",
            "credentials": {
                "username": "u",
                "password": {"secretRef": "pw"},
                "sshPrivateKey": None,
            },
            "playbookTags": ["b", "a"],
        },
        "hosts": [
            {"id": "web1", "hostVars": {"dc": "VA1"}, "sshPrivateKey": {"secretRef": "web1-key"}},
            {"id": "web2", "hostVars": {}, "sshPrivateKey": None},
        ],
        "properties": {"x": 1},
        "sshPrivateKey": REF,
        "useDynamicInventory": False,
    }
    base.update(fields)
    return base


OTHERS = [
    {"id": "db1", "hostVars": {"role": "db"}, "sshPrivateKey": None},
    {"id": "web1", "hostVars": {"dc": "elsewhere"}, "sshPrivateKey": None},
]


def names(hosts: list[dict[str, Any]]) -> list[str]:
    """The inventory's host names."""
    return [h["name"] for h in hosts]


def test_the_jobs_hosts_are_the_inventory() -> None:
    """Without a body, the job's hosts with their vars and own keys."""
    hosts = inventory(spec(), OTHERS, ExecutionOptions(), replace=True, limit=[])
    assert hosts == [
        {"name": "web1", "vars": {"dc": "VA1"}, "sshKey": {"secretRef": "web1-key"}},
        {"name": "web2", "vars": {}},
    ]


def test_dynamic_inventory_adds_the_accounts_hosts_once() -> None:
    """With useDynamicInventory, other jobs' hosts join; the job's own definition wins."""
    hosts = inventory(
        spec(useDynamicInventory=True), OTHERS, ExecutionOptions(), replace=True, limit=[]
    )
    assert names(hosts) == ["web1", "web2", "db1"]
    assert hosts[0]["vars"] == {"dc": "VA1"}


def test_start_hosts_replace_the_inventory_and_bring_keys() -> None:
    """Hosts in a start body are the inventory; known ones keep their vars, keys override."""
    options = ExecutionOptions(
        hosts=[HostChoice("web2", {"secretRef": "new"}), HostChoice("new1")], ssh_key=None
    )
    hosts = inventory(spec(), [], options, replace=True, limit=[])
    assert hosts == [
        {"name": "web2", "vars": {}, "sshKey": {"secretRef": "new"}},
        {"name": "new1", "vars": {}},
    ]


def test_restart_keeps_the_inventory_and_limits_it() -> None:
    """A restart runs on the job's inventory, limited; limited strangers are added bare."""
    options = ExecutionOptions(hosts=[HostChoice("web2", {"secretRef": "k2"})])
    hosts = inventory(spec(), [], options, replace=False, limit=["web2", "gone"])
    assert names(hosts) == ["web1", "web2", "gone"]
    assert hosts[1]["sshKey"] == {"secretRef": "k2"}


def test_the_playbook_action() -> None:
    """One ansible action: playbook, hosts, extra vars, tags of job and repository, limit,
    the default key (the body's over the job's), checkout with credentials, TTL bound."""
    hosts = [{"name": "web1", "vars": {}}]
    action = playbook_action(spec(), hosts, ssh_key=None, limit=["web1"], ttl_seconds=600)
    assert action.kind == "ansible" and action.name == "site.yml"
    assert action.spec == {
        "playbook": "site.yml",
        "hosts": hosts,
        "extraVars": {"x": 1},
        "tags": ["a", "b"],
        "limit": ["web1"],
        "sshKey": REF,
    }
    assert action.timeout_seconds == 900
    assert action.checkout is not None
    assert (action.checkout.url, action.checkout.ref) == (
        "https://github.com/example/p.git",
        "main",
    )
    assert (action.checkout.username, action.checkout.password_ref) == ("u", "pw")
    override = playbook_action(
        spec(), hosts, ssh_key={"secretRef": "body"}, limit=[], ttl_seconds=60
    )
    assert override.spec["sshKey"] == {"secretRef": "body"} and "limit" not in override.spec
    assert execution_secret_refs(action) == ["job-key", "pw"]


def test_jinja_survives_the_engines_templating() -> None:
    """Jinja in a job reaches ansible as written: the engine does not render it as its own."""
    value = {
        "a": "{{ ansible_playbook_python }}",
        "b": ["{{- x -}}", "}} {{{ y"],
        "c": "plain",
        "d": 3,
    }
    action = playbook_action(spec(properties=value), [], ssh_key=None, limit=[], ttl_seconds=60)
    assert rendered_spec(action, {})["extraVars"] == value


def test_commit_dates_read_as_git_prints_them() -> None:
    """RFC 3339 commit times are shown in git's default format; others pass through."""
    assert git_date("2015-09-16T16:27:20-05:00") == "Wed Sep 16 16:27:20 2015 -0500"
    assert git_date("2024-03-05T01:02:03+00:00") == "Tue Mar 5 01:02:03 2024 +0000"
    assert git_date("yesterday") == "yesterday"
