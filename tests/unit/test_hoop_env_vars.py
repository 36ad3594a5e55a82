"""hoop's env_vars: both forms decode, and every bad entry is named."""

from __future__ import annotations

import pytest

from api.hoop.env_vars import EnvVars, EnvVarsError, parse_env_vars


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, EnvVars()),
        ({}, EnvVars()),
        ({"envvar:PASSWORD": "MTIz"}, EnvVars(env={"PASSWORD": "123"})),
        ({"filesystem:SECRET_FILE": "bXlzZWNyZXQ="}, EnvVars(files={"SECRET_FILE": "mysecret"})),
        # The document's literal example form.
        (
            {"envvar": "PASSWORD:MTIz", "filesystem": "SECRET_FILE:bXlzZWNyZXQ="},
            EnvVars(env={"PASSWORD": "123"}, files={"SECRET_FILE": "mysecret"}),
        ),
        ({"envvar:EMPTY": ""}, EnvVars(env={"EMPTY": ""})),
        ({"envvar:UTF": "w6k="}, EnvVars(env={"UTF": "é"})),
    ],
)
def test_decodes(raw: dict[str, str] | None, expected: EnvVars) -> None:
    """Values are base64; names come from the key, or from the value in the literal form."""
    assert parse_env_vars(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"envvar:X": "not base64!"}, "env_vars[envvar:X]: value is not valid base64"),
        ({"secret:X": "MTIz"}, 'unknow environment variable type "secret"'),
        ({"X": "MTIz"}, "key type in unknown format, want=[keytype:key]"),
        ({"envvar:A:B": "MTIz"}, "key type in unknown format"),
        ({"envvar:1BAD": "MTIz"}, "'1BAD' is not a valid variable name"),
        ({"envvar:BAD-NAME": "MTIz"}, "is not a valid variable name"),
        ({"envvar": "MTIz"}, "want the value as NAME:<base64>"),
        ({"envvar:X": "/w=="}, "not UTF-8 text"),
        ({"envvar:X": "AA=="}, "NUL byte"),
        # Names that redirect a database client or make a program run code are refused.
        ({"envvar:PGHOSTADDR": "MTIz"}, "env_vars[envvar:PGHOSTADDR]: PGHOSTADDR belongs to"),
        ({"envvar:MYSQL_HOST": "MTIz"}, "MYSQL_HOST belongs to the database client"),
        ({"filesystem:BASH_ENV": "MTIz"}, "env_vars[filesystem:BASH_ENV]: BASH_ENV would let"),
        ({"filesystem:ENV": "MTIz"}, "ENV would let the caller change how programs run"),
        ({"envvar:HOME": "MTIz"}, "HOME would let the caller change how programs run"),
        ({"envvar:GIT_SSH_COMMAND": "MTIz"}, "GIT_SSH_COMMAND would let"),
        ({"envvar:PYTHONPATH": "MTIz"}, "PYTHONPATH would let"),
        ({"envvar:LD_PRELOAD": "MTIz"}, "LD_PRELOAD would let"),
        ({"envvar": "PGHOST:MTIz"}, "env_vars[envvar]: PGHOST belongs to the database client"),
    ],
)
def test_refuses(raw: dict[str, str], message: str) -> None:
    """Bad base64, an unknown type or a malformed key: an error naming the entry."""
    with pytest.raises(EnvVarsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_env_vars(raw)
