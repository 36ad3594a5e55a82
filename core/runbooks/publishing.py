"""What a runbook's pull request says: its title, body and draft flag, from the plan and the
leaf states. Pure, so a retried publish writes the same thing.

    single_pr   one PR for the whole runbook: `[WIP] <title>` and draft (when the runbook's
                `draft` is set) while any leaf is not completed; then `<title>`, ready.
    stacked_pr  one PR per top-level step: `[Runbook-<n>] Step <k>: <name>`, listing that
                step's leaves; draft as the runbook's `draft` says.
The request's `description` opens the body of the runbook's first PR only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.runbooks.model import Runbook
from core.runbooks.status import (
    COMPLETED,
    STACKED_PR,
    pr_body,
    single_pr_title,
    stacked_pr_title,
)


@dataclass(frozen=True)
class PullRequestText:
    """A PR's title, body and draft flag as the runbook wants them now."""

    title: str
    body: str
    draft: bool


def pull_request_text(
    runbook: Runbook,
    states: Mapping[str, str],
    *,
    pr_mode: str,
    group: str,
    runbook_number: int,
    title: str,
    description: str | None,
    draft: bool,
    url: str,
) -> PullRequestText:
    """The text of PR group `group` (a top-level step number when stacked)."""
    if pr_mode == STACKED_PR:
        top = runbook.find(group)
        if top is None:
            raise ValueError(f"no step {group} in the runbook's plan")
        leaves = [s for s in top.walk() if s.is_leaf]
        first = runbook.steps[0].number == group if runbook.steps else False
        body = pr_body(
            runbook, states, url=url, description=description if first else None, steps=leaves
        )
        return PullRequestText(stacked_pr_title(runbook_number, top), body, draft)
    complete = all(states.get(s.number) == COMPLETED for s in runbook.leaves())
    body = pr_body(runbook, states, url=url, description=description)
    return PullRequestText(single_pr_title(title, complete), body, draft and not complete)
