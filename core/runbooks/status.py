"""Step states and the rules built on them: aggregate status, counts, PR modes, names, texts.

Standard library only and pure, so the runbook workflow and the API apply the same rules.
Only the five documented step states exist (resolution 13); the aggregate is computed over
leaf steps in the precedence of resolution 1, and `steps.total` is the number of leaves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from core.runbooks.model import Runbook, Step

NOT_STARTED = "not_started"
QUEUED = "queued"
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
FAILED = "failed"
STEP_STATES = (NOT_STARTED, QUEUED, IN_PROGRESS, COMPLETED, FAILED)
GENERATING_STEPS = "generating_steps"
PARTIALLY_COMPLETED = "partially_completed"

SINGLE_PR = "single_pr"
STACKED_PR = "stacked_pr"
MANUAL = "manual"
PR_MODES = (MANUAL, SINGLE_PR, STACKED_PR)
# The project default of PR mode when neither the request nor one-shot decides (resolution 3).
DEFAULT_PR_MODE = STACKED_PR

WIP_PREFIX = "[WIP] "
BRANCH_HASH_CHARS = 8
TITLE_MAX_CHARS = 72
DEFAULT_TITLE = "Runbook"


def _check(state: str) -> str:
    if state not in STEP_STATES:
        raise ValueError(f"unknown step state {state!r}; one of {', '.join(STEP_STATES)}")
    return state


def aggregate_status(leaf_states: Iterable[str]) -> str:
    """The runbook's status from its leaf steps' states (resolution 1, first match wins)."""
    states = [_check(s) for s in leaf_states]
    if not states:
        return GENERATING_STEPS
    if IN_PROGRESS in states:
        return IN_PROGRESS
    if FAILED in states:
        return FAILED
    if all(s == COMPLETED for s in states):
        return COMPLETED
    if all(s == NOT_STARTED for s in states):
        return NOT_STARTED
    return PARTIALLY_COMPLETED


@dataclass(frozen=True)
class StepCounts:
    """The documented `steps` object: leaf steps per state, and their total."""

    total: int = 0
    not_started: int = 0
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    queued: int = 0

    def as_dict(self) -> dict[str, int]:
        """The response's `steps` object."""
        return {
            "total": self.total,
            "not_started": self.not_started,
            "in_progress": self.in_progress,
            "completed": self.completed,
            "failed": self.failed,
            "queued": self.queued,
        }


def step_counts(leaf_states: Iterable[str]) -> StepCounts:
    """How many leaf steps are in each state; `total` is their sum (resolution 2)."""
    states = [_check(s) for s in leaf_states]
    return StepCounts(
        total=len(states),
        not_started=states.count(NOT_STARTED),
        in_progress=states.count(IN_PROGRESS),
        completed=states.count(COMPLETED),
        failed=states.count(FAILED),
        queued=states.count(QUEUED),
    )


def leaf_states(runbook: Runbook, states: Mapping[str, str]) -> list[str]:
    """Each leaf's state in order; a leaf with no recorded state has not started."""
    return [states.get(s.number, NOT_STARTED) for s in runbook.leaves()]


def effective_pr_mode(
    pr_mode: str | None, oneshot: bool, project_default: str = DEFAULT_PR_MODE
) -> str:
    """The request's mode; else single_pr in one-shot; else the project's (resolution 3)."""
    if pr_mode is not None:
        if pr_mode not in PR_MODES:
            raise ValueError(f"pr_mode must be one of {', '.join(PR_MODES)}")
        return pr_mode
    return SINGLE_PR if oneshot else project_default


def effective_draft(draft: bool | None, oneshot: bool, project_default: bool | None = None) -> bool:
    """The request's `draft`; else the project's; else draft for one-shot only (resolution 5)."""
    if draft is not None:
        return draft
    if project_default is not None:
        return project_default
    return oneshot


def branch_name(runbook_number: int, step_number: str, stable: str) -> str:
    """`av/rb-<n>-<step>-<hash>`; `stable` is fixed for the runbook's life (its workflow id).

    The hash keeps names apart when runbook numbers restart (a new deployment pushing to the
    same remote) and is the same on every retry, so a resumed runbook finds its own branch.
    """
    digest = hashlib.sha256(f"{runbook_number}\n{step_number}\n{stable}".encode()).hexdigest()
    return f"av/rb-{runbook_number}-{step_number}-{digest[:BRANCH_HASH_CHARS]}"


def commit_message(runbook_number: int, step: Step) -> str:
    """`[Runbook-<n>] Step <number>: <name>`, the commit of one leaf step."""
    return f"[Runbook-{runbook_number}] Step {step.number}: {' '.join(step.name.split())}"


def single_pr_title(title: str, complete: bool) -> str:
    """The single PR's title: `[WIP] <title>` until every step has completed."""
    return title if complete else f"{WIP_PREFIX}{title}"


def stacked_pr_title(runbook_number: int, step: Step) -> str:
    """A stacked PR is named after its top-level step, as its commits are."""
    return commit_message(runbook_number, step)


def title_from_prompt(prompt: str) -> str:
    """A title for a runbook created without one: the prompt's first line, trimmed."""
    for raw in prompt.splitlines():
        line = " ".join(raw.strip().lstrip("#>*-+ ").split())
        if line:
            break
    else:
        return DEFAULT_TITLE
    if len(line) <= TITLE_MAX_CHARS:
        return line
    cut = line[: TITLE_MAX_CHARS - 1]
    # End at a whole word unless that would throw away more than half.
    if line[len(cut)] != " " and " " in cut[TITLE_MAX_CHARS // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,.;:") + "…"


def pr_group(pr_mode: str, step_number: str) -> str | None:
    """The PR a leaf's commit lands in: its top-level step's (stacked), the one PR (`1`,
    single), or none (manual)."""
    if pr_mode == STACKED_PR:
        return step_number.split(".")[0]
    if pr_mode == SINGLE_PR:
        return "1"
    return None


@dataclass(frozen=True)
class PullRequestRef:
    """A PR the runbook opened: its number and URL, and the group (`pr_group`) it holds."""

    number: int
    url: str
    group: str


@dataclass(frozen=True)
class PullRequestView:
    """One entry of the documented `pull_requests` list."""

    number: int
    url: str
    step_numbers: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """The response's form."""
        return {"number": self.number, "url": self.url, "step_numbers": list(self.step_numbers)}


def pull_requests_view(
    runbook: Runbook,
    pr_mode: str,
    states: Mapping[str, str],
    pull_requests: Sequence[PullRequestRef],
) -> list[PullRequestView]:
    """Each PR once (by number, first seen), with the completed leaves committed into it in
    step order (resolution 7)."""
    committed: dict[str, list[str]] = {}
    for leaf in runbook.leaves():
        group = pr_group(pr_mode, leaf.number)
        if group is not None and states.get(leaf.number) == COMPLETED:
            committed.setdefault(group, []).append(leaf.number)
    views: dict[int, PullRequestView] = {}
    for pr in pull_requests:
        if pr.number in views:
            old = views[pr.number]
            more = [n for n in committed.get(pr.group, []) if n not in old.step_numbers]
            views[pr.number] = PullRequestView(old.number, old.url, [*old.step_numbers, *more])
        else:
            views[pr.number] = PullRequestView(pr.number, pr.url, committed.get(pr.group, []))
    return list(views.values())


# How a PR body's checklist shows each state: checked when done, otherwise said after the name.
STATE_SUFFIXES = {
    COMPLETED: "",
    FAILED: " (failed)",
    IN_PROGRESS: " (in progress)",
    QUEUED: " (queued)",
    NOT_STARTED: "",
}


def pr_body(
    runbook: Runbook,
    states: Mapping[str, str],
    *,
    url: str,
    description: str | None = None,
    steps: Sequence[Step] | None = None,
) -> str:
    """A PR's description: the request's description first, the runbook's URL, then a
    checklist of its leaf steps (`steps`, default every leaf) with their progress."""
    leaves = list(steps) if steps is not None else runbook.leaves()
    done = sum(1 for s in leaves if states.get(s.number) == COMPLETED)
    lines = []
    if description:
        lines += [description.strip(), ""]
    lines += [f"Runbook: {url}", "", f"Progress: {done}/{len(leaves)} steps completed", ""]
    for step in leaves:
        state = _check(states.get(step.number, NOT_STARTED))
        box = "[x]" if state == COMPLETED else "[ ]"
        name = " ".join(step.name.split())
        lines.append(f"- {box} {step.number} {name}{STATE_SUFFIXES[state]}")
    return "\n".join(lines) + "\n"


def _through(runbook: Runbook, step: str) -> tuple[list[Step], list[Step]]:
    """(`step`'s own leaves, every leaf up to and including its last); ValueError if the plan
    has no such step."""
    target = runbook.find(step)
    if target is None:
        raise ValueError(f"no step {step} in the runbook's plan")
    own = [s for s in target.walk() if s.is_leaf]
    leaves = runbook.leaves()
    last = next(i for i, leaf in enumerate(leaves) if leaf.number == own[-1].number)
    return own, leaves[: last + 1]


def enqueue(runbook: Runbook, states: Mapping[str, str], step: str) -> dict[str, str]:
    """The states after a request to execute `step`: its leaves (or the leaf itself) and
    every leaf before them become `queued`, since steps run in document order and a later
    step builds on the earlier ones' commits. Completed leaves are not run again and a
    running one keeps running; leaves after `step` keep their state."""
    _own, through = _through(runbook, step)
    result = {number: _check(state) for number, state in states.items()}
    for leaf in through:
        if result.get(leaf.number, NOT_STARTED) not in (COMPLETED, IN_PROGRESS):
            result[leaf.number] = QUEUED
    return result


def execute_refusal(runbook: Runbook, states: Mapping[str, str], step: str) -> str | None:
    """Why executing `step` is refused (the API's 409), or None: a step already running, or
    one that would run nothing because it and every leaf before it have completed."""
    own, through = _through(runbook, step)
    if any(states.get(leaf.number) == IN_PROGRESS for leaf in own):
        return f"step {step} is in progress"
    if all(states.get(leaf.number) == COMPLETED for leaf in through):
        return f"step {step} and every step before it have already completed"
    return None
