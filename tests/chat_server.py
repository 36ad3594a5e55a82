"""A loopback HTTP server speaking OpenAI's chat completions wire format, for planner tests.

POST /v1/chat/completions answers the next scripted reply (status, assistant text) as
`{choices: [{message: {role, content}}]}`; every request is kept (path, headers, JSON body)
so a test asserts what the planner sent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class ChatRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class ChatServer:
    """The server's base URL (`.../v1`), the replies still to give, what it received."""

    url: str = ""
    replies: list[tuple[int, str]] = field(default_factory=list)
    received: list[ChatRequest] = field(default_factory=list)


class _ChatHandler(BaseHTTPRequestHandler):
    server_state: ChatServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        state = self.server_state
        state.received.append(ChatRequest(self.path, dict(self.headers.items()), body))
        if self.path != "/v1/chat/completions":
            status, payload = 404, {"error": {"message": "unknown path"}}
        elif not state.replies:
            status, payload = 500, {"error": {"message": "no reply scripted"}}
        else:
            status, text = state.replies.pop(0)
            payload = (
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "model": body.get("model"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                }
                if status == 200
                else {"error": {"message": text}}
            )
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean


@contextmanager
def chat_server(*replies: tuple[int, str]) -> Iterator[ChatServer]:
    """Serve `replies` in order on a free loopback port; yields the state with its URL."""
    state = ChatServer(replies=list(replies))
    handler = type("ChatHandler", (_ChatHandler,), {"server_state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
