"""Accounts, users, jobs and requests shared by the Runner contract tests."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from core.store.accounts import add_account_user, ensure_account
from core.store.models import (
    Account,
    ApiToken,
    Definition,
    Run,
    RunEvent,
    Schedule,
    Secret,
    ServiceAccount,
    User,
)
from core.store.session import transaction
from core.store.users import create_token
from tests.stack import Stack

ACME = "ACME"
OTHER = "OTHER"
PASSWORD = "correct horse"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
KEY_TEXT = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "not-a-real-key-0123456789\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
KEY_B64 = base64.b64encode(KEY_TEXT.encode()).decode()
HOST_KEY_TEXT = "host-only private key material 42"
HOST_KEY_B64 = base64.b64encode(HOST_KEY_TEXT.encode()).decode()
REPO_PASSWORD = "github-password-7f3a"

HELLO_PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: greet
      debug: {msg: "hello {{ who | default('nobody') }} from {{ inventory_hostname }}"}
"""

MODELS: dict[str, Any] = {
    "accounts": Account,
    "users": User,
    "tokens": ApiToken,
    "definitions": Definition,
    "runs": Run,
    "secrets": Secret,
    "schedules": Schedule,
    "service_accounts": ServiceAccount,
    "events": RunEvent,
}


def bearer(token: str) -> dict[str, str]:
    """An Authorization header for a bearer token."""
    return {"Authorization": f"Bearer {token}"}


def job_body(
    url: str = "https://github.com/example/playbooks.git", **fields: Any
) -> dict[str, Any]:
    """A valid job body (fields override or add to it)."""
    body: dict[str, Any] = {
        "description": "Sample Job",
        "repository": {"url": url, "defaultPlaybook": "site.yml"},
        "hosts": [{"id": "localhost", "hostVars": {"ansible_connection": "local"}}],
    }
    body.update(fields)
    return body


def message_of(response: httpx.Response, status: int) -> str:
    """The message of a Runner error, after checking the status and the `{"message"}` shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"message"}, body
    message: str = body["message"]
    return message


@dataclass
class Runner:
    """A runwright with two accounts and a token per role; the requests the tests make."""

    stack: Stack
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str = "admin") -> dict[str, str]:
        """The Authorization header of one of the seeded users."""
        return bearer(self.tokens[who])

    async def request(
        self, method: str, url: str, *, who: str | None = "admin", **kwargs: Any
    ) -> httpx.Response:
        """A request as a seeded user (None: without credentials)."""
        headers = {**(self.auth(who) if who else {}), **kwargs.pop("headers", {})}
        if kwargs.get("content") is not None:
            headers.setdefault("Content-Type", "application/json")  # as the document asks
        return await self.stack.api.request(method, url, headers=headers, **kwargs)

    async def create_job(
        self, body: dict[str, Any], *, who: str = "admin", query: str = ""
    ) -> dict[str, Any]:
        """POST /jobs/ACME, which must answer 201; the job."""
        response = await self.request("POST", f"/jobs/{ACME}{query}", who=who, json=body)
        assert response.status_code == 201, response.text
        job: dict[str, Any] = response.json()
        return job

    async def start(self, job_id: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST .../start, which must answer 201; the execution document."""
        response = await self.request("POST", f"/jobs/{ACME}/{job_id}/start", json=body or {})
        assert response.status_code == 201, response.text
        execution: dict[str, Any] = response.json()
        return execution

    async def execution(self, job_id: str, execution_id: str) -> dict[str, Any]:
        """GET one execution document."""
        response = await self.request("GET", f"/jobs/{ACME}/{job_id}/executions/{execution_id}")
        assert response.status_code == 200, response.text
        document: dict[str, Any] = response.json()
        return document

    async def wait(
        self, job_id: str, execution_id: str, statuses: set[str], timeout: float = 60.0
    ) -> dict[str, Any]:
        """Poll the execution document until its status is one of `statuses`."""
        deadline = time.monotonic() + timeout
        document: dict[str, Any] = {}
        while time.monotonic() < deadline:
            document = await self.execution(job_id, execution_id)
            if document["status"] in statuses:
                return document
            await asyncio.sleep(0.1)
        raise AssertionError(f"execution {execution_id} never reached {statuses}: {document}")

    def counts(self) -> dict[str, int]:
        """Rows per table."""
        with self.stack.sessions() as session:
            return {
                name: session.scalar(select(func.count()).select_from(model)) or 0
                for name, model in MODELS.items()
            }

    def add_user(self, alias: str, email: str, role: str, *, password: str = PASSWORD) -> str:
        """A user of account `alias` (created when missing); a bearer token for them."""
        with transaction(self.stack.sessions) as session:
            account = ensure_account(session, alias, location_alias=f"{alias[:2]}1")
            user, _ = add_account_user(session, account, email, password=password, role=role)
            _, token = create_token(session, user, name="tests", ttl=timedelta(days=1))
        return token

    def add_run(self, job_id: str, status: str, **fields: Any) -> str:
        """A run row of a job in any status (no workflow behind it)."""
        with transaction(self.stack.sessions) as session:
            job = session.get(Definition, job_id)
            assert job is not None
            run = Run(
                id=str(uuid.uuid4()),
                definition_id=job_id,
                dialect="runner",
                status=status,
                account_id=job.account_id,
                **fields,
            )
            session.add(run)
        return run.id


def seed(stack: Stack) -> Runner:
    """Accounts ACME (admin, operator, viewer) and OTHER (admin), with a token each."""
    runner = Runner(stack)
    runner.tokens["admin"] = runner.add_user(ACME, "ada@acme.test", "admin")
    runner.tokens["operator"] = runner.add_user(ACME, "otto@acme.test", "operator")
    runner.tokens["viewer"] = runner.add_user(ACME, "vera@acme.test", "viewer")
    runner.tokens["other"] = runner.add_user(OTHER, "olga@other.test", "admin")
    return runner
