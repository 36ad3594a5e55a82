"""The local forge and branch pushes against real git: bare repositories in a temp dir as
remotes, pull requests in a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, select, text
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
from core.store.migrate import alembic_config, upgrade
from core.store.models import ForgePullRequest
from core.store.repositories import repository, save_repository
from core.store.secret_values import open_secret
from core.store.session import make_engine, make_session_factory, transaction
from tests.conftest import TEST_SECRET_KEY
from tests.servers import LOOPBACK_EGRESS, git_http_server
from tests.stack import git, make_repo

SCHEMES = ["https", "ssh", "file", "http"]
BOX = SecretBox(TEST_SECRET_KEY)


def database_url(backend: str, request: pytest.FixtureRequest, root: Path) -> str:
    """An empty database of the kind `backend` names."""
    if backend == "sqlite":
        return f"sqlite:///{root / 'runwright.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def sessions(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sessionmaker[Session]]:
    """A migrated database of each kind."""
    url = database_url(request.param, request, tmp_path_factory.mktemp("db"))
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
            target,
            work,
            "topic",
            credentials=credentials,
            allowed_schemes=SCHEMES,
            egress=LOOPBACK_EGRESS,
        )
        assert remote_heads(bare)["topic"] == pushed.sha

        wrong = GitCredentials("deploy", "not-it", None)
        with pytest.raises(ForgeError) as caught:
            push_branch(
                target,
                work,
                "topic2",
                credentials=wrong,
                allowed_schemes=SCHEMES,
                egress=LOOPBACK_EGRESS,
            )
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


def test_local_labels_are_added_never_removed(sessions: sessionmaker[Session]) -> None:
    """Labels are recorded de-duplicated on opening; a second ensure adds nothing; an update
    adds the missing ones after those already there, and a label a person added stays."""
    app = connect(sessions, "acme", "app", "https://git.example.com/acme/app.git")
    forge = LocalForge(sessions, app)
    opened = forge.ensure_pull_request("topic", "main", "T", labels=["deps", "q3", "deps"])
    assert opened.labels == ("deps", "q3")
    assert forge.ensure_pull_request("topic", "main", "T", labels=["other"]) == opened
    with transaction(sessions) as session:  # a person labels the pull request
        row = session.scalars(select(ForgePullRequest)).one()
        row.labels = [*row.labels, "urgent"]

    updated = forge.update_pull_request(1, title="T2", labels=["q3", "later", "deps"])
    assert (updated.title, updated.labels) == ("T2", ("deps", "q3", "urgent", "later"))
    assert forge.update_pull_request(1, labels=[]).labels == updated.labels
    assert forge.update_pull_request(1, body="b").labels == updated.labels
    assert forge.pull_requests(["topic"])["topic"].labels == ("deps", "q3", "urgent", "later")
    with sessions() as session:
        assert session.scalars(select(ForgePullRequest.labels)).one() == [
            "deps",
            "q3",
            "urgent",
            "later",
        ]


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["ok", ""], r"labels\[1\]: must be a non-empty string"),
        ([" "], r"labels\[0\]: must be a non-empty string"),
        (["x" * 51], r"labels\[0\]: must be one line of at most 50 characters"),
        (["a\nb"], r"labels\[0\]: must be one line"),
        ([f"l{i}" for i in range(21)], "labels: at most 20 labels"),
    ],
)
def test_local_forge_refuses_labels_no_forge_takes(
    sessions: sessionmaker[Session], labels: list[str], message: str
) -> None:
    """A bad label name or too many fail the call, not retryable, and nothing is written."""
    app = connect(sessions, "acme", "app", "https://git.example.com/acme/app.git")
    forge = LocalForge(sessions, app)
    with pytest.raises(ForgeError, match=message) as caught:
        forge.ensure_pull_request("topic", "main", "T", labels=labels)
    assert not caught.value.retryable
    forge.ensure_pull_request("topic", "main", "T", labels=["kept"])
    with pytest.raises(ForgeError, match=message):
        forge.update_pull_request(1, title="changed", labels=labels)
    assert forge.pull_requests(["topic"])["topic"].labels == ("kept",)
    assert forge.pull_requests(["topic"])["topic"].title == "T"
    # Exactly the limits are taken.
    at_limit = [f"{i:02d}" + "x" * 48 for i in range(20)]
    assert forge.update_pull_request(1, labels=at_limit).labels == ("kept", *at_limit)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_labels_migration_keeps_earlier_pull_requests(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Pull requests recorded before labels existed have none after the upgrade and can be
    labelled; a downgrade drops the column and keeps the rows and the one-open-per-head index."""
    url = database_url(backend, request, tmp_path)
    command.upgrade(alembic_config(url), "0007")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO definitions (id, dialect, name, namespace, spec, source, created_at,"
                " updated_at) VALUES ('d1', 'repository', 'app', 'acme', '{}', 'UI',"
                " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO forge_pull_requests (id, repository_id, number, head, base, title,"
                " body, draft, state, created_at, updated_at) VALUES ('p1', 'd1', 1, 'topic',"
                " 'main', 'Earlier', '', false, 'open', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
    upgrade(url)
    forge = LocalForge(
        make_session_factory(engine), RepositoryTarget(org="acme", name="app", url="https://x/y")
    )
    earlier = forge.pull_requests(["topic"])["topic"]
    assert (earlier.number, earlier.title, earlier.labels) == (1, "Earlier", ())
    assert forge.update_pull_request(1, labels=["deps"]).labels == ("deps",)

    command.downgrade(alembic_config(url), "0007")
    inspector = inspect(engine)
    assert "labels" not in {c["name"] for c in inspector.get_columns("forge_pull_requests")}
    indexes = {i["name"]: i["unique"] for i in inspector.get_indexes("forge_pull_requests")}
    assert indexes.get("ix_forge_pull_requests_open_head")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT number, title FROM forge_pull_requests")).all()
    assert [tuple(r) for r in rows] == [(1, "Earlier")]
    engine.dispose()


def test_pull_request_model_matches_the_table(sessions: sessionmaker[Session]) -> None:
    """The model and the migrations agree on the pull requests table's columns."""
    engine = sessions.kw["bind"]
    columns = {c["name"]: c["nullable"] for c in inspect(engine).get_columns("forge_pull_requests")}
    assert columns == {c.name: c.nullable for c in ForgePullRequest.__table__.columns}


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
