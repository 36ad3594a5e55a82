"""Shared ids, documents and assertions for the Mission Control contract tests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import func, select

from core.store.models import (
    ApiToken,
    Approval,
    Artifact,
    Definition,
    Resource,
    Run,
    Secret,
    Team,
    User,
)
from core.store.session import transaction
from core.store.users import create_token, get_by_email
from tests.stack import ADMIN, Stack, basic

ADMIN_AUTH = basic(*ADMIN)

PLAYBOOK_ID = "1e624351-2e7c-4afd-a038-8b0fc9e179ef"
PARAMS_PLAYBOOK_ID = "5b0e4c52-8a5e-4d5c-9f1a-2f6e2c1d7a10"
CONFIG_ID = "0189f7b0-e0c7-944f-1f86-3e554392fd2b"
CHECK_ID = "0189f7b0-e0d9-a174-7837-ad255ff9834f"
COMPONENT_ID = "0188e1a5-1928-c829-b6c7-bf49d4a1fd52"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"

RFC3339_UTC_SECONDS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")

CATALOG = f"""
kind: ConfigItem
id: {CONFIG_ID}
name: podinfo
type: Kubernetes::Deployment
tags: {{namespace: demo, env: prod}}
---
kind: Check
id: {CHECK_ID}
name: podinfo-http
type: http
labels: {{team: payments}}
---
kind: Component
id: {COMPONENT_ID}
name: api-server
type: Service
labels: {{tier: backend}}
"""

ECHO_PLAYBOOK = f"""
apiVersion: mission-control.flanksource.com/v1
kind: Playbook
id: {PLAYBOOK_ID}
metadata: {{name: echo}}
spec:
  description: says hello
  configs: [{{type: Kubernetes::Deployment}}]
  checks: [{{type: http}}]
  components: [{{type: Service}}]
  actions:
    - name: hello
      exec: {{script: "echo hello"}}
"""

PARAMS_PLAYBOOK = f"""
apiVersion: mission-control.flanksource.com/v1
kind: Playbook
id: {PARAMS_PLAYBOOK_ID}
metadata: {{name: scale}}
spec:
  configs: [{{type: Kubernetes::Deployment}}]
  parameters:
    - {{name: reason, label: Reason, required: true}}
    - {{name: replicas, label: Replicas, default: "2"}}
    - {{name: target, label: Target, default: "{{{{.config.name}}}}-{{{{.params.replicas}}}}"}}
    - {{name: dry_run, label: Dry run, type: checkbox}}
    - {{name: note, label: Note}}
  actions:
    - name: scale
      exec: {{script: "echo scaling {{{{.params.target}}}} because {{{{.params.reason}}}}"}}
"""


def playbook(name: str, body: str, *, playbook_id: str | None = None) -> str:
    """A Playbook document named `name` whose spec is `body` (YAML, indented two spaces)."""
    id_line = f"id: {playbook_id}\n" if playbook_id else ""
    return (
        "apiVersion: mission-control.flanksource.com/v1\n"
        "kind: Playbook\n"
        f"{id_line}"
        f"metadata: {{name: {name}}}\n"
        "spec:\n"
        f"{body}"
    )


def error_of(response: httpx.Response, status: int) -> str:
    """The message of a documented error response, after checking its status and shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message"}, body
    assert isinstance(body["error"], str) and body["error"], body
    message: str = body["message"]
    return message


def assert_error(response: httpx.Response, status: int, error: str, message: str) -> None:
    """The response is exactly `{"error": error, "message": message}` with `status`."""
    assert response.status_code == status, response.text
    assert response.json() == {"error": error, "message": message}


MODELS: dict[str, Any] = {
    "runs": Run,
    "definitions": Definition,
    "resources": Resource,
    "users": User,
    "teams": Team,
    "secrets": Secret,
    "approvals": Approval,
    "artifacts": Artifact,
    "tokens": ApiToken,
}


def counts(stack: Stack) -> dict[str, int]:
    """How many rows each table holds."""
    with stack.sessions() as session:
        return {
            name: session.scalar(select(func.count()).select_from(model)) or 0
            for name, model in MODELS.items()
        }


def bearer_for(stack: Stack, email: str) -> dict[str, str]:
    """A Bearer header for an existing user, made in the DB (no password hashing per request)."""
    with transaction(stack.sessions) as session:
        user = get_by_email(session, email)
        assert user is not None, email
        _, plain = create_token(session, user, name="tests")
    return {"Authorization": f"Bearer {plain}"}


@dataclass
class Api:
    """A stack and the admin's credentials: the requests these tests make."""

    stack: Stack
    auth: dict[str, str]

    async def get(self, url: str, *, auth: dict[str, str] | None = None) -> httpx.Response:
        """GET as the admin (or `auth`)."""
        return await self.stack.api.get(url, headers=self.auth if auth is None else auth)

    async def post(
        self, url: str, *, auth: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """POST as the admin (or `auth`)."""
        headers = {**(self.auth if auth is None else auth), **kwargs.pop("headers", {})}
        return await self.stack.api.post(url, headers=headers, **kwargs)

    async def run_request(self, body: Any, *, auth: dict[str, str] | None = None) -> httpx.Response:
        """POST /playbook/run with a JSON body."""
        return await self.post("/playbook/run", json=body, auth=auth)

    async def run(self, body: dict[str, Any]) -> str:
        """Start a run that must be accepted; its id."""
        response = await self.run_request(body)
        assert response.status_code == 201, response.text
        run_id: str = response.json()["run_id"]
        return run_id

    async def get_run(self, run_id: str) -> dict[str, Any]:
        """GET /playbook/run/{id}, which must answer 200."""
        response = await self.get(f"/playbook/run/{run_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def apply_raw(self, text: str, *, auth: dict[str, str] | None = None) -> httpx.Response:
        """POST /api/apply with `text`, whatever the answer."""
        return await self.post(
            "/api/apply",
            content=text.encode(),
            auth=auth,
            headers={"Content-Type": "application/yaml"},
        )

    async def apply(self, text: str) -> list[dict[str, Any]]:
        """Apply documents that must be accepted; the applied items."""
        response = await self.apply_raw(text)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def add_person(self, email: str, role: str) -> dict[str, str]:
        """A person with `role`, made through apply; a Bearer header for them."""
        await self.apply(f"kind: Person\nemail: {email}\nrole: {role}\n")
        return bearer_for(self.stack, email)

    def counts(self) -> dict[str, int]:
        """How many rows each table holds."""
        return counts(self.stack)


def api_for(stack: Stack) -> Api:
    """An Api on `stack` as its admin."""
    return Api(stack, bearer_for(stack, ADMIN[0]))
