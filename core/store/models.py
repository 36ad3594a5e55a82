"""The DB projection: the queryable state behind every list, filter and page.

The workflow is the truth about a live run; these rows are what it last recorded.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.timefmt import as_utc

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_id() -> str:
    """A fresh UUID as text (ids are text so SQLite and PostgreSQL agree)."""
    return str(uuid.uuid4())


def utcnow() -> datetime:
    """The current time, UTC, aware."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC; always returns aware datetimes (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return as_utc(value)


class Base(DeclarativeBase):
    """Base of every table: naming convention for constraints, JSON maps."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        list[Any]: JSON,
        datetime: UTCDateTime,
    }


class Account(Base):
    """A tenant (Runner's account alias): its users see only its jobs, runs and schedules."""

    __tablename__ = "accounts"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    alias: Mapped[str] = mapped_column(String(50), unique=True)
    location_alias: Mapped[str] = mapped_column(String(50), default="")
    # The key callbacks of this account's runs are signed with (a secret reference), if set.
    callback_secret_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    """A person who signs in: Mission Control's people, other dialects' users."""

    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"))
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(300))
    # The platform role (Mission Control, catalog, hoop, codec, tokens): viewer|operator|admin,
    # or None for a user with no platform rights (an account's users, unless given one).
    role: Mapped[str | None] = mapped_column(String(20))
    # The role within `account_id` (Runner routes of that account only); None without one.
    account_role: Mapped[str | None] = mapped_column(String(20))
    is_system: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ServiceAccount(Base):
    """A user of an account that schedules run as (Runner's service accounts)."""

    __tablename__ = "service_accounts"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("account_id", "alias"),)


class Team(Base):
    """A named group of users; approvers may be named by team."""

    __tablename__ = "teams"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TeamMember(Base):
    """Membership of a user in a team."""

    __tablename__ = "team_members"
    team_id: Mapped[str] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class Resource(Base):
    """A catalog item a run may target: a config item, a check or a component."""

    __tablename__ = "resources"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(20))  # config | check | component
    name: Mapped[str] = mapped_column(String(300))
    type: Mapped[str] = mapped_column(String(300), default="")
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_resources_kind_type", "kind", "type"),)


class Definition(Base):
    """What to run (a playbook, a job, ...): its spec holds secret references, never values."""

    __tablename__ = "definitions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    dialect: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(300))
    namespace: Mapped[str] = mapped_column(String(300), default="default")
    spec: Mapped[dict[str, Any]] = mapped_column()
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"))
    source: Mapped[str] = mapped_column(String(40), default="UI")
    created_by: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (UniqueConstraint("dialect", "namespace", "name"),)


class Secret(Base):
    """An encrypted value referenced from specs and workflow inputs by id."""

    __tablename__ = "secrets"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    ciphertext: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Run(Base):
    """One execution of a definition; its id is the Temporal workflow id."""

    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    definition_id: Mapped[str] = mapped_column(ForeignKey("definitions.id"))
    dialect: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(30))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    scheduled_time: Mapped[datetime] = mapped_column(default=utcnow)
    start_time: Mapped[datetime | None] = mapped_column()
    end_time: Mapped[datetime | None] = mapped_column()
    created_by: Mapped[str | None] = mapped_column(String(36))
    config_id: Mapped[str | None] = mapped_column(String(36))
    check_id: Mapped[str | None] = mapped_column(String(36))
    component_id: Mapped[str | None] = mapped_column(String(36))
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    agent_id: Mapped[str | None] = mapped_column(String(36))
    error: Mapped[str | None] = mapped_column(Text)
    # Creation to first action start: what the engine adds before the automation runs.
    queue_ms: Mapped[int | None] = mapped_column(BigInteger)
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    # One {start, end} (epoch ms) per attempt: Runner's `timers`.
    timers: Mapped[list[Any]] = mapped_column(default=list)
    failed_hosts: Mapped[list[Any]] = mapped_column(default=list)
    # The commit the (first) checkout resolved to: {sha, author, author_email, date, message}.
    commit: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (
        Index("ix_runs_definition_created", "definition_id", "created_at"),
        Index("ix_runs_status", "status"),
        Index("ix_runs_account_created", "account_id", "created_at"),
    )


class RunAction(Base):
    """One action of a run, as last recorded."""

    __tablename__ = "run_actions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    idx: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(30))
    scheduled_time: Mapped[datetime | None] = mapped_column()
    start_time: Mapped[datetime | None] = mapped_column()
    end_time: Mapped[datetime | None] = mapped_column()
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("run_id", "idx"),)


class RunEvent(Base):
    """One entry of a run's ordered log."""

    __tablename__ = "run_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    time: Mapped[datetime] = mapped_column(default=utcnow)
    level: Mapped[str] = mapped_column(String(10))
    event_type: Mapped[str] = mapped_column(String(60))
    action_idx: Mapped[int | None] = mapped_column(Integer)
    host: Mapped[str | None] = mapped_column(String(300))
    task: Mapped[str | None] = mapped_column(String(500))
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (UniqueConstraint("run_id", "seq"),)


class Approval(Base):
    """A decision recorded on one gate of a run, by a person or on behalf of a team."""

    __tablename__ = "approvals"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    # The gate decided: -1 the start gate, else the approval action's index.
    gate_idx: Mapped[int] = mapped_column(Integer, default=-1, server_default="-1")
    approver_key: Mapped[str] = mapped_column(String(60))  # person:<id> | team:<id>
    decided_by: Mapped[str] = mapped_column(String(36))
    approved: Mapped[bool] = mapped_column(Boolean, default=True)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("run_id", "gate_idx", "approver_key"),)


class GateRow(Base):
    """One approval gate a run opened (its start gate or an approval action), as the workflow
    last recorded it; the per-approver decisions are Approval rows of the same `idx`."""

    __tablename__ = "gates"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # chosen by the workflow
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    idx: Mapped[int] = mapped_column(Integer)  # -1 the start gate, else the action's index
    message: Mapped[str] = mapped_column(Text, default="")
    approvers: Mapped[list[Any]] = mapped_column(default=list)  # approver keys
    rule: Mapped[str] = mapped_column(String(10))  # any | all
    opened_at: Mapped[datetime] = mapped_column()
    timeout_at: Mapped[datetime | None] = mapped_column()
    on_timeout: Mapped[str] = mapped_column(String(10))  # expire | approve | reject
    status: Mapped[str] = mapped_column(String(20))  # core.statuses.GateStatus
    decided_at: Mapped[datetime | None] = mapped_column()
    decided_by: Mapped[str | None] = mapped_column(String(36))
    comment: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (
        Index("ix_gates_run_opened", "run_id", "opened_at"),
        Index("ix_gates_status", "status"),
    )


class Artifact(Base):
    """A stored file a run produced."""

    __tablename__ = "artifacts"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    run_action_id: Mapped[str | None] = mapped_column(String(36))
    path: Mapped[str] = mapped_column(String(1000))
    filename: Mapped[str] = mapped_column(String(300))
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(200))
    checksum: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_artifacts_run", "run_id"),)


class Schedule(Base):
    """A Temporal Schedule that starts runs of a definition (Runner's job schedules)."""

    __tablename__ = "schedules"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    definition_id: Mapped[str] = mapped_column(ForeignKey("definitions.id", ondelete="CASCADE"))
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"))
    schedule_id: Mapped[str] = mapped_column(String(200), unique=True)  # the Temporal schedule id
    description: Mapped[str] = mapped_column(Text, default="")
    trigger: Mapped[dict[str, Any]] = mapped_column()  # {type: cron|date, expression}
    service_account_id: Mapped[str | None] = mapped_column(
        ForeignKey("service_accounts.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CallbackDelivery(Base):
    """An outbox row: one event to POST to one callback URL, kept until delivered."""

    __tablename__ = "callback_deliveries"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2000))
    level: Mapped[str] = mapped_column(String(10))
    payload: Mapped[dict[str, Any]] = mapped_column()
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|delivered|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (Index("ix_callback_deliveries_run_status", "run_id", "status"),)


class MaintenanceWindow(Base):
    """A time during which automations in its scope take `autonomy_override` instead of their
    own autonomy (the Automations API's maintenance windows)."""

    __tablename__ = "maintenance_windows"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    start_at: Mapped[datetime] = mapped_column()
    end_at: Mapped[datetime] = mapped_column()
    recurring: Mapped[str | None] = mapped_column(String(200))  # 5-field cron, None: one-off
    scope: Mapped[list[Any]] = mapped_column(default=list)  # automation and host ids; []: all
    autonomy_override: Mapped[str] = mapped_column(String(20))
    override_active: Mapped[bool | None] = mapped_column(Boolean)
    override_until: Mapped[datetime | None] = mapped_column()
    created_by: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ForgePullRequest(Base):
    """A pull request of a repository whose forge is `local`: Runwright itself keeps it.

    Numbered per repository from 1, as a forge numbers them. At most one open pull request
    per head branch, so opening one for a branch twice finds the first.
    """

    __tablename__ = "forge_pull_requests"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    repository_id: Mapped[str] = mapped_column(ForeignKey("definitions.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    head: Mapped[str] = mapped_column(String(255))
    base: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(256))
    body: Mapped[str] = mapped_column(Text, default="")
    draft: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(20), default="open")  # open | closed | merged
    # Label names in the order they were added; rows from before labels existed hold [].
    labels: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default="[]")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("repository_id", "number"),
        Index(
            "ix_forge_pull_requests_open_head",
            "repository_id",
            "head",
            unique=True,
            sqlite_where=text("state = 'open'"),
            postgresql_where=text("state = 'open'"),
        ),
    )


class RunbookRow(Base):
    """A runbook: its prompts, its plan (rendered Markdown) and the state of each leaf step.

    `number` is sequential per account (`account_key`: the account's id, or "" for users of
    no account); the unique constraint makes a concurrent create that took the same number
    retry with the next one. `step_states` maps leaf step numbers to the five documented
    states; `planned_prompts` counts the prompts whose planning has been recorded.
    """

    __tablename__ = "runbooks"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    account_key: Mapped[str] = mapped_column(String(36), default="")
    number: Mapped[int] = mapped_column(Integer)
    repository_id: Mapped[str] = mapped_column(ForeignKey("definitions.id", ondelete="CASCADE"))
    repository_org: Mapped[str] = mapped_column(String(100))
    repository_name: Mapped[str] = mapped_column(String(100))
    prompts: Mapped[list[Any]] = mapped_column(JSON, default=list)
    planned_prompts: Mapped[int] = mapped_column(Integer, default=0)
    title: Mapped[str] = mapped_column(String(256))
    description: Mapped[str | None] = mapped_column(Text)
    labels: Mapped[list[Any]] = mapped_column(JSON, default=list)
    author_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    oneshot: Mapped[bool] = mapped_column(Boolean, default=True)
    pr_mode: Mapped[str] = mapped_column(String(20))
    draft: Mapped[bool] = mapped_column(Boolean, default=True)
    target_branch: Mapped[str] = mapped_column(String(255))
    plan: Mapped[str | None] = mapped_column(Text)
    step_states: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    pull_requests: Mapped[list[Any]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    workflow_id: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (UniqueConstraint("account_key", "number"),)
