"""The runbook repository, connections, users and requests shared by the hoop contract tests."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from core.store.models import Approval, Definition, Run, RunEvent, Secret
from core.store.session import transaction
from core.store.users import create_token, upsert_team, upsert_user
from tests.stack import ADMIN, Stack, git, make_repo

PG_PASSWORD = "pg-connection-secret-9"
OPERATOR = "ops@local"
VIEWER = "viewer@local"
DBA = "dba1@local"
SEC = "sec1@local"
BOTH = "both@local"

RUNBOOKS: dict[str, str] = {
    "ops/hello.runbook.sh": (
        "echo hello "
        '{{ .name | description "who to greet" | required "name is required" | squote }}\n'
        "echo to-stderr >&2\n"
        "echo done\n"
    ),
    "ops/fail.runbook.sh": 'echo before\nexit {{ .code | default "3" | pattern "^[0-9]+$" }}\n',
    "ops/env.runbook.sh": (
        '[ "$PASSWORD" = "$EXPECTED_PASSWORD" ] && echo password-ok\n'
        '[ "$(cat "$SECRET_FILE")" = "$EXPECTED_FILE" ] && echo file-ok\n'
        'echo "mode=$(stat -c %a "$SECRET_FILE")"\n'
        'echo "path=$SECRET_FILE"\n'
        'echo "greeting=$GREETING"\n'
    ),
    "ops/asenv.runbook.sh": (
        '{{ .token | asenv "TOKEN" }}[ "$TOKEN" = "$EXPECTED_TOKEN" ] && echo token-ok\n'
    ),
    "ops/slow.runbook.sh": "sleep {{ .seconds }}\necho slept\n",
    "ops/big.runbook.sh": "python3 -c 'print(\"é\" * 100)'\n",
    "ops/broken.runbook.sh": '{{ .x | require "y" }}\n',
    "ops/shell.runbook.sh": '{{ exec "id" }}{{ call .x }}\n',
    "ops/inject-squote.runbook.sh": "printf '%s\\n' {{ .value | squote }}\n",
    "ops/inject-dquote.runbook.sh": "printf '%s\\n' {{ .value | dquote }}\n",
    "ops/inject-plain.runbook.sh": "echo {{ .value }}\n",
    "ops/notes.txt": "not a runbook\n",
    "other/outside.runbook.sh": "echo outside\n",
    "py/hello.runbook.py": "print('py', {{ .value | squote }})\n",
    "sql/query.runbook.sql": "SELECT {{ .value | squote }} AS v;\n",
    "sql/password.runbook.sql": '\\! test "$PGPASSWORD" = "$EXPECTED" && echo password-ok\n',
}


def b64(text: str) -> str:
    """base64 of UTF-8 text."""
    return base64.b64encode(text.encode()).decode()


def make_runbook_repo(root: Path) -> str:
    """The runbook repository at `root` (branch main); returns its file:// URL."""
    return make_repo(root, RUNBOOKS)


def head_of(root: Path) -> str:
    """The repository's current commit."""
    return git(root, "rev-parse", "HEAD")


@dataclass
class Hoop:
    """A stack with the runbook repository, connections and users of the hoop tests."""

    stack: Stack
    repo: Path
    tokens: dict[str, str]
    sqlite_path: Path

    def auth(self, email: str) -> dict[str, str]:
        """A Bearer header for one of the seeded users."""
        return {"Authorization": f"Bearer {self.tokens[email]}"}

    @property
    def admin(self) -> dict[str, str]:
        """The admin's Bearer header."""
        return self.auth(ADMIN[0])

    async def exec(
        self, connection: str, body: Any, *, auth: dict[str, str] | None = None
    ) -> httpx.Response:
        """POST .../connections/{connection}/exec as the operator (or `auth`)."""
        return await self.stack.api.post(
            f"/api/plugins/runbooks/connections/{connection}/exec",
            json=body,
            headers=self.auth(OPERATOR) if auth is None else auth,
        )

    async def get(self, url: str, *, auth: dict[str, str] | None = None) -> httpx.Response:
        """GET as the admin (or `auth`)."""
        return await self.stack.api.get(url, headers=self.admin if auth is None else auth)

    def counts(self) -> dict[str, int]:
        """Rows per table: a refused request must change none of them."""
        with self.stack.sessions() as session:
            return {
                model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
                for model in (Definition, Run, Secret, Approval, RunEvent)
            }


CONNECTIONS: list[dict[str, Any]] = [
    {
        "name": "ops-shell",
        "type": "custom",
        "command": ["bash"],
        "secret": {"envvar:GREETING": b64("hello from the connection")},
        "runbooks": {"path_prefix": "ops/"},
        "allowed_client_args": ["-x"],
    },
    {"name": "py", "type": "custom", "command": ["python3"], "runbooks": {"path_prefix": "py/"}},
    {
        "name": "app",
        "type": "application",
        "command": ["python3", "-I"],
        "runbooks": {"path_prefix": "py/"},
    },
    {
        "name": "reviewed",
        "type": "custom",
        "command": ["bash"],
        "reviewers": ["dba", "sec"],
        "runbooks": {"path_prefix": "ops/"},
    },
    {
        "name": "disabled",
        "type": "custom",
        "command": ["bash"],
        "access_mode_runbooks": "disabled",
    },
]


async def seed(stack: Stack, repo: Path, sqlite_path: Path, postgres_dsn: str) -> Hoop:
    """Users (with teams dba and sec), their tokens, and the test connections."""
    tokens: dict[str, str] = {}
    with transaction(stack.sessions) as session:
        for email, role in [
            (ADMIN[0], "admin"),
            (OPERATOR, "operator"),
            (VIEWER, "viewer"),
            (DBA, "operator"),
            (SEC, "operator"),
            (BOTH, "operator"),
        ]:
            user = upsert_user(session, email, name=email.split("@")[0], role=role)
            tokens[email] = create_token(session, user, name="tests")[1]
        upsert_team(session, "dba", [DBA, BOTH])
        upsert_team(session, "sec", [SEC, BOTH])
    hoop = Hoop(stack=stack, repo=repo, tokens=tokens, sqlite_path=sqlite_path)
    databases = [
        {
            "name": "lite",
            "type": "database",
            "subtype": "sqlite",
            "dsn": f"sqlite:///{sqlite_path}",
            "runbooks": {"path_prefix": "sql/"},
        },
        {
            "name": "pg",
            "type": "database",
            "subtype": "postgres",
            "dsn": postgres_dsn,
            "runbooks": {"path_prefix": "sql/"},
        },
    ]
    for body in CONNECTIONS + databases:
        response = await stack.api.post("/api/connections", json=body, headers=hoop.admin)
        assert response.status_code == 201, response.text
    return hoop
