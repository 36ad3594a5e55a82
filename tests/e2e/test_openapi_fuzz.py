"""The running API against its own OpenAPI document: generated requests on every operation,
as a platform admin and as an account's admin, get no 5xx and no answer that breaks the
documented response schema."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error, response_schema_conformance
from temporalio.testing import WorkflowEnvironment

from core.store.accounts import add_account_user, create_account
from core.store.migrate import upgrade
from core.store.models import User
from core.store.session import make_engine, make_session_factory, transaction
from core.store.users import create_token, upsert_user
from tests.conftest import TEST_SECRET_KEY
from tests.servers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
EXAMPLES_PER_OPERATION = 12


@pytest.fixture(scope="module")
def api_url(
    tmp_path_factory: pytest.TempPathFactory, temporal_env: WorkflowEnvironment
) -> Iterator[tuple[str, Callable[[str], str]]]:
    """`runwright api` outside dev mode as its own process; (its URL, a function giving a fresh
    token of a caller)."""
    home = tmp_path_factory.mktemp("fuzz")
    database = f"sqlite:///{home / 'runwright.db'}"
    upgrade(database)
    engine = make_engine(database)
    sessions = make_session_factory(engine)
    with transaction(sessions) as session:
        users = {"platform admin": upsert_user(session, "admin@corp.test", role="admin").id}
        account = create_account(session, "ACME")
        boss, _ = add_account_user(session, account, "boss@acme.test", password="pw", role="admin")
        users["account admin"] = boss.id

    def token_of(caller: str) -> str:
        with transaction(sessions) as session:
            user = session.get(User, users[caller])
            assert user is not None
            return create_token(session, user)[1]

    port = free_port()
    env = {
        **os.environ,
        "RUNWRIGHT_HOME": str(home),
        "RUNWRIGHT_DATABASE_URL": database,
        "RUNWRIGHT_SECRET_KEY": TEST_SECRET_KEY,
        "RUNWRIGHT_API_PORT": str(port),
        "RUNWRIGHT_TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "RUNWRIGHT_LOG_LEVEL": "WARNING",
    }
    log = (home / "api.log").open("wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "runwright"), "api"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (home / "api.log").read_text()
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.1)
        yield url, token_of
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
        engine.dispose()


@pytest.mark.parametrize("caller", ["platform admin", "account admin"])
def test_generated_requests_get_no_server_error_and_documented_answers(
    api_url: tuple[str, Callable[[str], str]], caller: str
) -> None:
    """Every operation, with generated parameters and bodies: no 5xx, no undocumented shape."""
    url, token_of = api_url
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40
    failures: list[str] = []
    exercised: set[str] = set()

    def explore(operation: Any) -> None:
        # Each operation gets its own examples: a draw of operations with a fixed seed can
        # miss one as soon as the route table changes.
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
        @given(st.data())
        def requests(data: st.DataObject) -> None:
            case: Any = data.draw(operation.as_strategy())
            # Each request gets its own token: logout revokes the one it is sent with.
            headers = {"Authorization": f"Bearer {token_of(caller)}"}
            response = case.call(base_url=url, headers=headers, timeout=30)
            exercised.add(operation.label)
            try:
                case.validate_response(
                    response, checks=[not_a_server_error, response_schema_conformance]
                )
            except AssertionError as exc:  # schemathesis reports failures as AssertionErrors
                failures.append(f"{operation.label}: {str(exc)[:400]}")

        requests()

    for operation in operations:
        explore(operation)
    assert failures == [], "\n".join(sorted(set(failures))[:20])
    missed = {op.label for op in operations} - exercised
    assert missed == set(), f"operations never requested: {sorted(missed)}"
