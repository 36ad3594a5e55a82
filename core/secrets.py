"""Secrets: encrypted at rest, masked on read, redacted from logs and output, encrypted in Temporal.

Values are encrypted with Fernet under the deployment's key. Two kinds of redactor keep plain
values out of what is written down: each process has one for its log lines, which learns every
value the process opens, and each run (each activity invocation) has its own for the run's
output and events, which learns only the values that run opened. Run output is never masked
with another run's secrets: a mask there would tell a tenant what some other run had opened.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

MASK = "********"
# Shorter values would redact ordinary words ("on", "yes") everywhere.
MIN_REDACTED_LENGTH = 4


class SecretError(Exception):
    """A secret could not be opened: wrong key or damaged ciphertext."""


class SecretBox:
    """Encrypts and decrypts secret values with the deployment's Fernet key."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())

    def encrypt(self, value: str) -> str:
        """Ciphertext of `value`, as text."""
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, token: str) -> str:
        """The plain value of `token`; the value is also registered for log redaction."""
        try:
            value = self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise SecretError("secret cannot be decrypted with RUNWRIGHT_SECRET_KEY") from exc
        log_redactor.add(value)
        return value

    def encrypt_bytes(self, data: bytes) -> bytes:
        """Ciphertext of raw bytes."""
        return self._fernet.encrypt(data)

    def decrypt_bytes(self, data: bytes) -> bytes:
        """Plain bytes of a ciphertext made by encrypt_bytes."""
        try:
            return self._fernet.decrypt(data)
        except InvalidToken as exc:
            raise SecretError("payload cannot be decrypted with RUNWRIGHT_SECRET_KEY") from exc


class Redactor:
    """Replaces every known secret value in text with the mask.

    `forward_to` also learns each value added here: a run's redactor forwards to the log
    redactor, so what the run derived from its secrets stays out of the worker's logs too.
    """

    def __init__(self, *, forward_to: Redactor | None = None) -> None:
        self._values: set[str] = set()
        self._ordered: list[str] = []
        self._lock = threading.Lock()
        self._forward_to = forward_to

    def add(self, value: str) -> None:
        """Remember a plain secret value (and each of its lines, for multi-line keys)."""
        if self._forward_to is not None:
            self._forward_to.add(value)
        candidates = {value, *value.splitlines()}
        with self._lock:
            fresh = {
                v.strip() for v in candidates if len(v.strip()) >= MIN_REDACTED_LENGTH
            } - self._values
            if fresh:
                self._values |= fresh
                # Longest first, so a value containing another is masked whole.
                self._ordered = sorted(self._values, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """`text` with every known secret replaced by the mask."""
        for value in self._ordered:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def redact_any(self, value: Any) -> Any:
        """Redact every string inside a JSON-like structure."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {k: self.redact_any(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_any(v) for v in value]
        return value


# One per process, for log lines only: it knows every value this process has opened, for any
# run. Run output uses a run's own redactor (run_redactor), never this one.
log_redactor = Redactor()


def run_redactor() -> Redactor:
    """A fresh redactor for one run's output, teaching the log redactor what it learns."""
    return Redactor(forward_to=log_redactor)


class RedactingFilter(logging.Filter):
    """A logging filter that masks known secrets in the rendered message."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - args that do not fit the format, or a bad __str__
            # A filter that raises would throw into the caller's logging call; render what we
            # can instead, so the line is still written, redacted.
            message = f"{record.msg} {record.args!r}"
            record.msg, record.args = log_redactor.redact(message), None
        else:
            clean = log_redactor.redact(message)
            if clean != message:
                record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = log_redactor.redact(
                logging.Formatter().formatException(record.exc_info)
            )
        elif record.exc_text:
            record.exc_text = log_redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = log_redactor.redact(record.stack_info)
        return True


def install_log_redaction(loggers: Iterable[logging.Logger] | None = None) -> None:
    """Attach the redacting filter to every handler of the root and of the given loggers.

    Filters go on handlers, not loggers: a logger's filter misses records its children
    propagate, and libraries such as uvicorn bring loggers with handlers of their own.
    """
    for logger in (logging.getLogger(), *(loggers or ())):
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())


def mask(value: Any) -> Any:
    """The masked form of a secret value: the mask when set, as given when empty."""
    return MASK if value not in (None, "") else value


ENCRYPTED_ENCODING = b"binary/encrypted-fernet"


class EncryptionCodec(PayloadCodec):
    """Encrypts every Temporal payload, so histories and the UI never show inputs in plain text."""

    def __init__(self, key: str) -> None:
        self._box = SecretBox(key)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Encrypt each payload whole (metadata and data)."""
        return [
            Payload(
                metadata={"encoding": ENCRYPTED_ENCODING},
                data=self._box.encrypt_bytes(p.SerializeToString()),
            )
            for p in payloads
        ]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Decrypt payloads this codec encrypted; pass others through (older histories)."""
        out: list[Payload] = []
        for p in payloads:
            if p.metadata.get("encoding") != ENCRYPTED_ENCODING:
                out.append(p)
                continue
            decoded = Payload()
            decoded.ParseFromString(self._box.decrypt_bytes(p.data))
            out.append(decoded)
        return out


SECRET_REF = "secretRef"  # noqa: S105 - the key naming a reference, not a secret


def is_ref(value: Any) -> bool:
    """Whether `value` is a stored secret reference `{"secretRef": id}`."""
    return isinstance(value, dict) and set(value) == {SECRET_REF}


def resolve_refs(value: Any, open_ref: Callable[[str], str]) -> Any:
    """`value` with every secret reference replaced by its plain value."""
    if is_ref(value):
        return open_ref(value[SECRET_REF])
    if isinstance(value, dict):
        return {k: resolve_refs(v, open_ref) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_refs(v, open_ref) for v in value]
    return value


def mask_refs(value: Any) -> Any:
    """`value` as shown to API clients: every secret reference becomes the mask."""
    if is_ref(value):
        return MASK
    if isinstance(value, dict):
        return {k: mask_refs(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_refs(v) for v in value]
    return value


def refs_in(value: Any) -> list[str]:
    """Every secret reference id inside `value`, in order."""
    if is_ref(value):
        return [value[SECRET_REF]]
    if isinstance(value, dict):
        return [ref for v in value.values() for ref in refs_in(v)]
    if isinstance(value, list):
        return [ref for v in value for ref in refs_in(v)]
    return []
