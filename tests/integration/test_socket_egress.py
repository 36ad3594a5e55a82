"""The lookup check for libraries with their own sockets (requests, smtplib), with real
servers on loopback: inside the block a refused destination is never connected to; outside it,
and in other threads meanwhile, lookups are the plain ones."""

from __future__ import annotations

import smtplib
import socket
import threading

import pytest
import requests

from core.egress import EgressPolicy
from core.socket_egress import checked_resolution
from tests.servers import JsonReceiver, SmtpServer

NONE_ALLOWED = EgressPolicy()
LOOPBACK_ALLOWED = EgressPolicy.parse("127.0.0.0/8,::1/128")


def post(port: int, host: str = "127.0.0.1") -> int:
    answer = requests.post(f"http://{host}:{port}/hook", json={"a": 1}, timeout=5)
    return answer.status_code


def test_requests_to_a_refused_address_never_connect(json_receiver: JsonReceiver) -> None:
    """requests (Apprise's HTTP client) fails to resolve a refused address, and the check
    keeps the refusal for the error message; the receiver hears nothing."""
    with checked_resolution(NONE_ALLOWED) as check, pytest.raises(requests.ConnectionError):
        post(json_receiver.port)
    assert json_receiver.received == []
    assert [str(r) for r in check.refused] == [
        "refused to connect to 127.0.0.1 (loopback): not an allowed destination "
        "(RUNWRIGHT_EGRESS_ALLOW lists the networks allowed)"
    ]


def test_a_name_with_only_refused_answers_is_refused(json_receiver: JsonReceiver) -> None:
    """`localhost` answers loopback only: refused by name, as a failed lookup."""
    with checked_resolution(NONE_ALLOWED) as check, pytest.raises(socket.gaierror):
        socket.getaddrinfo("localhost", json_receiver.port, type=socket.SOCK_STREAM)
    assert check.refused[0].host == "localhost"


def test_allowed_networks_connect(json_receiver: JsonReceiver) -> None:
    """With loopback allowed, the same request goes through."""
    with checked_resolution(LOOPBACK_ALLOWED) as check:
        assert post(json_receiver.port) == 200
    assert check.refused == []
    assert [path for path, _ in json_receiver.received] == ["/hook"]


def test_outside_the_block_lookups_are_plain(json_receiver: JsonReceiver) -> None:
    """After the block, and in another thread during it, nothing is checked."""
    answers: list[int] = []
    with checked_resolution(NONE_ALLOWED):
        other = threading.Thread(target=lambda: answers.append(post(json_receiver.port)))
        other.start()
        other.join(timeout=10)
    assert answers == [200]
    assert post(json_receiver.port) == 200


def test_smtplib_to_a_refused_address_never_greets(smtp_server: SmtpServer) -> None:
    """smtplib (Apprise's e-mail) cannot connect to a refused SMTP server: no EHLO arrives."""
    with checked_resolution(NONE_ALLOWED), pytest.raises(OSError):
        smtplib.SMTP("127.0.0.1", smtp_server.port, timeout=5)
    assert smtp_server.greetings == 0
    with (
        checked_resolution(LOOPBACK_ALLOWED),
        smtplib.SMTP("127.0.0.1", smtp_server.port, timeout=5) as client,
    ):
        client.ehlo()
    assert smtp_server.greetings == 1
