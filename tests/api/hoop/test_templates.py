"""The runbook lists: every runbook with its parameters, per connection, and re-read on change."""

from __future__ import annotations

from tests.api.hoop.support import VIEWER, Hoop, head_of
from tests.stack import git


async def test_all_templates_with_parameters_and_connections(hoop: Hoop) -> None:
    """Every runbook file (and only those), its parsed parameters, who may run it, the commit;
    a broken template is listed with its error."""
    response = await hoop.get("/api/plugins/runbooks/templates", auth=hoop.auth(VIEWER))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["commit"] == head_of(hoop.repo)
    assert body["commit_message"] == "initial playbooks"
    assert body["commit_author"] == "Ops Author"
    items = {item["name"]: item for item in body["items"]}
    assert "ops/notes.txt" not in items
    hello = items["ops/hello.runbook.sh"]
    assert hello["error"] is None
    assert hello["metadata"]["name"]["description"] == "who to greet"
    assert hello["metadata"]["name"]["required"] is True
    assert hello["metadata"]["name"]["type"] == "text"
    assert hello["connections"] == ["ops-shell", "reviewed"]
    assert items["sql/query.runbook.sql"]["connections"] == ["lite", "pg"]
    assert items["py/hello.runbook.py"]["connections"] == ["app", "py"]
    assert items["other/outside.runbook.sh"]["connections"] == []
    broken = items["ops/broken.runbook.sh"]
    assert broken["metadata"] == {}
    assert "require" in broken["error"]


async def test_templates_of_one_connection(hoop: Hoop) -> None:
    """Only the runbooks under the connection's path prefix."""
    response = await hoop.get("/api/plugins/runbooks/connections/py/templates")
    assert response.status_code == 200
    assert [item["name"] for item in response.json()["items"]] == ["py/hello.runbook.py"]
    missing = await hoop.get("/api/plugins/runbooks/connections/nope/templates")
    assert (missing.status_code, missing.json()) == (404, {"message": "connection not found"})


async def test_a_new_commit_upstream_is_read(hoop: Hoop) -> None:
    """A runbook pushed to the repository is listed and runnable at once, at the new commit."""
    path = hoop.repo / "ops" / "added.runbook.sh"
    path.write_text("echo added\n")
    git(hoop.repo, "add", "-A")
    git(hoop.repo, "commit", "-q", "-m", "add a runbook")
    body = (await hoop.get("/api/plugins/runbooks/templates")).json()
    assert body["commit"] == head_of(hoop.repo)
    assert "ops/added.runbook.sh" in {item["name"] for item in body["items"]}
    response = await hoop.exec(
        "ops-shell", {"file_name": "ops/added.runbook.sh", "ref_hash": head_of(hoop.repo)}
    )
    assert response.status_code == 200, response.text
    assert response.json()["output"] == "added\n"
