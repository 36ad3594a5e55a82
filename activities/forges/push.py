"""Pushing a runbook's branch to its repository's remote, with the repository's credentials.

Git runs on the worker, as checkouts do (`core.git_commands`: credentials in the environment
only, protocols limited to the allowed schemes, no hooks, no credential helpers). The working
tree a step changed is not trusted as a git repository: its `.git/config` could name helper
programs or rewrite URLs (`url.*.insteadOf`) to send the credentials elsewhere. So no git
command runs in it. Its commit is fetched into a fresh scratch repository (git's upload-pack
ignores the dangerous settings of the repository it serves) and pushed from there, to the
repository's own URL. A step's own git directory (a bare repository outside the step's
sandbox, `activities/runbook_steps.py`) may be given instead of a working tree; it is read
the same way.

Idempotent for retried activities: a branch already at the commit is left alone. A branch
that moved elsewhere is refused unless `force` is given, and the repository's default
branch (and any `protected` branch) is never pushed to.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from activities.forges.local import check_branch
from core.egress import EgressPolicy
from core.forges import ForgeError
from core.git_commands import GitRunner, git_session, summarize
from core.git_urls import GitUrlError, redact_url, validate_git_url, validate_ref
from core.repositories import RepositoryTarget

DEFAULT_TIMEOUT_SECONDS = 300.0
_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
_STAGING_REF = "refs/runwright/push"


@dataclass(frozen=True)
class GitCredentials:
    """Plain credentials for one git call (opened from the repository's secret references)."""

    username: str | None = None
    password: str | None = None
    ssh_key: str | None = None


@dataclass(frozen=True)
class Pushed:
    """What a push did: the branch now points at `sha`; `updated` is False if it already did."""

    branch: str
    sha: str
    updated: bool


def open_credentials(target: RepositoryTarget, open_ref: Callable[[str], str]) -> GitCredentials:
    """The repository's git credentials, each secret opened through `open_ref`."""
    return GitCredentials(
        username=target.username,
        password=open_ref(target.password_ref) if target.password_ref else None,
        ssh_key=open_ref(target.ssh_key_ref) if target.ssh_key_ref else None,
    )


def push_branch(
    target: RepositoryTarget,
    workdir: Path,
    branch: str,
    *,
    credentials: GitCredentials,
    allowed_schemes: Sequence[str],
    source: str = "HEAD",
    protected: Sequence[str] = (),
    force: bool = False,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    egress: EgressPolicy | None = None,
) -> Pushed:
    """Make `branch` on the repository's remote point at commit `source` of `workdir`: a
    working tree (its `.git` is read) or a git directory such as a bare repository.

    Raises ForgeError: not retryable for refused input or a refused push, retryable when the
    remote could not be reached. The remote is reached only at addresses `egress` allows
    (None: public ones).
    """
    check_branch(branch, "branch")
    refused = {target.default_branch, *protected}
    if branch in refused:
        raise ForgeError(f"branch: refusing to push to {branch}, a target branch of runbooks")
    try:
        validate_git_url(target.url, allowed_schemes)
        if source != "HEAD" and not _FULL_SHA.match(source):
            validate_ref(source)
    except GitUrlError as exc:
        raise ForgeError(str(exc)) from exc
    git_dir = _git_dir_of(workdir)
    # Reading the working tree's objects is a local fetch: allow the file protocol for it.
    schemes = list(dict.fromkeys([*allowed_schemes, "file"]))
    scratch = Path(tempfile.mkdtemp(prefix="runwright-push-"))
    try:
        with git_session(
            schemes,
            timeout,
            username=credentials.username,
            password=credentials.password,
            ssh_key=credentials.ssh_key,
            remote=target.url,
            egress=egress,
        ) as runner:
            if runner.guard.refusal is not None:
                raise ForgeError(runner.guard.refusal)  # the same answer every time
            repo = scratch / "repo.git"
            _git(runner, "init", "--bare", "--quiet", "--", str(repo), what="prepare the push")
            base = ("--git-dir", str(repo))
            _git(
                runner,
                *base,
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                # A shallow source (a step's depth-1 fetch) makes the staging ref a shallow
                # root, which fetch refuses to write without this.
                "--update-shallow",
                "--",
                str(git_dir),
                f"+{source}:{_STAGING_REF}",
                what=f"read {source} of the working tree",
            )
            sha = _git(runner, *base, "rev-parse", "--verify", _STAGING_REF, what="resolve").strip()
            current = _remote_sha(runner, target.url, branch)
            if current == sha:
                return Pushed(branch, sha, updated=False)
            refspec = f"{'+' if force else ''}{sha}:refs/heads/{branch}"
            status, _, err = runner.run(
                *base, "push", "--quiet", "--no-verify", "--", target.url, refspec
            )
            if status != 0:
                rejected = "rejected" in err or "non-fast-forward" in err
                why = summarize(err)
                raise ForgeError(
                    f"pushing {branch} to {redact_url(target.url)} failed: {why}",
                    retryable=not rejected,
                )
            return Pushed(branch, sha, updated=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _git_dir_of(path: Path) -> Path:
    """The git directory to read commits from: a working tree's `.git`, or `path` itself when
    it is one (a bare repository: HEAD, objects and refs at its top)."""
    if (path / ".git").is_dir():
        return path / ".git"
    if (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir():
        return path
    raise ForgeError(f"{path.name} is not a git working tree or git directory")


def _git(runner: GitRunner, *args: str, what: str) -> str:
    status, out, err = runner.run(*args)
    if status != 0:
        raise ForgeError(f"cannot {what}: {summarize(err)}")
    return out


def _remote_sha(runner: GitRunner, url: str, branch: str) -> str | None:
    """Where `branch` points on the remote (None when it does not exist)."""
    status, out, err = runner.run("ls-remote", "--", url, f"refs/heads/{branch}")
    if status != 0:
        raise ForgeError(
            f"repository {redact_url(url)} not reachable: {summarize(err)}", retryable=True
        )
    for line in out.splitlines():
        value, _, name = line.partition("\t")
        if name.strip() == f"refs/heads/{branch}":
            return value.strip()
    return None
