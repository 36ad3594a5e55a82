"""Runbooks in the database: numbered per account, their plan and step states.

    create_runbook(sessions, **fields) -> RunbookRow    the next number of the account
    by_number(session, account_key, number) -> RunbookRow | None
    record_plan(session, runbook_id, plan, states, planned_prompts, error, pull_requests=None)
    pull_request_refs(row) -> list[PullRequestRef]      the stored pull requests
    add_prompt(session, row, prompt, description, labels)
    plan_of(row) -> Runbook | None                      the stored Markdown parsed back

Numbers: the next one is the account's highest plus one; the unique (account_key, number)
constraint refuses a concurrent create that took the same one, which then tries again, so
numbers stay sequential and unique without a lock that only one database would have.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.runbooks.format import parse_runbook
from core.runbooks.model import Runbook
from core.runbooks.status import PullRequestRef
from core.store.models import RunbookRow

NUMBER_ATTEMPTS = 20


def account_key(account_id: str | None) -> str:
    """The numbering scope: an account, or "" for users of no account."""
    return account_id or ""


def create_runbook(sessions: sessionmaker[Session], account: str, **fields: Any) -> RunbookRow:
    """Insert a runbook with the account's next number (committed); retried on a clash."""
    for _attempt in range(NUMBER_ATTEMPTS):
        with sessions() as session:
            last = session.scalar(
                select(func.max(RunbookRow.number)).where(RunbookRow.account_key == account)
            )
            row = RunbookRow(account_key=account, number=(last or 0) + 1, **fields)
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                continue
            return row
    raise RuntimeError(f"no runbook number could be taken after {NUMBER_ATTEMPTS} attempts")


def by_number(session: Session, account: str, number: int) -> RunbookRow | None:
    """Runbook `number` of the account."""
    return session.scalar(
        select(RunbookRow).where(RunbookRow.account_key == account, RunbookRow.number == number)
    )


def plan_of(row: RunbookRow) -> Runbook | None:
    """The stored plan; None before the first plan is recorded."""
    return parse_runbook(row.plan) if row.plan else None


def record_plan(
    session: Session,
    runbook_id: str,
    runbook: Runbook | None,
    states: dict[str, str],
    planned_prompts: int,
    error: str | None,
    pull_requests: list[PullRequestRef] | None = None,
) -> None:
    """Store what planning or execution produced; a recording that is behind the stored one
    is ignored, so a retried activity cannot take the plan back. `pull_requests` None leaves
    the stored ones (a recording that opened none does not forget them)."""
    row = session.get(RunbookRow, runbook_id)
    if row is None or planned_prompts < row.planned_prompts:
        return
    if runbook is not None:
        row.plan = runbook.render()
    row.step_states = dict(states)
    row.planned_prompts = planned_prompts
    row.error = error
    if pull_requests is not None:
        row.pull_requests = [asdict(pr) for pr in pull_requests]
    session.flush()


def pull_request_refs(row: RunbookRow) -> list[PullRequestRef]:
    """The pull requests the runbook's workflow recorded, in the order it recorded them."""
    return [
        PullRequestRef(number=int(pr["number"]), url=str(pr["url"]), group=str(pr["group"]))
        for pr in row.pull_requests
    ]


def add_prompt(
    session: Session,
    row: RunbookRow,
    prompt: str,
    description: str | None,
    labels: list[str] | None,
) -> None:
    """A follow-up: its prompt appended, description and labels replaced when given, and a
    previous planning error cleared (the follow-up is planned anew)."""
    row.prompts = [*row.prompts, prompt]
    if description is not None:
        row.description = description
    if labels is not None:
        row.labels = labels
    row.error = None
    session.flush()
