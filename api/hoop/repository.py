"""The deployment's runbook repository: its current commit and the runbook files in it.

The remote is asked for the branch's head at most once per `refresh_seconds`; a new head is
fetched (depth 1) into a bare mirror under the API's home, and the runbook files of that
commit are read once and kept in memory until the head moves again.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.git_commands import GitRunner, git_session, summarize
from core.git_urls import GitUrlError, redact_url, validate_git_url, validate_ref
from core.runbook_templates import MAX_TEMPLATE_BYTES, is_runbook_name, too_large_message
from core.settings import Settings

GIT_TIMEOUT_SECONDS = 30.0  # upstream's fetch timeout
_HEAD_REF = "refs/runwright/runbooks"
_SYMLINK_MODE = "120000"


class RepositoryUnavailable(Exception):
    """No runbook repository is configured, or it could not be read; the message says which."""


@dataclass(frozen=True)
class RunbookFile:
    """One runbook file of a commit: its text, or why it cannot be used."""

    path: str
    size: int
    text: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """The runbooks of one commit."""

    commit: str
    author: str
    message: str
    files: dict[str, RunbookFile] = field(default_factory=dict)


class RunbookRepository:
    """Reads the configured repository; safe to share between request threads."""

    def __init__(self, settings: Settings, root: Path) -> None:
        self._url = settings.runbooks_git_url.strip()
        self._branch = settings.runbooks_git_branch.strip()
        self._schemes = settings.allowed_schemes
        self._username = settings.runbooks_git_username or None
        self._password = settings.runbooks_git_password or None
        self._ssh_key = settings.runbooks_git_ssh_key or None
        self._refresh = max(0.0, settings.runbooks_refresh_seconds)
        self._root = root
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._checked_at = 0.0

    @property
    def configured(self) -> bool:
        """Whether the deployment names a runbook repository at all."""
        return bool(self._url)

    def snapshot(self) -> Snapshot:
        """The runbooks at the branch's current head (re-read when the head has moved)."""
        if not self._url:
            raise RepositoryUnavailable("plugin not found: no runbook repository is configured")
        with self._lock:
            fresh = time.monotonic() - self._checked_at < self._refresh
            if self._snapshot is not None and fresh:
                return self._snapshot
            try:
                validate_git_url(self._url, self._schemes)
                if self._branch:
                    validate_ref(self._branch)
            except GitUrlError as exc:
                raise RepositoryUnavailable(f"runbook repository misconfigured: {exc}") from exc
            with git_session(
                self._schemes,
                GIT_TIMEOUT_SECONDS,
                username=self._username,
                password=self._password,
                ssh_key=self._ssh_key,
            ) as runner:
                head = self._remote_head(runner)
                if self._snapshot is None or self._snapshot.commit != head:
                    self._snapshot = self._read(runner, self._fetch(runner))
            self._checked_at = time.monotonic()
            return self._snapshot

    def _fail(self, what: str, stderr: str) -> RepositoryUnavailable:
        where = redact_url(self._url)
        return RepositoryUnavailable(f"runbook repository {where}: {what}: {summarize(stderr)}")

    def _remote_head(self, runner: GitRunner) -> str:
        ref = f"refs/heads/{self._branch}" if self._branch else "HEAD"
        status, out, err = runner.run("ls-remote", "--", self._url, ref)
        if status != 0:
            raise self._fail("not reachable", err)
        for line in out.splitlines():
            sha, _, name = line.partition("\t")
            if name.strip() == ref:
                return sha.strip()
        raise RepositoryUnavailable(
            f"runbook repository {redact_url(self._url)} has no branch "
            f"{self._branch or '(default)'}"
        )

    def _mirror(self, runner: GitRunner) -> Path:
        repo = self._root / "repo.git"
        if not (repo / "HEAD").exists():
            repo.parent.mkdir(parents=True, exist_ok=True)
            status, _, err = runner.run("init", "--bare", "--quiet", str(repo))
            if status != 0:
                raise self._fail("cannot create the local mirror", err)
        return repo

    def _fetch(self, runner: GitRunner) -> str:
        """Fetch the branch head into the mirror; its sha (it may be newer than ls-remote's)."""
        repo = self._mirror(runner)
        source = f"refs/heads/{self._branch}" if self._branch else "HEAD"
        git_dir = ["--git-dir", str(repo)]
        status, _, err = runner.run(
            *git_dir, "fetch", "--quiet", "--depth", "1", "--no-tags", "--",
            self._url, f"+{source}:{_HEAD_REF}",
        )  # fmt: skip
        if status != 0:
            raise self._fail("fetch failed", err)
        status, out, err = runner.run(*git_dir, "rev-parse", "--verify", f"{_HEAD_REF}^{{commit}}")
        if status != 0:
            raise self._fail("fetched head unreadable", err)
        return out.strip()

    def _read(self, runner: GitRunner, sha: str) -> Snapshot:
        repo = self._root / "repo.git"
        git_dir = ["--git-dir", str(repo)]
        status, out, err = runner.run(*git_dir, "log", "-1", "--format=%an%x00%s", sha)
        if status != 0:
            raise self._fail(f"cannot read commit {sha}", err)
        author, _, message = out.partition("\0")
        status, out, err = runner.run(*git_dir, "ls-tree", "-r", "-l", "-z", sha)
        if status != 0:
            raise self._fail(f"cannot list commit {sha}", err)
        files: dict[str, RunbookFile] = {}
        for entry in out.split("\0"):
            meta, _, path = entry.partition("\t")
            parts = meta.split()
            if len(parts) != 4 or parts[1] != "blob" or not is_runbook_name(path):
                continue
            mode, _, obj, size_text = parts
            size = int(size_text)
            if mode == _SYMLINK_MODE:
                files[path] = RunbookFile(path, size, error="a symbolic link is not a runbook")
            elif size > MAX_TEMPLATE_BYTES:
                files[path] = RunbookFile(path, size, error=too_large_message(path))
            else:
                files[path] = self._blob(runner, git_dir, path, obj, size)
        return Snapshot(commit=sha, author=author.strip(), message=message.strip(), files=files)

    def _blob(
        self, runner: GitRunner, git_dir: list[str], path: str, obj: str, size: int
    ) -> RunbookFile:
        data = runner.output(*git_dir, "cat-file", "blob", obj)
        if data is None:
            raise RepositoryUnavailable(f"runbook repository: cannot read {path}")
        try:
            return RunbookFile(path, size, text=data.decode("utf-8"))
        except UnicodeDecodeError:
            return RunbookFile(path, size, error="runbook file is not UTF-8 text")
