"""Which step runs next, on which branch, and what its pull request says: rules row by row."""

from __future__ import annotations

import pytest

from core.runbooks.execution import (
    base_branch,
    branch_group,
    committed_groups,
    dequeue,
    next_queued,
    planning_branch,
)
from core.runbooks.format import parse_runbook
from core.runbooks.publishing import pull_request_text
from core.runbooks.status import (
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    MANUAL,
    NOT_STARTED,
    QUEUED,
    SINGLE_PR,
    STACKED_PR,
)

C, F, P, N, Q = COMPLETED, FAILED, IN_PROGRESS, NOT_STARTED, QUEUED

PLAN = parse_runbook(
    """# Upgrade

## Objective

Upgrade.

## Steps

### 1 Prepare

#### 1.1 Bump

```sh
echo bump
```

#### 1.2 Fix types

### 2 Test

### 3 Release

#### 3.1 Tag
"""
)
LEAVES = ["1.1", "1.2", "2", "3.1"]


def states(*values: str) -> dict[str, str]:
    return dict(zip(LEAVES, values, strict=True))


def branch(group: str) -> str:
    return f"b{group}"


@pytest.mark.parametrize(
    ("mode", "step", "group"),
    [
        (STACKED_PR, "1.1", "1"),
        (STACKED_PR, "1.2.3", "1"),
        (STACKED_PR, "12", "12"),
        (SINGLE_PR, "3.1", "1"),
        (MANUAL, "2", "1"),
    ],
)
def test_branch_group(mode: str, step: str, group: str) -> None:
    assert branch_group(mode, step) == group


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (states(N, N, N, N), None),
        (states(Q, Q, Q, Q), "1.1"),
        (states(C, P, Q, N), "2"),
        (states(C, C, C, Q), "3.1"),
        (states(C, F, N, N), None),
    ],
)
def test_next_queued(given: dict[str, str], expected: str | None) -> None:
    found = next_queued(PLAN, given)
    assert (found.number if found else None) == expected


def test_next_queued_without_a_plan() -> None:
    assert next_queued(None, {"1": Q}) is None


def test_dequeue_returns_only_queued_leaves_to_not_started() -> None:
    assert dequeue(states(C, F, Q, Q)) == states(C, F, N, N)
    assert dequeue(states(C, P, N, Q)) == states(C, P, N, N)


@pytest.mark.parametrize(
    ("mode", "given", "groups"),
    [
        (STACKED_PR, states(N, N, N, N), []),
        (STACKED_PR, states(C, Q, Q, Q), ["1"]),
        (STACKED_PR, states(C, C, C, F), ["1", "2"]),
        (STACKED_PR, states(F, N, C, N), ["2"]),
        (SINGLE_PR, states(C, C, C, N), ["1"]),
        (MANUAL, states(N, N, N, C), ["1"]),
    ],
)
def test_committed_groups(mode: str, given: dict[str, str], groups: list[str]) -> None:
    assert committed_groups(PLAN, given, mode) == groups


@pytest.mark.parametrize(
    ("mode", "given", "group", "base"),
    [
        # The first group starts on the target; each later one on the nearest earlier
        # group with commits.
        (STACKED_PR, states(Q, Q, Q, Q), "1", "main"),
        (STACKED_PR, states(C, C, Q, Q), "2", "b1"),
        (STACKED_PR, states(C, C, C, Q), "3", "b2"),
        (STACKED_PR, states(C, C, F, Q), "3", "b1"),
        (STACKED_PR, states(F, N, N, Q), "3", "main"),
        # A group's own commits do not make it its own base.
        (STACKED_PR, states(C, Q, N, N), "1", "main"),
        (SINGLE_PR, states(C, C, C, Q), "1", "main"),
        (MANUAL, states(C, Q, N, N), "1", "main"),
    ],
)
def test_base_branch(mode: str, given: dict[str, str], group: str, base: str) -> None:
    assert base_branch(PLAN, given, mode, group, branch, "main") == base


@pytest.mark.parametrize(
    ("mode", "given", "expected"),
    [
        (STACKED_PR, states(N, N, N, N), "main"),
        (STACKED_PR, states(C, C, C, F), "b2"),
        (STACKED_PR, states(C, N, N, C), "b3"),
        (SINGLE_PR, states(C, F, N, N), "b1"),
        (MANUAL, states(Q, N, N, N), "main"),
    ],
)
def test_planning_branch(mode: str, given: dict[str, str], expected: str) -> None:
    assert planning_branch(PLAN, given, mode, branch, "main") == expected
    assert planning_branch(None, {}, mode, branch, "main") == "main"


def text(mode: str, given: dict[str, str], group: str = "1", draft: bool = True):  # type: ignore[no-untyped-def]
    return pull_request_text(
        PLAN,
        given,
        pr_mode=mode,
        group=group,
        runbook_number=7,
        title="React 19",
        description="Part of Q3",
        draft=draft,
        url="https://rw.example/r/7",
    )


@pytest.mark.parametrize(
    ("given", "draft", "title", "is_draft"),
    [
        (states(C, Q, Q, Q), True, "[WIP] React 19", True),
        (states(C, F, N, N), True, "[WIP] React 19", True),
        (states(C, C, C, C), True, "React 19", False),
        (states(C, Q, Q, Q), False, "[WIP] React 19", False),
        (states(C, C, C, C), False, "React 19", False),
    ],
)
def test_single_pr_text(given: dict[str, str], draft: bool, title: str, is_draft: bool) -> None:
    got = text(SINGLE_PR, given, draft=draft)
    assert (got.title, got.draft) == (title, is_draft)
    assert got.body.startswith("Part of Q3\n\nRunbook: https://rw.example/r/7\n")
    assert "- [x] 1.1 Bump" in got.body
    tag = "- [x] 3.1 Tag" if given["3.1"] == C else "- [ ] 3.1 Tag"
    assert tag in got.body


def test_stacked_pr_text_lists_its_own_leaves_and_only_the_first_has_the_description() -> None:
    first = text(STACKED_PR, states(C, C, Q, N), "1", draft=False)
    assert first.title == "[Runbook-7] Step 1: Prepare"
    assert first.body.startswith("Part of Q3\n")
    assert "1.1 Bump" in first.body and "Tag" not in first.body
    assert first.draft is False
    third = text(STACKED_PR, states(C, C, C, C), "3")
    assert third.title == "[Runbook-7] Step 3: Release"
    assert "Part of Q3" not in third.body
    assert "- [x] 3.1 Tag" in third.body and "Bump" not in third.body
    assert third.draft is True
    with pytest.raises(ValueError, match="no step 9"):
        text(STACKED_PR, states(C, C, C, C), "9")
