"""The local forge and branch pushes against real git: bare repositories in a temp dir as
remotes, pull requests in a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from activities.forges import (
    GitCredentials,
    GitHubForge,
    LocalForge,
    forge_for,
    open_credentials,
    push_branch,
)
from core.egress import EgressPolicy
from core.forges import ForgeError, PullRequest
from core.repositories import RepositoryTarget
from core.secrets import SecretBox
from core.store.migrate import upgrade
from core.store.models import ForgePullRequest
from core.store.repositories import repository, save_repository
from core.store.secret_values import open_secret
from core.store.session import make_engine, make_session_factory, transaction
from tests.conftest import TEST_SECRET_KEY
from tests.servers import git_http_server
from tests.stack import git, make_repo

SCHEMES = ["https", "ssh", "file", "http"]
BOX = SecretBox(TEST_SECRET_KEY)


@pytest.fixture(params=["sqlite", "postgres"])
def sessions(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sessionmaker[Session]]:
    """A migrated database of each kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'runwright.db'}"
    else:
        url = request.getfixturevalue("pg_database")
    upgrade(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


def connect(
    sessions: sessionmaker[Session], org: str, name: str, url: str, **fields: str
) -> RepositoryTarget:
    """Apply a Repository document straight to the store; its target."""
    with transaction(sessions) as session:
        doc = {"kind": "Repository", "org": org, "name": name, "url": url, **fields}
        save_repository(session, doc, box=BOX, allowed_schemes=SCHEMES, user_id=None)
        found = repository(session, org, name)
    assert found is not None
    return found


def bare_remote(root: Path) -> Path:
    """A bare repository (branch main, one commit) standing in for a hosted remote."""
    make_repo(root / "seed", {"README.md": "hello\n"})
    bare = root / "remote.git"
    git(root, "clone", "--quiet", "--bare", str(root / "seed"), str(bare))
    return bare


def working_copy(root: Path, url: str, branch: str, change: str) -> Path:
    """A clone of `url` with one commit on `branch` changing README.md."""
    work = root / f"work-{branch.replace('/', '-')}"
    git(root, "clone", "--quiet", url, str(work))
    git(work, "checkout", "--quiet", "-b", branch)
    (work / "README.md").write_text(change)
    git(work, "commit", "--quiet", "-am", f"change for {branch}")
    return work


def remote_heads(bare: Path) -> dict[str, str]:
    out = git(bare, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads")
    return dict(line.split() for line in out.splitlines())


# -- pushing -----------------------------------------------------------------------------------


def test_push_lands_the_branch_and_nothing_else(tmp_path: Path) -> None:
    """The branch appears on the remote at the working tree's commit; main does not move; a
    second push of the same commit changes nothing; the default branch is never pushed to."""
    bare = bare_remote(tmp_path)
    target = RepositoryTarget(org="acme", name="app", url=f"file://{bare}")
    before = remote_heads(bare)
    work = working_copy(tmp_path, target.url, "av/rb-1-1-abc", "changed\n")
    sha = git(work, "rev-parse", "HEAD")

    pushed = push_branch(
        target, work, "av/rb-1-1-abc", credentials=GitCredentials(), allowed_schemes=SCHEMES
    )
    assert (pushed.branch, pushed.sha, pushed.updated) == ("av/rb-1-1-abc", sha, True)
    assert remote_heads(bare) == {**before, "av/rb-1-1-abc": sha}
    assert git(bare, "show", f"{sha}:README.md") == "changed"

    again = push_branch(
        target, work, "av/rb-1-1-abc", credentials=GitCredentials(), allowed_schemes=SCHEMES
    )
    assert (again.sha, again.updated) == (sha, False)

    for refused in ("main", "develop"):
        with pytest.raises(ForgeError, match=f"refusing to push to {refused}") as caught:
            push_branch(
                target,
                work,
                refused,
                credentials=GitCredentials(),
                allowed_schemes=SCHEMES,
                protected=["develop"],
            )
        assert not caught.value.retryable
    assert remote_heads(bare) == {**before, "av/rb-1-1-abc": sha}


def test_push_refuses_a_branch_that_moved_unless_forced(tmp_path: Path) -> None:
    """A branch the remote has at another, unrelated commit is not overwritten by default."""
    bare = bare_remote(tmp_path)
    target = RepositoryTarget(org="acme", name="app", url=f"file://{bare}")
    first = working_copy(tmp_path, target.url, "feature", "one\n")
    push_branch(target, first, "feature", credentials=GitCredentials(), allowed_schemes=SCHEMES)
    other = tmp_path / "other"
    git(tmp_path, "clone", "--quiet", target.url, str(other))
    git(other, "checkout", "--quiet", "-b", "feature")
    (other / "README.md").write_text("two\n")
    git(other, "commit", "--quiet", "-am", "diverging")

    with pytest.raises(ForgeError, match="pushing feature to") as caught:
        push_branch(target, other, "feature", credentials=GitCredentials(), allowed_schemes=SCHEMES)
    assert not caught.value.retryable
    assert remote_heads(bare)["feature"] == git(first, "rev-parse", "HEAD")

    forced = push_branch(
        target, other, "feature", credentials=GitCredentials(), allowed_schemes=SCHEMES, force=True
    )
    assert remote_heads(bare)["feature"] == forced.sha == git(other, "rev-parse", "HEAD")


def test_push_ignores_the_working_trees_git_config(tmp_path: Path) -> None:
    """A step that rewrites `.git/config` (an insteadOf to another remote, a hook path) does not
    redirect the push: the branch lands on the repository's own remote only."""
    bare = bare_remote(tmp_path)
    decoy_root = tmp_path / "decoy"
    decoy_root.mkdir()
    decoy = bare_remote(decoy_root)
    target = RepositoryTarget(org="acme", name="app", url=f"file://{bare}")
    work = working_copy(tmp_path, target.url, "topic", "edited\n")
    git(work, "config", f"url.file://{decoy}.insteadOf", target.url)
    hooks = work / "evil-hooks"
    hooks.mkdir()
    (hooks / "pre-push").write_text(f"#!/bin/sh\ntouch {tmp_path / 'hooked'}\n")
    (hooks / "pre-push").chmod(0o755)
    git(work, "config", "core.hooksPath", str(hooks))

    push_branch(target, work, "topic", credentials=GitCredentials(), allowed_schemes=SCHEMES)
    assert "topic" in remote_heads(bare)
    assert "topic" not in remote_heads(decoy)
    assert not (tmp_path / "hooked").exists()


def test_push_refuses_urls_and_schemes(tmp_path: Path) -> None:
    """A scheme the deployment does not allow, or a bad branch name, never reaches git."""
    bare = bare_remote(tmp_path)
    work = working_copy(tmp_path, f"file://{bare}", "topic", "x\n")
    target = RepositoryTarget(org="acme", name="app", url=f"file://{bare}")
    with pytest.raises(ForgeError, match='scheme "file" is not allowed'):
        push_branch(target, work, "topic", credentials=GitCredentials(), allowed_schemes=["https"])
    with pytest.raises(ForgeError, match="must not start with '-'"):
        push_branch(target, work, "--force", credentials=GitCredentials(), allowed_schemes=SCHEMES)
    assert set(remote_heads(bare)) == {"main"}


def test_push_with_the_repositorys_http_credentials(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """Over HTTP Basic auth the stored username and password open the remote; wrong ones are
    refused without the password in the error."""
    bare = bare_remote(tmp_path / "served")
    password = "s3cr%t:pa55 word!"
    with git_http_server(bare.parent, "deploy", password) as server:
        url = server.url("remote.git")
        target = connect(sessions, "acme", "app", url, username="deploy", password=password)

        def open_ref(ref: str) -> str:
            with sessions() as session:
                return open_secret(session, BOX, ref)

        credentials = open_credentials(target, open_ref)
        assert credentials == GitCredentials("deploy", password, None)
        seed = f"file://{tmp_path / 'served' / 'seed'}"
        work = working_copy(tmp_path, seed, "topic", "over http\n")
        pushed = push_branch(
            target, work, "topic", credentials=credentials, allowed_schemes=SCHEMES
        )
        assert remote_heads(bare)["topic"] == pushed.sha

        wrong = GitCredentials("deploy", "not-it", None)
        with pytest.raises(ForgeError) as caught:
            push_branch(target, work, "topic2", credentials=wrong, allowed_schemes=SCHEMES)
        assert "not-it" not in str(caught.value) and "topic2" not in remote_heads(bare)


# -- the local forge -------------------------------------------------------------------------


def test_local_pull_requests_are_numbered_per_repository(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """Numbers run 1, 2, ... per repository; ensuring the same head again returns the same
    pull request unchanged; updates set what is given; lookups find each head's newest."""
    app = connect(sessions, "acme", "app", "https://git.example.com/acme/app.git")
    lib = connect(sessions, "acme", "lib", "https://git.example.com/acme/lib.git")
    forge = LocalForge(sessions, app)
    first = forge.ensure_pull_request("av/rb-1-1-a", "main", "[WIP] Upgrade", "body", draft=True)
    assert first == PullRequest(
        1, "/api/repositories/acme/app/pulls/1", "av/rb-1-1-a", "main", "[WIP] Upgrade", "body",
        True, "open",
    )  # fmt: skip
    again = forge.ensure_pull_request("av/rb-1-1-a", "main", "other title", "", draft=False)
    assert again == first
    second = forge.ensure_pull_request("av/rb-1-2-b", "av/rb-1-1-a", "Step 2")
    assert (second.number, second.base, second.draft) == (2, "av/rb-1-1-a", False)
    other = LocalForge(sessions, lib, url_template="https://rw.example/r/7#pr-{number}")
    assert other.ensure_pull_request("av/rb-1-1-a", "main", "Lib").number == 1
    assert other.pull_requests(["av/rb-1-1-a"])["av/rb-1-1-a"].url == "https://rw.example/r/7#pr-1"

    ready = forge.update_pull_request(1, title="Upgrade", draft=False)
    assert (ready.title, ready.body, ready.draft, ready.state) == ("Upgrade", "body", False, "open")
    assert forge.pull_requests(["av/rb-1-1-a", "av/rb-1-2-b", "nope"]) == {
        "av/rb-1-1-a": ready,
        "av/rb-1-2-b": second,
    }
    with sessions() as session:
        rows = session.scalars(select(ForgePullRequest)).all()
        assert sorted((r.number, r.head, r.title) for r in rows) == [
            (1, "av/rb-1-1-a", "Lib"),
            (1, "av/rb-1-1-a", "Upgrade"),
            (2, "av/rb-1-2-b", "Step 2"),
        ]


def test_local_forge_refusals(sessions: sessionmaker[Session]) -> None:
    """Bad input, unknown numbers and unconnected repositories fail without writing."""
    app = connect(sessions, "acme", "app", "https://git.example.com/acme/app.git")
    forge = LocalForge(sessions, app)
    cases = [
        (lambda: forge.ensure_pull_request("-x", "main", "t"), 'head: ref "-x"'),
        (lambda: forge.ensure_pull_request("topic", "topic", "t"), "head and base are the same"),
        (lambda: forge.ensure_pull_request("topic", "main", " "), "title: is empty"),
        (lambda: forge.ensure_pull_request("topic", "main", "a\nb"), "title: must be one line"),
        (lambda: forge.ensure_pull_request("t", "main", "t", "b" * 70000), "body: must be at"),
        (lambda: forge.update_pull_request(9, title="x"), "pull request #9 of acme/app not found"),
    ]
    for call, message in cases:
        with pytest.raises(ForgeError, match=message) as caught:
            call()
        assert not caught.value.retryable
    gone = LocalForge(sessions, RepositoryTarget(org="acme", name="gone", url="https://x/y"))
    with pytest.raises(ForgeError, match="repository acme/gone is not connected"):
        gone.ensure_pull_request("topic", "main", "t")
    with sessions() as session:
        assert session.scalars(select(ForgePullRequest)).all() == []


def test_concurrent_ensures_open_one_pull_request(sessions: sessionmaker[Session]) -> None:
    """Two retried activities racing for the same head get the same pull request."""
    app = connect(sessions, "acme", "app", "https://git.example.com/acme/app.git")
    results: list[PullRequest] = []
    start = threading.Barrier(4)

    def ensure(head: str) -> None:
        start.wait()
        results.append(LocalForge(sessions, app).ensure_pull_request(head, "main", head))

    threads = [threading.Thread(target=ensure, args=(h,)) for h in ("a", "a", "b", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    by_head = {(r.head, r.number) for r in results}
    assert len(results) == 4 and len(by_head) == 2
    assert sorted(n for _, n in by_head) == [1, 2]


def test_forge_for_picks_the_repositorys_forge(sessions: sessionmaker[Session]) -> None:
    """`local` and `github` repositories get their forge; github opens the token it names."""
    local = connect(sessions, "acme", "app", "https://git.example.com/acme/app.git")
    hub = connect(
        sessions, "acme", "hub", "https://github.com/acme/hub.git", forge="github", forgeToken="t0k"
    )
    opened: list[str] = []

    def open_ref(ref: str) -> str:
        opened.append(ref)
        with sessions() as session:
            return open_secret(session, BOX, ref)

    policy = EgressPolicy()
    assert isinstance(
        forge_for(local, sessions=sessions, open_ref=open_ref, policy=policy), LocalForge
    )
    assert opened == []
    github = forge_for(hub, sessions=sessions, open_ref=open_ref, policy=policy)
    assert isinstance(github, GitHubForge) and opened == [hub.forge_token_ref]
