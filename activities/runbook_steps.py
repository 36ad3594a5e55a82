"""The `runbook_step` action: one leaf step of an Aviator runbook, landed as one commit.

The action's spec is a `workflows.contracts.StepSpec`. The executor

1. fetches the step's `branch` (or, while it does not exist, `base_branch`) at depth 1 into a
   bare git directory of its own, `<run dir>/git`, and checks it out into the action's empty
   working directory (the tree);
2. when starting from `branch` and its head commit's message is the step's message, stops: the
   step landed already (a worker lost after its push, the action run again elsewhere);
3. runs the step in the sandbox, in the tree: its shell blocks as one bash script under
   `set -e`, or, when the worker has RUNWRIGHT_STEP_AGENT_COMMAND, that program with the
   step's text on stdin;
4. commits everything in the tree as the runbook's author (one commit per step, empty or not)
   and pushes it to `branch`, never forcing.

The git directory lies outside the tree and is never mounted in the sandbox, so a step cannot
plant hooks or configuration there; git always runs with `--git-dir` and `--work-tree`, so a
`.git` the step makes in its tree is only ignored. Git runs with the protections of
`core.git_commands` and the repository's credentials in its environment only.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from activities.executors import ActionContext, Executed
from activities.forges.local import check_branch
from activities.forges.push import GitCredentials, open_credentials, push_branch
from activities.heartbeats import while_heartbeating
from activities.scripts import base_env, run_script
from core.events import EventRecord
from core.forges import ForgeError
from core.git_commands import GitRunner, git_session, summarize
from core.git_urls import GitUrlError, redact_url, validate_git_url
from workflows.contracts import CommitAuthor, StepSpec

AGENT_SETTING = "RUNWRIGHT_STEP_AGENT_COMMAND"
GIT_TIMEOUT_SECONDS = 300.0
START_REF = "refs/runwright/start"
MESSAGE_FILE = "RUNWRIGHT_STEP_MESSAGE"

T = TypeVar("T")


class StepError(Exception):
    """Why a step cannot land; the message names no secret and no credential."""


# --------------------------------------------------------------------------------------------
# Pure parts: the spec's checks, the remote's answer, the script, the environments.
# --------------------------------------------------------------------------------------------


def parse_spec(raw: Mapping[str, Any]) -> StepSpec:
    """The action's spec as a StepSpec, every field checked; StepError names the field."""
    try:
        spec = StepSpec.from_spec(dict(raw))
    except (TypeError, KeyError) as exc:
        raise StepError(f"the runbook_step spec is malformed: {exc}") from exc
    if isinstance(spec.runbook_number, bool) or not isinstance(spec.runbook_number, int):
        raise StepError("runbook_number: must be a whole number")
    for name in ("step_number", "text", "message", "branch", "base_branch"):
        if not isinstance(getattr(spec, name), str):
            raise StepError(f"{name}: must be a string")
    if not spec.step_number:
        raise StepError("step_number: is required")
    if not isinstance(spec.commands, list) or not all(isinstance(c, str) for c in spec.commands):
        raise StepError("commands: must be a list of strings")
    if not isinstance(spec.protected, list) or not all(isinstance(p, str) for p in spec.protected):
        raise StepError("protected: must be a list of branch names")
    if not spec.message.strip() or "\0" in spec.message:
        raise StepError("message: must be non-empty text")
    try:
        check_branch(spec.branch, "branch")
        check_branch(spec.base_branch, "base_branch")
    except ForgeError as exc:
        raise StepError(str(exc)) from exc
    if spec.branch == spec.base_branch:
        raise StepError("branch: must differ from base_branch")
    _check_author(spec.author)
    return spec


def _check_author(author: CommitAuthor) -> None:
    for name in ("name", "email"):
        value = getattr(author, name)
        # git refuses angle brackets and newlines in an identity, and strips what is empty.
        if not isinstance(value, str) or not value.strip():
            raise StepError(f"author.{name}: is required")
        if any(ch in value for ch in "<>\n\r\0"):
            raise StepError(f"author.{name}: must not hold '<', '>' or line breaks")


def remote_heads(ls_remote: str) -> dict[str, str]:
    """`ls-remote` output as branch name → commit."""
    heads: dict[str, str] = {}
    for line in ls_remote.splitlines():
        sha, _, ref = line.partition("\t")
        if ref.startswith("refs/heads/"):
            heads[ref.removeprefix("refs/heads/")] = sha.strip()
    return heads


def start_branch(heads: Mapping[str, str], branch: str, base_branch: str) -> str | None:
    """Where the step starts: its own branch once it exists, else the base (None: neither)."""
    if branch in heads:
        return branch
    if base_branch in heads:
        return base_branch
    return None


def commit_message(raw_commit: str) -> str:
    """The full message of a commit object (`git cat-file commit` output)."""
    _, sep, message = raw_commit.partition("\n\n")
    return message if sep else ""


def step_script(commands: Sequence[str], agent: Sequence[str], text_file: Path) -> str | None:
    """The bash script that carries out the step: the agent fed the step's text when there is
    one, else the step's commands under `set -e`; None when there is nothing to run."""
    if agent:
        return f"exec {shlex.join(agent)} < {shlex.quote(str(text_file))}\n"
    blocks = [c.rstrip("\n") + "\n" for c in commands if c.strip()]
    if not blocks:
        return None
    return "set -e\n" + "".join(blocks)


def step_env(spec: StepSpec) -> dict[str, str]:
    """What the step's program gets besides the base environment."""
    return {
        "RUNWRIGHT_RUNBOOK_NUMBER": str(spec.runbook_number),
        "RUNWRIGHT_STEP_NUMBER": spec.step_number,
    }


def author_env(author: CommitAuthor) -> dict[str, str]:
    """git's identity variables: the runbook's author both writes and commits the change."""
    return {
        "GIT_AUTHOR_NAME": author.name,
        "GIT_AUTHOR_EMAIL": author.email,
        "GIT_COMMITTER_NAME": author.name,
        "GIT_COMMITTER_EMAIL": author.email,
    }


def agent_files(agent: Sequence[str]) -> list[Path]:
    """What the sandbox must show for the agent to start: its program, when given by path
    (one on PATH lives in the system directories, which are shown anyway)."""
    if agent and os.path.isabs(agent[0]):
        return [Path(agent[0])]
    return []


# --------------------------------------------------------------------------------------------
# The executor.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Start:
    branch: str  # the branch the tree was checked out from
    sha: str
    landed: bool  # the step's commit is that branch's head already


def run_step(ctx: ActionContext) -> Executed:
    """Run one runbook step; see the module docstring."""
    try:
        spec = parse_spec(ctx.spec)
        validate_git_url(spec.repository.url, ctx.git_schemes)
    except (StepError, GitUrlError) as exc:
        return Executed(error=ctx.redactor.redact(str(exc)))
    out_dir = ctx.run_dir / "out"
    text_file = out_dir / f"{ctx.index}.step.md"
    script = step_script(spec.commands, ctx.step_agent, text_file)
    if script is None:
        return Executed(
            error=f"step {spec.step_number} has no commands (sh or bash blocks) to run and no "
            f"coding agent is set to carry it out ({AGENT_SETTING})"
        )
    git_dir = ctx.run_dir / "git"
    try:
        credentials = _credentials(ctx, spec)
        start = _prepare(ctx, spec, credentials, git_dir)
    except StepError as exc:
        return Executed(error=ctx.redactor.redact(str(exc)))
    if start.landed:
        ctx.events.emit(
            EventRecord(
                "step_resumed",
                f"step {spec.step_number} landed already as {start.sha[:12]} on {spec.branch}: "
                "not run again",
                data={"commit": start.sha, "branch": spec.branch},
            )
        )
        return Executed(data={"commit": start.sha, "branch": spec.branch, "resumed": True})

    ctx.events.emit(
        EventRecord(
            "step_checkout",
            f"step {spec.step_number} starts from {start.branch} at {start.sha[:12]}",
            data={"commit": start.sha, "branch": start.branch},
        )
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    agent_env: dict[str, str] = {}
    if ctx.step_agent:
        text_file.write_text(spec.text)
        agent_env = dict(ctx.step_agent_env)
        for value in agent_env.values():
            ctx.redactor.add(value)
    out = run_script(
        script,
        workdir=ctx.workdir,
        env=base_env() | step_env(spec) | agent_env,
        out_dir=out_dir,
        index=ctx.index,
        events=ctx.events,
        timeout_seconds=ctx.action.timeout_seconds,
        cancelled=ctx.control.kill,
        stop_requested=ctx.control.stop,
        sandbox=ctx.sandbox,
        readonly=agent_files(ctx.step_agent),
    )
    if out.error:
        return Executed(out.stdout, out.stderr, out.exit_code, out.error)

    try:
        sha = _commit(ctx, spec, git_dir)
        ctx.events.emit(
            EventRecord(
                "step_committed",
                f"committed {sha[:12]} as {spec.author.name} <{spec.author.email}>",
                data={"commit": sha},
            )
        )
        pushed = _heartbeating(
            ctx,
            lambda: push_branch(
                spec.repository,
                git_dir,
                spec.branch,
                credentials=credentials,
                allowed_schemes=ctx.git_schemes,
                source=sha,
                protected=spec.protected,
                egress=ctx.http.policy,
            ),
        )
    except (StepError, ForgeError) as exc:
        error = ctx.redactor.redact(str(exc))
        return Executed(out.stdout, out.stderr, out.exit_code, error)
    ctx.events.emit(
        EventRecord(
            "step_pushed",
            f"pushed {pushed.sha[:12]} to {spec.branch}",
            data={"commit": pushed.sha, "branch": spec.branch},
        )
    )
    return Executed(
        stdout=out.stdout,
        stderr=out.stderr,
        exit_code=out.exit_code,
        data={"commit": pushed.sha, "branch": spec.branch, "resumed": False},
    )


def _credentials(ctx: ActionContext, spec: StepSpec) -> GitCredentials:
    target = spec.repository
    if ctx.open_ref is None:
        if target.password_ref or target.ssh_key_ref:
            raise StepError(f"cannot open the credentials of repository {target.slug}")
        return GitCredentials(username=target.username)
    return open_credentials(target, ctx.open_ref)


def _prepare(
    ctx: ActionContext, spec: StepSpec, credentials: GitCredentials, git_dir: Path
) -> _Start:
    """A fresh git directory holding the start commit, checked out into the empty tree."""
    # A retry on the same worker finds the last attempt's files: start both over.
    shutil.rmtree(git_dir, ignore_errors=True)
    _empty(ctx.workdir)
    url = spec.repository.url
    where = redact_url(url)
    with git_session(
        ctx.git_schemes,
        GIT_TIMEOUT_SECONDS,
        username=credentials.username,
        password=credentials.password,
        ssh_key=credentials.ssh_key,
        remote=url,
        egress=ctx.http.policy,
    ) as runner:
        _git(ctx, runner, "init", "--bare", "--quiet", "--", str(git_dir), what="prepare")
        g = ("--git-dir", str(git_dir))
        listed = _git(
            ctx,
            runner,
            "ls-remote",
            "--",
            url,
            f"refs/heads/{spec.branch}",
            f"refs/heads/{spec.base_branch}",
            what=f"reach {where}",
        )
        start = start_branch(remote_heads(listed), spec.branch, spec.base_branch)
        if start is None:
            raise StepError(
                f"neither branch {spec.branch} nor base branch {spec.base_branch} exists in {where}"
            )
        _git(
            ctx,
            runner,
            *g,
            "fetch",
            "--quiet",
            "--no-tags",
            "--depth",
            "1",
            "--no-write-fetch-head",
            "--",
            url,
            f"+refs/heads/{start}:{START_REF}",
            what=f"fetch {start} from {where}",
        )
        sha = _git(
            ctx, runner, *g, "rev-parse", "--verify", f"{START_REF}^{{commit}}", what="resolve"
        )
        sha = sha.strip()
        if start == spec.branch:
            # The exact bytes: run() would drop the message's final newline.
            raw = _heartbeating(ctx, lambda: runner.output(*g, "cat-file", "commit", sha))
            if raw is None:
                raise StepError(f"cannot read {start} at {sha[:12]}")
            message = commit_message(raw.decode("utf-8", errors="replace"))
            if message == spec.message:
                return _Start(start, sha, landed=True)
        tree = ("--work-tree", str(ctx.workdir))
        _git(ctx, runner, *g, *tree, "read-tree", "--reset", "-u", sha, what="check out")
        _git(ctx, runner, *g, "update-ref", "--no-deref", "HEAD", sha, what="check out")
    return _Start(start, sha, landed=False)


def _commit(ctx: ActionContext, spec: StepSpec, git_dir: Path) -> str:
    """Commit the whole tree on top of the start commit; the new commit's sha."""
    message_file = git_dir / MESSAGE_FILE
    message_file.write_text(spec.message)
    g = ("--git-dir", str(git_dir), "--work-tree", str(ctx.workdir))
    with git_session(ctx.git_schemes, GIT_TIMEOUT_SECONDS) as plain:
        runner = GitRunner(plain.env | author_env(spec.author), plain.secrets, plain.timeout)
        _git(ctx, runner, *g, "add", "--all", what="stage the step's changes")
        _git(
            ctx,
            runner,
            *g,
            "commit",
            "--quiet",
            "--allow-empty",
            "--no-verify",
            "--no-gpg-sign",
            # Verbatim from a file: the message is stored byte for byte as the runbook's (a
            # `#` line is no comment, no newline is added), so a rerun can recognise it.
            "--cleanup=verbatim",
            "--file",
            str(message_file),
            what="commit the step's changes",
        )
        return _git(ctx, runner, *g, "rev-parse", "--verify", "HEAD", what="resolve").strip()


def _git(ctx: ActionContext, runner: GitRunner, *args: str, what: str) -> str:
    status, out, err = _heartbeating(ctx, lambda: runner.run(*args))
    if status != 0:
        raise StepError(f"cannot {what}: {summarize(err)}")
    return out


def _heartbeating(ctx: ActionContext, call: Callable[[], T]) -> T:
    """`call()`, heartbeating meanwhile: a slow fetch or push must not look like a lost worker."""
    # The control watch heartbeats and stores pending events; git is bounded by its timeout.
    return while_heartbeating(call, ctx.control.kill)


def _empty(directory: Path) -> None:
    """Remove everything inside `directory` (links themselves, never what they point at)."""
    directory.mkdir(parents=True, exist_ok=True)
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
