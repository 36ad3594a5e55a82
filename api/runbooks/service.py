"""Runbooks: stored, started as workflows, shown in the documented schema.

    create(services, user, request, base_url) -> dict     202's body; the workflow started
    show(services, user, number, base_url) -> dict        200's body
    follow_up(services, user, number, request, base_url) -> dict

A runbook is committed before its workflow starts (the workflow's records find its row), and
removed again if Temporal refuses, so a 202 always names a runbook that plans. A follow-up is
stored, then sent with signal-with-start: a running workflow gets the signal, an ended one
(idle) starts again from the stored plan and states.

Status: resolution 1 over the leaf steps, except that a runbook whose planning failed before
it had any step shows `failed` (with the reason in `error`) rather than `generating_steps`.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError

from api.db import read, write
from api.deps import Services
from api.errors import ApiError
from api.runbooks.requests import CreateRequest, FollowUpRequest
from core.repositories import RepositoryTarget
from core.runbooks.status import (
    FAILED,
    GENERATING_STEPS,
    aggregate_status,
    effective_draft,
    effective_pr_mode,
    leaf_states,
    step_counts,
    title_from_prompt,
)
from core.store import repositories
from core.store.models import RunbookRow, User
from core.store.runbooks import account_key, add_prompt, by_number, create_runbook, plan_of
from core.store.users import get_by_email
from workflows.contracts import (
    FOLLOW_UP_SIGNAL,
    SA_ACCOUNT,
    SA_DEFINITION_ID,
    SA_DIALECT,
    SA_RESOURCE_ID,
    SA_STATUS,
    FollowUp,
    RunbookInput,
)
from workflows.runbook import RunbookWorkflow, workflow_id

log = logging.getLogger(__name__)
DIALECT = "runbook"
RUNBOOK_NOT_FOUND = "Runbook not found."
REPOSITORY_NOT_FOUND = "Repository not found."


def runbook_url(services: Services, base_url: str, number: int) -> str:
    """The runbook's `url`: the configured base plus its number, else this API's route."""
    base = services.settings.runbook_url_base
    if base:
        return f"{base.rstrip('/')}/{number}"
    return f"{base_url.rstrip('/')}/api/v1/runbook/{number}"


def view(row: RunbookRow, url: str) -> dict[str, Any]:
    """The documented schema, plus `title` and `error` (null unless planning failed)."""
    plan = plan_of(row)
    states = leaf_states(plan, row.step_states) if plan is not None else []
    status = aggregate_status(states)
    if status == GENERATING_STEPS and row.error:
        status = FAILED
    return {
        "runbook_number": row.number,
        "url": url,
        "status": status,
        "steps": step_counts(states).as_dict(),
        "pull_requests": list(row.pull_requests),
        "title": row.title,
        "error": row.error,
    }


def _attributes(row: RunbookRow, account: str, status: str) -> TypedSearchAttributes:
    pairs = [
        (SA_DEFINITION_ID, row.id),
        (SA_DIALECT, DIALECT),
        (SA_STATUS, status),
        (SA_RESOURCE_ID, f"{row.repository_org}/{row.repository_name}"),
        (SA_ACCOUNT, account),
    ]
    return TypedSearchAttributes(
        [SearchAttributePair(SearchAttributeKey.for_keyword(k), v) for k, v in pairs if v]
    )


def _input(row: RunbookRow, target: RepositoryTarget, pending: list[str]) -> RunbookInput:
    return RunbookInput(
        runbook_id=row.id,
        runbook_number=row.number,
        repository=target,
        target_branch=row.target_branch,
        oneshot=row.oneshot,
        pending=pending,
        runbook=plan_of(row),
        states=dict(row.step_states),
        planned_prompts=row.planned_prompts,
    )


def _author(session: Session, user: User, email: str | None) -> User:
    if email is None:
        return user
    author = get_by_email(session, email)
    if author is None or author.role is None:
        raise ApiError(400, "author_email: no platform user has this email")
    return author


async def create(
    services: Services, user: User, request: CreateRequest, base_url: str
) -> dict[str, Any]:
    """Store the runbook with the account's next number and start its workflow."""
    account = account_key(user.account_id)

    def prepare(session: Session) -> tuple[RepositoryTarget, str, str]:
        target = repositories.repository(session, request.org, request.name)
        repo_id = repositories.repository_id(session, request.org, request.name)
        if target is None or repo_id is None:
            raise ApiError(404, REPOSITORY_NOT_FOUND)
        return target, repo_id, _author(session, user, request.author_email).id

    target, repo_id, author_id = await read(services.sessions, prepare)
    oneshot = request.oneshot
    runbook_id = str(uuid.uuid4())
    row = await run_in_threadpool(
        create_runbook,
        services.sessions,
        account,
        id=runbook_id,
        workflow_id=workflow_id(runbook_id),
        repository_id=repo_id,
        repository_org=target.org,
        repository_name=target.name,
        prompts=[request.prompt],
        planned_prompts=0,
        title=request.title or title_from_prompt(request.prompt),
        description=request.description,
        labels=request.labels or [],
        author_id=author_id,
        oneshot=oneshot,
        pr_mode=effective_pr_mode(request.pr_mode, oneshot),
        draft=effective_draft(request.draft, oneshot),
        target_branch=request.target_branch or target.default_branch,
        step_states={},
        pull_requests=[],
    )
    try:
        await services.temporal.start_workflow(
            RunbookWorkflow.run,
            _input(row, target, [request.prompt]),
            id=row.workflow_id,
            task_queue=services.settings.task_queue,
            search_attributes=_attributes(row, account, GENERATING_STEPS),
            memo={"title": row.title},
        )
    except RPCError as exc:
        log.error("could not start runbook %s: %s", row.id, exc)

        def remove(session: Session) -> None:
            session.execute(delete(RunbookRow).where(RunbookRow.id == row.id))

        await write(services.sessions, remove)
        message = "the workflow service is unavailable; the runbook was not created"
        raise ApiError(503, message) from exc
    return view(row, runbook_url(services, base_url, row.number))


def _find(session: Session, user: User, number: int) -> RunbookRow:
    row = by_number(session, account_key(user.account_id), number)
    if row is None:
        raise ApiError(404, RUNBOOK_NOT_FOUND)
    return row


async def show(services: Services, user: User, number: int, base_url: str) -> dict[str, Any]:
    """The runbook `number` of the caller's account."""
    row = await read(services.sessions, _find, user, number)
    return view(row, runbook_url(services, base_url, number))


async def follow_up(
    services: Services, user: User, number: int, request: FollowUpRequest, base_url: str
) -> dict[str, Any]:
    """Store the follow-up prompt and hand it to the runbook's workflow to plan."""

    def store(session: Session) -> tuple[RunbookRow, RepositoryTarget]:
        row = _find(session, user, number)
        target = repositories.repository(session, row.repository_org, row.repository_name)
        if target is None:
            raise ApiError(404, REPOSITORY_NOT_FOUND)
        add_prompt(session, row, request.prompt, request.description, request.labels)
        return row, target

    row, target = await write(services.sessions, store)
    account = account_key(user.account_id)
    try:
        # Running: the signal alone. Ended (idle): started again from the stored plan, with
        # the follow-up as its signal, so it is planned either way.
        await services.temporal.start_workflow(
            RunbookWorkflow.run,
            _input(row, target, []),
            id=row.workflow_id,
            task_queue=services.settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            start_signal=FOLLOW_UP_SIGNAL,
            start_signal_args=[FollowUp(request.prompt)],
            search_attributes=_attributes(row, account, GENERATING_STEPS),
            memo={"title": row.title},
        )
    except RPCError as exc:
        log.error("could not send the follow-up of runbook %s: %s", row.id, exc)

        def undo(session: Session) -> None:
            current = session.get(RunbookRow, row.id)
            if current is not None and current.prompts and current.prompts[-1] == request.prompt:
                current.prompts = current.prompts[:-1]

        await write(services.sessions, undo)
        message = "the workflow service is unavailable; the follow-up was not added"
        raise ApiError(503, message) from exc
    return view(row, runbook_url(services, base_url, number))
