"""The shared field kit: what each reader takes, and the message naming the field otherwise."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from api import fields
from api.fields import FieldError
from api.runner.fields import decode_key, host_id

Reader = Callable[[Any], Any]
KEY = "LS0tLS1CRUdJTiBLRVktLS0tLQ=="  # base64 of "-----BEGIN KEY-----"
REF = {"secretRef": "s-1"}


def test_field_error_names_its_path() -> None:
    """`str` is `<path>: <message>`; the parts stay apart for a dialect's own shape."""
    exc = FieldError("params.command", "is required")
    assert str(exc) == "params.command: is required"
    assert (exc.path, exc.message) == ("params.command", "is required")
    assert str(FieldError("", "missing required parameter(s): a,b")) == (
        "missing required parameter(s): a,b"
    )


@pytest.mark.parametrize(
    ("read", "value", "expected"),
    [
        (partial(fields.obj, path="p"), None, {}),
        (partial(fields.obj, path="p"), {"a": 1}, {"a": 1}),
        (partial(fields.array, path="p"), None, []),
        (partial(fields.array, path="p", max_items=2), [1, 2], [1, 2]),
        (partial(fields.text, path="p"), None, ""),
        (partial(fields.text, path="p"), "", ""),
        (partial(fields.text, path="p", max_len=3), "abc", "abc"),
        (partial(fields.string_list, path="p"), None, []),
        (partial(fields.string_list, path="p", max_len=2), ["ab", ""], ["ab", ""]),
        (partial(fields.flag, path="p"), None, False),
        (partial(fields.flag, path="p", default=True), None, True),
        (partial(fields.flag, path="p", default=True), False, False),
        (partial(fields.choice, path="p", choices=("a", "b"), default="a"), None, "a"),
        (partial(fields.choice, path="p", choices=("a", "b")), "b", "b"),
        (partial(fields.integer, path="p", low=1, high=10, default=3), None, 3),
        (partial(fields.integer, path="p", low=1, high=10), 10, 10),
        (partial(fields.integer, path="p", low=1, high=10), 2.0, 2),
        (partial(fields.number, path="p", low=0, high=1.5), 1.5, 1.5),
        (partial(fields.number, path="p", low=0, high=9, default=0.0), None, 0.0),
        (partial(fields.plain_data, path="p"), {"a": [1, {"b": None}]}, {"a": [1, {"b": None}]}),
        (partial(fields.plain_data, path="p", max_bytes=7), {"a": 1}, {"a": 1}),
        (partial(fields.plain_data, path="p", max_depth=2), {"a": [1]}, {"a": [1]}),
        (partial(decode_key, path="p"), KEY, "-----BEGIN KEY-----"),
        (partial(host_id, path="p"), "web-1.example.com", "web-1.example.com"),
    ],
)
def test_readers_take(read: Reader, value: Any, expected: Any) -> None:
    """Each reader returns the value it takes, or its default when the value is absent."""
    assert read(value) == expected


@pytest.mark.parametrize(
    ("read", "value", "message"),
    [
        (partial(fields.obj, path="body", required=True), None, "body: is required"),
        (partial(fields.obj, path="body"), [1], "body: must be an object"),
        (partial(fields.array, path="hosts", required=True), None, "hosts: is required"),
        (partial(fields.array, path="hosts"), "web", "hosts: must be an array"),
        (partial(fields.array, path="x", expect="a list"), {}, "x: must be a list"),
        (partial(fields.array, path="x", max_items=1), [1, 2], "x: must have at most 1 items"),
        (partial(fields.text, path="params.command", required=True), "", (
            "params.command: is required")),
        (partial(fields.text, path="name"), 7, "name: must be a string"),
        (partial(fields.text, path="d", max_len=3), "abcd", "d: must be at most 3 characters"),
        (partial(fields.text, path="c", allow_nul=False), "a\0b", (
            "c: must not contain a NUL character")),
        (partial(fields.string_list, path="r"), "dba", "r: must be a list of strings"),
        (partial(fields.string_list, path="r"), ["a", 1], "r: must be a list of strings"),
        (partial(fields.string_list, path="r", required=True), None, "r: is required"),
        (partial(fields.string_list, path="r", max_items=1), ["a", "b"], (
            "r: must have at most 1 items")),
        (partial(fields.string_list, path="r", max_len=1), ["a", "bc"], (
            "r[1]: must be at most 1 characters")),
        (partial(fields.flag, path="f"), "yes", "f: must be true or false"),
        (partial(fields.choice, path="t", choices=("any", "all")), "most", "t: must be any or all"),
        (partial(fields.choice, path="t", choices=("a", "b", "c")), "d", "t: must be a, b or c"),
        (partial(fields.choice, path="t", choices=("a",)), None, "t: is required"),
        (partial(fields.integer, path="n", low=1, high=9), None, "n: is required"),
        (partial(fields.integer, path="n", low=1, high=9), True, "n: must be a whole number"),
        (partial(fields.integer, path="n", low=1, high=9, unit="minutes"), 1.5, (
            "n: must be a whole number of minutes")),
        (partial(fields.integer, path="n", low=1, high=1_000_000, unit="s"), 0, (
            "n: must be between 1 and 1000000 s")),
        (partial(fields.number, path="e", low=0, high=86_400.0, unit="seconds"), "1", (
            "e: must be a number of seconds")),
        (partial(fields.number, path="e", low=0, high=9), float("nan"), "e: must be a number"),
        (partial(fields.number, path="e", low=0, high=0.5), 1, "e: must be between 0 and 0.5"),
        (partial(fields.plain_data, path="v"), {"a": [REF]}, (
            'v.a[0]: objects of the form {"secretRef": ...} are not accepted')),
        (partial(fields.plain_data, path="v", max_depth=2), {"a": [[1]]}, (
            "v.a[0]: nests objects and arrays more than 2 levels deep")),
        (partial(fields.plain_data, path="v", max_bytes=6), {"a": 1}, (
            "v: must be at most 6 bytes as JSON, not 7")),
        (partial(fields.plain_data, path="v", max_bytes=4), ["é"], (
            "v: must be at most 4 bytes as JSON, not 6")),
        (partial(host_id, path="hosts[0].id"), "web[1:3]", (
            "hosts[0].id: 'web[1:3]' must be a host name or address (letters, digits, '.', "
            "'-', '_', ':')")),
    ],
)  # fmt: skip
def test_readers_refuse(read: Reader, value: Any, message: str) -> None:
    """A value a reader cannot take: FieldError whose text starts with the field's path."""
    with pytest.raises(FieldError) as caught:
        read(value)
    assert str(caught.value) == message


def test_deep_data_is_refused_not_crashed() -> None:
    """Nesting far beyond the limit is a FieldError, not a RecursionError."""
    deep: Any = 1
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(FieldError, match="more than 32 levels deep"):
        fields.plain_data(deep, "body")


def test_only_keys_names_the_unknown_field() -> None:
    """A key outside the allowed ones is named with its path and the known ones listed."""
    fields.only_keys({"command": "x"}, "params", ("command", "timeout"))
    with pytest.raises(FieldError) as caught:
        fields.only_keys({"command": "x", "cmd": "y"}, "params", ("command", "timeout"))
    assert str(caught.value) == "params.cmd: is not a known field (known: command, timeout)"


@pytest.mark.parametrize(
    ("value", "read", "message"),
    [
        (42, decode_key, "k: must be a base64 string"),
        ("%%", decode_key, "k: is not valid base64"),
        ("/w==", decode_key, "k: must be a base64-encoded private key (text)"),
        ("ICAg", decode_key, "k: is empty once decoded"),
        (["x"], fields.text, "k: must be a string"),
        ("********", fields.text, "k: is masked (********); send the value itself"),
    ],
)
def test_secret_refusals(value: Any, read: fields.Read, message: str) -> None:
    """A secret that cannot be read, or a mask with nothing stored: nothing is stored."""
    stored: list[str] = []

    def put(plain: str) -> str:
        stored.append(plain)
        return "s-new"

    with pytest.raises(FieldError) as caught:
        fields.secret(value, "k", put, read=read)
    assert str(caught.value) == message
    assert stored == []


@pytest.mark.parametrize(
    ("value", "previous", "read", "expected", "stored"),
    [
        (None, REF, fields.text, None, []),
        ("", REF, fields.text, None, []),
        ("********", REF, fields.text, REF, []),
        ("hunter2", REF, fields.text, {"secretRef": "s-new"}, ["hunter2"]),
        (KEY, None, decode_key, {"secretRef": "s-new"}, ["-----BEGIN KEY-----"]),
    ],
)
def test_secret_becomes_a_reference(
    value: Any, previous: Any, read: fields.Read, expected: Any, stored: list[str]
) -> None:
    """A value is stored and replaced by its reference; the mask keeps the previous one."""
    seen: list[str] = []

    def put(plain: str) -> str:
        seen.append(plain)
        return "s-new"

    assert fields.secret(value, "k", put, previous=previous, read=read) == expected
    assert seen == stored
