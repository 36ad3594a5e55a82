"""The egress rules for libraries that open their own sockets (Apprise's services).

`core.egress` checks httpx connections inside its transport. Apprise's services connect
through requests, smtplib and the socket module instead, with no transport to hand them. They
all find the addresses to connect to through `socket.getaddrinfo` and connect to exactly the
addresses it answers, so `checked_resolution()` wraps that one function: inside the block (in
this thread or task only) every answer the policy refuses is dropped, and a name with no
allowed answer fails to resolve, before any connection is attempted. Checking the very answers
that are connected to leaves no second lookup for a name to answer differently (DNS
rebinding). Outside such a block the wrapper is the plain function.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from core.egress import EgressPolicy, EgressRefused


@dataclass
class ResolutionCheck:
    """The policy of one block, and each refusal it made (for the caller's error message)."""

    policy: EgressPolicy
    refused: list[EgressRefused] = field(default_factory=list)


_current: ContextVar[ResolutionCheck | None] = ContextVar("runwright_resolution", default=None)
_install_lock = threading.Lock()
_plain_getaddrinfo = socket.getaddrinfo


# socket.getaddrinfo's own signature and parameter names: callers (asyncio) pass them by name.
def _checked_getaddrinfo(
    host: bytes | str | None,
    port: bytes | str | int | None,
    family: int = 0,
    type: int = 0,
    proto: int = 0,
    flags: int = 0,
) -> list[tuple[Any, ...]]:
    answers: list[tuple[Any, ...]] = list(
        _plain_getaddrinfo(host, port, family, type, proto, flags)
    )
    check = _current.get()
    if check is None:
        return answers
    allowed: list[tuple[Any, ...]] = []
    refused: list[tuple[str, str]] = []
    for answer in answers:
        address = str(answer[4][0])
        reason = check.policy.refusal(address)
        if reason is None:
            allowed.append(answer)
        else:
            refused.append((address, reason))
    if not allowed:
        name = host.decode() if isinstance(host, bytes) else str(host)
        error = EgressRefused(name, refused or [(name, "no address")])
        check.refused.append(error)
        # An OSError, as a failed lookup is: every library reports it as "could not connect".
        raise socket.gaierror(socket.EAI_NONAME, str(error))
    return allowed


def _install() -> None:
    with _install_lock:
        if socket.getaddrinfo is not _checked_getaddrinfo:
            socket.getaddrinfo = _checked_getaddrinfo


@contextmanager
def checked_resolution(policy: EgressPolicy) -> Iterator[ResolutionCheck]:
    """Within the block, this thread's lookups answer only addresses `policy` allows."""
    _install()
    check = ResolutionCheck(policy)
    token = _current.set(check)
    try:
        yield check
    finally:
        _current.reset(token)
