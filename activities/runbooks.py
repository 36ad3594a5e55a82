"""The runbook workflow's activities: its checkout on a worker, and its records.

    checkout_runbook(CheckoutRunbookInput) -> CheckoutRunbookResult   (the worker's own queue)
    record_runbook(RecordRunbookInput) -> None                        (the shared queue)
    publish_runbook(PublishRunbookInput) -> PullRequestRef            (the shared queue)

The checkout is a git working tree (a single-branch clone of `target_branch`), because the
runbook's steps will commit into it; it lives in the runbook's own directory under the
workspace, `runbooks/<id>/checkout`, and a repeated checkout replaces it. Git runs as the
checkout cache runs it (`core.git_commands`): the repository's credentials only in git's
environment, protocols limited to the allowed schemes, no hooks or credential helpers, and
nothing secret in `.git/config` or in an error message.

Publishing opens or updates one pull request through the repository's forge: its title, body
and draft flag follow from the stored runbook (title, description, draft, mode) and the leaf
states it is given (`core.runbooks.status`), so a retried call writes the same thing. The
runbook's labels are read from its row at each publish (a follow-up may have replaced them)
and only ever added to the pull request: labels a person put on it stay.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.forges import forge_for
from activities.forges.push import open_credentials
from core.egress import EgressPolicy
from core.forges import ForgeError
from core.git_commands import git_session, summarize
from core.git_urls import GitUrlError, redact_url, validate_git_url, validate_ref
from core.runbooks.publishing import pull_request_text
from core.runbooks.status import PullRequestRef
from core.secrets import SecretBox, run_redactor
from core.store.models import Run, RunbookRow
from core.store.runbooks import record_plan
from core.store.runs import failed_action_error
from core.store.secret_values import open_secret
from core.store.session import transaction
from workflows.contracts import (
    CHECKOUT_RUNBOOK,
    PUBLISH_RUNBOOK,
    RECORD_RUNBOOK,
    CheckoutRunbookInput,
    CheckoutRunbookResult,
    PublishRunbookInput,
    RecordRunbookInput,
)

CHECKOUT_ERROR = "CheckoutError"
FORGE_ERROR = "ForgeError"
CLONE_TIMEOUT_SECONDS = 600.0


def runbook_dir(workspace: Path, runbook_id: str) -> Path:
    """The runbook's own directory on a worker."""
    return workspace / "runbooks" / runbook_id


class RunbookActivities:
    """The runbook activities, bound to the worker's workspace, database and secrets."""

    def __init__(
        self,
        *,
        workspace: Path,
        sessions: sessionmaker[Session],
        box: SecretBox,
        allowed_schemes: Sequence[str],
        policy: EgressPolicy,
    ) -> None:
        self._policy = policy
        self._workspace = workspace
        self._sessions = sessions
        self._box = box
        self._schemes = list(allowed_schemes)

    def _opener(self) -> Callable[[str], str]:
        redactor = run_redactor()

        def open_ref(ref: str) -> str:
            with self._sessions() as session:
                value = open_secret(session, self._box, ref)
            redactor.add(value)
            return value

        return open_ref

    @activity.defn(name=CHECKOUT_RUNBOOK)
    def checkout_runbook(self, inp: CheckoutRunbookInput) -> CheckoutRunbookResult:
        """Clone the repository at the runbook's branch into the runbook's directory."""
        target = inp.repository
        where = f"{redact_url(target.url)} at {inp.branch}"
        try:
            validate_git_url(target.url, self._schemes)
            validate_ref(inp.branch)
        except GitUrlError as exc:
            raise ApplicationError(str(exc), type=CHECKOUT_ERROR, non_retryable=True) from exc
        dest = runbook_dir(self._workspace, inp.runbook_id) / "checkout"
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        creds = open_credentials(target, self._opener())
        with git_session(
            self._schemes,
            CLONE_TIMEOUT_SECONDS,
            username=creds.username,
            password=creds.password,
            ssh_key=creds.ssh_key,
            remote=target.url,
            egress=self._policy,
        ) as runner:
            status, _, err = runner.run(
                "clone",
                "--quiet",
                "--no-tags",
                "--single-branch",
                "--branch",
                inp.branch,
                "--",
                target.url,
                str(dest),
            )
            if status != 0:
                shutil.rmtree(dest, ignore_errors=True)
                raise ApplicationError(
                    f"cannot check out {where}: {summarize(err)}",
                    type=CHECKOUT_ERROR,
                    non_retryable="not found" in err or "Could not find" in err,
                )
            status, out, err = runner.run("rev-parse", "HEAD", cwd=dest)
            if status != 0:
                raise ApplicationError(f"cannot read {where}: {summarize(err)}")
        return CheckoutRunbookResult(checkout=str(dest), commit=out.strip())

    @activity.defn(name=RECORD_RUNBOOK)
    def record_runbook(self, inp: RecordRunbookInput) -> None:
        """Store the plan, leaf states, pull requests and planned prompt count, and the
        runbook's error: planning's, or the failed step run's own."""
        with transaction(self._sessions) as session:
            error = inp.error
            if inp.failed_step is not None:
                run = session.get(Run, inp.failed_run) if inp.failed_run else None
                why = "its run failed"
                if run is not None:
                    why = (
                        run.error
                        or failed_action_error(session, run.id)
                        or f"its run ended {run.status}"
                    )
                error = f"step {inp.failed_step} failed: {why}"
            record_plan(
                session,
                inp.runbook_id,
                inp.runbook,
                inp.states,
                inp.planned_prompts,
                error,
                pull_requests=inp.pull_requests,
            )

    @activity.defn(name=PUBLISH_RUNBOOK)
    def publish_runbook(self, inp: PublishRunbookInput) -> PullRequestRef:
        """Open the pull request of `inp.head` if there is none, then bring its title, body
        and draft flag up to date and add the runbook's labels it lacks."""
        with self._sessions() as session:
            row = session.get(RunbookRow, inp.runbook_id)
            if row is None:
                raise ApplicationError("the runbook no longer exists", non_retryable=True)
            text = pull_request_text(
                inp.runbook,
                inp.states,
                pr_mode=row.pr_mode,
                group=inp.group,
                runbook_number=row.number,
                title=row.title,
                description=row.description,
                draft=row.draft,
                url=inp.url,
            )
            labels = [str(label) for label in row.labels or ()]
        try:
            forge = forge_for(
                inp.repository,
                sessions=self._sessions,
                open_ref=self._opener(),
                policy=self._policy,
            )
            pr = forge.ensure_pull_request(
                inp.head, inp.base, text.title, text.body, text.draft, labels=labels
            )
            stale = (pr.title, pr.body, pr.draft) != (text.title, text.body, text.draft)
            if stale or not set(labels) <= set(pr.labels):
                pr = forge.update_pull_request(
                    pr.number, title=text.title, body=text.body, draft=text.draft, labels=labels
                )
        except ForgeError as exc:
            # A forge's messages never hold a secret; retryable ones are tried again.
            raise ApplicationError(str(exc), type=None if exc.retryable else FORGE_ERROR) from None
        return PullRequestRef(number=pr.number, url=pr.url, group=inp.group)
