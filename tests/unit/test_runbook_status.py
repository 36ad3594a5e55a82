"""Runbook status rules, row by row: aggregate precedence, counts, PR modes, names, texts."""

from __future__ import annotations

import re

import pytest

from core.runbooks.format import parse_runbook
from core.runbooks.model import Step
from core.runbooks.status import (
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    MANUAL,
    NOT_STARTED,
    QUEUED,
    SINGLE_PR,
    STACKED_PR,
    PullRequestRef,
    aggregate_status,
    branch_name,
    commit_message,
    effective_draft,
    effective_pr_mode,
    enqueue,
    execute_refusal,
    leaf_states,
    pr_body,
    pull_requests_view,
    single_pr_title,
    stacked_pr_title,
    step_counts,
    title_from_prompt,
)

C, F, P, N, Q = COMPLETED, FAILED, IN_PROGRESS, NOT_STARTED, QUEUED

AGGREGATE = [
    ([], "generating_steps"),
    ([N], "not_started"),
    ([N, N, N], "not_started"),
    ([P], "in_progress"),
    ([P, F], "in_progress"),  # a running step wins over a failed one
    ([C, P, N], "in_progress"),
    ([F], "failed"),
    ([C, F, N], "failed"),
    ([F, Q], "failed"),
    ([C], "completed"),
    ([C, C], "completed"),
    ([Q], "partially_completed"),  # all queued: a gap in the document, resolution 1.6
    ([Q, Q], "partially_completed"),
    ([C, Q], "partially_completed"),  # completed + queued, no not_started: also a gap
    ([C, N], "partially_completed"),
    ([C, Q, N], "partially_completed"),
    ([Q, N], "partially_completed"),
]


@pytest.mark.parametrize(("states", "expected"), AGGREGATE)
def test_aggregate_status_precedence(states: list[str], expected: str) -> None:
    """The aggregate follows resolution 1 over leaf states, first matching rule wins."""
    assert aggregate_status(states) == expected


def test_unknown_states_are_refused() -> None:
    """Only the five documented step states exist."""
    with pytest.raises(ValueError, match="unknown step state 'stopped'"):
        aggregate_status([C, "stopped"])
    with pytest.raises(ValueError, match="unknown step state"):
        step_counts(["running"])


def test_counts_are_over_leaves_and_total_is_their_sum() -> None:
    """Parents are never counted; a leaf without a recorded state has not started."""
    rb = parse_runbook(
        "## Objective\n\nx\n\n## Steps\n\n### 1 A\n\n#### 1.1 B\n\n#### 1.2 C\n\n### 2 D\n"
    )
    states = leaf_states(rb, {"1": C, "1.1": C, "1.2": F})
    assert states == [C, F, N]
    counts = step_counts(states)
    assert counts.as_dict() == {
        "total": 3,
        "not_started": 1,
        "in_progress": 0,
        "completed": 1,
        "failed": 1,
        "queued": 0,
    }
    assert step_counts([]).as_dict() == dict.fromkeys(counts.as_dict(), 0)


PR_MODE = [
    (None, True, SINGLE_PR),  # one-shot's documented single draft PR
    (None, False, STACKED_PR),  # the project default
    (STACKED_PR, True, STACKED_PR),  # a request's mode wins
    (MANUAL, True, MANUAL),
    (SINGLE_PR, False, SINGLE_PR),
]


@pytest.mark.parametrize(("given", "oneshot", "expected"), PR_MODE)
def test_effective_pr_mode(given: str | None, oneshot: bool, expected: str) -> None:
    """Resolution 3: the request's pr_mode, else single_pr in one-shot, else the default."""
    assert effective_pr_mode(given, oneshot) == expected


def test_effective_pr_mode_refuses_unknown_and_takes_a_project_default() -> None:
    """An unknown mode is an error; a project default applies outside one-shot only."""
    with pytest.raises(ValueError, match="pr_mode must be one of"):
        effective_pr_mode("stacked", True)
    assert effective_pr_mode(None, False, project_default=MANUAL) == MANUAL
    assert effective_pr_mode(None, True, project_default=MANUAL) == SINGLE_PR


DRAFT = [
    (None, True, None, True),
    (None, False, None, False),
    (False, True, None, False),  # an explicit false gives ready PRs, also in one-shot
    (True, False, None, True),
    (None, True, False, False),  # a project default decides when the request does not
    (None, False, True, True),
]


@pytest.mark.parametrize(("draft", "oneshot", "project", "expected"), DRAFT)
def test_effective_draft(
    draft: bool | None, oneshot: bool, project: bool | None, expected: bool
) -> None:
    """Resolution 5: explicit, else project, else draft only in one-shot."""
    assert effective_draft(draft, oneshot, project) is expected


def test_branch_names_are_deterministic_and_distinct() -> None:
    """`av/rb-<n>-<step>-<hash>`: the same inputs, the same name; any change, another."""
    name = branch_name(7, "2", "runbook-7")
    assert re.fullmatch(r"av/rb-7-2-[0-9a-f]{8}", name)
    assert branch_name(7, "2", "runbook-7") == name
    others = {
        branch_name(7, "3", "runbook-7"),
        branch_name(8, "2", "runbook-7"),
        branch_name(7, "2", "other"),
    }
    assert name not in others and len(others) == 3
    assert branch_name(12, "1.2", "x").startswith("av/rb-12-1.2-")


def test_commit_messages_and_titles() -> None:
    """Commits and stacked PRs are `[Runbook-<n>] Step <number>: <name>`; the single PR is
    `[WIP] <title>` until complete."""
    step = Step("1.2", "Bump  React\tto 19")
    assert commit_message(42, step) == "[Runbook-42] Step 1.2: Bump React to 19"
    assert stacked_pr_title(42, Step("2", "Clean up")) == "[Runbook-42] Step 2: Clean up"
    assert single_pr_title("React v19 upgrade", complete=False) == "[WIP] React v19 upgrade"
    assert single_pr_title("React v19 upgrade", complete=True) == "React v19 upgrade"


TITLES = [
    ("Upgrade all React dependencies to v19", "Upgrade all React dependencies to v19"),
    ("\n\n  ## Upgrade   React \nmore detail", "Upgrade React"),
    ("- rename foo to bar", "rename foo to bar"),
    ("", "Runbook"),
    ("   \n\t", "Runbook"),
    (
        "Migrate every service from the legacy logging library to structlog with JSON output",
        "Migrate every service from the legacy logging library to structlog with…",
    ),
    ("x" * 100, "x" * 71 + "…"),
]


@pytest.mark.parametrize(("prompt", "expected"), TITLES)
def test_title_from_prompt(prompt: str, expected: str) -> None:
    """An absent title is the prompt's first line, trimmed to 72 characters at a word."""
    title = title_from_prompt(prompt)
    assert title == expected
    assert len(title) <= 72


STACKED = (
    "## Objective\n\nx\n\n## Steps\n\n"
    "### 1 A\n\n#### 1.1 B\n\n#### 1.2 C\n\n### 2 D\n\n#### 2.1 E\n"
)

VIEWS = [
    # stacked: one PR per top-level step with its completed leaves
    (
        STACKED_PR,
        {"1.1": C, "1.2": C, "2.1": C},
        [(1, "1"), (2, "2")],
        [(1, ["1.1", "1.2"]), (2, ["2.1"])],
    ),
    (STACKED_PR, {"1.1": C, "1.2": F}, [(1, "1")], [(1, ["1.1"])]),
    # single: one PR listing every completed leaf, in step order
    (SINGLE_PR, {"1.1": C, "1.2": C, "2.1": P}, [(5, "1")], [(5, ["1.1", "1.2"])]),
    # the same PR recorded twice is listed once
    (SINGLE_PR, {"1.1": C}, [(5, "1"), (5, "1")], [(5, ["1.1"])]),
    # manual: no PR through the API
    (MANUAL, {"1.1": C}, [], []),
]


@pytest.mark.parametrize(("mode", "states", "prs", "expected"), VIEWS)
def test_pull_requests_list_each_pr_once_with_its_leaves(
    mode: str,
    states: dict[str, str],
    prs: list[tuple[int, str]],
    expected: list[tuple[int, list[str]]],
) -> None:
    """Resolution 7: leaf numbers committed into each PR, deduplicated by number."""
    rb = parse_runbook(STACKED)
    refs = [PullRequestRef(n, f"https://forge/pr/{n}", group) for n, group in prs]
    views = pull_requests_view(rb, mode, states, refs)
    assert [(v.number, v.step_numbers) for v in views] == expected
    assert all(v.as_dict()["url"] == f"https://forge/pr/{v.number}" for v in views)


def test_pr_body_lists_progress() -> None:
    """The body starts with the description, links the runbook and checks off done steps."""
    rb = parse_runbook(STACKED)
    body = pr_body(
        rb, {"1.1": C, "1.2": F, "2.1": Q}, url="http://rw/r/3", description="Please review.\n"
    )
    assert body == (
        "Please review.\n\n"
        "Runbook: http://rw/r/3\n\n"
        "Progress: 1/3 steps completed\n\n"
        "- [x] 1.1 B\n"
        "- [ ] 1.2 C (failed)\n"
        "- [ ] 2.1 E (queued)\n"
    )
    just_two = pr_body(rb, {}, url="u", steps=[s for s in rb.leaves() if s.number.startswith("2")])
    assert just_two == "Runbook: u\n\nProgress: 0/1 steps completed\n\n- [ ] 2.1 E\n"


EXEC_PLAN = parse_runbook(
    "## Objective\n\nx\n\n## Steps\n\n"
    "### 1 A\n\n#### 1.1 B\n\n#### 1.2 C\n\n### 2 D\n\n#### 2.1 E\n\n### 3 F\n"
)

ENQUEUE = [
    # a leaf: it and every leaf before it; later leaves untouched
    ({}, "1.2", {"1.1": Q, "1.2": Q}),
    ({}, "1.1", {"1.1": Q}),
    # a parent: all its leaves
    ({}, "1", {"1.1": Q, "1.2": Q}),
    ({}, "2", {"1.1": Q, "1.2": Q, "2.1": Q}),
    # the last step queues everything not yet done
    ({"1.1": C, "1.2": F, "2.1": N, "3": N}, "3", {"1.1": C, "1.2": Q, "2.1": Q, "3": Q}),
    # completed leaves are not run again, a running one keeps running
    ({"1.1": C, "1.2": P}, "2.1", {"1.1": C, "1.2": P, "2.1": Q}),
    # a failed step is queued again; states after it stay
    ({"1.1": F, "2.1": F}, "1.1", {"1.1": Q, "2.1": F}),
    # already queued: the same states
    ({"1.1": Q, "1.2": Q}, "1.2", {"1.1": Q, "1.2": Q}),
    # within the step, a completed leaf stays completed
    ({"1.1": C, "1.2": N}, "1", {"1.1": C, "1.2": Q}),
]


@pytest.mark.parametrize(("states", "step", "expected"), ENQUEUE)
def test_enqueue_queues_the_step_and_every_earlier_leaf_not_done(
    states: dict[str, str], step: str, expected: dict[str, str]
) -> None:
    """Executing a step queues its leaves and the unexecuted ones before it, nothing after."""
    before = dict(states)
    assert enqueue(EXEC_PLAN, states, step) == expected
    assert states == before  # a new mapping; the caller's is left alone


REFUSALS = [
    ({}, "1.2", None),
    ({"1.1": C}, "1.2", None),
    ({"1.1": C, "1.2": C}, "1.2", "step 1.2 and every step before it have already completed"),
    ({"1.1": C, "1.2": C}, "1", "step 1 and every step before it have already completed"),
    ({"1.1": C}, "1.1", "step 1.1 and every step before it have already completed"),
    # done itself, but an earlier leaf failed: executing it re-runs that one
    ({"1.1": F, "1.2": C}, "1.2", None),
    (
        {"1.1": C, "1.2": C, "2.1": C, "3": F},
        "2",
        "step 2 and every step before it have already completed",
    ),
    ({"1.1": C, "1.2": C, "2.1": C, "3": F}, "3", None),
    ({"1.1": P}, "1.1", "step 1.1 is in progress"),
    ({"1.1": C, "1.2": P}, "1", "step 1 is in progress"),  # a parent with a running leaf
    # an earlier leaf running: this one waits its turn behind it
    ({"1.1": P}, "1.2", None),
    ({"1.1": Q, "1.2": Q}, "1.2", None),
]


@pytest.mark.parametrize(("states", "step", "reason"), REFUSALS)
def test_execute_refusal(states: dict[str, str], step: str, reason: str | None) -> None:
    """The 409 reasons: the step is running, or there is nothing left to run up to it."""
    assert execute_refusal(EXEC_PLAN, states, step) == reason


@pytest.mark.parametrize("step", ["7", "1.3", "3.1", "0", ""])
def test_unknown_steps_are_refused_by_both(step: str) -> None:
    """A step the plan does not have is a ValueError naming it."""
    with pytest.raises(ValueError, match=re.escape(f"no step {step} in the runbook's plan")):
        enqueue(EXEC_PLAN, {}, step)
    with pytest.raises(ValueError, match=re.escape(f"no step {step} in the runbook's plan")):
        execute_refusal(EXEC_PLAN, {}, step)
