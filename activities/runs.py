"""The activities of one attempt: reserve a worker, check out, execute, upload, clean up.

All but `reserve_worker` run on the reserving worker's own task queue, so an attempt's
files stay on the machine that made them. They are sync (GitPython, ansible-runner and
subprocess block) and run on the worker's thread pool.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.callbacks import CallbackActivities
from activities.checkout import CheckoutCache, CheckoutError
from activities.control import ControlWatch
from activities.event_log import EventLog, OutputCap
from activities.executors import EXECUTORS, ActionContext, Executed
from activities.heartbeats import while_heartbeating
from activities.http_requests import HttpLimits
from activities.sandbox import SETTING as SANDBOX_SETTING
from activities.sandbox import Sandbox
from core.artifacts import ArtifactStore, guess_content_type
from core.events import EventLevel, EventRecord
from core.git_urls import GitUrlError, PathEscapeError, safe_join
from core.gotemplate import TemplateError, render_fields
from core.secrets import Redactor, SecretBox, resolve_refs, run_redactor
from core.statuses import ActionStatus
from core.store.models import Artifact, RunAction
from core.store.secret_values import open_secret
from core.store.session import transaction
from workflows.contracts import (
    CHECKOUT_REPOSITORY,
    CLEANUP_RUN,
    EXECUTE_ACTION,
    RESERVE_WORKER,
    RUNBOOK_STEP_KIND,
    UPLOAD_ARTIFACTS,
    ActionResult,
    ActionSpec,
    ArtifactInfo,
    CallbackSpec,
    CheckoutInput,
    CheckoutResult,
    CleanupInput,
    ExecuteActionInput,
    UploadInput,
)

STDOUT_ARTIFACT, STDERR_ARTIFACT = "/dev/stdout", "/dev/stderr"
# Kinds whose spec arrives already rendered: templating it again would evaluate `{{` inside
# the values that were substituted into it (a template injection). Such actions say
# `templated=False`; the kind is checked too, since histories from before that flag carry the
# default (True) and a runbook must never be rendered whatever its flag says.
PRE_RENDERED_KINDS = frozenset({"runbook", RUNBOOK_STEP_KIND})


def rendered_spec(action: ActionSpec, template_env: dict[str, Any]) -> dict[str, Any]:
    """The action's spec as its executor gets it: its strings rendered, if it is templated."""
    if not action.templated or action.kind in PRE_RENDERED_KINDS:
        return action.spec
    rendered: dict[str, Any] = render_fields(action.spec, template_env)
    return rendered


# Kinds that start programs (http runs inside the worker): confined by the sandbox.
PROCESS_KINDS = frozenset({"exec", "ansible", "runbook", "ssh", RUNBOOK_STEP_KIND})

log = logging.getLogger(__name__)


class RunActivities:
    """Activities bound to one worker: its task queue, workspace, checkout cache and stores."""

    def __init__(
        self,
        *,
        worker_queue: str,
        workspace: Path,
        allowed_schemes: list[str],
        sessions: sessionmaker[Session],
        box: SecretBox,
        store: ArtifactStore,
        callbacks: CallbackActivities | None = None,
        http: HttpLimits | None = None,
        sandbox: Sandbox | None = None,
        output_cap: OutputCap | None = None,
        step_agent: Sequence[str] = (),
        step_agent_env: Mapping[str, str] | None = None,
    ) -> None:
        self._queue = worker_queue
        self._schemes = list(allowed_schemes)
        self._step_agent = list(step_agent)
        self._step_agent_env = dict(step_agent_env or {})
        self._sandbox = sandbox
        self._output_cap = output_cap
        self._workspace = workspace
        self._sessions = sessions
        self._box = box
        self._store = store
        self._callbacks = callbacks
        self._http = http or HttpLimits()
        self._checkouts = CheckoutCache(
            workspace / "cache", allowed_schemes, egress=self._http.policy
        )

    def _run_dir(self, run_id: str) -> Path:
        return self._workspace / "runs" / run_id

    def _events(
        self, run_id: str, index: int, callbacks: list[CallbackSpec], redactor: Redactor
    ) -> EventLog:
        """The action's event log, applying the run's callbacks as events are stored."""
        dispatcher = None
        if callbacks and self._callbacks is not None:
            dispatcher = self._callbacks.dispatcher(callbacks)
        return EventLog(
            self._sessions, run_id, index, dispatcher, self._output_cap, redactor=redactor
        )

    def _opener(self, redactor: Redactor) -> Callable[[str], str]:
        """Opens references for one invocation, teaching its redactor each value opened."""

        def open_ref(ref: str) -> str:
            with self._sessions() as session:
                value = open_secret(session, self._box, ref)
            redactor.add(value)
            return value

        return open_ref

    @activity.defn(name=RESERVE_WORKER)
    def reserve_worker(self) -> str:
        """This worker's own task queue, where the rest of the attempt is scheduled."""
        return self._queue

    @activity.defn(name=CHECKOUT_REPOSITORY)
    def checkout_repository(self, inp: CheckoutInput) -> CheckoutResult:
        """Check the action's repository out into the run's directory (from cache if we can)."""
        source = inp.source
        dest = self._run_dir(inp.run_id) / f"checkout-{inp.index}"
        if dest.exists():
            shutil.rmtree(dest)
        redactor = run_redactor()
        open_ref = self._opener(redactor)
        events = self._events(inp.run_id, inp.index, inp.callbacks, redactor)
        try:
            password = open_ref(source.password_ref) if source.password_ref else None
            ssh_key = open_ref(source.ssh_key_ref) if source.ssh_key_ref else None
            # The attempt's heartbeat timeout takes a silent worker as lost: a clone of a
            # big repository must not look like one.
            commit, cached = while_heartbeating(
                lambda: self._checkouts.checkout(source, dest, password=password, ssh_key=ssh_key),
                activity.heartbeat,
            )
            workdir = safe_join(dest, source.path) if source.path else dest
        except (CheckoutError, GitUrlError, PathEscapeError) as exc:
            events.emit(EventRecord("checkout_failed", str(exc), EventLevel.ERROR))
            events.flush()
            raise ApplicationError(str(exc), type="CheckoutError", non_retryable=True) from exc
        if not workdir.is_dir():
            message = f"path {source.path!r} is not a directory in {source.url}"
            raise ApplicationError(message, type="CheckoutError", non_retryable=True)
        events.emit(
            EventRecord(
                "checkout",
                f"{source.url} at {commit.sha[:12]}{' (cached)' if cached else ''}",
                data={"commit": commit.sha, "cached": cached},
            )
        )
        events.flush()
        return CheckoutResult(workdir=str(workdir), commit=commit, cached=cached)

    @activity.defn(name=EXECUTE_ACTION, no_thread_cancel_exception=True)
    def execute_action(self, inp: ExecuteActionInput) -> ActionResult:
        """Template the action, run it, and report what it did.

        Redaction is this invocation's own: it masks the secrets of this run, opened here,
        before any output; never those another run opened in this process.
        """
        redactor = run_redactor()
        open_ref = self._opener(redactor)
        for ref in inp.secret_refs:
            open_ref(ref)
        events = self._events(inp.run_id, inp.index, inp.callbacks, redactor)
        action = inp.action
        events.emit(EventRecord("action_started", f"action {action.name!r} ({action.kind})"))
        run_dir = self._run_dir(inp.run_id)
        try:
            executed = self._execute(inp, run_dir, events, open_ref)
        finally:
            events.flush()
            if inp.cleanup:
                shutil.rmtree(run_dir, ignore_errors=True)
        return self._done(events, action, executed)

    def _execute(
        self,
        inp: ExecuteActionInput,
        run_dir: Path,
        events: EventLog,
        open_ref: Callable[[str], str],
    ) -> Executed:
        executor = EXECUTORS.get(inp.action.kind)
        if executor is None:
            return Executed(error=f"unknown action kind {inp.action.kind!r}")
        # Secret parameters travel as references; their values exist only here, at execution.
        template_env = resolve_refs(inp.template_env, open_ref)
        try:
            spec = rendered_spec(inp.action, template_env)
        except TemplateError as exc:
            return Executed(error=events.redactor.redact(f"template error: {exc}"))
        workdir = Path(inp.workdir) if inp.workdir else run_dir / f"work-{inp.index}"
        workdir.mkdir(parents=True, exist_ok=True)
        if self._sandbox is None and inp.action.kind in PROCESS_KINDS:
            log.warning(
                "%s=off: action %r of run %s runs without a sandbox, able to read the "
                "worker's files and processes",
                SANDBOX_SETTING,
                inp.action.name,
                inp.run_id,
            )
        return executor(
            ActionContext(
                action=inp.action,
                spec=resolve_refs(spec, open_ref),
                workdir=workdir,
                run_dir=run_dir,
                index=inp.index,
                params=template_env.get("params") or {},
                limit_hosts=inp.limit_hosts,
                events=events,
                control=ControlWatch(self._sessions, inp.run_id, events),
                http=self._http,
                sandbox=self._sandbox,
                open_ref=open_ref,
                git_schemes=self._schemes,
                step_agent=self._step_agent,
                step_agent_env=self._step_agent_env,
            )
        )

    def _done(self, events: EventLog, action: ActionSpec, executed: Executed) -> ActionResult:
        status = ActionStatus.FAILED if executed.error else ActionStatus.COMPLETED
        level = EventLevel.ERROR if executed.error else EventLevel.INFO
        message = f"action {action.name!r} {status}" + (
            f": {executed.error}" if executed.error else ""
        )
        events.emit(EventRecord("action_finished", message, level))
        events.flush()
        return ActionResult(
            status=str(status),
            stdout=executed.stdout,
            stderr=executed.stderr,
            exit_code=executed.exit_code,
            error=executed.error,
            data=executed.data or {},
        )

    @activity.defn(name=UPLOAD_ARTIFACTS)
    def upload_artifacts(self, inp: UploadInput) -> list[ArtifactInfo]:
        """Store the files matching the action's artifact globs, and its captured output."""
        run_dir = self._run_dir(inp.run_id)
        workdir = Path(inp.workdir) if inp.workdir else run_dir / f"work-{inp.index}"
        files = _artifact_files(inp.globs, workdir, run_dir / "out", inp.index)
        stored: list[ArtifactInfo] = []
        with transaction(self._sessions) as session:
            action_id = session.scalar(
                select(RunAction.id).where(
                    RunAction.run_id == inp.run_id, RunAction.idx == inp.index
                )
            )
            for display_path, local in files:
                activity.heartbeat(display_path)
                key = f"runs/{inp.run_id}/{inp.index}/{display_path.lstrip('/')}"
                content_type = guess_content_type(local.name if display_path[0] != "/" else "x.log")
                obj = self._store.put_file(key, local, content_type)
                # A retried upload replaces its earlier row instead of adding a twin.
                session.execute(
                    delete(Artifact).where(
                        Artifact.run_id == inp.run_id, Artifact.storage_key == key
                    )
                )
                row = Artifact(
                    run_id=inp.run_id,
                    run_action_id=action_id,
                    path=display_path,
                    filename=Path(display_path).name,
                    size=obj.size,
                    content_type=obj.content_type,
                    checksum=obj.sha256,
                    storage_key=key,
                )
                session.add(row)
                session.flush()
                stored.append(
                    ArtifactInfo(
                        id=row.id,
                        filename=row.filename,
                        path=display_path,
                        size=obj.size,
                        sha256=obj.sha256,
                        content_type=obj.content_type,
                    )
                )
        if inp.cleanup:
            shutil.rmtree(run_dir, ignore_errors=True)
        return stored

    @activity.defn(name=CLEANUP_RUN)
    def cleanup_run(self, inp: CleanupInput) -> None:
        """Remove the run's working files (checkouts, output, keys) from this worker."""
        shutil.rmtree(self._run_dir(inp.run_id), ignore_errors=True)


def _artifact_files(
    globs: list[str], workdir: Path, out_dir: Path, index: int
) -> list[tuple[str, Path]]:
    """(display path, local file) for every file an action's artifact globs name."""
    found: dict[str, Path] = {}
    for pattern in globs:
        if pattern == STDOUT_ARTIFACT:
            found[STDOUT_ARTIFACT] = out_dir / f"{index}.stdout"
            continue
        if pattern == STDERR_ARTIFACT:
            found[STDERR_ARTIFACT] = out_dir / f"{index}.stderr"
            continue
        root = workdir.resolve()
        for match in sorted(root.glob(pattern)):
            resolved = match.resolve()
            # A glob or symlink may point outside the working directory: never upload that.
            if not resolved.is_file() or not resolved.is_relative_to(root):
                continue
            found[match.relative_to(root).as_posix()] = resolved
    return [(k, v) for k, v in found.items() if v.exists()]
