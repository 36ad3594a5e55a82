"""Secrets in memory: encryption, redaction of text and log records, the payload codec, refs.

The process-wide log redactor is shared with every other test, so each test that feeds it uses
a value of its own that appears nowhere else.
"""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from cryptography.fernet import Fernet
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter

from activities import event_log
from core.events import EventRecord
from core.secrets import (
    ENCRYPTED_ENCODING,
    MASK,
    EncryptionCodec,
    RedactingFilter,
    Redactor,
    SecretBox,
    SecretError,
    is_ref,
    log_redactor,
    mask,
    mask_refs,
    refs_in,
    resolve_refs,
    run_redactor,
)

SECRET = "s3cr3t-Value-9f2c"


def unique(prefix: str) -> str:
    """A secret value no other test registers with the process-wide log redactor."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# --------------------------------------------------------------------------------------------
# SecretBox
# --------------------------------------------------------------------------------------------


def test_box_round_trip_hides_the_value() -> None:
    """A value encrypted by a box decrypts to itself; the ciphertext does not contain it."""
    # decrypt() teaches the process-wide log redactor the value: keep SECRET out of it.
    value = unique("round-trip")
    box = SecretBox(Fernet.generate_key().decode())
    token = box.encrypt(value)
    assert value not in token
    assert box.decrypt(token) == value


def test_box_encrypts_the_same_value_differently_each_time() -> None:
    """Two encryptions of one value differ, so equal secrets are not visible as equal rows."""
    box = SecretBox(Fernet.generate_key().decode())
    assert box.encrypt(SECRET) != box.encrypt(SECRET)


def test_box_with_the_wrong_key_raises_secret_error() -> None:
    """A ciphertext opened with another key raises SecretError, not a Fernet exception."""
    token = SecretBox(Fernet.generate_key().decode()).encrypt(SECRET)
    with pytest.raises(SecretError):
        SecretBox(Fernet.generate_key().decode()).decrypt(token)


def test_box_damaged_ciphertext_raises_secret_error() -> None:
    """A tampered ciphertext raises SecretError."""
    box = SecretBox(Fernet.generate_key().decode())
    token = box.encrypt(SECRET)
    damaged = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    with pytest.raises(SecretError):
        box.decrypt(damaged)


def test_box_bytes_round_trip_and_wrong_key() -> None:
    """Raw bytes round trip under one key and raise SecretError under another."""
    box = SecretBox(Fernet.generate_key().decode())
    data = box.encrypt_bytes(SECRET.encode())
    assert SECRET.encode() not in data
    assert box.decrypt_bytes(data) == SECRET.encode()
    with pytest.raises(SecretError):
        SecretBox(Fernet.generate_key().decode()).decrypt_bytes(data)


def test_box_decrypt_registers_the_value_for_log_redaction() -> None:
    """Opening a secret registers it with the process-wide log redactor, not with run output."""
    value = unique("opened")
    box = SecretBox(Fernet.generate_key().decode())
    box.decrypt(box.encrypt(value))
    assert log_redactor.redact(f"x={value};") == f"x={MASK};"
    assert run_redactor().redact(f"x={value};") == f"x={value};"


def test_run_redactors_are_separate_and_teach_the_log_redactor() -> None:
    """What one run's redactor learns masks that run's text and log lines, never another run's."""
    value = unique("run-a-only")
    run_a, run_b = run_redactor(), run_redactor()
    run_a.add(value)
    assert run_a.redact(f"a {value}") == f"a {MASK}"
    assert run_b.redact(f"b {value}") == f"b {value}"
    assert log_redactor.redact(f"log {value}") == f"log {MASK}"


# --------------------------------------------------------------------------------------------
# Redactor
# --------------------------------------------------------------------------------------------


def test_redactor_masks_every_occurrence() -> None:
    """Every occurrence of a known value is replaced by the mask."""
    r = Redactor()
    r.add(SECRET)
    assert r.redact(f"a {SECRET} b {SECRET}") == f"a {MASK} b {MASK}"


def test_redactor_masks_the_longest_value_first() -> None:
    """A value containing another known value is masked whole, not partly."""
    r = Redactor()
    r.add("s3cr3t")
    r.add(SECRET)
    assert r.redact(f"token={SECRET}") == f"token={MASK}"
    assert r.redact("token=s3cr3t!") == f"token={MASK}!"


def test_redactor_masks_each_line_of_a_multi_line_value() -> None:
    """Each line of a multi-line key is masked, as output shows them one line at a time."""
    key = "-----BEGIN KEY-----\nAAAAb3BlbnNzaC1rZXk\nQQQQc2VjcmV0LWJvZHk\n-----END KEY-----\n"
    r = Redactor()
    r.add(key)
    assert r.redact(key).strip() == MASK
    assert r.redact("line: AAAAb3BlbnNzaC1rZXk\n") == f"line: {MASK}\n"
    assert r.redact("  QQQQc2VjcmV0LWJvZHk  ") == f"  {MASK}  "


def test_redactor_ignores_values_shorter_than_four_characters() -> None:
    """Values under four characters (and blank lines of a key) are not redacted."""
    r = Redactor()
    r.add("abc")
    r.add("   ")
    r.add("ab\n\nxyz9")
    assert r.redact("abc yes ab") == "abc yes ab"
    assert r.redact("xyz9") == MASK


def test_redactor_masks_strings_inside_structures() -> None:
    """redact_any masks strings nested in dicts and lists and leaves other values alone."""
    r = Redactor()
    r.add(SECRET)
    value = {"a": [SECRET, {"b": f"x{SECRET}"}], "n": 3, "t": (SECRET,)}
    assert r.redact_any(value) == {"a": [MASK, {"b": f"x{MASK}"}], "n": 3, "t": [MASK]}


def test_mask_hides_set_values_only() -> None:
    """mask() gives the mask for a set value and leaves empty values as they are."""
    assert mask(SECRET) == MASK
    assert mask("") == ""
    assert mask(None) is None


# --------------------------------------------------------------------------------------------
# RedactingFilter on a real logger
# --------------------------------------------------------------------------------------------


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of its own whose one handler, behind the redacting filter, writes to a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger(f"test.secrets.{uuid.uuid4().hex}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(handler)
    yield logger, buffer
    logger.removeHandler(handler)


def test_filter_masks_the_message(captured: tuple[logging.Logger, io.StringIO]) -> None:
    """A secret written into the message itself is masked."""
    logger, buffer = captured
    value = unique("in-message")
    log_redactor.add(value)
    logger.info(f"connecting with {value}")
    assert value not in buffer.getvalue()
    assert f"connecting with {MASK}" in buffer.getvalue()


def test_filter_masks_the_args(captured: tuple[logging.Logger, io.StringIO]) -> None:
    """A secret passed as a %-argument is masked in the rendered line."""
    logger, buffer = captured
    value = unique("in-args")
    log_redactor.add(value)
    logger.warning("env %s=%s", "TOKEN", value)
    assert value not in buffer.getvalue()
    assert f"env TOKEN={MASK}" in buffer.getvalue()


def test_filter_masks_exception_text(captured: tuple[logging.Logger, io.StringIO]) -> None:
    """A secret in an exception's message is masked in the logged traceback."""
    logger, buffer = captured
    value = unique("in-exception")
    log_redactor.add(value)
    try:
        raise RuntimeError(f"login refused for {value}")
    except RuntimeError:
        logger.exception("request failed")
    text = buffer.getvalue()
    assert value not in text
    assert "Traceback" in text
    assert f"login refused for {MASK}" in text


def test_filter_masks_stack_info(captured: tuple[logging.Logger, io.StringIO]) -> None:
    """A secret in a record's stack text is masked."""
    logger, buffer = captured
    value = unique("in-stack")
    log_redactor.add(value)
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "with stack", (), None)
    record.stack_info = f"Stack (most recent call last):\n  call(token={value!r})"
    logger.handle(record)
    assert value not in buffer.getvalue()
    assert MASK in buffer.getvalue()


def test_filter_survives_args_that_do_not_fit(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    """A logging call whose args do not fit its format neither raises nor leaks the value."""
    logger, buffer = captured
    value = unique("misfit")
    log_redactor.add(value)
    logger.info("token %s and %s", value)  # one argument short
    assert value not in buffer.getvalue()
    assert MASK in buffer.getvalue()


def test_filter_leaves_clean_records_alone(captured: tuple[logging.Logger, io.StringIO]) -> None:
    """A record without secrets keeps its message and args."""
    logger, buffer = captured
    logger.info("%d actions in %s", 3, "run-1")
    assert buffer.getvalue() == "INFO 3 actions in run-1\n"


# --------------------------------------------------------------------------------------------
# EventLog: what a run stores of its events
# --------------------------------------------------------------------------------------------


def test_event_log_redacts_every_text_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """An event's message, data, host and task are stored with known secrets masked."""
    stored: list[EventRecord] = []

    @contextmanager
    def no_db(_factory: Any) -> Iterator[None]:
        yield None

    def append(_session: Any, _run_id: str, batch: list[EventRecord], **_: Any) -> int:
        stored.extend(batch)
        return len(stored)

    monkeypatch.setattr(event_log, "transaction", no_db)
    monkeypatch.setattr(event_log, "append_events", append)
    monkeypatch.setattr(event_log, "event_usage", lambda *_: (0, 0, False))
    value = unique("event")
    redactor = Redactor()
    redactor.add(value)
    log = event_log.EventLog(
        sessions=None,  # type: ignore[arg-type]
        run_id="run-1",
        action_idx=0,
        redactor=redactor,
    )
    log.emit(
        EventRecord(
            event_type="runner_on_ok",
            message=f"ok: {value}",
            host=f"web-{value}",
            task=f"login with {value}",
            data={"result": {"stdout": [f"x{value}"]}},
        )
    )
    log.flush()
    (event,) = stored
    assert value not in repr(event)
    assert (event.message, event.host, event.task) == (
        f"ok: {MASK}",
        f"web-{MASK}",
        f"login with {MASK}",
    )
    assert event.data == {"result": {"stdout": [f"x{MASK}"]}}


# --------------------------------------------------------------------------------------------
# EncryptionCodec
# --------------------------------------------------------------------------------------------


async def test_codec_round_trip() -> None:
    """Payloads encoded then decoded by the codec come back identical."""
    codec = EncryptionCodec(Fernet.generate_key().decode())
    payloads = DataConverter.default.payload_converter.to_payloads([{"token": SECRET}, "plain", 42])
    decoded = await codec.decode(await codec.encode(payloads))
    assert decoded == list(payloads)


async def test_codec_encodes_without_the_plain_value() -> None:
    """Encoded payloads carry the encrypted encoding and none of their bytes hold the value."""
    codec = EncryptionCodec(Fernet.generate_key().decode())
    payloads = DataConverter.default.payload_converter.to_payloads([{"token": SECRET}])
    assert SECRET.encode() in payloads[0].SerializeToString()
    encoded = await codec.encode(payloads)
    for p in encoded:
        assert p.metadata["encoding"] == ENCRYPTED_ENCODING
        assert SECRET.encode() not in p.SerializeToString()
        assert b"json/plain" not in p.SerializeToString()


async def test_codec_passes_unencrypted_payloads_through() -> None:
    """Payloads the codec did not encrypt (older histories) decode as they are."""
    codec = EncryptionCodec(Fernet.generate_key().decode())
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'"x"')
    assert await codec.decode([plain]) == [plain]


async def test_codec_with_the_wrong_key_raises_secret_error() -> None:
    """A payload encrypted under one key cannot be decoded under another."""
    payloads = DataConverter.default.payload_converter.to_payloads([SECRET])
    encoded = await EncryptionCodec(Fernet.generate_key().decode()).encode(payloads)
    with pytest.raises(SecretError):
        await EncryptionCodec(Fernet.generate_key().decode()).decode(encoded)


# --------------------------------------------------------------------------------------------
# Secret references
# --------------------------------------------------------------------------------------------

SPEC = {
    "script": "echo",
    "env": [
        {"name": "TOKEN", "value": {"secretRef": "r1"}},
        {"name": "PLAIN", "value": "visible"},
    ],
    "headers": [{"name": "Authorization", "value": {"secretRef": "r2"}}],
    "nested": {"deep": [{"secretRef": "r3"}]},
    "notARef": {"secretRef": "r4", "extra": 1},
}


def test_is_ref_needs_exactly_the_one_key() -> None:
    """Only a dict with the single key secretRef is a reference."""
    assert is_ref({"secretRef": "r1"})
    assert not is_ref({"secretRef": "r1", "extra": 1})
    assert not is_ref("r1")
    assert not is_ref({})


def test_refs_in_lists_every_reference_in_order() -> None:
    """refs_in finds references at any depth, in document order, and nothing else."""
    assert refs_in(SPEC) == ["r1", "r2", "r3"]
    assert refs_in("plain") == []


def test_mask_refs_replaces_references_with_the_mask() -> None:
    """mask_refs shows each reference as the mask and leaves every other value alone."""
    masked = mask_refs(SPEC)
    assert masked["env"] == [
        {"name": "TOKEN", "value": MASK},
        {"name": "PLAIN", "value": "visible"},
    ]
    assert masked["headers"][0]["value"] == MASK
    assert masked["nested"] == {"deep": [MASK]}
    assert masked["notARef"] == {"secretRef": "r4", "extra": 1}
    assert SPEC["env"][0]["value"] == {"secretRef": "r1"}  # type: ignore[index]


def test_resolve_refs_opens_each_reference() -> None:
    """resolve_refs replaces each reference with the value its opener returns."""
    values = {"r1": SECRET, "r2": "Bearer abc", "r3": "deep-value"}
    opened: list[str] = []

    def open_ref(ref: str) -> str:
        opened.append(ref)
        return values[ref]

    resolved = resolve_refs(SPEC, open_ref)
    assert resolved["env"][0] == {"name": "TOKEN", "value": SECRET}
    assert resolved["env"][1] == {"name": "PLAIN", "value": "visible"}
    assert resolved["headers"][0]["value"] == "Bearer abc"
    assert resolved["nested"] == {"deep": ["deep-value"]}
    assert resolved["notARef"] == {"secretRef": "r4", "extra": 1}
    assert opened == ["r1", "r2", "r3"]
