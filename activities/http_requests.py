"""The `http` action: one request through httpx, its response as the result."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

BODY_CAP = 256 * 1024


@dataclass(frozen=True)
class HttpOutcome:
    """The response, or why there was none."""

    code: int | None
    body: str
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None


def headers_of(spec: Mapping[str, Any]) -> dict[str, str]:
    """Headers from a map or Mission Control's `[{name, value}]` list."""
    raw = spec.get("headers") or {}
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    return {str(h["name"]): str(h.get("value", "")) for h in raw}


def send_request(
    spec: Mapping[str, Any], *, timeout_seconds: float | None, redact: Callable[[str], str]
) -> HttpOutcome:
    """Send the request the spec describes; a status of 400 or more fails the action.

    `redact` is the run's own redactor: what the response echoes of the run's secrets is masked.
    """
    method = str(spec.get("method") or "GET").upper()
    body = spec.get("body")
    try:
        response = httpx.request(
            method,
            str(spec["url"]),
            headers=headers_of(spec),
            content=body.encode() if isinstance(body, str) else None,
            json=body if isinstance(body, dict | list) else None,
            timeout=timeout_seconds or 60.0,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        return HttpOutcome(
            code=None, body="", error=redact(f"request to {spec['url']} failed: {exc}")
        )
    # Redacted before the cut, so a value straddling the cap leaves no visible prefix.
    text = redact(response.text)[:BODY_CAP]
    error = f"HTTP {response.status_code}" if response.status_code >= 400 else None
    # A server may echo what it was sent (an Authorization header) back in its headers.
    headers = {k: redact(v) for k, v in response.headers.items()}
    return HttpOutcome(code=response.status_code, body=text, headers=headers, error=error)
