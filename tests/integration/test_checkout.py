"""CheckoutCache against real git repositories served over file:// and git http-backend.

The http-backend server lives in tests/servers.py (`git_http_server`), shared with the e2e tests.
"""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from activities.checkout import CheckoutCache, CheckoutError, url_key, working_directory
from core.git_urls import GitUrlError, PathEscapeError
from tests.servers import LOOPBACK_EGRESS, git_http_server
from workflows.contracts import GitSource

AUTHOR = "Ada Lovelace"
AUTHOR_EMAIL = "ada@example.com"
AUTHOR_DATE = "2024-01-02T03:04:05+00:00"
FILE_SCHEMES = ("file",)

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git program")


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": AUTHOR,
        "GIT_AUTHOR_EMAIL": AUTHOR_EMAIL,
        "GIT_AUTHOR_DATE": AUTHOR_DATE,
        "GIT_COMMITTER_NAME": AUTHOR,
        "GIT_COMMITTER_EMAIL": AUTHOR_EMAIL,
        "GIT_COMMITTER_DATE": AUTHOR_DATE,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    done = subprocess.run(
        ["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@dataclass
class Origin:
    """A source repository the tests commit to, and the file:// URL it is served at."""

    path: Path

    @property
    def url(self) -> str:
        return self.path.as_uri()

    def commit(self, files: dict[str, str], message: str) -> str:
        for name, content in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        _git(self.path, "add", "--all")
        _git(self.path, "commit", "--quiet", "-m", message)
        return _git(self.path, "rev-parse", "HEAD")

    def rev(self, name: str) -> str:
        return _git(self.path, "rev-parse", f"{name}^{{commit}}")


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    """A repository whose default branch is "trunk", with a feature branch and two tags."""
    path = tmp_path / "origin"
    path.mkdir()
    _git(path, "init", "--quiet", "--initial-branch", "trunk")
    repo = Origin(path)
    repo.commit({"README.md": "hello\n", "sub/data.txt": "data\n"}, "first commit\n\nbody")
    script = path / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    (path / "sub" / "alias.txt").symlink_to("data.txt")
    _git(path, "add", "--all")
    _git(path, "commit", "--quiet", "-m", "second")
    _git(path, "tag", "light")
    _git(path, "tag", "--annotate", "v1.0", "-m", "release 1.0")
    _git(path, "checkout", "--quiet", "-b", "feature")
    repo.commit({"feature.txt": "feature\n"}, "feature work")
    _git(path, "checkout", "--quiet", "trunk")
    return repo


@pytest.fixture
def cache(tmp_path: Path) -> CheckoutCache:
    """A checkout cache that accepts file:// URLs only."""
    return CheckoutCache(tmp_path / "cache", FILE_SCHEMES)


def _tree(root: Path) -> dict[str, str]:
    """Every file under root (symlinks as "-> target"), excluding .git."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(".git"):
            continue
        if path.is_symlink():
            found[rel] = f"-> {os.readlink(path)}"
        elif path.is_file():
            found[rel] = path.read_text()
    return found


def test_default_branch_checkout(origin: Origin, cache: CheckoutCache, tmp_path: Path) -> None:
    """Without ref or commit the remote's default branch is checked out, with its metadata."""
    dest = tmp_path / "dest"
    info, cached = cache.checkout(GitSource(url=origin.url), dest)
    assert not cached
    assert info.sha == origin.rev("trunk")
    assert info.author == AUTHOR
    assert info.author_email == AUTHOR_EMAIL
    assert info.date == AUTHOR_DATE
    assert info.message == "second"
    assert _tree(dest) == {
        "README.md": "hello\n",
        "run.sh": "#!/bin/sh\necho hi\n",
        "sub/alias.txt": "-> data.txt",
        "sub/data.txt": "data\n",
    }
    assert os.stat(dest / "run.sh").st_mode & stat.S_IXUSR


def test_commit_message_keeps_its_body(
    origin: Origin, cache: CheckoutCache, tmp_path: Path
) -> None:
    """The returned message is the whole commit message, subject and body."""
    first = origin.rev("trunk~1")
    info, _ = cache.checkout(GitSource(url=origin.url, commit=first), tmp_path / "dest")
    assert info.message == "first commit\n\nbody"


def test_branch_checkout(origin: Origin, cache: CheckoutCache, tmp_path: Path) -> None:
    """A branch name checks out that branch's tip."""
    dest = tmp_path / "dest"
    info, _ = cache.checkout(GitSource(url=origin.url, ref="feature"), dest)
    assert info.sha == origin.rev("feature")
    assert info.message == "feature work"
    assert (dest / "feature.txt").read_text() == "feature\n"


@pytest.mark.parametrize("tag", ["v1.0", "light", "refs/tags/v1.0"])
def test_tag_checkout(origin: Origin, cache: CheckoutCache, tmp_path: Path, tag: str) -> None:
    """Annotated and lightweight tags resolve to the commit they point at."""
    info, _ = cache.checkout(GitSource(url=origin.url, ref=tag), tmp_path / "dest")
    assert info.sha == origin.rev("trunk")
    assert not (tmp_path / "dest" / "feature.txt").exists()


@pytest.mark.parametrize("digits", [40, 7])
def test_commit_checkout(origin: Origin, cache: CheckoutCache, tmp_path: Path, digits: int) -> None:
    """A full or abbreviated commit sha, even one no ref points at, checks out that commit."""
    first = origin.rev("trunk~1")
    dest = tmp_path / "dest"
    info, cached = cache.checkout(GitSource(url=origin.url, commit=first[:digits].upper()), dest)
    assert not cached
    assert info.sha == first
    assert _tree(dest) == {"README.md": "hello\n", "sub/data.txt": "data\n"}


def test_commit_wins_over_ref(origin: Origin, cache: CheckoutCache, tmp_path: Path) -> None:
    """When both are given the commit decides what is checked out."""
    first = origin.rev("trunk~1")
    source = GitSource(url=origin.url, ref="feature", commit=first)
    info, _ = cache.checkout(source, tmp_path / "dest")
    assert info.sha == first


def test_second_checkout_is_cached_without_fetch(
    origin: Origin, cache: CheckoutCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unchanged branch is served from the cache: ls-remote only, no fetch."""
    fetches: list[Any] = []
    real_fetch = cache._fetch

    def counting_fetch(*args: Any, **kwargs: Any) -> None:
        fetches.append(args)
        real_fetch(*args, **kwargs)

    monkeypatch.setattr(cache, "_fetch", counting_fetch)
    source = GitSource(url=origin.url, ref="feature")
    first, cached_first = cache.checkout(source, tmp_path / "one")
    second, cached_second = cache.checkout(source, tmp_path / "two")
    assert (cached_first, cached_second) == (False, True)
    assert len(fetches) == 1
    assert first == second
    assert _tree(tmp_path / "one") == _tree(tmp_path / "two")


def test_cached_full_sha_needs_no_remote(
    origin: Origin, cache: CheckoutCache, tmp_path: Path
) -> None:
    """A cached full sha is checked out even when the repository is gone; a branch is not."""
    sha = origin.rev("feature")
    cache.checkout(GitSource(url=origin.url, commit=sha), tmp_path / "one")
    url = origin.url
    origin.path.rename(tmp_path / "moved-away")

    info, cached = cache.checkout(GitSource(url=url, commit=sha), tmp_path / "two")
    assert cached
    assert info.sha == sha
    assert (tmp_path / "two" / "feature.txt").read_text() == "feature\n"
    with pytest.raises(CheckoutError, match="not reachable"):
        cache.checkout(GitSource(url=url, ref="feature"), tmp_path / "three")


def test_new_commit_on_branch_is_picked_up(
    origin: Origin, cache: CheckoutCache, tmp_path: Path
) -> None:
    """After a push to the branch the next checkout resolves and fetches the new tip."""
    before, _ = cache.checkout(GitSource(url=origin.url), tmp_path / "one")
    after_sha = origin.commit({"README.md": "changed\n"}, "third")
    after, cached = cache.checkout(GitSource(url=origin.url), tmp_path / "two")
    assert after.sha == after_sha != before.sha
    assert not cached
    assert (tmp_path / "two" / "README.md").read_text() == "changed\n"
    assert (tmp_path / "one" / "README.md").read_text() == "hello\n"


def test_unknown_ref(origin: Origin, cache: CheckoutCache, tmp_path: Path) -> None:
    """A ref that is neither branch nor tag is reported by name."""
    with pytest.raises(CheckoutError, match=r'ref "nope" not found in file://'):
        cache.checkout(GitSource(url=origin.url, ref="nope"), tmp_path / "dest")


@pytest.mark.parametrize("commit", ["0123456789abcdef0123456789abcdef01234567", "0123456"])
def test_unknown_commit(origin: Origin, cache: CheckoutCache, tmp_path: Path, commit: str) -> None:
    """A commit the repository does not have is reported by its sha."""
    with pytest.raises(CheckoutError, match=f"commit {commit} not found"):
        cache.checkout(GitSource(url=origin.url, commit=commit), tmp_path / "dest")


def test_unreachable_repository(cache: CheckoutCache, tmp_path: Path) -> None:
    """A URL with no repository behind it is reported as not reachable, naming the URL."""
    url = (tmp_path / "missing").as_uri()
    with pytest.raises(CheckoutError, match=f"repository {url} not reachable: .*fatal"):
        cache.checkout(GitSource(url=url), tmp_path / "dest")


def test_empty_repository(cache: CheckoutCache, tmp_path: Path) -> None:
    """A repository without commits has no default branch to check out."""
    empty = tmp_path / "empty"
    empty.mkdir()
    _git(empty, "init", "--quiet")
    with pytest.raises(CheckoutError, match="no default branch"):
        cache.checkout(GitSource(url=empty.as_uri()), tmp_path / "dest")


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ext::sh -c touch% /tmp/pwned", 'transport form "ext::"'),
        ("--upload-pack=touch /tmp/pwned", "must not start with '-'"),
        ("https://user:pw@example.com/repo.git", "credentials"),
        ("/srv/repo", "local paths are not accepted"),
    ],
)
def test_refused_url(tmp_path: Path, url: str, fragment: str) -> None:
    """A URL git could misuse is refused before any git process runs."""
    cache = CheckoutCache(tmp_path / "cache", ["https", "ssh", "file"])
    with pytest.raises(GitUrlError) as info:
        cache.checkout(GitSource(url=url), tmp_path / "dest")
    assert fragment in str(info.value)
    assert not (tmp_path / "cache").exists()


def test_disallowed_scheme(origin: Origin, tmp_path: Path) -> None:
    """A file:// URL is refused where only https and ssh are allowed."""
    cache = CheckoutCache(tmp_path / "cache", ["https", "ssh"])
    with pytest.raises(GitUrlError, match=r'scheme "file" is not allowed \(allowed: https, ssh\)'):
        cache.checkout(GitSource(url=origin.url), tmp_path / "dest")


def test_refused_ref(origin: Origin, cache: CheckoutCache, tmp_path: Path) -> None:
    """An option-like ref never reaches git."""
    with pytest.raises(GitUrlError, match="must not start with '-'"):
        cache.checkout(GitSource(url=origin.url, ref="--upload-pack=x"), tmp_path / "dest")


def test_path_selects_working_directory(
    origin: Origin, cache: CheckoutCache, tmp_path: Path
) -> None:
    """`path` names a directory of the checkout that becomes the working directory."""
    source = GitSource(url=origin.url, path="sub")
    cache.checkout(source, tmp_path / "dest")
    assert working_directory(tmp_path / "dest", source) == (tmp_path / "dest" / "sub").resolve()


@pytest.mark.parametrize("path", ["../outside", "/etc", "sub/../../x"])
def test_path_escaping_checkout_is_refused(
    origin: Origin, cache: CheckoutCache, tmp_path: Path, path: str
) -> None:
    """A `path` leading outside the checkout is refused before anything is fetched."""
    with pytest.raises(PathEscapeError):
        cache.checkout(GitSource(url=origin.url, path=path), tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_path_through_symlink_out_of_checkout_is_refused(
    origin: Origin, cache: CheckoutCache, tmp_path: Path
) -> None:
    """A `path` through a committed symlink that points outside the checkout is refused."""
    (origin.path / "escape").symlink_to(tmp_path)
    _git(origin.path, "add", "escape")
    _git(origin.path, "commit", "--quiet", "-m", "escape hatch")
    with pytest.raises(PathEscapeError, match="leads outside"):
        cache.checkout(GitSource(url=origin.url, path="escape"), tmp_path / "dest")


def test_missing_path(origin: Origin, cache: CheckoutCache, tmp_path: Path) -> None:
    """A `path` the commit does not contain is reported with the commit."""
    with pytest.raises(CheckoutError, match=r'path "nowhere" not found in commit [0-9a-f]{40}'):
        cache.checkout(GitSource(url=origin.url, path="nowhere"), tmp_path / "dest")


def test_concurrent_checkouts_of_one_commit(origin: Origin, tmp_path: Path) -> None:
    """Two threads checking out the same new commit both get the complete tree; one exports."""
    files = {f"many/file{i:03}.txt": f"content {i}\n" * 50 for i in range(300)}
    sha = origin.commit(files, "many files")
    caches = [CheckoutCache(tmp_path / "cache", FILE_SCHEMES) for _ in range(2)]
    barrier = threading.Barrier(2)
    results: dict[int, tuple[str, bool]] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            info, cached = caches[i].checkout(GitSource(url=origin.url), tmp_path / f"dest{i}")
            results[i] = (info.sha, cached)
        except BaseException as exc:  # noqa: BLE001 - every thread failure is reported
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert sorted(results.values()) == [(sha, False), (sha, True)]
    for i in range(2):
        tree = _tree(tmp_path / f"dest{i}")
        assert {k: v for k, v in tree.items() if k.startswith("many/")} == files


def test_dest_is_a_fresh_copy(origin: Origin, cache: CheckoutCache, tmp_path: Path) -> None:
    """Writing into a checkout leaves the cache intact, and a reused dest is replaced."""
    dest = tmp_path / "dest"
    cache.checkout(GitSource(url=origin.url), dest)
    (dest / "README.md").write_text("scribbled\n")
    (dest / "leftover.txt").write_text("stale\n")

    _, cached = cache.checkout(GitSource(url=origin.url), dest)
    assert cached
    assert (dest / "README.md").read_text() == "hello\n"
    assert not (dest / "leftover.txt").exists()
    entry = tmp_path / "cache" / url_key(origin.url) / origin.rev("trunk") / "tree"
    assert (entry / "README.md").read_text() == "hello\n"


def test_least_recently_used_commits_are_evicted(origin: Origin, tmp_path: Path) -> None:
    """Beyond max_entries the commit used longest ago leaves the cache and is fetched again."""
    cache = CheckoutCache(tmp_path / "cache", FILE_SCHEMES, max_entries=2)
    key_dir = tmp_path / "cache" / url_key(origin.url)
    first, second, third = origin.rev("trunk~1"), origin.rev("trunk"), origin.rev("feature")

    cache.checkout(GitSource(url=origin.url, commit=first), tmp_path / "d")
    cache.checkout(GitSource(url=origin.url, commit=second), tmp_path / "d")
    # Using the first again makes the second the least recently used.
    assert cache.checkout(GitSource(url=origin.url, commit=first), tmp_path / "d")[1]
    cache.checkout(GitSource(url=origin.url, commit=third), tmp_path / "d")

    assert sorted(p.name for p in key_dir.iterdir() if len(p.name) == 40) == sorted([first, third])
    _, cached = cache.checkout(GitSource(url=origin.url, commit=second), tmp_path / "d")
    assert not cached


def test_ssh_key_is_passed_through_a_private_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ssh key reaches ssh as a 0600 file with pinned options, and is deleted afterwards."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "ssh-call"
    fake_ssh = bin_dir / "ssh"
    # Records how it was called, then fails like an unreachable host.
    fake_ssh.write_text(
        "#!/bin/sh\n"
        f'out="{record}"\n'
        'printf "%s\\n" "$@" > "$out"\n'
        "while [ $# -gt 0 ]; do\n"
        '  if [ "$1" = "-i" ]; then\n'
        '    key="$2"; stat -c %a "$2" >> "$out"; cat "$2" >> "$out"\n'
        "  fi\n"
        "  shift\n"
        "done\n"
        # Echoing the key proves git's stderr is redacted before it reaches the message.
        'cat "$key" >&2\n'
        "echo 'ssh: connect to host example.invalid: Connection refused' >&2\n"
        "exit 255\n"
    )
    fake_ssh.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_root))

    cache = CheckoutCache(tmp_path / "cache", ["ssh"], egress=LOOPBACK_EGRESS)
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nKEYMATERIAL\n-----END OPENSSH PRIVATE KEY-----"
    with pytest.raises(CheckoutError, match=r"not reachable: .*Connection refused") as info:
        cache.checkout(GitSource(url="git@127.0.0.1:org/repo.git"), tmp_path / "d", ssh_key=key)

    called = record.read_text().splitlines()
    for option in [
        "IdentitiesOnly=yes",
        "StrictHostKeyChecking=accept-new",
        "BatchMode=yes",
        # Pinned to the address the egress rules checked.
        "HostName=127.0.0.1",
        "ProxyCommand=none",
    ]:
        assert option in called
    assert any(line.startswith("UserKnownHostsFile=") for line in called)
    assert "600" in called
    assert "KEYMATERIAL" in called
    assert "KEYMATERIAL" not in str(info.value)
    assert "***" in str(info.value)
    assert list(scratch_root.iterdir()) == []


@dataclass
class HttpRemote:
    """A repository served over http with Basic auth."""

    url: str
    authorized: list[str]


USERNAME = "deploy"
PASSWORD = "s3cr%t:pa55 word!"


@pytest.fixture
def http_remote(origin: Origin, tmp_path: Path) -> Iterator[HttpRemote]:
    """`origin` as a bare repository behind git http-backend on 127.0.0.1."""
    served = tmp_path / "served"
    served.mkdir()
    _git(tmp_path, "clone", "--quiet", "--bare", str(origin.path), str(served / "repo.git"))
    with git_http_server(served, USERNAME, PASSWORD) as server:
        yield HttpRemote(server.url("repo.git"), server.authorized)


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_http_basic_auth_through_askpass(
    http_remote: HttpRemote, origin: Origin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Credentials reach an http remote via askpass and are stored nowhere afterwards."""
    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_root))
    cache = CheckoutCache(tmp_path / "cache", ["http"], egress=LOOPBACK_EGRESS)
    source = GitSource(url=http_remote.url, ref="feature", username=USERNAME)

    info, cached = cache.checkout(source, tmp_path / "dest", password=PASSWORD)

    assert (info.sha, cached) == (origin.rev("feature"), False)
    assert (tmp_path / "dest" / "feature.txt").read_text() == "feature\n"
    assert http_remote.authorized, "the server never saw an authenticated request"
    for secret in (PASSWORD, base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()):
        assert _files_containing(tmp_path / "cache", secret.encode()) == []
    assert list(scratch_root.iterdir()) == []


def test_http_wrong_password_is_refused_and_redacted(
    http_remote: HttpRemote, tmp_path: Path
) -> None:
    """A wrong password fails as not reachable, and the message does not carry it."""
    cache = CheckoutCache(tmp_path / "cache", ["http"], egress=LOOPBACK_EGRESS)
    source = GitSource(url=http_remote.url, username=USERNAME)
    wrong = "wrong-password-123"
    with pytest.raises(CheckoutError, match="not reachable") as info:
        cache.checkout(source, tmp_path / "dest", password=wrong)
    assert wrong not in str(info.value)
    assert "Authentication failed" in str(info.value)


def test_http_without_credentials_does_not_prompt(http_remote: HttpRemote, tmp_path: Path) -> None:
    """Without a password git fails at once instead of waiting for a prompt."""
    cache = CheckoutCache(tmp_path / "cache", ["http"], egress=LOOPBACK_EGRESS)
    with pytest.raises(CheckoutError, match="not reachable"):
        cache.checkout(GitSource(url=http_remote.url), tmp_path / "dest")
