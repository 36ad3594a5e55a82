"""Which addresses git may reach for a remote, and how it is pinned to them (table tests)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from core.egress import EgressPolicy, EgressRefused, Resolver
from core.git_egress import GitPin, pin_remote, ssh_command
from core.git_urls import remote_endpoint

PUBLIC = EgressPolicy()
LOOPBACK = EgressPolicy.parse("127.0.0.0/8,::1/128")


def resolver(answers: dict[str, Sequence[str]]) -> Resolver:
    def resolve(host: str, port: int) -> list[str]:
        return list(answers[host])

    return resolve


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("https://git.example.com/org/r.git", ("https", "git.example.com", 443)),
        ("http://git.example.com:8080/r.git", ("http", "git.example.com", 8080)),
        ("ssh://git@git.example.com/org/r.git", ("ssh", "git.example.com", 22)),
        ("ssh://git@[2001:db8::1]:2222/r.git", ("ssh", "2001:db8::1", 2222)),
        ("git@git.example.com:org/r.git", ("ssh", "git.example.com", 22)),
        ("git@[2001:db8::2]:org/r.git", ("ssh", "2001:db8::2", 22)),
        ("https://[2001:db8::3]/r.git", ("https", "2001:db8::3", 443)),
        ("file:///srv/git/r.git", None),
    ],
)
def test_the_endpoint_git_connects_to(url: str, endpoint: tuple[str, str, int] | None) -> None:
    assert remote_endpoint(url) == endpoint


def test_https_is_pinned_to_the_allowed_answers_without_redirects_or_proxies() -> None:
    resolve = resolver({"git.example.com": ["93.184.216.34", "10.0.0.5", "2606:2800:220::1"]})
    pin = pin_remote("https://git.example.com/org/r.git", PUBLIC, resolve)
    assert dict(pin.config) == {
        "http.curloptResolve": "git.example.com:443:93.184.216.34,[2606:2800:220::1]",
        "http.followRedirects": "false",
        "http.proxy": "",
    }
    assert pin.env and set(pin.env.values()) == {""}
    assert pin.ssh_options == ()


def test_ssh_connects_to_the_checked_address_and_checks_the_named_hosts_key() -> None:
    resolve = resolver({"git.example.com": ["10.1.1.1", "93.184.216.34"]})
    pin = pin_remote("git@git.example.com:org/r.git", PUBLIC, resolve)
    assert pin.ssh_options == (
        "HostName=93.184.216.34",
        "HostKeyAlias=git.example.com",
        "ProxyCommand=none",
        "ProxyJump=none",
    )
    assert pin.config == ()


@pytest.mark.parametrize(
    ("url", "answers", "named"),
    [
        ("http://metadata.internal/r.git", ["169.254.169.254"], "169.254.169.254 (cloud metadata)"),
        ("https://10.0.0.5/r.git", [], "10.0.0.5 (private)"),
        ("https://git.corp/r.git", ["10.0.0.5", "192.168.1.2"], "192.168.1.2 (private)"),
        ("ssh://git@localhost/r.git", ["127.0.0.1", "::1"], "127.0.0.1 (loopback)"),
        ("git@[::1]:r.git", [], "::1 (loopback)"),
    ],
)
def test_a_remote_with_no_allowed_address_is_refused(
    url: str, answers: list[str], named: str
) -> None:
    endpoint = remote_endpoint(url)
    assert endpoint is not None
    with pytest.raises(EgressRefused) as refused:
        pin_remote(url, PUBLIC, resolver({endpoint[1]: answers}))
    assert named in str(refused.value)
    assert "RUNWRIGHT_EGRESS_ALLOW" in str(refused.value)


def test_listed_networks_are_allowed() -> None:
    pin = pin_remote("http://127.0.0.1:9418/r.git", LOOPBACK, resolver({}))
    assert ("http.curloptResolve", "127.0.0.1:9418:127.0.0.1") in pin.config


def test_a_host_without_addresses_is_not_reachable() -> None:
    with pytest.raises(OSError, match="resolves to no address"):
        pin_remote("https://nowhere.example/r.git", PUBLIC, resolver({"nowhere.example": []}))


def test_file_urls_open_no_socket() -> None:
    assert pin_remote("file:///srv/r.git", PUBLIC, resolver({})) == GitPin()


def test_ssh_command_quotes_every_word() -> None:
    assert ssh_command(["UserKnownHostsFile=/tmp/a b"], "/tmp/k ey") == (
        "ssh -i '/tmp/k ey' -o 'UserKnownHostsFile=/tmp/a b'"
    )
