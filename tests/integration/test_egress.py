"""The egress client against real HTTP servers on loopback: what it refuses, what it connects
to, and the `http` action's capped body."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from activities.http_requests import HttpLimits, cut_marker, send_request
from core.egress import DEV_ALLOW, EgressPolicy, EgressRefused, egress_client

STRICT = EgressPolicy()
LOOPBACK = EgressPolicy.parse(DEV_ALLOW)


class Server:
    """A loopback HTTP server that records requests; GET /huge streams `huge` bytes."""

    def __init__(self, huge: int = 0) -> None:
        self.requests: list[dict[str, str]] = []
        self.sent = 0
        self.huge_done = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append({"path": self.path, **dict(self.headers.items())})
                if self.path != "/huge":
                    body = b"hello"
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(huge))
                self.end_headers()
                chunk = ("é" * 32 * 1024).encode()  # 64 KiB of two-byte characters
                try:
                    while server.sent < huge:
                        self.wfile.write(chunk)
                        server.sent += len(chunk)
                except OSError:
                    pass  # the client stopped reading and closed: what we want
                finally:
                    server.huge_done.set()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server(huge=512 * 1024 * 1024)
    yield running
    running.close()


REFUSED_FORMS = [
    ("127.0.0.1", "127.0.0.1 (loopback)"),
    ("localhost", "localhost: 127.0.0.1 (loopback)"),
    ("2130706433", "127.0.0.1 (loopback)"),  # 127.0.0.1 written as one decimal number
    ("0x7f.1", "127.0.0.1 (loopback)"),
    ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1 (loopback)"),
    ("0.0.0.0", "0.0.0.0 (unspecified)"),  # Linux connects 0.0.0.0 to this machine
]


@pytest.mark.parametrize(("host", "named"), REFUSED_FORMS, ids=[h for h, _ in REFUSED_FORMS])
def test_loopback_in_any_spelling_is_refused(server: Server, host: str, named: str) -> None:
    """Every way to write this machine's address resolves to a refused one: nothing is sent."""
    with egress_client(STRICT, timeout=5) as client, pytest.raises(EgressRefused) as refused:
        client.get(f"http://{host}:{server.port}/x")
    assert named in str(refused.value)
    assert "RUNWRIGHT_EGRESS_ALLOW" in str(refused.value)
    assert server.requests == []


def test_metadata_address_is_refused_before_connecting() -> None:
    """169.254.169.254 is refused at once (no connection attempt, so no timeout to wait)."""
    started = time.monotonic()
    with egress_client(STRICT, timeout=30) as client, pytest.raises(EgressRefused) as refused:
        client.get("http://169.254.169.254/latest/meta-data/iam/")
    assert time.monotonic() - started < 1.0
    assert "169.254.169.254 (cloud metadata)" in str(refused.value)


def test_allowed_network_is_reached(server: Server) -> None:
    """With loopback listed (as dev mode does), the same request goes through."""
    with egress_client(LOOPBACK, timeout=5) as client:
        response = client.get(f"http://localhost:{server.port}/x")
    assert response.status_code == 200 and response.text == "hello"
    only_one = EgressPolicy.parse("127.0.0.1/32")
    with egress_client(only_one, timeout=5) as client:
        assert client.get(f"http://127.0.0.1:{server.port}/y").status_code == 200
        with pytest.raises(EgressRefused, match=r"127\.0\.0\.2 \(loopback\)"):
            client.get(f"http://127.0.0.2:{server.port}/z")
    assert [r["path"] for r in server.requests] == ["/x", "/y"]


class ScriptedResolver:
    """A resolver answering from a script, one answer per lookup (the last one repeats):
    a name whose address changes between lookups, as in DNS rebinding."""

    def __init__(self, answers: Sequence[Sequence[str]]) -> None:
        self.answers = [list(a) for a in answers]
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        index = min(len(self.lookups), len(self.answers)) - 1
        return self.answers[index]


def test_the_checked_answer_is_the_one_connected_to(server: Server) -> None:
    """The name is resolved once per connection, the answer checked and connected to as is;
    the request still carries the name in its Host header."""
    resolver = ScriptedResolver([["127.0.0.1"], ["10.0.0.9"]])
    policy = EgressPolicy.parse("127.0.0.1/32")
    with egress_client(policy, timeout=5, resolve=resolver) as client:
        response = client.get(f"http://hooks.example:{server.port}/first")
        assert response.status_code == 200
        assert resolver.lookups == ["hooks.example"]
        client.close()  # a fresh connection resolves again; now to a private address
    with egress_client(policy, timeout=5, resolve=resolver) as client:
        with pytest.raises(EgressRefused, match=r"hooks\.example: 10\.0\.0\.9 \(private\)"):
            client.get(f"http://hooks.example:{server.port}/second")
    assert [r["path"] for r in server.requests] == ["/first"]
    assert server.requests[0]["Host"] == f"hooks.example:{server.port}"


def test_refused_answers_are_skipped_for_allowed_ones(server: Server) -> None:
    """A name answering a private and an allowed address is connected to the allowed one."""
    resolver = ScriptedResolver([["10.0.0.9", "127.0.0.1"]])
    policy = EgressPolicy.parse("127.0.0.1/32")
    with egress_client(policy, timeout=5, resolve=resolver) as client:
        assert client.get(f"http://mixed.example:{server.port}/ok").status_code == 200


def test_environment_proxies_are_not_used(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy would be the address checked instead of the destination: it is ignored."""
    monkeypatch.setenv("HTTP_PROXY", "http://10.255.255.1:3128")
    monkeypatch.setenv("ALL_PROXY", "http://10.255.255.1:3128")
    with egress_client(LOOPBACK, timeout=5) as client:
        assert client.get(f"http://127.0.0.1:{server.port}/direct").status_code == 200


# --------------------------------------------------------------------------------------------
# The `http` action.
# --------------------------------------------------------------------------------------------


def test_http_action_refuses_a_private_destination(server: Server) -> None:
    """The action fails with the refusal as its error; the server hears nothing."""
    outcome = send_request(
        {"url": f"http://127.0.0.1:{server.port}/x"},
        timeout_seconds=5,
        limits=HttpLimits(),
        redact=str,
    )
    assert outcome.code is None
    assert outcome.error is not None
    assert "refused to connect to 127.0.0.1 (loopback)" in outcome.error
    assert server.requests == []


@pytest.mark.timeout(60)
def test_a_huge_body_is_cut_at_the_cap_without_reading_it(server: Server) -> None:
    """512 MiB answered: the action keeps the cap, marks the cut and stops reading."""
    cap = 256 * 1024
    outcome = send_request(
        {"url": f"http://127.0.0.1:{server.port}/huge"},
        timeout_seconds=30,
        limits=HttpLimits(policy=LOOPBACK, body_cap=cap),
        redact=str,
    )
    assert outcome.error is None and outcome.code == 200
    assert outcome.truncated
    assert outcome.body.endswith(cut_marker(cap))
    kept = outcome.body.removesuffix(cut_marker(cap))
    assert set(kept) == {"é"}  # cut at a character boundary, nothing garbled
    assert cap - 2 <= len(kept.encode()) <= cap
    assert server.huge_done.wait(20)
    # The server could hand over only what the socket buffers took before the client left.
    assert server.sent < 64 * 1024 * 1024


def test_a_small_body_is_whole_and_unmarked(server: Server) -> None:
    outcome = send_request(
        {"url": f"http://127.0.0.1:{server.port}/small"},
        timeout_seconds=5,
        limits=HttpLimits(policy=LOOPBACK, body_cap=1024),
        redact=str,
    )
    assert (outcome.body, outcome.truncated) == ("hello", False)
