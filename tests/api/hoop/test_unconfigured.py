"""A deployment without a runbook repository: the plugin is not there, and says so."""

from __future__ import annotations

from tests.stack import ADMIN, Stack, basic


async def test_runbook_routes_without_a_repository(stack: Stack) -> None:
    """404 `plugin not found` for the lists; exec names the connection first."""
    response = await stack.api.get("/api/plugins/runbooks/templates", headers=basic(*ADMIN))
    assert response.status_code == 404
    assert response.json()["message"].startswith("plugin not found")
    body = {"name": "sh", "type": "custom", "command": ["bash"]}
    created = await stack.api.post("/api/connections", json=body, headers=basic(*ADMIN))
    assert created.status_code == 201, created.text
    response = await stack.api.post(
        "/api/plugins/runbooks/connections/sh/exec",
        json={"file_name": "a.runbook.sh"},
        headers=basic(*ADMIN),
    )
    assert response.status_code == 404
    assert response.json()["message"].startswith("plugin not found")
