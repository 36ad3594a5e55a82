"""Pull requests of repositories whose forge is `local`, kept in Runwright's database.

Each function takes a session and flushes; the caller commits. `ensure_open` relies on two
constraints for concurrent callers: numbers are unique per repository, and a head branch has
at most one open pull request; the loser of a race sees an IntegrityError and, from a fresh
transaction, finds the winner's row (see activities/forges/local.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.forges import PullRequest, missing_labels
from core.store.models import ForgePullRequest, utcnow


def as_pull_request(row: ForgePullRequest, url: str) -> PullRequest:
    """The row as the forge interface reports it."""
    return PullRequest(
        number=row.number,
        url=url,
        head=row.head,
        base=row.base,
        title=row.title,
        body=row.body,
        draft=row.draft,
        state=row.state,
        labels=tuple(row.labels or ()),
    )


def open_for_head(session: Session, repository_id: str, head: str) -> ForgePullRequest | None:
    """The open pull request of branch `head`, if any."""
    return session.scalar(
        select(ForgePullRequest).where(
            ForgePullRequest.repository_id == repository_id,
            ForgePullRequest.head == head,
            ForgePullRequest.state == "open",
        )
    )


def ensure_open(
    session: Session,
    repository_id: str,
    *,
    head: str,
    base: str,
    title: str,
    body: str,
    draft: bool,
    labels: Sequence[str] = (),
) -> tuple[ForgePullRequest, bool]:
    """The open pull request of `head` as it is, or a new one with the next number and
    `labels`; (row, created)."""
    found = open_for_head(session, repository_id, head)
    if found is not None:
        return found, False
    last = session.scalar(
        select(func.max(ForgePullRequest.number)).where(
            ForgePullRequest.repository_id == repository_id
        )
    )
    row = ForgePullRequest(
        repository_id=repository_id,
        number=(last or 0) + 1,
        head=head,
        base=base,
        title=title,
        body=body,
        draft=draft,
        state="open",
        labels=list(labels),
    )
    session.add(row)
    session.flush()
    return row, True


def get_by_number(session: Session, repository_id: str, number: int) -> ForgePullRequest | None:
    """Pull request `number` of the repository."""
    return session.scalar(
        select(ForgePullRequest).where(
            ForgePullRequest.repository_id == repository_id,
            ForgePullRequest.number == number,
        )
    )


def update(
    row: ForgePullRequest,
    *,
    title: str | None = None,
    body: str | None = None,
    draft: bool | None = None,
    labels: Sequence[str] | None = None,
) -> ForgePullRequest:
    """Set the given fields (None leaves one as it is); `labels` are added after the row's
    own, which stay."""
    if labels is not None:
        added = missing_labels(labels, row.labels or [])
        if added:
            # A new list, so the JSON column is seen as changed.
            row.labels = [*(row.labels or []), *added]
    if title is not None:
        row.title = title
    if body is not None:
        row.body = body
    if draft is not None:
        row.draft = draft
    row.updated_at = utcnow()
    return row


def newest_for_heads(
    session: Session, repository_id: str, heads: Sequence[str]
) -> dict[str, ForgePullRequest]:
    """The newest (highest numbered) pull request of each head branch that has one."""
    if not heads:
        return {}
    rows = session.scalars(
        select(ForgePullRequest)
        .where(
            ForgePullRequest.repository_id == repository_id,
            ForgePullRequest.head.in_(list(heads)),
        )
        .order_by(ForgePullRequest.number)
    )
    return {row.head: row for row in rows}


def list_for_repository(
    session: Session, repository_id: str, *, limit: int, offset: int
) -> list[ForgePullRequest]:
    """The repository's pull requests, newest first."""
    return list(
        session.scalars(
            select(ForgePullRequest)
            .where(ForgePullRequest.repository_id == repository_id)
            .order_by(ForgePullRequest.number.desc())
            .limit(limit)
            .offset(offset)
        )
    )
