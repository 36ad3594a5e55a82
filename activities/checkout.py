"""Git checkouts for actions: resolve a ref cheaply, fetch a commit once, copy it from a cache.

Layout under the cache root, one directory per repository URL and credential (<key>):

    <root>/<key>/repo.git        bare repository the shallow fetches land in
    <root>/<key>/repo.lock       serialises fetches and exports for that URL and credential
    <root>/<key>/<sha>/tree/     the commit's files, complete once visible
    <root>/<key>/<sha>/commit.json
    <root>/<key>/locks/<sha>.lock  readers share it, eviction takes it alone
    <root>/salt                  random bytes keying the credential hashes (0600)

<key> is sha256(url)[:16] for a checkout without credentials, and an HMAC of the URL and the
credential under the cache's salt otherwise. A cached commit is handed out without asking the
remote, so it must only be handed to a caller who proved access the same way: a run without
credentials never gets what a run with them fetched from a private repository, and the
credential is neither in a path nor guessable from one.

Everything is synchronous: the activity that calls this runs on a worker thread pool, and the
locks are flock()s so they hold across threads and across worker processes alike.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

import git

from core.egress import EgressPolicy
from core.git_commands import GitRunner, git_session, summarize
from core.git_urls import (
    redact_url,
    safe_join,
    validate_commit,
    validate_git_url,
    validate_ref,
    validate_relative_path,
)
from workflows.contracts import CommitInfo, GitSource

DEFAULT_MAX_ENTRIES = 64
DEFAULT_TIMEOUT_SECONDS = 600.0

_ENTRY_ATTEMPTS = 3
_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
_URL_KEY = re.compile(r"^[0-9a-f]{16}$")


class CheckoutError(Exception):
    """A checkout that git could not carry out: unreachable repository, unknown ref or commit."""


_SALT_FILE = "salt"
_SALT_BYTES = 32


def url_key(url: str) -> str:
    """The cache directory name for a repository URL fetched without credentials."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def cache_key(
    url: str,
    salt: bytes,
    *,
    username: str | None = None,
    password: str | None = None,
    ssh_key: str | None = None,
) -> str:
    """The cache directory name for `url` fetched with these credentials (none: url_key)."""
    if not (username or password or ssh_key):
        return url_key(url)
    # Length-prefixed fields, so no two different credentials encode alike.
    fields = (url, username or "", password or "", ssh_key or "")
    message = b"".join(len(f.encode()).to_bytes(8, "big") + f.encode() for f in fields)
    return hmac.new(salt, message, hashlib.sha256).hexdigest()[:16]


def cache_salt(root: Path) -> bytes:
    """The cache's random salt, made once (atomically, 0600) and shared by every process."""
    path = root / _SALT_FILE
    with contextlib.suppress(FileNotFoundError):
        salt = path.read_bytes()
        if len(salt) == _SALT_BYTES:
            return salt
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".salt-{uuid.uuid4().hex}"
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(os.urandom(_SALT_BYTES))
        try:
            os.link(staging, path)  # fails if another process made it first: use theirs
        except FileExistsError:
            pass
    finally:
        staging.unlink(missing_ok=True)
    return path.read_bytes()


def working_directory(dest: Path, source: GitSource) -> Path:
    """The directory inside checkout `dest` that `source.path` names, refusing escapes."""
    return safe_join(dest, source.path)


@contextlib.contextmanager
def _flock(path: Path, *, exclusive: bool, blocking: bool = True) -> Iterator[bool]:
    """Hold a flock on `path`; yields False (holding nothing) when non-blocking and busy."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
            fcntl.flock(fd, mode if blocking else mode | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            yield False
            return
        except BaseException:
            os.close(fd)
            raise
        # Eviction unlinks lock files while holding them; a lock won on an unlinked inode
        # would not exclude a process that has since created a fresh file, so start over.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        try:
            yield True
        finally:
            os.close(fd)
        return


def _replace_dir(src: Path, dest: Path) -> None:
    """Make `dest` a fresh copy of `src`, whatever was there before."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        shutil.copytree(src, staging, symlinks=True, dirs_exist_ok=True)
        if dest.is_symlink() or dest.is_file():
            dest.unlink()
        elif dest.exists():
            shutil.rmtree(dest)
        os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


class CheckoutCache:
    """Checks out git sources into directories, keeping recent commits' files on disk."""

    def __init__(
        self,
        root: Path,
        allowed_schemes: Sequence[str],
        max_entries: int = DEFAULT_MAX_ENTRIES,
        *,
        egress: EgressPolicy | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.root = root
        self.allowed_schemes = [s.strip().lower() for s in allowed_schemes if s.strip()]
        self.max_entries = max(1, max_entries)
        self.egress = egress  # None: public addresses only
        self.timeout = timeout

    def checkout(
        self,
        source: GitSource,
        dest: Path,
        *,
        password: str | None = None,
        ssh_key: str | None = None,
    ) -> tuple[CommitInfo, bool]:
        """Put the files of `source`'s commit into `dest`; True when they came from the cache."""
        validate_git_url(source.url, self.allowed_schemes)
        if source.ref:
            validate_ref(source.ref)
        if source.commit:
            validate_commit(source.commit)
        validate_relative_path(source.path)
        self.root.mkdir(parents=True, exist_ok=True)
        key_dir = self.root / cache_key(
            source.url,
            cache_salt(self.root),
            username=source.username,
            password=password,
            ssh_key=ssh_key,
        )
        commit = source.commit.lower() if source.commit else None

        result: tuple[CommitInfo, bool] | None = None
        if commit is not None and _FULL_SHA.match(commit):
            # A full sha names the same files forever: no need to ask the remote anything,
            # since this key directory only holds what these same credentials fetched.
            info = self._copy_entry(key_dir, commit, dest)
            if info is not None:
                result = (info, True)

        if result is None:
            with self._git(source.url, source.username, password, ssh_key) as runner:
                result = self._checkout_remote(source, commit, key_dir, dest, runner)

        self._evict()
        info = result[0]
        if not working_directory(dest, source).is_dir():
            raise CheckoutError(f'path "{source.path}" not found in commit {info.sha}')
        return result

    def _checkout_remote(
        self,
        source: GitSource,
        commit: str | None,
        key_dir: Path,
        dest: Path,
        runner: GitRunner,
    ) -> tuple[CommitInfo, bool]:
        sha = self._resolve(source, commit, runner)
        for _attempt in range(_ENTRY_ATTEMPTS):
            if sha is not None:
                info = self._copy_entry(key_dir, sha, dest)
                if info is not None:
                    return info, True
            sha, built = self._populate(source, commit, sha, key_dir, runner)
            info = self._copy_entry(key_dir, sha, dest)
            if info is not None:
                return info, not built
        # Only an eviction storm between export and copy gets here.
        raise CheckoutError(f"commit {sha} left the checkout cache before it could be copied")

    def _git(
        self, url: str, username: str | None, password: str | None, ssh_key: str | None
    ) -> contextlib.AbstractContextManager[GitRunner]:
        """A git runner for `url` with the protections, the egress rules and the credentials."""
        return git_session(
            self.allowed_schemes,
            self.timeout,
            username=username,
            password=password,
            ssh_key=ssh_key,
            remote=url,
            egress=self.egress,
        )

    def _ls_remote(
        self, url: str, patterns: Sequence[str], runner: GitRunner
    ) -> list[tuple[str, str]]:
        """(value, name) pairs the remote advertises; value is a sha, or a target for symrefs."""
        status, out, err = runner.run("ls-remote", "--symref", "--", url, *patterns)
        if status != 0:
            raise CheckoutError(f"repository {redact_url(url)} not reachable: {summarize(err)}")
        pairs: list[tuple[str, str]] = []
        for line in out.splitlines():
            value, _, name = line.partition("\t")
            if name:
                pairs.append((value.strip(), name.strip()))
        return pairs

    def _resolve(self, source: GitSource, commit: str | None, runner: GitRunner) -> str | None:
        """The full sha to check out, or None when only a fetch can expand a short commit."""
        url = source.url
        if commit is not None:
            # Also proves the repository is reachable before a fetch is attempted.
            self._ls_remote(url, ["HEAD"], runner)
            return commit if _FULL_SHA.match(commit) else None
        if source.ref:
            ref = source.ref
            if ref.startswith("refs/"):
                candidates = [ref]
            else:
                candidates = [f"refs/heads/{ref}", f"refs/tags/{ref}"]
            patterns = [p for c in candidates for p in (c, f"{c}^{{}}")]
            found = dict((name, value) for value, name in self._ls_remote(url, patterns, runner))
            for candidate in candidates:
                # A tag's peeled line names the commit; the plain line names the tag object.
                sha = found.get(f"{candidate}^{{}}") or found.get(candidate)
                if sha and _FULL_SHA.match(sha):
                    return sha
            raise CheckoutError(f'ref "{ref}" not found in {redact_url(url)}')
        for value, name in self._ls_remote(url, ["HEAD"], runner):
            if name == "HEAD" and _FULL_SHA.match(value):
                return value
        raise CheckoutError(
            f"repository {redact_url(url)} has no default branch (is it empty?); "
            "give a ref or commit"
        )

    def _populate(
        self,
        source: GitSource,
        commit: str | None,
        sha: str | None,
        key_dir: Path,
        runner: GitRunner,
    ) -> tuple[str, bool]:
        """Fetch and export the commit into the cache; returns its sha and whether it was built."""
        url = source.url
        with _flock(key_dir / "repo.lock", exclusive=True):
            # Exports run under this lock, so any staging directory seen now was left by a
            # process that died mid-export.
            for stale in key_dir.glob(".tmp-*"):
                shutil.rmtree(stale, ignore_errors=True)
            repo = self._ensure_repo(key_dir, runner)
            if sha is not None and (key_dir / sha / "commit.json").is_file():
                return sha, False  # another checkout exported it while this one waited
            if sha is None:
                if commit is None:  # _resolve returns None only for a short commit
                    raise CheckoutError(f"nothing to check out from {redact_url(url)}")
                self._fetch(repo, url, [], runner, shallow=False)
                sha = self._expand(repo, commit, url, runner)
                if (key_dir / sha / "commit.json").is_file():
                    return sha, False
            elif not self._has_commit(repo, sha, runner):
                try:
                    self._fetch(repo, url, [sha], runner, shallow=True)
                except CheckoutError:
                    if commit is None:
                        raise
                    # Some servers refuse a sha that is no branch or tag tip: take everything.
                    self._fetch(repo, url, [], runner, shallow=False)
                if not self._has_commit(repo, sha, runner):
                    raise CheckoutError(f"commit {sha} not found in {redact_url(url)}")
            self._export(repo, key_dir, sha, runner)
            return sha, True

    def _ensure_repo(self, key_dir: Path, runner: GitRunner) -> Path:
        repo = key_dir / "repo.git"
        if not (repo / "HEAD").is_file():
            shutil.rmtree(repo, ignore_errors=True)
            status, _, err = runner.run("init", "--bare", "--quiet", "--", str(repo))
            if status != 0:
                raise CheckoutError(f"cannot create the cache repository {repo}: {summarize(err)}")
        return repo

    def _fetch(
        self, repo: Path, url: str, wants: Sequence[str], runner: GitRunner, *, shallow: bool
    ) -> None:
        """Fetch `wants` (shas) shallowly, or every branch and tag with full history."""
        args = ["--git-dir", str(repo), "fetch", "--quiet", "--no-tags", "--no-write-fetch-head"]
        if shallow:
            args.append("--depth=1")
        else:
            status, out, _ = runner.run(
                "--git-dir", str(repo), "rev-parse", "--is-shallow-repository"
            )
            if status == 0 and out.strip() == "true":
                args.append("--unshallow")
            wants = ["+refs/heads/*:refs/runwright/heads/*", "+refs/tags/*:refs/runwright/tags/*"]
        status, _, err = runner.run(*args, "--", url, *wants)
        if status != 0:
            raise CheckoutError(f"fetching from {redact_url(url)} failed: {summarize(err)}")

    def _has_commit(self, repo: Path, sha: str, runner: GitRunner) -> bool:
        status, _, _ = runner.run("--git-dir", str(repo), "cat-file", "-e", f"{sha}^{{commit}}")
        return status == 0

    def _expand(self, repo: Path, commit: str, url: str, runner: GitRunner) -> str:
        """The full sha of a short commit in the fetched history."""
        status, out, err = runner.run(
            "--git-dir",
            str(repo),
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            f"{commit}^{{commit}}",
        )
        sha = out.strip()
        if status == 0 and _FULL_SHA.match(sha):
            return sha
        if "ambiguous" in err:
            raise CheckoutError(f"commit {commit} is ambiguous in {redact_url(url)}; give more")
        raise CheckoutError(f"commit {commit} not found in {redact_url(url)}")

    def _export(self, repo: Path, key_dir: Path, sha: str, runner: GitRunner) -> None:
        """Write the commit's files and metadata to <key>/<sha>, appearing all at once."""
        staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=key_dir))
        try:
            tree = staging / "tree"
            tree.mkdir()
            # A private index keeps the bare repository free of any work tree state.
            index_runner = GitRunner(
                {**runner.env, "GIT_INDEX_FILE": str(staging / "index")},
                runner.secrets,
                runner.timeout,
            )
            base = ["--git-dir", str(repo), "--work-tree", str(tree)]
            for args in (["read-tree", sha], ["checkout-index", "--all", "--force"]):
                status, _, err = index_runner.run(*base, *args, cwd=tree)
                if status != 0:
                    raise CheckoutError(f"cannot export commit {sha}: {summarize(err)}")
            (staging / "index").unlink(missing_ok=True)
            info = self._commit_info(repo, sha)
            (staging / "commit.json").write_text(json.dumps(asdict(info)))
            os.rename(staging, key_dir / sha)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _commit_info(self, repo: Path, sha: str) -> CommitInfo:
        with git.Repo(repo) as handle:
            try:
                commit = handle.commit(sha)
            except (ValueError, git.BadName) as exc:
                raise CheckoutError(f"commit {sha} not found: {exc}") from exc
            message = commit.message
            if isinstance(message, bytes):
                message = message.decode("utf-8", errors="replace")
            return CommitInfo(
                sha=commit.hexsha,
                author=str(commit.author.name or ""),
                author_email=str(commit.author.email or ""),
                date=commit.authored_datetime.isoformat(),
                message=message.rstrip("\n"),
            )

    def _copy_entry(self, key_dir: Path, sha: str, dest: Path) -> CommitInfo | None:
        """Copy a cached commit into `dest` and return its metadata; None when not cached."""
        entry = key_dir / sha
        with _flock(key_dir / "locks" / f"{sha}.lock", exclusive=False):
            meta = entry / "commit.json"
            if not meta.is_file():
                return None
            info = CommitInfo(**json.loads(meta.read_text()))
            os.utime(entry)  # the entry's mtime is its last use, for LRU eviction
            _replace_dir(entry / "tree", dest)
            return info

    def _evict(self) -> None:
        """Remove the least recently used commit entries beyond max_entries."""
        entries: list[tuple[int, str, Path]] = []
        for key_dir in self.root.iterdir():
            if not (_URL_KEY.match(key_dir.name) and key_dir.is_dir()):
                continue
            for entry in key_dir.iterdir():
                if _FULL_SHA.match(entry.name):
                    with contextlib.suppress(FileNotFoundError):
                        entries.append((entry.stat().st_mtime_ns, entry.name, entry))
        entries.sort(reverse=True)
        for _, _, entry in entries[self.max_entries :]:
            self._remove_entry(entry)

    def _remove_entry(self, entry: Path) -> None:
        key_dir = entry.parent
        lock = key_dir / "locks" / f"{entry.name}.lock"
        with _flock(lock, exclusive=True, blocking=False) as held:
            if not held:
                return  # being copied right now, so hardly the least recently used
            if entry.exists():
                # Renaming first makes the entry vanish at once for readers checking for it.
                trash = key_dir / f".trash-{uuid.uuid4().hex}"
                os.rename(entry, trash)
                shutil.rmtree(trash, ignore_errors=True)
            lock.unlink(missing_ok=True)
        if any(_FULL_SHA.match(p.name) for p in key_dir.iterdir()):
            return
        with _flock(key_dir / "repo.lock", exclusive=True, blocking=False) as held:
            # No commit of this URL is cached any more: drop its fetched objects too.
            if held and not any(_FULL_SHA.match(p.name) for p in key_dir.iterdir()):
                shutil.rmtree(key_dir / "repo.git", ignore_errors=True)
