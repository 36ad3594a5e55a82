"""Notification channel URLs: which ones runwright accepts (and why not), how they are shown,
what of them is a credential; the `notify` spec's rules; the host a channel connects to."""

from __future__ import annotations

from typing import Any

import pytest

from activities.notifications import destination_host, hidden_parts, host_refusal
from core.egress import EgressPolicy
from core.notify_spec import (
    MAX_CHANNELS,
    MAX_TEXT_BYTES,
    NotifyRequest,
    NotifySpecError,
    parse_spec,
)
from core.notify_urls import MAX_URL_LENGTH, channel_plugin, check_channel, masked

SECRET = "Pw-7c1d9e"

CHANNELS: list[tuple[str, str | None]] = [
    (f"json://hook:{SECRET}@127.0.0.1:8080/deploys", None),
    (f"jsons://hook:{SECRET}@hooks.example.com/x", None),
    (f"mailto://ops:{SECRET}@127.0.0.1:2525?to=dev@example.com&from=ops@example.com", None),
    (f"mailto://ops:{SECRET}@gmail.com", None),
    (f"discord://1234567/{SECRET}", None),
    (f"tgram://123456789:ABCdefGHIjklMNOpqrSTUvwxYZ012345678/{SECRET}", None),
    ("", "is empty"),
    ("   ", "is empty"),
    ("json://" + "a" * MAX_URL_LENGTH, f"is longer than {MAX_URL_LENGTH} characters"),
    (f"hook:{SECRET}@example.com", "is not a notification URL (scheme://...)"),
    (f"://{SECRET}", "is not a notification URL (scheme://...)"),
    (f"gopher://{SECRET}", "its scheme is not a notification service Apprise knows"),
    (f"https://{SECRET}@example.com", "its scheme is not a notification service Apprise knows"),
    (f"{SECRET}://x", "its scheme is not a notification service Apprise knows"),
    ("syslog://", "syslog:// notifies the worker's own machine, not a remote service"),
    ("windows://", "windows:// notifies the worker's own machine, not a remote service"),
    (
        f"rsyslog://{SECRET}.example.com",
        "rsyslog:// connects through a library whose connections the egress rules cannot check",
    ),
    (
        f"mqtt://u:{SECRET}@broker.example.com/topic",
        "mqtt:// connects through a library whose connections the egress rules cannot check",
    ),
    ("json://", "json:// URL is not in a form Apprise accepts for that service"),
    ("discord://", "discord:// URL is not in a form Apprise accepts for that service"),
    (f"mailto://{SECRET}", "mailto:// URL is not in a form Apprise accepts for that service"),
]


@pytest.mark.parametrize(("url", "reason"), CHANNELS)
def test_check_channel(url: str, reason: str | None) -> None:
    """Each URL is accepted or refused with its reason; no reason quotes the credential."""
    got = check_channel(url)
    assert got == reason
    assert SECRET not in (got or "")


MASKED: list[tuple[str, str]] = [
    (f"json://hook:{SECRET}@127.0.0.1/x", "json://***"),
    (f"MailTo://ops:{SECRET}@example.com", "mailto://***"),
    (f"discord://1/{SECRET}", "discord://***"),
    (f"hook:{SECRET}@example.com", "***"),
    (f"://{SECRET}", "***"),
    (f"a b://{SECRET}", "***"),
    (f"{SECRET}://x", "***"),  # scheme-shaped, but no service's: it may be the credential
    (f"nope://{SECRET}", "***"),
    ("", "***"),
]


@pytest.mark.parametrize(("url", "shown"), MASKED)
def test_masked(url: str, shown: str) -> None:
    """A URL is shown as its scheme and the mask, never more."""
    assert masked(url) == shown


def test_masked_never_shows_a_scheme_shaped_secret() -> None:
    """A scheme-like prefix longer than any scheme is no scheme: only the mask is shown."""
    assert masked("a" * 40 + "://x") == "***"


def plugin(url: str) -> Any:
    found = channel_plugin(url)
    assert found is not None
    return found


HIDDEN: list[tuple[str, set[str]]] = [
    (f"json://hook:{SECRET}@127.0.0.1:8080/deploys", {SECRET}),
    (f"mailto://ops:{SECRET}@127.0.0.1:2525?to=dev@example.com&from=o@example.com", {SECRET}),
    ("discord://1234567/tok-abcdefgh", {"1234567", "tok-abcdefgh"}),
    ("json://127.0.0.1/open", set()),
]


@pytest.mark.parametrize(("url", "hidden"), HIDDEN)
def test_hidden_parts_are_the_credentials(url: str, hidden: set[str]) -> None:
    """What Apprise's private form of the URL hides is what the redactor learns."""
    assert hidden_parts(plugin(url)) == hidden


DESTINATIONS: list[tuple[str, str | None]] = [
    ("json://hook:pw@10.1.2.3:8080/x", "10.1.2.3"),
    ("xml://hooks.internal/x", "hooks.internal"),
    ("mailto://ops:pw@127.0.0.1:2525?to=d@example.com&from=o@example.com", "127.0.0.1"),
    ("mailto://ops:pw@gmail.com", "smtp.gmail.com"),
    ("mailto://ops:pw@example.com?smtp=mail.internal&from=o@example.com", "mail.internal"),
    ("gotify://push.internal/token123", "push.internal"),
    # The host position holds a token; the service's own address is looked up when sending.
    ("discord://1234567/tok-abcdefgh", None),
]


@pytest.mark.parametrize(("url", "host"), DESTINATIONS)
def test_destination_host(url: str, host: str | None) -> None:
    """The server a channel's URL names, checked before anything is sent."""
    assert destination_host(plugin(url)) == host


def resolver(answers: dict[str, list[str]]) -> Any:
    def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise OSError(f"cannot resolve {host}")
        return answers[host]

    return resolve


NAMES = {
    "public.example": ["93.184.215.14"],
    "inside.example": ["10.0.0.7"],
    "mixed.example": ["93.184.215.14", "127.0.0.1"],
}
REFUSALS: list[tuple[str, str, str | None]] = [
    ("127.0.0.1", "", "refused to connect to 127.0.0.1 (loopback)"),
    ("[::1]", "", "refused to connect to ::1 (loopback)"),
    ("169.254.169.254", "", "refused to connect to 169.254.169.254 (cloud metadata)"),
    ("93.184.215.14", "", None),
    ("public.example", "", None),
    ("inside.example", "", "refused to connect to inside.example: 10.0.0.7 (private)"),
    ("mixed.example", "", "refused to connect to mixed.example: 127.0.0.1 (loopback)"),
    ("inside.example", "10.0.0.0/8", None),
    ("127.0.0.1", "127.0.0.0/8", None),
    ("nowhere.example", "", None),  # the lookup made while sending is checked
]


@pytest.mark.parametrize(("host", "allow", "refusal"), REFUSALS)
def test_host_refusal(host: str, allow: str, refusal: str | None) -> None:
    """A channel's server is refused when any address it names is not allowed."""
    got = host_refusal(host, 25, EgressPolicy.parse(allow), resolver(NAMES))
    if refusal is None:
        assert got is None
    else:
        assert got is not None and got.startswith(refusal)
        assert "RUNWRIGHT_EGRESS_ALLOW" in got


SPECS: list[tuple[dict[str, Any], str]] = [
    ({"body": "x"}, "urls_ref must be a non-empty list of secret ids"),
    ({"urls_ref": [], "body": "x"}, "urls_ref must be a non-empty list of secret ids"),
    ({"urls_ref": "abc", "body": "x"}, "urls_ref must be a non-empty list of secret ids"),
    ({"urls_ref": ["a", 3], "body": "x"}, "urls_ref[1] must be a secret id"),
    ({"urls_ref": ["a", ""], "body": "x"}, "urls_ref[1] must be a secret id"),
    (
        {"urls_ref": ["a"] * (MAX_CHANNELS + 1), "body": "x"},
        f"urls_ref holds more than {MAX_CHANNELS} channels",
    ),
    ({"urls_ref": ["a"]}, "body must be a string"),
    ({"urls_ref": ["a"], "body": " \n"}, "body must not be empty"),
    ({"urls_ref": ["a"], "body": 5}, "body must be a string"),
    (
        {"urls_ref": ["a"], "body": "é" * MAX_TEXT_BYTES},
        f"body is longer than {MAX_TEXT_BYTES} bytes",
    ),
    ({"urls_ref": ["a"], "body": "x", "title": ["t"]}, "title must be a string"),
    (
        {"urls_ref": ["a"], "body": "x", "title": "t" * (MAX_TEXT_BYTES + 1)},
        f"title is longer than {MAX_TEXT_BYTES} bytes",
    ),
]


@pytest.mark.parametrize(("spec", "error"), SPECS)
def test_bad_spec_names_the_field(spec: dict[str, Any], error: str) -> None:
    """Every bad spec is refused with the field it is about."""
    with pytest.raises(NotifySpecError) as caught:
        parse_spec(spec)
    assert str(caught.value) == error


def test_good_spec() -> None:
    """Title is optional; both texts may be as long as the limit."""
    body = "b" * MAX_TEXT_BYTES
    assert parse_spec({"urls_ref": ["s1", "s2"], "body": body}) == NotifyRequest(
        refs=["s1", "s2"], title="", body=body
    )
    assert parse_spec({"urls_ref": ["s1"], "body": "b", "title": "t"}).title == "t"
