"""The planning activity: a named runbook file, a pasted runbook, or a model over real HTTP."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.planning import (
    PLAN_FAILED,
    PLANNER_UNAVAILABLE,
    PlannerConfig,
    PlanningActivities,
)
from core.egress import DEV_ALLOW, EgressPolicy
from core.runbooks.format import parse_runbook
from tests.chat_server import ChatServer, chat_server
from workflows.contracts import PlanRunbookInput, PlanRunbookResult

RUNBOOK = """\
# React 19

## Objective

Upgrade React.

## Steps

### 1 Bump React

```sh
npm install react@19
```

### 2 Run tests

```bash
npm test
```
"""
KEY = "sk-test-planner-key-0123456789"


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "runbooks").mkdir(parents=True)
    (root / "src").mkdir()
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "runbooks" / "react-19.md").write_text(RUNBOOK)
    (root / "src" / "app.js").write_text("export {}\n")
    (root / "README.md").write_text("# Project\n\nNot a runbook.\n")
    return root


def _config(server: ChatServer | None, tmp_path: Path, **over: object) -> PlannerConfig:
    key_file = tmp_path / "planner.key"
    key_file.write_text(KEY + "\n")
    values: dict[str, object] = {
        "url": server.url if server else "",
        "model": "llama3.1",
        "api_key_file": key_file,
        "timeout_seconds": 10.0,
        "policy": EgressPolicy.parse(DEV_ALLOW),
    }
    values.update(over)
    return PlannerConfig(**values)  # type: ignore[arg-type]


def _plan(config: PlannerConfig, checkout: Path, prompt: str) -> PlanRunbookResult:
    env = ActivityEnvironment()
    result: PlanRunbookResult = env.run(
        PlanningActivities(config).plan_runbook, PlanRunbookInput(str(checkout), prompt)
    )
    return result


def _failure(config: PlannerConfig, checkout: Path, prompt: str) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        _plan(config, checkout, prompt)
    return caught.value


def test_a_named_runbook_file_wins_and_the_model_is_not_asked(
    checkout: Path, tmp_path: Path
) -> None:
    """`runbooks/react-19.md` in the prompt is read from the checkout, before any model."""
    with chat_server((200, "unused")) as server:
        result = _plan(_config(server, tmp_path), checkout, "Follow runbooks/react-19.md please")
    assert (result.source, result.path) == ("file", "runbooks/react-19.md")
    assert result.runbook == parse_runbook(RUNBOOK)
    assert server.received == []


def test_a_named_markdown_file_that_is_no_runbook_is_passed_over(
    checkout: Path, tmp_path: Path
) -> None:
    """README.md named in a free-text prompt is not a plan: with no model, say how to give one."""
    error = _failure(_config(None, tmp_path), checkout, "Mention the new API in README.md")
    assert error.type == PLAN_FAILED and error.non_retryable
    assert "README.md: not a runbook file" in error.message
    assert "RUNWRIGHT_PLANNER_URL" in error.message and "paste a runbook" in error.message


def test_an_invalid_runbook_file_names_the_file_and_line(checkout: Path, tmp_path: Path) -> None:
    """A named runbook file that breaks the format fails with its path and line."""
    bad = RUNBOOK.replace("### 2 Run tests", "### 3 Run tests")
    (checkout / "runbooks" / "bad.md").write_text(bad)
    error = _failure(_config(None, tmp_path), checkout, "run runbooks/bad.md")
    assert error.type == PLAN_FAILED
    assert error.message.startswith("runbooks/bad.md, line 15: step 3 is out of order")


def test_paths_leaving_the_checkout_are_never_read(checkout: Path, tmp_path: Path) -> None:
    """`..` paths are not considered; a symlink out of the checkout is refused by name."""
    (tmp_path / "outside.md").write_text(RUNBOOK)
    error = _failure(_config(None, tmp_path), checkout, "use ../outside.md")
    assert "No planner for this prompt" in error.message
    os.symlink(tmp_path / "outside.md", checkout / "runbooks" / "link.md")
    error = _failure(_config(None, tmp_path), checkout, "use runbooks/link.md")
    assert error.message == "runbooks/link.md leads outside the repository"


def test_a_pasted_runbook_is_the_plan(checkout: Path, tmp_path: Path) -> None:
    """A prompt in the runbook format is parsed as the plan; the model is not asked."""
    with chat_server() as server:
        result = _plan(_config(server, tmp_path), checkout, RUNBOOK)
    assert (result.source, result.runbook) == ("prompt", parse_runbook(RUNBOOK))
    assert server.received == []


def test_an_invalid_pasted_runbook_fails_with_its_line_and_the_model_is_not_asked(
    checkout: Path, tmp_path: Path
) -> None:
    """A prompt meant as a runbook (it has `## Steps`) is validated, not handed to a model."""
    with chat_server((200, RUNBOOK)) as server:
        error = _failure(
            _config(server, tmp_path), checkout, RUNBOOK.replace("### 1 Bump", "### Bump")
        )
    assert error.message.startswith("the prompt, line 9: 'Bump React' is not a step")
    assert server.received == []


def test_the_model_writes_the_plan_from_the_prompt_and_the_file_list(
    checkout: Path, tmp_path: Path
) -> None:
    """A free-text prompt goes to the chat endpoint, with the key, model and file list."""
    answer = f"Here is the plan:\n\n```markdown\n{RUNBOOK}```\n"
    with chat_server((200, answer)) as server:
        result = _plan(_config(server, tmp_path), checkout, "Upgrade React to 19")
    assert (result.source, result.runbook) == ("model", parse_runbook(RUNBOOK))
    [request] = server.received
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.body["model"] == "llama3.1"
    system, user = request.body["messages"]
    assert system["role"] == "system" and "## Steps" in system["content"]
    assert user["role"] == "user" and "Upgrade React to 19" in user["content"]
    assert "runbooks/react-19.md\nsrc/app.js" in user["content"]
    assert ".git/HEAD" not in user["content"]


def test_an_invalid_model_answer_is_retried_once_with_the_error(
    checkout: Path, tmp_path: Path
) -> None:
    """The validator's error goes back to the model once; a valid second answer is the plan."""
    wrong = RUNBOOK.replace("### 2 Run tests", "#### 2 Run tests")
    with chat_server((200, wrong), (200, RUNBOOK)) as server:
        result = _plan(_config(server, tmp_path), checkout, "Upgrade React to 19")
    assert result.runbook == parse_runbook(RUNBOOK)
    first, second = server.received
    messages = second.body["messages"]
    assert messages[:2] == first.body["messages"]
    assert messages[2] == {"role": "assistant", "content": wrong.strip()}
    assert "line 15: step 2 is a level-4 heading" in messages[3]["content"]


def test_a_model_wrong_twice_fails_naming_the_line(checkout: Path, tmp_path: Path) -> None:
    """Two invalid answers end planning (non-retryable) with the second one's error."""
    with chat_server((200, "no plan here"), (200, "## Objective\n\nx\n")) as server:
        error = _failure(_config(server, tmp_path), checkout, "Upgrade React to 19")
    assert error.type == PLAN_FAILED and error.non_retryable
    assert error.message == "the planner's runbook, line 1: the runbook has no `## Steps` section"
    assert len(server.received) == 2


def test_the_egress_rules_hold_for_the_planner(checkout: Path, tmp_path: Path) -> None:
    """A loopback endpoint not allowed by the egress policy is refused; nothing is sent."""
    with chat_server((200, RUNBOOK)) as server:
        config = _config(server, tmp_path, policy=EgressPolicy())
        error = _failure(config, checkout, "Upgrade React to 19")
    assert error.type == PLAN_FAILED and error.non_retryable
    assert (
        "not an allowed destination" in error.message and "RUNWRIGHT_EGRESS_ALLOW" in error.message
    )
    assert server.received == []


def test_server_errors_are_retried_and_client_errors_are_not(
    checkout: Path, tmp_path: Path
) -> None:
    """HTTP 503 is worth retrying; a 401 echoing the key fails for good, the key masked."""
    with chat_server((503, "busy"), (401, f"bad key {KEY}")) as server:
        config = _config(server, tmp_path)
        busy = _failure(config, checkout, "Upgrade React to 19")
        refused = _failure(config, checkout, "Upgrade React to 19")
    assert busy.type == PLANNER_UNAVAILABLE and not busy.non_retryable
    assert refused.type == PLAN_FAILED and refused.non_retryable
    assert "HTTP 401" in refused.message and KEY not in refused.message
    assert "********" in refused.message


def test_an_unreachable_planner_is_retryable(checkout: Path, tmp_path: Path) -> None:
    """Nothing listening: a transient failure Temporal retries, the URL named."""
    with chat_server() as server:
        url = server.url
    error = _failure(_config(None, tmp_path, url=url), checkout, "Upgrade React to 19")
    assert error.type == PLANNER_UNAVAILABLE and not error.non_retryable
    assert "did not answer" in error.message and url in error.message
