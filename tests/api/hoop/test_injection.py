"""Parameters carrying quotes, `$(...)`, backticks and SQL: quoted values stay data.

Each value goes through each connection kind with the template's quoting helper; the program
must print the value back exactly, and the side effect the value tries to cause never happens.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.hoop.support import Hoop

pytestmark = pytest.mark.slow

MARKER = Path("/tmp/runwright-injection-marker")

VALUES = [
    f"'; touch {MARKER}; echo '",
    f"$(touch {MARKER})",
    f"`touch {MARKER}`",
    f'"; touch {MARKER}; echo "',
    "a'b\"c\\d",
    "line1\nline2",
    "{{ .value }}",
    "%s %n $HOME ${PATH} !!",
    "'); CREATE TABLE pwned(x int); --",
    f"'); import os; os.system('touch {MARKER}'); print('",
]

TARGETS = [
    ("ops-shell", "ops/inject-squote.runbook.sh"),
    ("ops-shell", "ops/inject-dquote.runbook.sh"),
    ("py", "py/hello.runbook.py"),
    ("lite", "sql/query.runbook.sql"),
    ("pg", "sql/query.runbook.sql"),
]


@pytest.fixture(autouse=True)
def no_marker() -> None:
    MARKER.unlink(missing_ok=True)


@pytest.mark.parametrize(("connection", "file_name"), TARGETS)
@pytest.mark.parametrize("value", VALUES)
async def test_quoted_value_is_data(
    hoop: Hoop, connection: str, file_name: str, value: str
) -> None:
    """The program saw the value as one literal string, and nothing else ran."""
    response = await hoop.exec(connection, {"file_name": file_name, "parameters": {"value": value}})
    if file_name.endswith(".sql") and "\\" in value:
        # No SQL quoting keeps a backslash data in every engine (MySQL escapes with it).
        assert response.status_code == 400, response.text
        assert "value" in response.json()["message"]
        return
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["exit_code"] == 0, body
    output = body["output"]
    if connection == "py":
        assert output == f"py {value}\n"
    elif connection == "pg":
        assert output.startswith(f"v\n{value}\n"), output  # psql -A: header, value, row count
    else:
        assert output == f"{value}\n"
    assert not MARKER.exists()
