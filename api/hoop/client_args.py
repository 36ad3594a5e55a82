"""Which `client_args` an exec may append to a connection's command.

hoop appends a request's `client_args` to the connection's command as they come, which makes
every client option the caller's: `sqlite3 -cmd ".shell id"` runs a command, `psql -h evil`
sends the connection's password elsewhere. Here an argument is accepted only when it is, word
for word, one of the connection's `allowed_client_args`, a list only an admin can set. The
default is the empty list: no client arguments at all.
"""

from __future__ import annotations

from collections.abc import Sequence

FIELD = "allowed_client_args"


class ClientArgsError(ValueError):
    """A client argument the connection does not allow; the message names it."""


def check_client_args(args: Sequence[str], allowed: Sequence[str], connection: str) -> None:
    """ClientArgsError naming the first argument of `args` that is not in `allowed`."""
    permitted = set(allowed)
    for index, arg in enumerate(args):
        if "\0" in arg:
            raise ClientArgsError(f"client_args[{index}]: an argument contains a NUL byte")
        if arg not in permitted:
            raise ClientArgsError(
                f"client_args[{index}]: {arg!r} is not allowed for connection {connection} "
                f"(an admin lists the arguments it accepts in its {FIELD})"
            )
