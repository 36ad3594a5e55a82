"""The runbook repository reader against real git repositories: file:// and http with Basic."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from api.hoop.repository import RepositoryUnavailable, RunbookRepository
from core.runbook_templates import MAX_TEMPLATE_BYTES
from core.settings import Settings
from tests.conftest import TEST_SECRET_KEY
from tests.servers import git_http_server
from tests.stack import git, make_repo

USERNAME = "runbooks"
PASSWORD = "s3cr%t:pa55 word!"


def settings(url: str, **extra: object) -> Settings:
    values: dict[str, object] = {
        "dev_mode": True,
        "secret_key": TEST_SECRET_KEY,
        "runbooks_git_url": url,
        "runbooks_refresh_seconds": 0,
        **extra,
    }
    return Settings(**values)  # type: ignore[arg-type]


def test_reads_runbook_files_of_the_head(tmp_path: Path) -> None:
    """Only files named *.runbook.*; too large, symlinked and binary ones carry an error."""
    url = make_repo(
        tmp_path / "repo",
        {
            "ops/a.runbook.sh": "echo a\n",
            "ops/readme.md": "# not a runbook\n",
            "sql/big.runbook.sql": "-" * (MAX_TEMPLATE_BYTES + 1),
        },
    )
    repo = tmp_path / "repo"
    (repo / "ops" / "bin.runbook.sh").write_bytes(b"\xff\xfe\x00")
    os.symlink("/etc/passwd", repo / "ops" / "link.runbook.sh")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "more")
    reader = RunbookRepository(settings(url), tmp_path / "mirror")
    snap = reader.snapshot()
    assert snap.commit == git(repo, "rev-parse", "HEAD")
    assert (snap.author, snap.message) == ("Ops Author", "more")
    assert sorted(snap.files) == [
        "ops/a.runbook.sh", "ops/bin.runbook.sh", "ops/link.runbook.sh", "sql/big.runbook.sql",
    ]  # fmt: skip
    assert snap.files["ops/a.runbook.sh"].text == "echo a\n"  # the final newline kept
    assert "max template size [1000 KB] reached" in str(snap.files["sql/big.runbook.sql"].error)
    assert snap.files["ops/bin.runbook.sh"].error == "runbook file is not UTF-8 text"
    assert snap.files["ops/link.runbook.sh"].error == "a symbolic link is not a runbook"


def test_a_new_head_is_read_and_a_known_one_is_kept(tmp_path: Path) -> None:
    """A push is seen on the next read; within refresh_seconds the remote is not asked."""
    repo = tmp_path / "repo"
    url = make_repo(repo, {"a.runbook.sh": "echo 1\n"})
    eager = RunbookRepository(settings(url), tmp_path / "eager")
    lazy = RunbookRepository(settings(url, runbooks_refresh_seconds=3600), tmp_path / "lazy")
    first, _ = eager.snapshot(), lazy.snapshot()
    (repo / "a.runbook.sh").write_text("echo 2\n")
    git(repo, "commit", "-qam", "two")
    second = eager.snapshot()
    assert second.commit != first.commit
    assert second.files["a.runbook.sh"].text == "echo 2\n"
    assert lazy.snapshot().commit == first.commit


def test_branch_and_unreachable_and_unconfigured(tmp_path: Path) -> None:
    """A named branch is read; a missing branch, a missing repository and none configured are
    RepositoryUnavailable with a reason."""
    repo = tmp_path / "repo"
    url = make_repo(repo, {"a.runbook.sh": "echo main\n"})
    git(repo, "checkout", "-q", "-b", "staging")
    (repo / "a.runbook.sh").write_text("echo staging\n")
    git(repo, "commit", "-qam", "staging")
    staging = RunbookRepository(settings(url, runbooks_git_branch="staging"), tmp_path / "s")
    assert staging.snapshot().files["a.runbook.sh"].text == "echo staging\n"
    with pytest.raises(RepositoryUnavailable, match="has no branch nope"):
        RunbookRepository(settings(url, runbooks_git_branch="nope"), tmp_path / "n").snapshot()
    with pytest.raises(RepositoryUnavailable, match="not reachable"):
        RunbookRepository(settings(f"file://{tmp_path}/missing"), tmp_path / "m").snapshot()
    with pytest.raises(RepositoryUnavailable, match="plugin not found"):
        RunbookRepository(settings(""), tmp_path / "u").snapshot()
    with pytest.raises(RepositoryUnavailable, match="misconfigured"):
        RunbookRepository(settings("ext::sh -c id"), tmp_path / "x").snapshot()


@pytest.mark.slow
def test_private_repository_over_http_basic(tmp_path: Path) -> None:
    """Username and password reach git http-backend; a wrong password fails without being
    shown; neither appears in the mirror's config."""
    source = tmp_path / "source"
    make_repo(source, {"ops/p.runbook.sh": "echo private\n"})
    served = tmp_path / "served"
    served.mkdir()
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(source), str(served / "runbooks.git")], check=True
    )
    with git_http_server(served, USERNAME, PASSWORD) as server:
        url = server.url("runbooks.git")
        good = settings(url, runbooks_git_username=USERNAME, runbooks_git_password=PASSWORD)
        reader = RunbookRepository(good, tmp_path / "mirror")
        assert reader.snapshot().files["ops/p.runbook.sh"].text == "echo private\n"
        bad = settings(url, runbooks_git_username=USERNAME, runbooks_git_password="wrong-pass-1")
        with pytest.raises(RepositoryUnavailable) as refused:
            RunbookRepository(bad, tmp_path / "bad").snapshot()
        assert "wrong-pass-1" not in str(refused.value)
    config = (tmp_path / "mirror" / "repo.git" / "config").read_text()
    assert PASSWORD not in config and USERNAME not in config
