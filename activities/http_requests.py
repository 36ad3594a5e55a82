"""The `http` action: one request through httpx, its response as the result.

The URL is the author's, so the request goes through `core.egress` (no loopback, private or
metadata addresses unless allowed). The body is streamed and kept up to a cap: a response of
any size costs at most the cap in memory, and what is cut is marked.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from core.egress import EgressPolicy, EgressRefused, egress_client

DEFAULT_BODY_CAP = 1024 * 1024
# Read this far past the cap before redacting, so a secret straddling the cut is still whole
# when it is masked and leaves no visible prefix (multi-line keys are masked line by line).
REDACT_LOOKAHEAD = 64 * 1024


@dataclass(frozen=True)
class HttpLimits:
    """What an `http` action may reach, and how much of an answer it keeps."""

    policy: EgressPolicy = field(default_factory=EgressPolicy)
    body_cap: int = DEFAULT_BODY_CAP


@dataclass(frozen=True)
class HttpOutcome:
    """The response, or why there was none."""

    code: int | None
    body: str
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    truncated: bool = False


def headers_of(spec: Mapping[str, Any]) -> dict[str, str]:
    """Headers from a map or Mission Control's `[{name, value}]` list."""
    raw = spec.get("headers") or {}
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    return {str(h["name"]): str(h.get("value", "")) for h in raw}


def cut_marker(cap: int) -> str:
    """What ends a body that was cut at `cap` bytes."""
    return f"\n[runwright: response body cut at {cap} bytes]"


def read_capped(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """At most `limit` bytes of a streamed body, and whether more was there (left unread)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False


def decode_body(
    data: bytes, encoding: str, cap: int, redact: Callable[[str], str]
) -> tuple[str, bool]:
    """`data` as text, redacted, then cut to `cap` bytes at a character boundary; and
    whether it was cut."""
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = redact(decoder.decode(data, final=False))
    encoded = text.encode("utf-8")
    if len(encoded) <= cap:
        return text, False
    return encoded[:cap].decode("utf-8", errors="ignore"), True


def send_request(
    spec: Mapping[str, Any],
    *,
    timeout_seconds: float | None,
    limits: HttpLimits,
    redact: Callable[[str], str],
) -> HttpOutcome:
    """Send the request the spec describes; a status of 400 or more fails the action.

    `redact` is the run's own redactor: what the response echoes of the run's secrets is masked.
    """
    method = str(spec.get("method") or "GET").upper()
    body = spec.get("body")
    url = str(spec["url"])
    try:
        with (
            egress_client(limits.policy, timeout=timeout_seconds or 60.0) as client,
            client.stream(
                method,
                url,
                headers=headers_of(spec),
                content=body.encode() if isinstance(body, str) else None,
                json=body if isinstance(body, dict | list) else None,
            ) as response,
        ):
            data, more = read_capped(response, limits.body_cap + REDACT_LOOKAHEAD)
            encoding = response.encoding or "utf-8"
    except (httpx.HTTPError, httpx.InvalidURL, EgressRefused) as exc:
        return HttpOutcome(code=None, body="", error=redact(f"request to {url} failed: {exc}"))
    text, cut = decode_body(data, encoding, limits.body_cap, redact)
    truncated = more or cut
    if truncated:
        text += cut_marker(limits.body_cap)
    error = f"HTTP {response.status_code}" if response.status_code >= 400 else None
    # A server may echo what it was sent (an Authorization header) back in its headers.
    headers = {k: redact(v) for k, v in response.headers.items()}
    return HttpOutcome(
        code=response.status_code, body=text, headers=headers, error=error, truncated=truncated
    )
