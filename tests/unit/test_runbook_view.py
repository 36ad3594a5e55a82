"""The runbook's documented view of its stored pull requests, row by row (no database)."""

from __future__ import annotations

from typing import Any

import pytest

from api.runbooks.service import view
from core.store.models import RunbookRow

PLAN = (
    "## Objective\n\nx\n\n## Steps\n\n"
    "### 1 A\n\n#### 1.1 B\n\n#### 1.2 C\n\n### 2 D\n\n#### 2.1 E\n"
)
PR4 = {"number": 4, "url": "https://forge/pr/4", "group": "1"}
PR5 = {"number": 5, "url": "https://forge/pr/5", "group": "2"}
C, F, P = "completed", "failed", "in_progress"

VIEWS: list[tuple[str | None, str, dict[str, str], list[dict[str, Any]], list[Any]]] = [
    # not planned yet: nothing to show, whatever is stored
    (None, "stacked_pr", {}, [], []),
    # stacked: each PR with the completed leaves of its top-level step
    (
        PLAN,
        "stacked_pr",
        {"1.1": C, "1.2": C, "2.1": P},
        [PR4, PR5],
        [
            {"number": 4, "url": "https://forge/pr/4", "step_numbers": ["1.1", "1.2"]},
            {"number": 5, "url": "https://forge/pr/5", "step_numbers": []},
        ],
    ),
    # single: the one PR (group "1") lists every completed leaf, failed ones left out
    (
        PLAN,
        "single_pr",
        {"1.1": C, "1.2": F, "2.1": C},
        [PR4],
        [{"number": 4, "url": "https://forge/pr/4", "step_numbers": ["1.1", "2.1"]}],
    ),
    # recorded twice: listed once
    (
        PLAN,
        "single_pr",
        {"1.1": C},
        [PR4, PR4],
        [{"number": 4, "url": "https://forge/pr/4", "step_numbers": ["1.1"]}],
    ),
    # a PR recorded before any of its steps completed
    (
        PLAN,
        "stacked_pr",
        {},
        [PR4],
        [{"number": 4, "url": "https://forge/pr/4", "step_numbers": []}],
    ),
    (PLAN, "manual", {"1.1": C}, [], []),
]


@pytest.mark.parametrize(("plan", "mode", "states", "stored", "expected"), VIEWS)
def test_the_view_shows_stored_pull_requests_in_the_documented_form(
    plan: str | None,
    mode: str,
    states: dict[str, str],
    stored: list[dict[str, Any]],
    expected: list[Any],
) -> None:
    """`pull_requests` is `{number, url, step_numbers}` per PR, from the stored refs."""
    row = RunbookRow(
        number=3,
        title="T",
        plan=plan,
        pr_mode=mode,
        step_states=states,
        pull_requests=stored,
        error=None,
    )
    shown = view(row, "https://rw/r/3")
    assert shown["pull_requests"] == expected
    assert shown["url"] == "https://rw/r/3"
