"""One action's activities on the worker that holds the attempt: checkout, execute, upload.

Deterministic workflow code (called from RunWorkflow). A timeout of the worker-specific queue
(no heartbeat, or nobody picking the task up) means the worker is gone: that raises WorkerLost
so the run can take the action to another worker.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, FailureError, TimeoutError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from core.statuses import ActionStatus
    from workflows.contracts import (
        CHECKOUT_REPOSITORY,
        CLEANUP_RUN,
        EXECUTE_ACTION,
        OUTCOME_KEY,
        UPLOAD_ARTIFACTS,
        ActionResult,
        ActionSpec,
        CheckoutInput,
        CheckoutResult,
        CleanupInput,
        ExecuteActionInput,
        RunInput,
        UploadInput,
    )

DEFAULT_ACTION_TIMEOUT = 3600.0
# A worker that stops heartbeating this long is taken as lost.
HEARTBEAT_TIMEOUT = timedelta(seconds=15)
# Time for a reserved worker to pick up its next activity before we take it as gone.
WORKER_PICKUP_TIMEOUT = timedelta(seconds=30)
ONCE = RetryPolicy(maximum_attempts=1)
LOST_WORKER_TIMEOUTS = (TimeoutType.HEARTBEAT, TimeoutType.SCHEDULE_TO_START)


class WorkerLost(Exception):
    """The worker holding this attempt stopped answering."""


class CheckoutFailed(Exception):
    """The action's repository could not be checked out."""


@dataclasses.dataclass(frozen=True)
class Attempted:
    """An action's result."""

    result: ActionResult
    cleaned: bool  # the run's files are already removed from the worker


def worker_lost(err: ActivityError) -> bool:
    """Whether an activity failed because its worker is gone."""
    cause = err.cause
    return isinstance(cause, TimeoutError) and cause.type in LOST_WORKER_TIMEOUTS


def failure_message(err: Exception) -> str:
    """The innermost failure message of a failed activity or refused update: what actually
    went wrong, not "activity failed"."""
    cause: BaseException | None = getattr(err, "cause", None)
    message = str(err)
    while isinstance(cause, FailureError):
        message = cause.message or message
        cause = cause.cause
    return message


async def checkout(inp: RunInput, index: int, action: ActionSpec, queue: str) -> CheckoutResult:
    """Check the action's repository out on the attempt's worker."""
    assert action.checkout is not None
    try:
        result: CheckoutResult = await workflow.execute_activity(
            CHECKOUT_REPOSITORY,
            CheckoutInput(
                run_id=inp.run_id, index=index, source=action.checkout, callbacks=inp.callbacks
            ),
            task_queue=queue,
            schedule_to_start_timeout=WORKER_PICKUP_TIMEOUT,
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=RetryPolicy(
                maximum_attempts=3, non_retryable_error_types=["CheckoutError"]
            ),
            result_type=CheckoutResult,
        )
    except ActivityError as err:
        if worker_lost(err):
            raise WorkerLost() from err
        raise CheckoutFailed(failure_message(err)) from err
    return result


async def run_action(
    inp: RunInput,
    index: int,
    action: ActionSpec,
    queue: str,
    workdir: str | None,
    *,
    outcome: str | None = None,
) -> Attempted:
    """Execute the action (and upload its artifacts) on the attempt's worker.

    The run's last action also removes the run's files, so no extra activity is needed. A
    final action's templates also see `outcome`, the run's status so far.
    """
    template_env = inp.template_env
    if outcome is not None:
        template_env = {**template_env, OUTCOME_KEY: outcome}
    last = index == len(inp.actions) - 1
    timeout = action.timeout_seconds or DEFAULT_ACTION_TIMEOUT
    try:
        result: ActionResult = await workflow.execute_activity(
            EXECUTE_ACTION,
            ExecuteActionInput(
                run_id=inp.run_id,
                index=index,
                action=action,
                template_env=template_env,
                workdir=workdir,
                secret_refs=inp.secret_refs,
                cleanup=last and not action.artifacts,
                limit_hosts=inp.limit_hosts,
                callbacks=inp.callbacks,
            ),
            task_queue=queue,
            schedule_to_start_timeout=WORKER_PICKUP_TIMEOUT,
            # The activity enforces the action's own timeout; this bounds a stuck one.
            start_to_close_timeout=timedelta(seconds=timeout + 60),
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=ONCE,
            result_type=ActionResult,
        )
        if action.artifacts:
            artifacts = await workflow.execute_activity(
                UPLOAD_ARTIFACTS,
                UploadInput(
                    run_id=inp.run_id,
                    index=index,
                    workdir=workdir,
                    globs=action.artifacts,
                    cleanup=last,
                ),
                task_queue=queue,
                schedule_to_start_timeout=WORKER_PICKUP_TIMEOUT,
                start_to_close_timeout=timedelta(minutes=30),
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=3),
                result_type=list,
            )
            result = dataclasses.replace(result, data={**result.data, "artifacts": len(artifacts)})
    except ActivityError as err:
        if worker_lost(err):
            raise WorkerLost() from err
        result = ActionResult(status=ActionStatus.FAILED, error=failure_message(err))
        return Attempted(result=result, cleaned=False)
    return Attempted(result=result, cleaned=last)


async def cleanup(run_id: str, queue: str) -> None:
    """Remove the run's files from its worker (when the last action did not)."""
    try:
        await workflow.execute_activity(
            CLEANUP_RUN,
            CleanupInput(run_id=run_id),
            task_queue=queue,
            schedule_to_start_timeout=WORKER_PICKUP_TIMEOUT,
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=ONCE,
        )
    except ActivityError:
        # A lost worker's files went with it; nothing to clean.
        workflow.logger.info("cleanup of run %s skipped: worker gone", run_id)
