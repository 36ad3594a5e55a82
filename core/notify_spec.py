"""The `notify` action's spec, checked: which secrets hold the channel URLs, and the message.

Pure, so an API can refuse a bad title or body when a notification is defined, with the same
limits and messages the worker applies when it sends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_TEXT_BYTES = 64 * 1024
MAX_CHANNELS = 32


class NotifySpecError(ValueError):
    """The spec cannot be sent; the message names the field and quotes no URL."""


@dataclass(frozen=True)
class NotifyRequest:
    """A checked spec: secret ids of the channel URLs, and the message."""

    refs: list[str]
    title: str
    body: str


def _text(spec: Mapping[str, Any], key: str, *, required: bool) -> str:
    value = spec.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise NotifySpecError(f"{key} must be a string")
    if required and not value.strip():
        raise NotifySpecError(f"{key} must not be empty")
    if len(value.encode()) > MAX_TEXT_BYTES:
        raise NotifySpecError(f"{key} is longer than {MAX_TEXT_BYTES} bytes")
    return value


def parse_spec(spec: Mapping[str, Any]) -> NotifyRequest:
    """The request a `notify` spec makes; NotifySpecError naming the first bad field."""
    refs = spec.get("urls_ref")
    if not isinstance(refs, list) or not refs:
        raise NotifySpecError("urls_ref must be a non-empty list of secret ids")
    if len(refs) > MAX_CHANNELS:
        raise NotifySpecError(f"urls_ref holds more than {MAX_CHANNELS} channels")
    for i, ref in enumerate(refs):
        if not isinstance(ref, str) or not ref:
            raise NotifySpecError(f"urls_ref[{i}] must be a secret id")
    return NotifyRequest(
        refs=list(refs),
        title=_text(spec, "title", required=False),
        body=_text(spec, "body", required=True),
    )
