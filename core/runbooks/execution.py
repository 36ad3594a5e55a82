"""Which step runs next and on which branch: pure rules the runbook workflow follows.

Standard library only. Leaves execute in plan order; each commits to the branch of its group
(`branch_group`): one branch for the whole runbook in `single_pr` and `manual` mode, one per
top-level step in `stacked_pr` mode, each stacked on the one before it. A group's branch is
created from its base (`base_branch`) when its first leaf runs; later leaves build on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from core.runbooks.model import Runbook, Step
from core.runbooks.status import COMPLETED, NOT_STARTED, QUEUED, STACKED_PR

SINGLE_GROUP = "1"


def branch_group(pr_mode: str, step_number: str) -> str:
    """The group whose branch a leaf commits to: its top-level step (stacked), else the one."""
    return step_number.split(".")[0] if pr_mode == STACKED_PR else SINGLE_GROUP


def next_queued(runbook: Runbook | None, states: Mapping[str, str]) -> Step | None:
    """The first queued leaf in plan order, if any."""
    if runbook is None:
        return None
    return next((s for s in runbook.leaves() if states.get(s.number) == QUEUED), None)


def dequeue(states: Mapping[str, str]) -> dict[str, str]:
    """Every queued leaf back to not_started (after a failure or a stop)."""
    return {n: NOT_STARTED if s == QUEUED else s for n, s in states.items()}


def committed_groups(runbook: Runbook, states: Mapping[str, str], pr_mode: str) -> list[str]:
    """The groups with at least one completed leaf, in plan order: their branches exist."""
    groups: list[str] = []
    for leaf in runbook.leaves():
        group = branch_group(pr_mode, leaf.number)
        if states.get(leaf.number) == COMPLETED and group not in groups:
            groups.append(group)
    return groups


def base_branch(
    runbook: Runbook,
    states: Mapping[str, str],
    pr_mode: str,
    group: str,
    branch_of: Callable[[str], str],
    target_branch: str,
) -> str:
    """Where `group`'s branch starts and its pull request merges into: the branch of the
    nearest earlier group that has commits (stacked), else the target branch."""
    earlier = [
        g
        for g in committed_groups(runbook, states, pr_mode)
        if g != group and _order(g) < _order(group)
    ]
    return branch_of(earlier[-1]) if earlier else target_branch


def planning_branch(
    runbook: Runbook | None,
    states: Mapping[str, str],
    pr_mode: str,
    branch_of: Callable[[str], str],
    target_branch: str,
) -> str:
    """The branch a follow-up is planned against: the newest branch the runbook committed to
    (so the planner sees the steps' changes), else the target branch."""
    if runbook is None:
        return target_branch
    groups = committed_groups(runbook, states, pr_mode)
    return branch_of(max(groups, key=_order)) if groups else target_branch


def _order(group: str) -> int:
    return int(group)
