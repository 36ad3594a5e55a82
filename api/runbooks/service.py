"""Runbooks: stored, started as workflows, shown in the documented schema.

    create(services, user, request, base_url) -> dict     202's body; the workflow started
    show(services, user, number, base_url) -> dict        200's body
    follow_up(services, user, number, request, base_url) -> dict
    execute(services, user, number, request, base_url) -> dict
    stop(services, user, number, base_url) -> dict

A runbook is committed before its workflow starts (the workflow's records find its row), and
removed again if Temporal refuses, so a 202 always names a runbook that plans. A follow-up is
stored, then sent with signal-with-start: a running workflow gets the signal, an ended one
(idle) starts again from the stored plan and states. An execute request is checked against
the stored plan and states and sent the same way (nothing is stored: the workflow records the
queued steps); a stop is a plain signal, as only a running workflow has anything to stop.

Status: resolution 1 over the leaf steps, except that a runbook whose planning failed before
it had any step shows `failed` (with the reason in `error`) rather than `generating_steps`.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any
from urllib.parse import urljoin

from sqlalchemy import delete
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from api.db import read, write
from api.deps import Services
from api.errors import ApiError
from api.runbooks.requests import CreateRequest, ExecuteRequest, FollowUpRequest
from core.repositories import RepositoryTarget
from core.runbooks.model import Runbook
from core.runbooks.status import (
    FAILED,
    GENERATING_STEPS,
    aggregate_status,
    effective_draft,
    effective_pr_mode,
    execute_refusal,
    leaf_states,
    pull_requests_view,
    step_counts,
    title_from_prompt,
)
from core.store import repositories
from core.store.models import RunbookRow, User
from core.store.runbooks import (
    account_key,
    add_prompt,
    by_number,
    create_runbook,
    plan_of,
    pull_request_refs,
)
from core.store.users import get_by_email
from workflows.contracts import (
    EXECUTE_SIGNAL,
    FOLLOW_UP_SIGNAL,
    SA_ACCOUNT,
    SA_DEFINITION_ID,
    SA_DIALECT,
    SA_RESOURCE_ID,
    SA_STATUS,
    STOP_SIGNAL,
    CommitAuthor,
    ExecuteStep,
    FollowUp,
    RunbookInput,
    StopSteps,
)
from workflows.runbook import DIALECT, RunbookWorkflow, workflow_id

log = logging.getLogger(__name__)
RUNBOOK_NOT_FOUND = "Runbook not found."
REPOSITORY_NOT_FOUND = "Repository not found."
NOT_PLANNED = "the runbook has no plan yet: wait for its steps to be generated"
NOTHING_EXECUTING = "nothing is executing: the runbook's workflow is not running"


def runbook_url(services: Services, base_url: str, number: int) -> str:
    """The runbook's `url`: the configured base plus its number, else this API's route."""
    base = services.settings.runbook_url_base
    if base:
        return f"{base.rstrip('/')}/{number}"
    return f"{base_url.rstrip('/')}/api/v1/runbook/{number}"


def view(row: RunbookRow, url: str, base_url: str = "") -> dict[str, Any]:
    """The documented schema, plus `title` and `error` (why planning or a step failed, else
    null). A pull request kept by the `local` forge has a URL of this API, made absolute
    against `base_url` (the request's)."""
    plan = plan_of(row)
    states = leaf_states(plan, row.step_states) if plan is not None else []
    status = aggregate_status(states)
    if status == GENERATING_STEPS and row.error:
        status = FAILED
    pulls = (
        pull_requests_view(plan, row.pr_mode, row.step_states, pull_request_refs(row))
        if plan is not None
        else []
    )
    return {
        "runbook_number": row.number,
        "url": url,
        "status": status,
        "steps": step_counts(states).as_dict(),
        "pull_requests": [{**pr.as_dict(), "url": urljoin(base_url, pr.url)} for pr in pulls],
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


def commit_author(session: Session, user_id: str) -> CommitAuthor | None:
    """Whom a runbook's commits are by: its author's name (their email without one)."""
    user = session.get(User, user_id)
    if user is None:
        return None
    return CommitAuthor(name=user.name or user.email, email=user.email)


def _input(
    row: RunbookRow,
    target: RepositoryTarget,
    pending: list[str],
    author: CommitAuthor | None,
    url: str,
) -> RunbookInput:
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
        pr_mode=row.pr_mode,
        author=author,
        author_id=row.author_id,
        # The numbering scope is the creating user's account; "" stands for none.
        account_id=row.account_key or None,
        definition_id=row.repository_id,
        url=url,
        pull_requests=pull_request_refs(row),
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

    def prepare(session: Session) -> tuple[RepositoryTarget, str, User]:
        target = repositories.repository(session, request.org, request.name)
        repo_id = repositories.repository_id(session, request.org, request.name)
        if target is None or repo_id is None:
            raise ApiError(404, REPOSITORY_NOT_FOUND)
        return target, repo_id, _author(session, user, request.author_email)

    target, repo_id, author = await read(services.sessions, prepare)
    author_id = author.id
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
    url = runbook_url(services, base_url, row.number)
    commits_by = CommitAuthor(name=author.name or author.email, email=author.email)
    try:
        await services.temporal.start_workflow(
            RunbookWorkflow.run,
            _input(row, target, [request.prompt], commits_by, url),
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
    return view(row, url, base_url)


def _find(session: Session, user: User, number: int) -> RunbookRow:
    row = by_number(session, account_key(user.account_id), number)
    if row is None:
        raise ApiError(404, RUNBOOK_NOT_FOUND)
    return row


async def show(services: Services, user: User, number: int, base_url: str) -> dict[str, Any]:
    """The runbook `number` of the caller's account."""
    row = await read(services.sessions, _find, user, number)
    return view(row, runbook_url(services, base_url, number), base_url)


async def follow_up(
    services: Services, user: User, number: int, request: FollowUpRequest, base_url: str
) -> dict[str, Any]:
    """Store the follow-up prompt and hand it to the runbook's workflow to plan."""

    def store(
        session: Session,
    ) -> tuple[RunbookRow, RepositoryTarget, CommitAuthor | None]:
        row, target = _with_target(session, user, number)
        add_prompt(session, row, request.prompt, request.description, request.labels)
        return row, target, commit_author(session, row.author_id)

    row, target, author = await write(services.sessions, store)
    url = runbook_url(services, base_url, number)
    try:
        await _signal_with_start(
            services,
            row,
            _input(row, target, [], author, url),
            FOLLOW_UP_SIGNAL,
            FollowUp(request.prompt),
            GENERATING_STEPS,
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
    return view(row, url, base_url)


async def execute(
    services: Services, user: User, number: int, request: ExecuteRequest, base_url: str
) -> dict[str, Any]:
    """Ask the runbook's workflow to execute step `request.step` (and every unexecuted leaf
    before it), after checking the request against the stored plan and states."""

    def check(
        session: Session,
    ) -> tuple[RunbookRow, RepositoryTarget, CommitAuthor | None, Runbook]:
        row, target = _with_target(session, user, number)
        plan = plan_of(row)
        if plan is None:
            raise ApiError(409, NOT_PLANNED)
        try:
            refusal = execute_refusal(plan, row.step_states, request.step)
        except ValueError as exc:  # no such step
            raise ApiError(400, f"step: {exc}") from exc
        if refusal is not None:
            raise ApiError(409, refusal)
        return row, target, commit_author(session, row.author_id), plan

    row, target, author, plan = await read(services.sessions, check)
    url = runbook_url(services, base_url, number)
    try:
        await _signal_with_start(
            services,
            row,
            _input(row, target, [], author, url),
            EXECUTE_SIGNAL,
            ExecuteStep(request.step, by=user.id),
            aggregate_status(leaf_states(plan, row.step_states)),
        )
    except RPCError as exc:
        log.error("could not send step %s of runbook %s: %s", request.step, row.id, exc)
        message = "the workflow service is unavailable; the step was not sent"
        raise ApiError(503, message) from exc
    return view(row, url, base_url)


async def stop(services: Services, user: User, number: int, base_url: str) -> dict[str, Any]:
    """Tell the runbook's running workflow to stop executing: a plain signal, so a workflow
    that is not running is not started just to stop nothing."""
    row = await read(services.sessions, _find, user, number)
    handle = services.temporal.get_workflow_handle(row.workflow_id)
    try:
        await handle.signal(STOP_SIGNAL, StopSteps(by=user.id))
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:  # never started, or ended (idle)
            raise ApiError(409, NOTHING_EXECUTING) from exc
        log.error("could not stop runbook %s: %s", row.id, exc)
        message = "the workflow service is unavailable; nothing was stopped"
        raise ApiError(503, message) from exc
    return view(row, runbook_url(services, base_url, number), base_url)


def _with_target(session: Session, user: User, number: int) -> tuple[RunbookRow, RepositoryTarget]:
    row = _find(session, user, number)
    target = repositories.repository(session, row.repository_org, row.repository_name)
    if target is None:
        raise ApiError(404, REPOSITORY_NOT_FOUND)
    return row, target


async def _signal_with_start(
    services: Services,
    row: RunbookRow,
    start: RunbookInput,
    signal: str,
    argument: Any,
    status: str,
) -> None:
    """Running: the signal alone. Ended (idle): started again from the stored plan and
    states with the signal as its first, so the request is handled either way."""
    await services.temporal.start_workflow(
        RunbookWorkflow.run,
        start,
        id=row.workflow_id,
        task_queue=services.settings.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        start_signal=signal,
        start_signal_args=[argument],
        search_attributes=_attributes(row, row.account_key, status),
        memo={"title": row.title},
    )
