"""Which variable names a caller may set for a runbook's program."""

from __future__ import annotations

import pytest

from core.env_names import CLIENT_OWNED, RUNS_CODE, is_client_variable, refused_env_name


@pytest.mark.parametrize(
    ("name", "refusal"),
    [
        ("TOKEN", None),
        ("EXPECTED_PASSWORD", None),
        ("GREETING", None),
        ("DB_PASSWORD", None),
        ("PATH", RUNS_CODE),
        ("HOME", RUNS_CODE),
        ("home", RUNS_CODE),
        ("ENV", RUNS_CODE),
        ("BASH_ENV", RUNS_CODE),
        ("LD_PRELOAD", RUNS_CODE),
        ("DYLD_INSERT_LIBRARIES", RUNS_CODE),
        ("BASH_FUNC_ls", RUNS_CODE),
        ("GIT_SSH_COMMAND", RUNS_CODE),
        ("GIT_DIR", RUNS_CODE),
        ("PYTHONSTARTUP", RUNS_CODE),
        ("PYTHONWARNINGS", RUNS_CODE),
        ("NODE_OPTIONS", RUNS_CODE),
        ("PGHOSTADDR", CLIENT_OWNED),
        ("PGPASSWORD", CLIENT_OWNED),
        ("PGSERVICEFILE", CLIENT_OWNED),
        ("pghost", CLIENT_OWNED),
        ("PSQLRC", CLIENT_OWNED),
        ("PSQL_PAGER", CLIENT_OWNED),
        ("MYSQL_HOST", CLIENT_OWNED),
        ("MYSQL_PWD", CLIENT_OWNED),
        ("LIBMYSQL_PLUGIN_DIR", CLIENT_OWNED),
        ("SQLITE_HISTORY", CLIENT_OWNED),
    ],
)
def test_refused_env_name(name: str, refusal: str | None) -> None:
    assert refused_env_name(name) == refusal


@pytest.mark.parametrize(
    ("name", "client"),
    [("PGHOST", True), ("MYSQL_PWD", True), ("mysql_pwd", True), ("PATH", False), ("P", False)],
)
def test_is_client_variable(name: str, client: bool) -> None:
    assert is_client_variable(name) is client
