"""Planner choice without I/O: which paths a prompt names, and the runbook in a model's answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.runbooks.planners import answer_markdown, model_messages, named_paths
from core.settings import Settings, generate_key

NAMED = [
    ("Follow runbooks/react-19.md", ["runbooks/react-19.md"]),
    ("use `./docs/plan.md` then docs/plan.md again", ["docs/plan.md"]),
    ("a.md, b/c.md and README.md.", ["a.md", "b/c.md", "README.md"]),
    ("see https://example.com/runbooks/x.md", []),
    ("../secret.md or runbooks/../../x.md", []),
    ("/etc/passwd.md", []),
    ("notes.mdx and x.md5", []),
    ("Upgrade React to 19", []),
]


@pytest.mark.parametrize(("prompt", "expected"), NAMED)
def test_named_paths(prompt: str, expected: list[str]) -> None:
    """Relative `.md` paths a prompt names, in order; URLs, `..` and absolute paths are not."""
    assert named_paths(prompt) == expected


PLAN = "## Objective\n\nx\n\n## Steps\n\n### 1 A\n\n```sh\nls\n```"
ANSWERS = [
    (PLAN, PLAN),
    (f"```markdown\n{PLAN}\n```", PLAN),
    (f"Here it is:\n\n````md\n{PLAN}\n````\n\nGood luck.", PLAN),
    (f"```\n{PLAN}\n```", PLAN),
    (f"  {PLAN}\n\n", PLAN),
]


@pytest.mark.parametrize(("answer", "expected"), ANSWERS)
def test_answer_markdown(answer: str, expected: str) -> None:
    """A ```markdown fence around the answer is taken off, the runbook's ```sh blocks kept."""
    assert answer_markdown(answer) == expected


def test_model_messages_are_bounded() -> None:
    """The prompt and file list sent to the model are cut, saying how many files were left."""
    files = [f"src/file{i:05}.py" for i in range(5000)]
    messages = model_messages("p" * 100_000, files)
    user = messages[1]["content"]
    assert len(user) < 90_000
    assert "... and 3000 more files" in user


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"planner_url": "http://127.0.0.1:11434/v1"}, "RUNWRIGHT_PLANNER_MODEL must name"),
        ({"planner_url": "ftp://x", "planner_model": "m"}, "must be an http"),
    ],
)
def test_planner_settings_are_checked_at_start(
    tmp_path: Path, values: dict[str, str], message: str
) -> None:
    """A planner URL without a model, or not http(s), fails when the settings are built."""
    with pytest.raises(ValueError, match=message):
        Settings(home=tmp_path, secret_key=generate_key(), **values)  # type: ignore[arg-type]
    ok = Settings(
        home=tmp_path, secret_key=generate_key(), planner_url="https://x/v1", planner_model="m"
    )
    assert ok.planner_timeout_seconds == 120.0 and ok.planner_api_key_file is None
