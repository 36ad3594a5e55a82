"""Who may call what: every route of the app by every kind of principal: allowed or refused.

The routes come from the app's own route table, so a route added without a rule here fails
`test_every_route_has_a_rule`; the rule is then the route's declaration of who may call it.
"Allowed" means the route's own answer (200, 201, 204, 400, 404, 422 ...), never 401 or 403;
refused means 401 for the anonymous caller and 403 for everyone else.

Principals: anonymous; platform viewer, operator, admin (no account); viewer, operator and admin
of account A and a service account of A (no platform role); the admin of account B. Every
request carries a fresh Bearer token, so routes that revoke the caller's token (logout) do not
spoil the next request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from core.store.accounts import add_account_user, create_account, create_service_account
from core.store.session import transaction
from core.store.users import create_token, get_by_email, upsert_user
from tests.conftest import TEST_SECRET_KEY
from tests.stack import Stack, make_settings, stack_for

ACCOUNT_A, ACCOUNT_B = "ACME", "OTHER"
DUMMY_ID = "00000000-0000-4000-8000-000000000000"

# Who may call a route.
PUBLIC = "public"  # anyone, also without credentials
ANY_TOKEN = "any token"  # any authenticated caller (acts on the caller's own token)
P_VIEWER, P_OPERATOR, P_ADMIN = "platform viewer", "platform operator", "platform admin"
A_VIEWER, A_OPERATOR, A_ADMIN = "account viewer", "account operator", "account admin"

RULES: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    # Mission Control
    ("POST", "/playbook/run"): P_OPERATOR,
    ("GET", "/playbook/list"): P_VIEWER,
    ("POST", "/playbook/list"): P_VIEWER,
    # Approvers are people and teams named by the playbook; any platform role may try.
    ("POST", "/playbook/run/approve/{playbook_id}/{run_id}"): P_VIEWER,
    ("GET", "/playbook/run/{run_id}"): P_VIEWER,
    ("GET", "/artifacts/list/playbook_run/{run_id}"): P_VIEWER,
    ("GET", "/artifacts/download/{artifact_id}"): P_VIEWER,
    # Runner: every route but login and logout is within the account named in the path.
    ("POST", "/v2/authentication/login"): PUBLIC,
    ("POST", "/v2/authentication/logout"): ANY_TOKEN,
    ("POST", "/jobs/{alias}"): A_OPERATOR,
    ("GET", "/jobs/{alias}"): A_VIEWER,
    ("GET", "/jobs/{alias}/executions"): A_VIEWER,
    ("GET", "/jobs/{alias}/{job_id}"): A_VIEWER,
    ("PUT", "/jobs/{alias}/{job_id}"): A_OPERATOR,
    ("DELETE", "/jobs/{alias}/{job_id}"): A_OPERATOR,
    ("POST", "/jobs/{alias}/{job_id}/start"): A_OPERATOR,
    ("GET", "/jobs/{alias}/{job_id}/executions"): A_VIEWER,
    ("GET", "/jobs/{alias}/{job_id}/executions/{execution_id}"): A_VIEWER,
    ("POST", "/jobs/{alias}/{job_id}/executions/{execution_id}/restart"): A_OPERATOR,
    ("POST", "/jobs/{alias}/{job_id}/executions/{execution_id}/stop"): A_OPERATOR,
    ("POST", "/jobs/{alias}/{job_id}/executions/{execution_id}/kill"): A_OPERATOR,
    ("POST", "/jobs/{alias}/{job_id}/schedules"): A_OPERATOR,
    ("GET", "/jobs/{alias}/{job_id}/schedules"): A_VIEWER,
    ("PUT", "/jobs/{alias}/{job_id}/schedules/{schedule_id}"): A_OPERATOR,
    ("DELETE", "/jobs/{alias}/{job_id}/schedules/{schedule_id}"): A_OPERATOR,
    ("GET", "/status/{alias}/job/{job_id}"): A_VIEWER,
    ("GET", "/status/{alias}/job/{job_id}/execution/{execution_id}"): A_VIEWER,
    ("POST", "/serviceAccounts/{alias}"): A_ADMIN,
    ("GET", "/serviceAccounts/{alias}"): A_VIEWER,
    ("PUT", "/serviceAccounts/{alias}/{service_account_alias}"): A_ADMIN,
    # hoop
    ("POST", "/api/plugins/runbooks/connections/{name}/exec"): P_OPERATOR,
    ("GET", "/api/plugins/runbooks/templates"): P_VIEWER,
    ("GET", "/api/plugins/runbooks/connections/{name}/templates"): P_VIEWER,
    ("GET", "/api/sessions/{session_id}"): P_VIEWER,
    ("GET", "/api/reviews"): P_VIEWER,
    ("GET", "/api/reviews/{review_id}"): P_VIEWER,
    # Deciding also needs membership of a reviewer group of the connection.
    ("PUT", "/api/reviews/{review_id}"): P_OPERATOR,
    ("POST", "/api/connections"): P_ADMIN,
    ("GET", "/api/connections"): P_VIEWER,
    ("GET", "/api/connections/{name}"): P_VIEWER,
    ("PUT", "/api/connections/{name}"): P_ADMIN,
    ("DELETE", "/api/connections/{name}"): P_ADMIN,
    # Automations
    ("POST", "/api/login"): PUBLIC,
    ("GET", "/api/maintenance"): P_VIEWER,
    # Connected repositories (secrets masked) and the pull requests of local forges.
    ("GET", "/api/repositories"): P_VIEWER,
    ("GET", "/api/repositories/{org}/{name}"): P_VIEWER,
    ("GET", "/api/repositories/{org}/{name}/pulls/{number}"): P_VIEWER,
    ("GET", "/api/repositories/{org}/{name}/pulls/{number}/diff"): P_VIEWER,
    # Runbooks: reading takes any platform role; creating, following up, executing and
    # stopping an operator.
    ("POST", "/api/v1/runbook"): P_OPERATOR,
    ("GET", "/api/v1/runbook/{number}"): P_VIEWER,
    ("PATCH", "/api/v1/runbook/{number}"): P_OPERATOR,
    ("POST", "/api/v1/runbook/{number}/execute"): P_OPERATOR,
    ("POST", "/api/v1/runbook/{number}/stop"): P_OPERATOR,
    ("POST", "/api/maintenance"): P_OPERATOR,
    ("POST", "/api/maintenance/{window_id}/activate"): P_OPERATOR,
    ("POST", "/api/maintenance/{window_id}/deactivate"): P_OPERATOR,
    ("DELETE", "/api/maintenance/{window_id}"): P_OPERATOR,
    ("GET", "/api/automations/runs/{run_id}/stream"): P_VIEWER,
    ("GET", "/api/automations"): P_VIEWER,
    ("POST", "/api/automations"): P_OPERATOR,
    ("GET", "/api/automations/{automation_id}"): P_VIEWER,
    ("PUT", "/api/automations/{automation_id}"): P_OPERATOR,
    ("DELETE", "/api/automations/{automation_id}"): P_OPERATOR,
    ("POST", "/api/automations/{automation_id}/run"): P_OPERATOR,
    ("GET", "/api/automations/runs/{run_id}"): P_VIEWER,
    ("POST", "/api/automations/runs/{run_id}/cancel"): P_OPERATOR,
    ("GET", "/api/automations/templates"): P_VIEWER,
    ("POST", "/api/automations/templates/{template_id}/apply"): P_OPERATOR,
    ("GET", "/api/automations/export"): P_OPERATOR,
    ("POST", "/api/automations/import"): P_ADMIN,
    ("POST", "/api/automations/webhook/{token}"): PUBLIC,
    ("POST", "/api/automations/{automation_id}/webhook-token"): P_OPERATOR,
    ("GET", "/api/approvals"): P_VIEWER,
    # Operators and admins; whether the caller is one of a request's approvers is the route's own
    # answer (403 too, but only for a request that exists).
    ("POST", "/api/approvals/{request_id}/approve"): P_OPERATOR,
    ("POST", "/api/approvals/{request_id}/reject"): P_OPERATOR,
    # Runwright's own
    ("POST", "/api/apply"): P_ADMIN,
    ("POST", "/api/tokens"): P_VIEWER,
    ("GET", "/api/tokens"): P_ADMIN,
    ("DELETE", "/api/tokens/{token_id}"): P_ADMIN,
    ("POST", "/codec/decode"): P_ADMIN,
    ("POST", "/codec/encode"): P_ADMIN,
}


@dataclass(frozen=True)
class Principal:
    """A kind of caller: its platform role, and its account and role there (None: none)."""

    name: str
    email: str | None = None
    platform_role: str | None = None
    account: str | None = None
    account_role: str | None = None


PRINCIPALS = [
    Principal("anonymous"),
    Principal("platform viewer", "pv@corp.test", platform_role="viewer"),
    Principal("platform operator", "po@corp.test", platform_role="operator"),
    Principal("platform admin", "pa@corp.test", platform_role="admin"),
    Principal("A viewer", "av@acme.test", account=ACCOUNT_A, account_role="viewer"),
    Principal("A operator", "ao@acme.test", account=ACCOUNT_A, account_role="operator"),
    Principal("A admin", "aa@acme.test", account=ACCOUNT_A, account_role="admin"),
    Principal("A service account", "svc@acme.test", account=ACCOUNT_A, account_role="operator"),
    Principal("B admin", "ba@other.test", account=ACCOUNT_B, account_role="admin"),
]
LEVELS = {"viewer": 0, "operator": 1, "admin": 2}


def allowed(rule: str, who: Principal) -> bool:
    """Whether `who` gets past the route's checks of identity and role."""
    if rule == PUBLIC:
        return True
    if who.email is None:
        return False
    if rule == ANY_TOKEN:
        return True
    kind, _, needed = rule.partition(" ")
    if kind == "platform":
        role = who.platform_role
    else:  # the path names account A
        role = who.account_role if who.account == ACCOUNT_A else None
    return role is not None and LEVELS[role] >= LEVELS[needed]


def expected_refusal(who: Principal) -> int:
    return 401 if who.email is None else 403


def route_table(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path) of every route the app serves, HEAD aside, included routers walked."""

    def walk(routes: list[Any], prefix: str) -> Iterator[tuple[str, str]]:
        for route in routes:
            if hasattr(route, "original_router"):  # an included router
                yield from walk(route.original_router.routes, prefix + route.include_context.prefix)
                continue
            for method in sorted(getattr(route, "methods", None) or ()):
                if method != "HEAD":
                    yield method, prefix + route.path

    yield from walk(list(app.router.routes), "")


def concrete(path: str) -> str:
    """The path with its parameters filled: account A for `{alias}`, an unknown id elsewhere."""
    filled = path.replace("{alias}", ACCOUNT_A)
    for name in ("playbook_id", "run_id", "artifact_id", "job_id", "execution_id", "schedule_id"):
        filled = filled.replace("{" + name + "}", DUMMY_ID)
    for name in (
        "service_account_alias",
        "name",
        "session_id",
        "review_id",
        "token_id",
        "window_id",
        "automation_id",
        "template_id",
        "token",
        "request_id",
        "org",
    ):
        filled = filled.replace("{" + name + "}", "nothing-here")
    filled = filled.replace("{number}", "1")
    assert "{" not in filled, f"no value for a parameter of {path}"
    return filled


@pytest.fixture(scope="module")
async def matrix_stack(
    tmp_path_factory: pytest.TempPathFactory, temporal_env: WorkflowEnvironment
) -> AsyncIterator[Stack]:
    """A runwright outside dev mode (as deployed), with one user per principal."""
    home = tmp_path_factory.mktemp("matrix")
    settings = make_settings(home, dev_mode=False, secret_key=TEST_SECRET_KEY)
    async with stack_for(settings, temporal_env.client, worker=False) as stack:
        with transaction(stack.sessions) as session:
            accounts = {alias: create_account(session, alias) for alias in (ACCOUNT_A, ACCOUNT_B)}
            for who in PRINCIPALS:
                if who.email is None:
                    continue
                if who.name == "A service account":
                    create_service_account(
                        session, accounts[ACCOUNT_A], "svc", username=who.email, password="pw"
                    )
                elif who.account is not None:
                    assert who.account_role is not None
                    add_account_user(
                        session, accounts[who.account], who.email, password="pw",
                        role=who.account_role,
                    )  # fmt: skip
                else:
                    upsert_user(session, who.email, password="pw", role=who.platform_role)
        yield stack


def headers_for(stack: Stack, who: Principal) -> dict[str, str]:
    """A fresh Bearer token of `who` (none for the anonymous caller)."""
    if who.email is None:
        return {}
    with transaction(stack.sessions) as session:
        user = get_by_email(session, who.email)
        assert user is not None
        _, token = create_token(session, user, name="matrix")
    return {"Authorization": f"Bearer {token}"}


def test_every_route_has_a_rule(tmp_path: Path) -> None:
    """A route the table does not name fails here: every route declares who may call it."""
    app = create_app(make_settings(tmp_path, dev_mode=False, secret_key=TEST_SECRET_KEY))
    served = set(route_table(app))
    assert served - set(RULES) == set(), "routes without a rule in RULES"
    assert set(RULES) - served == set(), "rules for routes the app does not serve"


@pytest.mark.parametrize("who", PRINCIPALS, ids=lambda p: p.name)
async def test_each_principal_reaches_exactly_its_routes(
    matrix_stack: Stack, who: Principal
) -> None:
    """Every route answers `who` as its rule says: its own answer when allowed, else 401/403."""
    wrong: list[str] = []
    for (method, path), rule in sorted(RULES.items()):
        body = {} if method in ("POST", "PUT") else None
        response = await matrix_stack.api.request(
            method, concrete(path), json=body, headers=headers_for(matrix_stack, who)
        )
        status = response.status_code
        if allowed(rule, who):
            ok = status not in (401, 403) and status < 500
        else:
            ok = status == expected_refusal(who)
        if not ok:
            wrong.append(f"{method} {path} ({rule}): {status} {response.text[:120]}")
    assert wrong == [], f"{who.name}:\n" + "\n".join(wrong)
