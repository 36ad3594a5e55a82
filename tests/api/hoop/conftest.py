"""Fixtures of the hoop contract tests: one runwright per module with a runbook repository."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.engine import make_url
from temporalio.testing import WorkflowEnvironment

from tests.api.hoop.support import PG_PASSWORD, Hoop, make_runbook_repo, seed
from tests.conftest import TEST_SECRET_KEY
from tests.stack import make_settings, stack_for


def libpq_dsn(sqlalchemy_url: str) -> str:
    """A postgresql:// DSN psql understands, from the test server's SQLAlchemy URL."""
    # The server trusts loopback logins; the password only proves it never leaks.
    url = make_url(sqlalchemy_url).set(drivername="postgresql", password=PG_PASSWORD)
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
async def hoop(
    tmp_path_factory: pytest.TempPathFactory,
    temporal_env: WorkflowEnvironment,
    postgres_url: str,
) -> AsyncIterator[Hoop]:
    """One runwright for the module, reading runbooks from a file:// repository."""
    base = tmp_path_factory.mktemp("hoop")
    repo = base / "runbooks"
    url = make_runbook_repo(repo)
    settings = make_settings(
        base / "home",
        secret_key=TEST_SECRET_KEY,
        runbooks_git_url=url,
        runbooks_git_branch="main",
        runbooks_refresh_seconds=0,
        runbooks_exec_wait_seconds=30,
    )
    async with stack_for(settings, temporal_env.client) as stack:
        yield await seed(stack, repo, base / "lite.db", libpq_dsn(postgres_url))


@pytest.fixture
def unchanged(hoop: Hoop) -> Iterator[None]:
    """The test's requests must write no row at all."""
    before = hoop.counts()
    yield
    assert hoop.counts() == before
