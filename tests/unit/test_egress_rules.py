"""Which addresses outbound requests may reach, the setting that widens it, and the callback
signature as a receiver checks it."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.callbacks import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    delivery_headers,
    verify,
)
from core.egress import EgressPolicy, address_refusal
from core.settings import Settings, generate_key

ADDRESSES: list[tuple[str, str | None]] = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("::1", "loopback"),
    ("169.254.169.254", "cloud metadata"),
    ("fd00:ec2::254", "cloud metadata"),
    ("169.254.10.20", "link-local"),
    ("fe80::1", "link-local"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("100.64.0.1", "not globally routable"),
    ("64:ff9b::7f00:1", "not globally routable"),
    # Wrapped forms reach the wrapped address: judged as that address.
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("2002:7f00:1::1", "loopback"),
    # Public addresses pass.
    ("8.8.8.8", None),
    ("1.1.1.1", None),
    ("172.32.0.1", None),
    ("2001:4860:4860::8888", None),
    ("::ffff:8.8.8.8", None),
]


@pytest.mark.parametrize(("address", "reason"), ADDRESSES, ids=[a for a, _ in ADDRESSES])
def test_address_refusal(address: str, reason: str | None) -> None:
    """Loopback, link-local, private, metadata and other non-global addresses are refused."""
    assert address_refusal(ipaddress.ip_address(address)) == reason


def test_allowed_networks_win_over_the_rules() -> None:
    """A listed network is allowed, and only that one; mapped forms of it too."""
    policy = EgressPolicy.parse(" 127.0.0.1/32, 10.20.0.0/16 ,,fd00::/8")
    assert policy.refusal("127.0.0.1") is None
    assert policy.refusal("::ffff:127.0.0.1") is None
    assert policy.refusal("127.0.0.2") == "loopback"
    assert policy.refusal("10.20.3.4") is None
    assert policy.refusal("10.21.0.1") == "private"
    assert policy.refusal("fd00:ec2::254") is None
    assert policy.refusal("::1") == "loopback"
    assert policy.refusal("not-an-ip") == "not an IP address"


def test_literal_refusal_only_judges_ip_literals() -> None:
    """Names are left to connect time; literals (bracketed IPv6 too) are judged now."""
    policy = EgressPolicy()
    assert policy.literal_refusal("hooks.example.com") is None
    assert policy.literal_refusal("localhost") is None
    assert policy.literal_refusal("[::1]") == "loopback"
    assert policy.literal_refusal("10.0.0.1") == "private"
    assert policy.literal_refusal("8.8.8.8") is None


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(home=tmp_path, secret_key=generate_key(), **values)  # type: ignore[arg-type]


def test_setting_defaults(tmp_path: Path) -> None:
    """Production allows no extra network, dev mode loopback; an empty value means none."""
    assert settings(tmp_path).egress_policy.allowed == ()
    dev = settings(tmp_path, dev_mode=True).egress_policy
    assert dev.refusal("127.0.0.1") is None and dev.refusal("::1") is None
    assert dev.refusal("10.0.0.1") == "private"
    strict_dev = settings(tmp_path, dev_mode=True, egress_allow="").egress_policy
    assert strict_dev.refusal("127.0.0.1") == "loopback"
    listed = settings(tmp_path, egress_allow="192.168.0.0/16").egress_policy
    assert listed.refusal("192.168.7.7") is None


def test_a_bad_network_fails_at_start_naming_it(tmp_path: Path) -> None:
    """A typo in RUNWRIGHT_EGRESS_ALLOW stops the process with the value named."""
    with pytest.raises(ValidationError, match=r"RUNWRIGHT_EGRESS_ALLOW: '10\.0\.0\.0/33'"):
        settings(tmp_path, egress_allow="127.0.0.1/32,10.0.0.0/33")


# --------------------------------------------------------------------------------------------
# Signatures, as a receiver checks them (written out here, not through `sign`).
# --------------------------------------------------------------------------------------------

KEY = "receiver-shared-key"
BODY = b'{"id":"e1","status":"SUCCESS"}'


def receiver_accepts(body: bytes, key: str, headers: dict[str, str], now: int) -> bool:
    """The documented scheme, independently: HMAC-SHA256 over `timestamp.delivery.body`."""
    stamp = headers[TIMESTAMP_HEADER]
    if abs(now - int(stamp)) > 300:
        return False
    message = f"{stamp}.{headers[DELIVERY_HEADER]}.".encode() + body
    expected = "sha256=" + hmac.new(key.encode(), message, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers[SIGNATURE_HEADER])


def test_signature_covers_timestamp_delivery_and_body() -> None:
    """A receiver recomputes the signature; changing any covered part breaks it."""
    headers = delivery_headers("delivery-1", BODY, KEY, now=1_700_000_000.7)
    assert headers[TIMESTAMP_HEADER] == "1700000000"
    assert receiver_accepts(BODY, KEY, headers, now=1_700_000_010)
    assert verify(BODY, KEY, headers, now=1_700_000_010)
    # Header names are case-insensitive for the receiver.
    assert verify(BODY, KEY, {k.lower(): v for k, v in headers.items()}, now=1_700_000_010)
    replayed_as_other = {**headers, DELIVERY_HEADER: "delivery-2"}
    restamped = {**headers, TIMESTAMP_HEADER: "1700000100"}
    for bad in (replayed_as_other, restamped):
        assert not receiver_accepts(BODY, KEY, bad, now=1_700_000_100)
        assert not verify(BODY, KEY, bad, now=1_700_000_100)
    assert not verify(BODY + b" ", KEY, headers, now=1_700_000_010)
    assert not verify(BODY, "other-key", headers, now=1_700_000_010)


def test_an_old_post_is_refused() -> None:
    """A captured POST replayed ten minutes later fails the timestamp check."""
    headers = delivery_headers("delivery-1", BODY, KEY, now=1_700_000_000)
    assert verify(BODY, KEY, headers, now=1_700_000_299)
    assert not verify(BODY, KEY, headers, now=1_700_000_600)
    assert not receiver_accepts(BODY, KEY, headers, now=1_700_000_600)


def test_unsigned_without_a_key() -> None:
    """No key: no signature header, but the delivery id and timestamp are still sent."""
    headers = delivery_headers("d", BODY, "", now=5)
    assert SIGNATURE_HEADER not in headers
    assert headers[DELIVERY_HEADER] == "d" and headers[TIMESTAMP_HEADER] == "5"
    assert not verify(BODY, KEY, headers, now=5)
