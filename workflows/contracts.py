"""Every workflow and activity input and result: frozen dataclasses, standard library only.

These cross the Temporal boundary, so they are the wire format of running histories: add
fields with defaults, never rename or remove one. Secrets never appear here in plain text;
a field ending in `_ref` holds the id of an encrypted secret that only an activity opens.
A runbook's plan travels as `core.runbooks.model.Runbook` (standard library only itself).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from core.repositories import RepositoryTarget
from core.runbooks.model import Runbook
from core.runbooks.status import PullRequestRef

# Search attributes a run carries, so a user finds it in the Temporal UI by what they know.
SA_DEFINITION_ID = "RunwrightDefinitionId"
SA_DIALECT = "RunwrightDialect"
SA_STATUS = "RunwrightStatus"
SA_RESOURCE_ID = "RunwrightResourceId"
SA_ACCOUNT = "RunwrightAccount"
SEARCH_ATTRIBUTES = (SA_DEFINITION_ID, SA_DIALECT, SA_STATUS, SA_RESOURCE_ID, SA_ACCOUNT)

RUN_WORKFLOW = "Run"
DECIDE_UPDATE = "decide"
CONTROL_UPDATE = "control"
# The same as a signal, for a parent workflow (which cannot send updates): a runbook's stop.
CONTROL_SIGNAL = "control_signal"
STATE_QUERY = "state"
# The template key a final action reads the run's status so far from (`{{ .outcome }}`).
OUTCOME_KEY = "outcome"


@dataclass(frozen=True)
class GitSource:
    """Where an action's files come from: a repository at a branch, tag or commit."""

    url: str
    ref: str | None = None  # branch or tag; the remote's default branch when both are empty
    commit: str | None = None
    path: str = ""  # subdirectory of the checkout that becomes the working directory
    username: str | None = None
    password_ref: str | None = None
    ssh_key_ref: str | None = None


@dataclass(frozen=True)
class ActionSpec:
    """One executor call of a definition, as written by its author (not yet templated)."""

    name: str
    kind: str  # exec | ansible | http | approval (a gate the workflow itself waits at)
    spec: dict[str, Any]
    condition: str = "success()"  # success() | failure() | always() | skip()
    delay_seconds: float = 0.0
    timeout_seconds: float | None = None
    artifacts: list[str] = field(default_factory=list)
    checkout: GitSource | None = None
    # Whether the engine renders the spec's strings as Go templates before executing it. False
    # for values that are final already or another tool's templates (ansible's Jinja).
    templated: bool = True
    # Runs even after a stop, a kill or a refused gate (its `condition` counting those as a
    # failure): a report on the run, such as a notification. Its templates also see
    # `.outcome`, the run's status so far, which its own result does not change.
    final: bool = False


@dataclass(frozen=True)
class GateSpec:
    """An approval gate: who may approve and how many of them it takes."""

    rule: str  # any | all
    people: list[str]  # approver keys "person:<id>" (and "role:admin": any admin may decide)
    teams: list[str]  # approver keys "team:<id>"
    approved: list[str] = field(default_factory=list)  # keys approved at creation
    timeout_seconds: float | None = None  # None: wait as long as it takes
    message: str = ""  # what the approvers are asked
    # What running out of time does: expire (the run ends expired), approve or reject.
    on_timeout: str = "expire"


@dataclass(frozen=True)
class CallbackSpec:
    """Where to POST a run's status events, and which: DEBUG all, ERROR failures, RESULT the end."""

    url: str
    level: str = "DEBUG"


@dataclass(frozen=True)
class Admission:
    """How a run nobody started by hand is let in, decided when it starts (a schedule's
    firing), not when it was set up: the maintenance windows open then may override."""

    autonomy: str  # the definition's own level: execute | approve | notify | disabled
    subjects: list[str]  # what a window's scope may name to cover the run (ids, hosts)
    gate: GateSpec  # what the run waits at when the level comes out `approve`


@dataclass(frozen=True)
class AdmitInput:
    """Decide a run's admission now."""

    run_id: str
    admission: Admission


@dataclass(frozen=True)
class Admitted:
    """The level a run starts with, and the maintenance window that set it (None: its own)."""

    level: str
    window_id: str | None = None
    window_name: str | None = None


@dataclass(frozen=True)
class Registration:
    """The run's DB row, for runs nobody created beforehand (those a schedule starts)."""

    created_by: str | None = None  # the user the run is attributed to (a service account)
    account_id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    admission: Admission | None = None  # decided as the run starts (None: it just runs)


@dataclass(frozen=True)
class RunInput:
    """Everything a run needs, fixed when it is created.

    An empty `run_id` means "my workflow id": a schedule starts runs under ids it chooses.
    """

    run_id: str
    definition_id: str
    dialect: str
    title: str
    actions: list[ActionSpec]
    template_env: dict[str, Any]
    created_at: str  # RFC 3339; the start of the queue time a run reports
    resource_id: str = ""
    account: str = ""
    gate: GateSpec | None = None
    secret_refs: list[str] = field(default_factory=list)  # secrets whose values to redact
    attempt: int = 1  # a restart is a new attempt of the same run (same workflow id)
    limit_hosts: list[str] = field(default_factory=list)  # ansible --limit for this attempt
    ttl_seconds: float | None = None  # past this the run is stopped gracefully
    callbacks: list[CallbackSpec] = field(default_factory=list)
    # At most this many runs of the account execute at once; the rest wait as pending.
    concurrency_limit: int | None = None
    fail_workflow: bool = False  # end the workflow Failed when the run fails (restartable)
    registration: Registration | None = None  # create the run's row when the run starts


@dataclass(frozen=True)
class Decision:
    """An approver's decision, put in the update by the API after it authenticated them."""

    approve: bool
    approver_key: str  # person:<id> or team:<id>
    by: str  # the deciding user's id
    comment: str = ""
    # The gate the decision is meant for (-1: the start gate, else an approval action's
    # index); None: whichever gate is open. A decision for a gate that has closed is refused.
    gate_idx: int | None = None


@dataclass(frozen=True)
class Control:
    """Stop (gracefully: after the task in progress) or kill (at once) a run."""

    action: str  # stop | kill
    expiry_seconds: float = 0.0  # stop: escalate to kill if not stopped by then (0: never)
    by: str = ""


@dataclass(frozen=True)
class GateState:
    """What a gate knows after a decision."""

    status: str  # the run's canonical status
    approved: list[str]
    open: bool
    idx: int = -1  # the gate decided: -1 the start gate, else an approval action's index
    rejected: bool = False  # the decision closed the gate by rejecting it


@dataclass(frozen=True)
class ActionState:
    """An action as the workflow sees it."""

    index: int
    name: str
    status: str
    error: str | None = None


@dataclass(frozen=True)
class RunState:
    """Answer of the state query: the live truth about a run."""

    status: str
    actions: list[ActionState]
    approved: list[str]


@dataclass(frozen=True)
class CommitInfo:
    """The commit a checkout resolved to."""

    sha: str
    author: str
    author_email: str
    date: str  # RFC 3339
    message: str


@dataclass(frozen=True)
class CheckoutInput:
    """Check out `source` for one action of a run, into that run's own directory."""

    run_id: str
    index: int
    source: GitSource
    callbacks: list[CallbackSpec] = field(default_factory=list)


@dataclass(frozen=True)
class CheckoutResult:
    """A working directory holding the checked-out files, and what was checked out."""

    workdir: str
    commit: CommitInfo
    cached: bool


@dataclass(frozen=True)
class ExecuteActionInput:
    """Run one action (already past its filter and delay) in `workdir`."""

    run_id: str
    index: int
    action: ActionSpec
    template_env: dict[str, Any]
    workdir: str | None
    secret_refs: list[str] = field(default_factory=list)
    cleanup: bool = False  # remove the run's files afterwards (the run's last activity)
    limit_hosts: list[str] = field(default_factory=list)
    callbacks: list[CallbackSpec] = field(default_factory=list)


@dataclass(frozen=True)
class ArtifactInfo:
    """A stored file a run produced."""

    id: str
    filename: str
    path: str
    size: int
    sha256: str
    content_type: str


@dataclass(frozen=True)
class ActionResult:
    """What an action did: Mission Control's result `{stdout, stderr, exitCode}` and more."""

    status: str  # completed | failed
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)  # per-kind detail (http status, hosts)
    artifacts: list[ArtifactInfo] = field(default_factory=list)


@dataclass(frozen=True)
class GateRecord:
    """One gate of a run as the DB shows it, written whole each time it changes."""

    id: str  # chosen by the workflow when the gate opens: the row's key
    idx: int  # -1 the start gate, else the approval action's index
    status: str  # pending | approved | rejected | timed_out | cancelled
    opened_at: str  # RFC 3339
    message: str = ""
    approvers: list[str] = field(default_factory=list)
    rule: str = "any"
    timeout_at: str | None = None
    on_timeout: str = "expire"
    decided_at: str | None = None
    decided_by: str | None = None  # the user whose decision closed it (None: timeout, stop)
    comment: str = ""


@dataclass(frozen=True)
class RecordRunInput:
    """A change of a run's projection in the DB; None leaves a field as it is."""

    run_id: str
    status: str
    start_time: str | None = None
    end_time: str | None = None
    error: str | None = None
    event: str | None = None  # a message for the run's event log
    attempt: int = 1  # start_time opens this attempt's timer, end_time closes it
    failed_hosts: list[str] | None = None
    commit: CommitInfo | None = None
    callbacks: list[CallbackSpec] = field(default_factory=list)
    # With these, the row is created if it does not exist yet.
    registration: Registration | None = None
    definition_id: str = ""
    dialect: str = ""
    gate: GateRecord | None = None  # the start gate, when it opens or closes


@dataclass(frozen=True)
class RecordActionInput:
    """A change of one action's projection in the DB."""

    run_id: str
    index: int
    name: str
    status: str
    scheduled_time: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    result: ActionResult | None = None
    error: str | None = None
    gate: GateRecord | None = None  # an approval action's gate, when it opens or closes


@dataclass(frozen=True)
class CleanupInput:
    """Remove a run's working files from the worker that ran it."""

    run_id: str


@dataclass(frozen=True)
class UploadInput:
    """Store the files an action left behind (glob matches and its captured output)."""

    run_id: str
    index: int
    workdir: str | None
    globs: list[str]
    cleanup: bool = False  # remove the run's files afterwards (the run's last activity)


# Activity names: the workflow schedules by name, so it never imports activity code.
RESERVE_WORKER = "reserve_worker"
CHECKOUT_REPOSITORY = "checkout_repository"
EXECUTE_ACTION = "execute_action"
UPLOAD_ARTIFACTS = "upload_artifacts"
CLEANUP_RUN = "cleanup_run"
RECORD_RUN = "record_run"
RECORD_ACTION = "record_action"
ADMIT_RUN = "admit_run"


PLAN_RUNBOOK = "plan_runbook"


@dataclass(frozen=True)
class PlanRunbookInput:
    """Plan a runbook from a prompt, in the runbook's checkout on the worker."""

    checkout: str  # the checkout's directory: runbook files and the file list come from it
    prompt: str


@dataclass(frozen=True)
class PlanRunbookResult:
    """A validated plan and where it came from: `file` (then `path`), `prompt` or `model`."""

    runbook: Runbook
    source: str
    path: str = ""


RUNBOOK_WORKFLOW = "Runbook"
FOLLOW_UP_SIGNAL = "follow_up"
CHECKOUT_RUNBOOK = "checkout_runbook"
RECORD_RUNBOOK = "record_runbook"
PUBLISH_RUNBOOK = "publish_runbook"
EXECUTE_SIGNAL = "execute"
STOP_SIGNAL = "stop"


@dataclass(frozen=True)
class RunbookInput:
    """A runbook's workflow: plan `pending` prompts in order onto `runbook`, then wait.

    A workflow continued as new (or started again after it ended idle) carries the plan so
    far, its leaf states and how many prompts were planned, so nothing is planned twice.
    """

    runbook_id: str
    runbook_number: int
    repository: RepositoryTarget
    target_branch: str
    oneshot: bool = True
    pending: list[str] = field(default_factory=list)
    runbook: Runbook | None = None
    states: dict[str, str] = field(default_factory=dict)
    planned_prompts: int = 0
    pr_mode: str = "single_pr"  # the effective mode (core.runbooks.status.effective_pr_mode)
    author: CommitAuthor | None = None  # whose commits the steps make
    author_id: str | None = None  # the user step runs are attributed to
    account_id: str | None = None
    definition_id: str = ""  # the repository's definition: the step runs' definition
    url: str = ""  # the runbook's `url`, linked from its pull requests
    pull_requests: list[PullRequestRef] = field(default_factory=list)
    # Whether queued steps run without waiting for an `execute` signal (continued as new).
    executing: bool = False


@dataclass(frozen=True)
class CommitAuthor:
    """Who a step's commit is by: the runbook's author."""

    name: str
    email: str


@dataclass(frozen=True)
class ExecuteStep:
    """Run step `step` (its leaves), enqueuing every unexecuted leaf before it first."""

    step: str
    by: str = ""


@dataclass(frozen=True)
class StopSteps:
    """Stop execution: the running step is killed (it fails), queued steps are dequeued."""

    by: str = ""


# The action kind of a runbook step's run (activities/runbook_steps.py).
RUNBOOK_STEP_KIND = "runbook_step"


@dataclass(frozen=True)
class StepSpec:
    """What a `runbook_step` action does: check out `branch` (or, while it does not exist,
    `base_branch`), run the step, commit its changes as `author` with `message`, and push
    `branch`. Carried in the action's `spec` as a plain dict (`as_spec` / `from_spec`)."""

    runbook_number: int
    step_number: str
    text: str  # the step as a person or a coding agent reads it
    commands: list[str]
    repository: RepositoryTarget
    branch: str
    base_branch: str
    message: str
    author: CommitAuthor
    protected: list[str] = field(default_factory=list)  # never pushed to (target branch)

    def as_spec(self) -> dict[str, Any]:
        """The action's spec."""
        return asdict(self)

    @staticmethod
    def from_spec(spec: dict[str, Any]) -> StepSpec:
        """Back from an action's spec."""
        fields = dict(spec)
        fields["repository"] = RepositoryTarget(**fields["repository"])
        fields["author"] = CommitAuthor(**fields["author"])
        return StepSpec(**fields)


@dataclass(frozen=True)
class PublishRunbookInput:
    """Open or update the pull request of branch `head` (into `base`) for PR group `group`:
    title, body and draft follow from the stored runbook and `states`."""

    runbook_id: str
    repository: RepositoryTarget
    runbook: Runbook
    states: dict[str, str]
    group: str
    head: str
    base: str
    url: str


@dataclass(frozen=True)
class FollowUp:
    """A follow-up prompt (PATCH): planned on its own, its steps appended to the plan."""

    prompt: str


@dataclass(frozen=True)
class CheckoutRunbookInput:
    """Clone the repository at `branch` into the runbook's own directory on this worker."""

    runbook_id: str
    repository: RepositoryTarget
    branch: str


@dataclass(frozen=True)
class CheckoutRunbookResult:
    """Where the checkout is (a git working tree) and the commit it holds."""

    checkout: str
    commit: str


@dataclass(frozen=True)
class RecordRunbookInput:
    """The runbook's plan, leaf states and planned prompt count, or why planning failed."""

    runbook_id: str
    runbook: Runbook | None
    states: dict[str, str] = field(default_factory=dict)
    planned_prompts: int = 0
    error: str | None = None
    pull_requests: list[PullRequestRef] | None = None  # None: leave the stored ones
    # A step that failed, and its run: the runbook's `error` gives the run's error.
    failed_step: str | None = None
    failed_run: str | None = None
