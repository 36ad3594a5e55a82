"""Executions of real jobs: a git repository made here, real ansible on local hosts, the
execution document and status events as the document shows them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from core.store.models import Run
from core.store.session import transaction
from tests.api.runner.support import ACME, HELLO_PLAYBOOK, Runner, job_body, message_of
from tests.stack import git, make_repo

pytestmark = pytest.mark.slow

EXECUTION_FIELDS = {
    "execution_id", "id", "job_id", "account_alias", "status", "start", "end", "timers",
    "repository_log", "failed_hosts", "is_vpn_established",
}  # fmt: skip
LOCAL = {"ansible_connection": "local"}

# Fails on web1 until it runs limited to its failed hosts (a restart); localhost always passes.
# (A sandboxed play cannot see a marker file the test would leave on the worker's disk.)
FLAKY_PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: say where
      debug: {msg: "on {{ inventory_hostname }}"}
    - name: fail on web1 unless restarted
      fail: {msg: "not restarted yet"}
      when: inventory_hostname == 'web1' and (ansible_limit | default('')) == ''
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A git repository with the playbooks (file:// URL) and its directory."""
    root = tmp_path_factory.mktemp("runner-repo") / "playbooks"
    url = make_repo(
        root, {"site.yml": HELLO_PLAYBOOK, "plays/flaky.yml": FLAKY_PLAYBOOK}, branch="main"
    )
    return url, root


def hosts_in(events: list[dict[str, Any]], event_type: str) -> set[str]:
    """The hosts of status events of one type."""
    return {e["message"]["host"] for e in events if e["event_type"] == event_type}


async def events_of(runner: Runner, job_id: str, execution_id: str) -> list[dict[str, Any]]:
    """Every status event of an execution."""
    response = await runner.request("GET", f"/status/{ACME}/job/{job_id}/execution/{execution_id}")
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


async def test_an_execution_runs_to_success(runner: Runner, repo: tuple[str, Path]) -> None:
    """Start answers PENDING; the execution ends SUCCESS with its commit, timer and events."""
    url, root = repo
    job = await runner.create_job(
        job_body(url, repository={"url": url, "branch": "main", "defaultPlaybook": "site.yml"},
                 properties={"who": "{{ ops }}"})
    )  # fmt: skip
    started_at = int(time.time() * 1000)
    execution = await runner.start(job["id"])
    assert set(execution) == EXECUTION_FIELDS
    assert execution["status"] == "PENDING"
    assert execution["execution_id"] == execution["id"]
    assert execution["job_id"] == job["id"] and execution["account_alias"] == ACME
    assert execution["start"] is None and execution["end"] is None and execution["timers"] == []
    assert execution["repository_log"] is None and execution["failed_hosts"] == []
    assert execution["is_vpn_established"] is False

    done = await runner.wait(job["id"], execution["id"], {"SUCCESS", "FAILURE", "INIT_FAILURE"})
    assert done["status"] == "SUCCESS", done
    assert len(done["timers"]) == 1
    timer = done["timers"][0]
    assert started_at <= timer["start"] <= timer["end"] <= int(time.time() * 1000)
    assert (done["start"], done["end"]) == (timer["start"], timer["end"])
    assert done["failed_hosts"] == []
    commit = done["repository_log"]["recent_commit"][0]
    assert done["repository_log"]["tags"] == []
    assert commit["commit"] == git(root, "rev-parse", "HEAD")
    assert (commit["author"], commit["author_email"]) == ("Ops Author", "ops@example.com")
    assert commit["message"] == "initial playbooks"
    assert commit["date"] == git(root, "log", "-1", "--format=%ad")

    events = await events_of(runner, job["id"], execution["id"])
    assert hosts_in(events, "runner_on_ok") == {"localhost"}
    ok = next(e for e in events if e["event_type"] == "runner_on_ok")
    assert set(ok) == {"id", "timestamp", "notifications", "message", "job_id", "execution_id",
                       "account_alias", "event_type", "status"}  # fmt: skip
    assert ok["notifications"] == [] and ok["account_alias"] == ACME
    assert ok["job_id"] == job["id"] and ok["execution_id"] == execution["id"]
    assert started_at <= ok["timestamp"]
    assert "hello {{ ops }} from localhost" in str(ok["message"])  # ansible's own, untemplated
    assert events[-1]["event_type"] == "run_status" and events[-1]["status"] == "SUCCESS"


async def test_a_failing_playbook_ends_failure_and_restarts_on_its_failed_hosts(
    runner: Runner, repo: tuple[str, Path], tmp_path: Path
) -> None:
    """FAILURE names the failed hosts; a restart is the same execution, a new timer, and runs
    only on those hosts."""
    url, _ = repo
    job = await runner.create_job(
        job_body(
            url,
            repository={"url": url, "defaultPlaybook": "plays/flaky.yml"},
            hosts=[{"id": "localhost", "hostVars": LOCAL}, {"id": "web1", "hostVars": LOCAL}],
        )
    )
    execution = await runner.start(job["id"])
    failed = await runner.wait(job["id"], execution["id"], {"SUCCESS", "FAILURE", "INIT_FAILURE"})
    assert failed["status"] == "FAILURE", failed
    assert failed["failed_hosts"] == ["web1"]
    assert failed["end"] is not None and len(failed["timers"]) == 1

    restart = await runner.request(
        "POST", f"/jobs/{ACME}/{job['id']}/executions/{execution['id']}/restart", json={}
    )
    assert restart.status_code == 200, restart.text
    restarted = restart.json()
    assert restarted["status"] == "PENDING"
    assert restarted["execution_id"] == execution["id"]
    assert restarted["timers"][0] == failed["timers"][0]

    done = await runner.wait(job["id"], execution["id"], {"SUCCESS", "FAILURE", "INIT_FAILURE"})
    assert done["status"] == "SUCCESS", done
    assert len(done["timers"]) == 2
    assert done["timers"][0]["end"] <= done["timers"][1]["start"] <= done["timers"][1]["end"]
    assert done["start"] == done["timers"][0]["start"] and done["end"] == done["timers"][1]["end"]
    events = await events_of(runner, job["id"], execution["id"])
    second = events[
        [(e["event_type"], e["status"]) for e in events].index(("run_status", "FAILURE")) + 1 :
    ]
    assert hosts_in(second, "runner_on_ok") == {"web1"}  # limited to the failed host

    again = await runner.request(
        "POST", f"/jobs/{ACME}/{job['id']}/executions/{execution['id']}/restart", json={}
    )
    assert message_of(again, 400) == (
        f"execution {execution['id']} is SUCCESS; "
        "only FAILURE or INIT_FAILURE executions can be restarted"
    )


async def test_a_missing_repository_ends_init_failure(runner: Runner, tmp_path: Path) -> None:
    """A checkout that fails ends the execution INIT_FAILURE, which may be restarted."""
    url = f"file://{tmp_path}/no-such-repo"
    job = await runner.create_job(job_body(url))
    execution = await runner.start(job["id"])
    done = await runner.wait(job["id"], execution["id"], {"SUCCESS", "FAILURE", "INIT_FAILURE"})
    assert done["status"] == "INIT_FAILURE", done
    assert done["repository_log"] is None


async def test_immediate_create_starts_an_execution(runner: Runner, repo: tuple[str, Path]) -> None:
    """POST /jobs?immediate=true answers the job with a link to its running execution."""
    url, _ = repo
    job = await runner.create_job(job_body(url), query="?immediate=true")
    links = [link for link in job["links"] if link["ref"] == "execution"]
    assert len(links) == 1
    assert links[0]["href"] == f"/jobs/{ACME}/{job['id']}/executions/{links[0]['id']}"
    done = await runner.wait(job["id"], links[0]["id"], {"SUCCESS", "FAILURE", "INIT_FAILURE"})
    assert done["status"] == "SUCCESS", done


async def test_start_hosts_replace_the_jobs_hosts(runner: Runner, repo: tuple[str, Path]) -> None:
    """Hosts in the start body are the inventory of that execution (with the job's vars)."""
    url, _ = repo
    job = await runner.create_job(
        job_body(
            url, hosts=[{"id": "localhost", "hostVars": LOCAL}, {"id": "web1", "hostVars": LOCAL}]
        )
    )
    execution = await runner.start(job["id"], {"hosts": [{"id": "web1"}]})
    done = await runner.wait(job["id"], execution["id"], {"SUCCESS", "FAILURE", "INIT_FAILURE"})
    assert done["status"] == "SUCCESS", done
    events = await events_of(runner, job["id"], execution["id"])
    assert hosts_in(events, "runner_on_ok") == {"web1"}


async def test_dynamic_inventory_takes_every_host_of_the_account(
    runner: Runner, repo: tuple[str, Path]
) -> None:
    """With useDynamicInventory the play sees the hosts of the account's other jobs too."""
    url, _ = repo
    await runner.create_job(job_body(url, hosts=[{"id": "alpha", "hostVars": LOCAL}]))
    job = await runner.create_job(
        job_body(url, hosts=[{"id": "beta", "hostVars": LOCAL}], useDynamicInventory=True)
    )
    execution = await runner.start(job["id"])
    done = await runner.wait(job["id"], execution["id"], {"SUCCESS", "FAILURE", "INIT_FAILURE"})
    assert done["status"] == "SUCCESS", done
    seen = hosts_in(await events_of(runner, job["id"], execution["id"]), "runner_on_ok")
    assert {"alpha", "beta"} <= seen


async def test_job_status_lists_every_execution_in_order(
    runner: Runner, repo: tuple[str, Path]
) -> None:
    """GET /status/{alias}/job/{id} pages the events of all the job's executions, oldest first."""
    url, _ = repo
    job = await runner.create_job(job_body(url))
    first = await runner.start(job["id"])
    await runner.wait(job["id"], first["id"], {"SUCCESS"})
    second = await runner.start(job["id"])
    await runner.wait(job["id"], second["id"], {"SUCCESS"})
    response = await runner.request("GET", f"/status/{ACME}/job/{job['id']}")
    body = response.json()
    assert set(body) == {"page", "size", "totalSize", "results"}
    order = [e["execution_id"] for e in body["results"]]
    assert body["totalSize"] == len(order) > 4
    assert order == sorted(order, key=[first["id"], second["id"]].index)
    paged = await runner.request("GET", f"/status/{ACME}/job/{job['id']}?page=1&size=3")
    assert [e["id"] for e in paged.json()["results"]] == [e["id"] for e in body["results"][3:6]]
    listed = await runner.request("GET", f"/jobs/{ACME}/{job['id']}/executions")
    assert [e["execution_id"] for e in listed.json()["results"]] == [second["id"], first["id"]]
    everything = (await runner.request("GET", f"/jobs/{ACME}/executions?size=2")).json()
    assert [e["execution_id"] for e in everything["results"]] == [second["id"], first["id"]]
    assert everything["totalSize"] > 2  # the module's other executions, of other jobs


async def test_a_stop_the_run_no_longer_takes_is_400(
    runner: Runner, repo: tuple[str, Path]
) -> None:
    """When the recorded status lags behind an execution that has ended, stop and kill are
    refused by the run itself: 400, not an error of the server."""
    url, _ = repo
    job = await runner.create_job(job_body(url))
    execution = await runner.start(job["id"])
    await runner.wait(job["id"], execution["id"], {"SUCCESS"})
    # The row says SUCCESS a moment before the workflow closes: wait for it to be closed.
    await runner.stack.temporal.get_workflow_handle(execution["id"]).result()
    with transaction(runner.stack.sessions) as session:
        row = session.get(Run, execution["id"])
        assert row is not None
        row.status = "running"
    for action in ("stop", "kill"):
        response = await runner.request(
            "POST", f"/jobs/{ACME}/{job['id']}/executions/{execution['id']}/{action}", json={}
        )
        assert message_of(response, 400) == f"execution {execution['id']} has already ended"
