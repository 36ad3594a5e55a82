"""The `runbook_step` action through the real execute activity: bare repositories in temp dirs
as remotes (file:// and git http-backend behind Basic auth), the real sandbox, a real store."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.executors import EXECUTORS
from activities.http_requests import HttpLimits
from activities.runbook_steps import (
    StepError,
    commit_message,
    parse_spec,
    remote_heads,
    start_branch,
    step_script,
)
from activities.runs import PRE_RENDERED_KINDS, PROCESS_KINDS, RunActivities
from core.artifacts import FileArtifactStore
from core.repositories import RepositoryTarget
from core.secrets import MASK, SecretBox, log_redactor
from core.settings import Settings
from core.statuses import RunStatus
from core.store.migrate import upgrade
from core.store.models import Definition, Run
from core.store.runs import events_of
from core.store.secret_values import put_secret
from core.store.session import make_engine, make_session_factory, transaction
from tests.conftest import TEST_SECRET_KEY
from tests.servers import LOOPBACK_EGRESS, git_http_server
from tests.stack import git, machine_sandbox, make_repo
from workflows.contracts import (
    RUNBOOK_STEP_KIND,
    ActionResult,
    ActionSpec,
    CommitAuthor,
    ExecuteActionInput,
    StepSpec,
)

SCHEMES = ["https", "ssh", "file", "http"]
BOX = SecretBox(TEST_SECRET_KEY)
AUTHOR = CommitAuthor(name="Rita Runbook", email="rita@example.com")
BRANCH = "av/rb-1-step"
MESSAGE = "1.1 Bump React\n\n# kept verbatim: not a comment\nRunbook 1, step 1.1"


@pytest.fixture(autouse=True)
def isolated_redactor(monkeypatch: pytest.MonkeyPatch) -> None:
    """The log redactor is process-wide: what a test teaches it is forgotten afterwards."""
    monkeypatch.setattr(log_redactor, "_values", set(log_redactor._values))
    monkeypatch.setattr(log_redactor, "_ordered", list(log_redactor._ordered))


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'runwright.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


def new_run(sessions: sessionmaker[Session]) -> str:
    """A running run's row: each leaf step is a run of its own."""
    with transaction(sessions) as session:
        definition = Definition(dialect="runbook", name=f"r-{uuid.uuid4().hex[:8]}", spec={})
        session.add(definition)
        session.flush()
        run = Run(definition_id=definition.id, dialect="runbook", status=RunStatus.RUNNING)
        session.add(run)
        session.flush()
        return run.id


class Worker:
    """One worker's RunActivities (its own workspace), running step actions."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        workspace: Path,
        agent: Sequence[str] = (),
        agent_env: dict[str, str] | None = None,
    ) -> None:
        self.sessions = sessions
        self.workspace = workspace
        self.activities = RunActivities(
            worker_queue="q",
            workspace=workspace,
            allowed_schemes=SCHEMES,
            sessions=sessions,
            box=BOX,
            store=FileArtifactStore(workspace / "store"),
            sandbox=machine_sandbox(),
            http=HttpLimits(LOOPBACK_EGRESS),
            step_agent=agent,
            step_agent_env=agent_env,
        )

    def run(
        self, spec: StepSpec, run_id: str | None = None, timeout_seconds: float | None = None
    ) -> ActionResult:
        run_id = run_id or new_run(self.sessions)
        self.last_run = run_id
        result: ActionResult = ActivityEnvironment().run(
            self.activities.execute_action,
            ExecuteActionInput(
                run_id=run_id,
                index=0,
                action=ActionSpec(
                    name=f"step {spec.step_number}",
                    kind=RUNBOOK_STEP_KIND,
                    spec=spec.as_spec(),
                    templated=False,
                    timeout_seconds=timeout_seconds,
                ),
                template_env={},
                workdir=None,
            ),
        )
        return result

    def tree(self, run_id: str) -> Path:
        return self.workspace / "runs" / run_id / "work-0"

    def events(self, run_id: str) -> list[tuple[str, str]]:
        with self.sessions() as session:
            return [(e.event_type, e.message or "") for e in events_of(session, run_id)]


def bare_remote(root: Path) -> Path:
    """A bare repository (branch main, one commit) standing in for a hosted remote."""
    make_repo(root / "seed", {"README.md": "hello\n", "package.json": '{"react": "18"}\n'})
    bare = root / "remote.git"
    git(root, "clone", "--quiet", "--bare", str(root / "seed"), str(bare))
    return bare


def heads(bare: Path) -> dict[str, str]:
    out = git(bare, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads")
    return dict(line.split() for line in out.splitlines())


def step(url: str, commands: list[str], **fields: object) -> StepSpec:
    values: dict[str, object] = {
        "runbook_number": 1,
        "step_number": "1.1",
        "text": "#### 1.1 Bump React\n\nBump react to 19.\n",
        "commands": commands,
        "repository": RepositoryTarget(org="acme", name="web", url=url),
        "branch": BRANCH,
        "base_branch": "main",
        "message": MESSAGE,
        "author": AUTHOR,
        "protected": ["main"],
        **fields,
    }
    return StepSpec(**values)  # type: ignore[arg-type]


def show(bare: Path, ref: str, field: str) -> str:
    return git(bare, "log", "-1", f"--format={field}", ref)


def when(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# --------------------------------------------------------------------------------------------
# The pure parts.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listed", "expected"),
    [
        ("", None),
        ("a1\trefs/heads/main\n", "main"),
        ("a1\trefs/heads/main\nb2\trefs/heads/topic\n", "topic"),
        ("b2\trefs/heads/topic\n", "topic"),
        ("a1\trefs/heads/other\n", None),
    ],
)
def test_start_branch(listed: str, expected: str | None) -> None:
    """The step's own branch wins over the base once it exists."""
    assert start_branch(remote_heads(listed), "topic", "main") == expected


def test_messages_compare_as_stored() -> None:
    raw = "tree 1\nparent 2\nauthor a <a> 1 +0000\ncommitter a <a> 1 +0000\n\n# one\n\ntwo\n"
    assert commit_message(raw) == "# one\n\ntwo\n"
    assert commit_message("tree 1\n") == ""


SCRIPT_CASES: list[tuple[str, list[str], list[str], str | None]] = [
    (
        "commands under set -e",
        ["echo a", "echo b\necho c\n"],
        [],
        "set -e\necho a\necho b\necho c\n",
    ),
    ("blank blocks dropped", [" \n", "make"], [], "set -e\nmake\n"),
    ("nothing to run", ["\n"], [], None),
    ("agent replaces commands", ["make"], ["/opt/agent", "--yes it"], None),
]


@pytest.mark.parametrize(
    ("commands", "agent", "expected"),
    [case[1:] for case in SCRIPT_CASES],
    ids=[case[0] for case in SCRIPT_CASES],
)
def test_step_script(commands: list[str], agent: list[str], expected: str | None) -> None:
    text = Path("/run/out/0.step.md")
    script = step_script(commands, agent, text)
    if agent:
        assert script == "exec /opt/agent '--yes it' < /run/out/0.step.md\n"
    else:
        assert script == expected


BAD_SPECS: list[tuple[str, dict[str, object], str]] = [
    ("branch option", {"branch": "--force"}, "branch: ref \"--force\" must not start with '-'"),
    ("same branches", {"branch": "main"}, "branch: must differ from base_branch"),
    ("empty message", {"message": "  "}, "message: must be non-empty text"),
    ("commands not strings", {"commands": [1]}, "commands: must be a list of strings"),
    ("author newline", {"author": {"name": "a\nb", "email": "x@y"}}, "author.name: must not"),
    ("unknown field", {"extra": 1}, "runbook_step spec is malformed"),
]


@pytest.mark.parametrize(
    ("change", "message"),
    [case[1:] for case in BAD_SPECS],
    ids=[case[0] for case in BAD_SPECS],
)
def test_parse_spec_names_the_field(change: dict[str, object], message: str) -> None:
    raw = step("file:///nowhere", ["true"]).as_spec() | change
    with pytest.raises(StepError, match=message):
        parse_spec(raw)


def test_kind_is_registered_sandboxed_and_never_templated() -> None:
    assert RUNBOOK_STEP_KIND in EXECUTORS
    assert RUNBOOK_STEP_KIND in PRE_RENDERED_KINDS and RUNBOOK_STEP_KIND in PROCESS_KINDS


def test_agent_setting_is_parsed_as_shell_words(tmp_path: Path) -> None:
    settings = Settings(
        dev_mode=True, home=tmp_path, step_agent_command="/opt/agent --prompt 'a b'"
    )
    assert settings.step_agent_argv == ["/opt/agent", "--prompt", "a b"]
    assert Settings(dev_mode=True, home=tmp_path).step_agent_argv == []
    with pytest.raises(ValueError, match="RUNWRIGHT_STEP_AGENT_COMMAND"):
        Settings(dev_mode=True, home=tmp_path, step_agent_command="agent 'unclosed")


# --------------------------------------------------------------------------------------------
# Steps against real remotes.
# --------------------------------------------------------------------------------------------


def test_a_step_lands_as_one_commit_on_its_branch(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """The commands change files; the branch gets exactly one commit on the base's head with
    the exact message, author and committer; the base is untouched."""
    bare = bare_remote(tmp_path)
    before = heads(bare)
    worker = Worker(sessions, tmp_path / "ws")
    commands = [
        'echo \'{"react": "19"}\' > package.json',
        'mkdir -p src\necho "$RUNWRIGHT_RUNBOOK_NUMBER/$RUNWRIGHT_STEP_NUMBER" > src/step.txt\n',
        "echo done-with-the-step",
    ]
    result = worker.run(step(f"file://{bare}", commands))

    assert result.status == "completed", result.error
    sha = heads(bare)[BRANCH]
    assert result.data == {"commit": sha, "branch": BRANCH, "resumed": False}
    assert result.stdout == "done-with-the-step"
    assert heads(bare) == {**before, BRANCH: sha}
    assert git(bare, "rev-list", "--count", f"main..{BRANCH}") == "1"
    assert show(bare, BRANCH, "%P") == before["main"]
    assert commit_message(git(bare, "cat-file", "commit", sha)) == MESSAGE
    assert show(bare, BRANCH, "%an <%ae>|%cn <%ce>") == (
        "Rita Runbook <rita@example.com>|Rita Runbook <rita@example.com>"
    )
    assert git(bare, "show", f"{BRANCH}:package.json") == '{"react": "19"}'
    assert git(bare, "show", f"{BRANCH}:src/step.txt") == "1/1.1"
    assert git(bare, "show", f"{BRANCH}:README.md") == "hello"
    events = worker.events(worker.last_run)
    assert ("stdout", "done-with-the-step") in events
    assert any(kind == "step_pushed" for kind, _ in events)


def test_the_next_step_starts_from_the_branch_not_the_base(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """Once the branch exists a step builds on it, even after the base moved on."""
    bare = bare_remote(tmp_path)
    worker = Worker(sessions, tmp_path / "ws")
    first = worker.run(step(f"file://{bare}", ["echo one > one.txt"]))
    assert first.status == "completed", first.error
    # The base moves on meanwhile: the next step must not start from it.
    other = tmp_path / "other"
    git(tmp_path, "clone", "--quiet", f"file://{bare}", str(other))
    (other / "late.txt").write_text("late\n")
    git(other, "add", "late.txt")
    git(other, "commit", "--quiet", "-m", "late")
    git(other, "push", "--quiet", "origin", "main")

    second = worker.run(
        step(
            f"file://{bare}",
            ["test -f one.txt && test ! -e late.txt", "echo two > two.txt"],
            step_number="1.2",
            message="1.2 Fix the types",
        )
    )
    assert second.status == "completed", second.error
    assert show(bare, BRANCH, "%P") == first.data["commit"]
    assert show(bare, BRANCH, "%s") == "1.2 Fix the types"
    assert git(bare, "rev-list", "--count", f"{first.data['commit']}..{BRANCH}") == "1"
    files = git(bare, "ls-tree", "--name-only", BRANCH).split()
    assert "one.txt" in files and "two.txt" in files and "late.txt" not in files


def test_a_failing_command_fails_the_step_and_pushes_nothing(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """`set -e`: the first failing command ends the step; nothing reaches the remote."""
    bare = bare_remote(tmp_path)
    before = heads(bare)
    worker = Worker(sessions, tmp_path / "ws")
    result = worker.run(
        step(f"file://{bare}", ["echo partial > README.md", "false", "echo never > after.txt"])
    )
    assert result.status == "failed"
    assert result.error is not None and result.error.startswith("non-zero exit-code: 1")
    assert result.exit_code == 1
    assert heads(bare) == before
    tree = worker.tree(worker.last_run)
    assert (tree / "README.md").read_text() == "partial\n"
    assert not (tree / "after.txt").exists()


def test_a_step_that_landed_is_not_run_again(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """Run again after its push (a lost worker), the step answers `resumed` and runs nothing:
    the marker its command appends to (in the run's output directory, outside the tree) is
    written once, and the branch keeps its one commit, also on another worker."""
    bare = bare_remote(tmp_path)
    worker = Worker(sessions, tmp_path / "ws")
    marker_command = 'echo ran >> "$(dirname "$PWD")/out/marker"\necho changed > README.md'
    spec = step(f"file://{bare}", [marker_command])
    first = worker.run(spec)
    assert first.status == "completed", first.error
    run_id = worker.last_run
    marker = tmp_path / "ws" / "runs" / run_id / "out" / "marker"
    assert marker.read_text() == "ran\n"

    again = worker.run(spec, run_id=run_id)
    assert again.status == "completed", again.error
    assert again.data == {"commit": first.data["commit"], "branch": BRANCH, "resumed": True}
    assert marker.read_text() == "ran\n"
    assert any(kind == "step_resumed" for kind, _ in worker.events(run_id))

    elsewhere = Worker(sessions, tmp_path / "ws2").run(spec, run_id=run_id)
    assert elsewhere.data == again.data
    assert heads(bare)[BRANCH] == first.data["commit"]
    assert git(bare, "rev-list", "--count", f"main..{BRANCH}") == "1"


def test_a_coding_agent_gets_the_text_and_its_edits_land(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """With an agent command the step's text goes to its stdin in the tree; the step's own
    commands do not run; what the agent changed is the commit."""
    bare = bare_remote(tmp_path)
    agent = tmp_path / "agent" / "fake-agent"
    agent.parent.mkdir()
    agent.write_text(
        "#!/bin/sh\n"
        "cat > prompt.txt\n"
        'echo "step $RUNWRIGHT_STEP_NUMBER of runbook $RUNWRIGHT_RUNBOOK_NUMBER" >> prompt.txt\n'
        "echo edited-by-agent > README.md\n"
    )
    agent.chmod(0o755)
    worker = Worker(sessions, tmp_path / "ws", agent=[str(agent)])
    spec = step(f"file://{bare}", ["echo commands-ran > commands.txt"])
    result = worker.run(spec)

    assert result.status == "completed", result.error
    assert git(bare, "show", f"{BRANCH}:README.md") == "edited-by-agent"
    assert git(bare, "show", f"{BRANCH}:prompt.txt") == spec.text + "step 1.1 of runbook 1"
    assert "commands.txt" not in git(bare, "ls-tree", "--name-only", BRANCH).split()


def test_the_agent_gets_the_named_environment_and_its_values_stay_masked(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """RUNWRIGHT_STEP_AGENT_ENV's variables reach the agent (not the step's own commands);
    the agent printing one shows only a mask."""
    bare = bare_remote(tmp_path)
    key = "sk-agent-key-0123456789"
    agent = tmp_path / "agent" / "fake-agent"
    agent.parent.mkdir()
    agent.write_text(
        '#!/bin/sh\ncat > /dev/null\necho "key is $AGENT_API_KEY"\n'
        f'[ "$AGENT_API_KEY" = "{key}" ] && echo ok > agent.txt\n'
    )
    agent.chmod(0o755)
    worker = Worker(sessions, tmp_path / "ws", [str(agent)], {"AGENT_API_KEY": key})
    result = worker.run(step(f"file://{bare}", []))

    assert result.status == "completed", result.error
    assert git(bare, "show", f"{BRANCH}:agent.txt") == "ok"
    assert key not in str(worker.events(worker.last_run)) and key not in result.stdout
    assert "key is ***" in result.stdout
    with_commands = Worker(sessions, tmp_path / "ws2", agent_env={"AGENT_API_KEY": key})
    commands = ['echo "seen:${AGENT_API_KEY:-none}" > seen.txt']
    result = with_commands.run(step(f"file://{bare}", commands, step_number="2", message="two"))
    assert result.status == "completed", result.error
    assert git(bare, "show", f"{BRANCH}:seen.txt") == "seen:none"


def test_git_files_a_step_writes_run_nothing_outside_the_sandbox(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """Hooks and config written into the tree's `.git` are never used: the hook's marker does
    not appear, nothing of `.git` is committed, and the commit lands."""
    bare = bare_remote(tmp_path)
    marker = tmp_path / "hooked"
    hook = f"#!/bin/sh\ntouch {marker}\n"
    commands = [
        # A real repository in the tree, so git run in it would obey what follows.
        "git init --quiet . && mkdir -p .git/hooks",
        *(
            f"printf '%s' '{hook}' > .git/hooks/{name} && chmod +x .git/hooks/{name}"
            for name in ("pre-commit", "post-commit", "pre-push", "reference-transaction")
        ),
        'printf "[core]\\n\\thooksPath = %s\\n\\tfsmonitor = %s\\n" '
        '"$PWD/.git/hooks" "$PWD/.git/hooks/pre-commit" >> .git/config',
        "echo 'ref: refs/heads/evil' > .git/HEAD",
        "echo changed > README.md",
    ]
    worker = Worker(sessions, tmp_path / "ws")
    result = worker.run(step(f"file://{bare}", commands))

    assert result.status == "completed", result.error
    assert (worker.tree(worker.last_run) / ".git" / "hooks" / "pre-commit").exists()
    assert not marker.exists()
    files = git(bare, "ls-tree", "-r", "--name-only", BRANCH).split()
    assert files == ["README.md", "package.json"]
    assert git(bare, "show", f"{BRANCH}:README.md") == "changed"


def test_a_step_with_nothing_to_run_names_the_setting(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    bare = bare_remote(tmp_path)
    before = heads(bare)
    result = Worker(sessions, tmp_path / "ws").run(step(f"file://{bare}", []))
    assert result.status == "failed"
    assert result.error is not None and "RUNWRIGHT_STEP_AGENT_COMMAND" in result.error
    assert "step 1.1 has no commands" in result.error
    assert heads(bare) == before


def test_missing_branches_and_a_moved_branch_fail(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """Neither branch on the remote: a clear error. A branch that moved while the step ran:
    the non-forced push is refused and the other commit stays."""
    bare = bare_remote(tmp_path)
    worker = Worker(sessions, tmp_path / "ws")
    missing = worker.run(step(f"file://{bare}", ["true"], base_branch="develop"))
    assert missing.status == "failed"
    assert missing.error == (
        f"neither branch {BRANCH} nor base branch develop exists in file://{bare}"
    )

    # While the step runs, another writer creates the branch: the step started from the base.
    mover = tmp_path / "mover"
    git(tmp_path, "clone", "--quiet", f"file://{bare}", str(mover))
    git(mover, "commit", "--quiet", "--allow-empty", "-m", "elsewhere")
    run_id = new_run(sessions)
    tree = worker.tree(run_id)

    def move_the_branch() -> None:
        when(lambda: (tree / "waiting").exists())
        git(mover, "push", "--quiet", "origin", f"HEAD:refs/heads/{BRANCH}")
        (tree / "go").touch()

    mover_thread = threading.Thread(target=move_the_branch)
    mover_thread.start()
    moved = worker.run(
        step(f"file://{bare}", ["touch waiting; while [ ! -e go ]; do sleep 0.05; done"]),
        run_id=run_id,
        timeout_seconds=60,
    )
    mover_thread.join(timeout=30)
    assert moved.status == "failed"
    assert moved.error is not None and f"pushing {BRANCH} to file://{bare} failed" in moved.error
    assert show(bare, BRANCH, "%s") == "elsewhere"


@pytest.mark.slow
def test_the_actions_timeout_ends_the_step_unpushed(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    bare = bare_remote(tmp_path)
    before = heads(bare)
    result = Worker(sessions, tmp_path / "ws").run(
        step(f"file://{bare}", ["echo started", "sleep 60"]), timeout_seconds=1
    )
    assert result.status == "failed"
    assert result.error == "timed out after 1s"
    assert heads(bare) == before


def test_http_credentials_never_show(tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    """Over HTTP Basic auth the stored password opens the remote; it is masked in the step's
    output and absent from every event and error, a refused login included."""
    bare = bare_remote(tmp_path / "served")
    password = f"pw-{uuid.uuid4().hex[:10]}:s3cr%t"
    with transaction(sessions) as session:
        ref = put_secret(session, BOX, password)
        wrong_ref = put_secret(session, BOX, f"wrong-{uuid.uuid4().hex[:10]}")
    worker = Worker(sessions, tmp_path / "ws")
    with git_http_server(bare.parent, "deploy", password) as server:
        target = RepositoryTarget(
            org="acme",
            name="web",
            url=server.url("remote.git"),
            username="deploy",
            password_ref=ref,
        )
        ok = worker.run(
            step(target.url, [f"echo 'the runbook said {password}'"], repository=target)
        )
        ok_run = worker.last_run
        assert ok.status == "completed", ok.error
        assert ok.stdout == f"the runbook said {MASK}"
        assert heads(bare)[BRANCH] == ok.data["commit"]

        refused_target = RepositoryTarget(
            org="acme", name="web", url=target.url, username="deploy", password_ref=wrong_ref
        )
        refused = worker.run(
            step(
                target.url,
                ["true"],
                repository=refused_target,
                branch="av/other",
            )
        )
        assert refused.status == "failed"
        assert refused.error is not None and refused.error.startswith("cannot reach ")
        assert server.refused
    for run_id in (ok_run, worker.last_run):
        for _, message in worker.events(run_id):
            assert password not in message
    assert password not in (refused.error or "")
