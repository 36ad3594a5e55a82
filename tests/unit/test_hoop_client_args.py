"""client_args pass only when the connection's admin listed them, word for word."""

from __future__ import annotations

import pytest

from api.hoop.client_args import ClientArgsError, check_client_args


@pytest.mark.parametrize(
    ("args", "allowed"),
    [
        ([], []),
        ([], ["-x"]),
        (["-x"], ["-x"]),
        (["--verbose", "-x", "-x"], ["-x", "--verbose"]),
    ],
)
def test_allowed(args: list[str], allowed: list[str]) -> None:
    check_client_args(args, allowed, "conn")


@pytest.mark.parametrize(
    ("args", "allowed", "message"),
    [
        (["-cmd", ".shell id"], [], "client_args[0]: '-cmd' is not allowed for connection conn"),
        (["-h", "evil"], ["-h"], "client_args[1]: 'evil' is not allowed"),
        (["-x"], ["-x "], "client_args[0]: '-x' is not allowed"),
        (["--verbose=1"], ["--verbose"], "'--verbose=1' is not allowed"),
        (["a\0b"], ["a\0b"], "client_args[0]: an argument contains a NUL byte"),
    ],
)
def test_refused(args: list[str], allowed: list[str], message: str) -> None:
    with pytest.raises(ClientArgsError) as caught:
        check_client_args(args, allowed, "conn")
    assert message in str(caught.value)
    assert "allowed_client_args" in str(caught.value) or "NUL" in message
