"""Host values and the ssh action's command line, as pure functions: table tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from activities.remote import (
    HOST_ALIAS,
    SshRequest,
    connect_address,
    remote_command,
    ssh_argv,
    ssh_request,
)
from core import hosts
from core.egress import EgressPolicy, EgressRefused
from core.hosts import HostKey, HostSpecError

ED25519 = "AAAAC3NzaC1lZDI1NTE5AAAAIPk4am1S8VZP22x03yLSkAyHquYnKpEBqqK3jdQoKe2i"
PUBLIC = f"ssh-ed25519 {ED25519}"
PRIVATE = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
    "-----END OPENSSH PRIVATE KEY-----"
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("web-1.example.com", "web-1.example.com"),
        ("localhost", "localhost"),
        ("db.", "db."),
        ("192.168.1.10", "192.168.1.10"),
        ("::1", "::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("2001:DB8::1", "2001:db8::1"),
    ],
)
def test_good_addresses(value: str, expected: str) -> None:
    """Hostnames stay as given; IP literals come back in their canonical form."""
    assert hosts.address(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "address: is required"),
        ("", "address: is required"),
        (22, "address: must be a string"),
        ("-oProxyCommand=x", "address: '-oProxyCommand=x' is not a hostname or IP address"),
        ("web_1", "is not a hostname"),
        ("a b", "is not a hostname"),
        ("host-.example", "is not a hostname"),
        ("10.0.0.256", "is not a hostname"),
        ("user@host", "is not a hostname"),
        ("a" * 64 + ".com", "is not a hostname"),
        ("a." * 127 + "com", "is not a hostname"),
    ],
)
def test_bad_addresses(value: Any, message: str) -> None:
    """Anything but a hostname or an IP literal is refused, naming the field."""
    with pytest.raises(HostSpecError) as caught:
        hosts.address(value)
    assert message in str(caught.value)
    assert caught.value.field == "address"


@pytest.mark.parametrize(
    ("value", "expected"), [(None, 22), ("", 22), (2222, 2222), ("2222", 2222), (65535, 65535)]
)
def test_good_ports(value: Any, expected: int) -> None:
    """22 by default; numbers and digit strings in range."""
    assert hosts.port(value) == expected


@pytest.mark.parametrize("value", [0, 65536, -1, True, 22.5, "ssh", "0x16", [22]])
def test_bad_ports(value: Any) -> None:
    """Out of range or not a number: refused, naming the field."""
    with pytest.raises(HostSpecError, match=r"^port: must be a port number from 1 to 65535"):
        hosts.port(value)


@pytest.mark.parametrize("value", ["root", "deploy", "_svc", "ops.admin", "a-b", "A1", "x" * 32])
def test_good_users(value: str) -> None:
    """POSIX portable user names."""
    assert hosts.user(value) == value


@pytest.mark.parametrize(
    "value", ["-oProxyCommand", "1abc", ".hidden", "a b", "rööt", "a:b", "x" * 33, "a@b"]
)
def test_bad_users(value: str) -> None:
    """Option-like, non-portable or too long names are refused, naming the field."""
    with pytest.raises(HostSpecError, match=r"^user: .* is not a user name"):
        hosts.user(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (PUBLIC, [HostKey("ssh-ed25519", ED25519)]),
        (f"{PUBLIC} root@box", [HostKey("ssh-ed25519", ED25519)]),
        (f"[127.0.0.1]:2222 {PUBLIC}", [HostKey("ssh-ed25519", ED25519)]),
        (f"box,10.0.0.1 {PUBLIC}\n# comment\n\n", [HostKey("ssh-ed25519", ED25519)]),
        (f"{PUBLIC}\n{PUBLIC} again", [HostKey("ssh-ed25519", ED25519)]),
    ],
)
def test_host_keys_read_from_public_keys_and_known_hosts_lines(
    value: str, expected: list[HostKey]
) -> None:
    """A .pub line or a known_hosts line gives its key; host names and comments are dropped."""
    assert hosts.host_keys(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "hostKey: must be a public key or a known_hosts line"),
        ("# only a comment", "hostKey: must be a public key or a known_hosts line"),
        (42, "hostKey: must be a public key"),
        ("ssh-ed25519", "hostKey: the key: expected 'TYPE KEY' or 'HOST TYPE KEY'"),
        ("ssh-foo AAAA", "hostKey: the key: expected 'TYPE KEY'"),
        ("ssh-ed25519 not-base64!", "hostKey: the key: the key is not a valid ssh-ed25519 key"),
        (f"ssh-rsa {ED25519}", "hostKey: the key: the key is not a valid ssh-rsa key"),
        (f"@revoked * {PUBLIC}", "hostKey: the key: markers such as @revoked are not supported"),
        (f"{PUBLIC}\nbox ssh-rsa {ED25519}", "hostKey: line 2: the key is not a valid ssh-rsa"),
        ("x" * (hosts.MAX_HOST_KEY_BYTES + 1), "hostKey: must be at most"),
    ],
)
def test_bad_host_keys(value: Any, message: str) -> None:
    """Unreadable keys, keys whose bytes name another type and markers are refused."""
    with pytest.raises(HostSpecError) as caught:
        hosts.host_keys(value)
    assert str(caught.value).startswith(message), str(caught.value)


def test_fingerprint_is_openssh_sha256() -> None:
    """The fingerprint `ssh-keygen -l` prints for the same key."""
    key = HostKey("ssh-ed25519", ED25519)
    assert key.fingerprint() == "SHA256:1abAH40w9to47OloUBKcwYLD9AW1es8bCvOM4XAyb6U"


def test_private_key_normalised_and_never_quoted() -> None:
    """A key gets its final newline; a non-key is refused without echoing it."""
    assert hosts.private_key(PRIVATE.replace("\n", "\r\n")) == PRIVATE + "\n"
    with pytest.raises(HostSpecError) as caught:
        hosts.private_key("hunter2-not-a-key")
    assert "hunter2" not in str(caught.value)
    assert str(caught.value).startswith("sshKey: must be a private key")
    with pytest.raises(HostSpecError, match=r"^sshKey: must be at most"):
        hosts.private_key(PRIVATE + "x" * hosts.MAX_PRIVATE_KEY_BYTES)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"argv": ["echo", "a b", "it's", "$HOME", "*"]}, "echo 'a b' 'it'\"'\"'s' '$HOME' '*'"),
        ({"argv": ["true"]}, "true"),
        ({"argv": [""]}, "''"),
        ({"command": "ls | wc -l"}, "ls | wc -l"),
    ],
)
def test_remote_command(spec: dict[str, Any], expected: str) -> None:
    """argv words are each quoted for the remote shell; a command line is passed as is."""
    assert remote_command(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "argv: give exactly one of argv (a list of words) and command"),
        ({"argv": ["a"], "command": "a"}, "argv: give exactly one"),
        ({"argv": []}, "argv: must be a non-empty list of strings"),
        ({"argv": "ls -l"}, "argv: must be a non-empty list of strings"),
        ({"argv": ["ls", 1]}, "argv: must be a non-empty list of strings"),
        ({"argv": ["a\0b"]}, "argv: contains a NUL byte"),
        ({"command": "  "}, "command: must be a non-empty string"),
        ({"command": "x" * (64 * 1024 + 1)}, "command: must be at most 65536 bytes"),
    ],
)
def test_bad_remote_commands(spec: dict[str, Any], message: str) -> None:
    """Neither or both, empty, non-strings, NUL bytes and oversized commands are refused."""
    with pytest.raises(HostSpecError) as caught:
        remote_command(spec)
    assert str(caught.value).startswith(message)


def test_ssh_request_checks_every_field() -> None:
    """The action checks its spec again: a spec can come from any dialect."""
    good = {"address": "box", "user": "ops", "ssh_key_ref": "ref-1", "command": "id"}
    assert ssh_request(good) == SshRequest("box", 22, "ops", "ref-1", (), "id")
    pinned = ssh_request({**good, "host_key": PUBLIC, "port": 2200})
    assert pinned.host_keys == (HostKey("ssh-ed25519", ED25519),) and pinned.port == 2200
    for field, value, name in [
        ("address", "-x", "address"),
        ("user", "-l", "user"),
        ("port", 0, "port"),
        ("ssh_key_ref", "", "ssh_key_ref"),
        ("host_key", "nonsense", "host_key"),
    ]:
        with pytest.raises(HostSpecError) as caught:
            ssh_request({**good, field: value})
        assert caught.value.field == name


def test_ssh_argv_uses_nothing_of_the_worker_and_no_secret() -> None:
    """Only the run's own files, the checked address, and the remote command as one word."""
    request = SshRequest("box.example", 2222, "ops", "ref", (), "echo 'a b'")
    argv = ssh_argv(
        request,
        "93.184.216.34",
        key_file=Path("/runs/r/ssh/0/identity"),
        known_hosts=Path("/runs/r/ssh/0/known_hosts"),
        connect_timeout=30,
    )
    assert argv[:6] == ["ssh", "-F", "/dev/null", "-T", "-i", "/runs/r/ssh/0/identity"]
    assert argv[-3:] == ["--", HOST_ALIAS, "echo 'a b'"]
    options = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "-o")
    assert options["HostName"] == "93.184.216.34"  # the checked address, not the name
    assert options["Port"] == "2222" and options["User"] == "ops"
    assert options["BatchMode"] == "yes"
    assert options["StrictHostKeyChecking"] == "accept-new"
    assert options["UserKnownHostsFile"] == '"/runs/r/ssh/0/known_hosts"'
    assert options["GlobalKnownHostsFile"] == "/dev/null"
    assert options["IdentityAgent"] == "none" and options["ControlPath"] == "none"
    assert options["ClearAllForwardings"] == "yes" and options["ForwardAgent"] == "no"
    pinned = SshRequest("box", 22, "ops", "ref", (HostKey("ssh-ed25519", ED25519),), "id")
    argv = ssh_argv(
        pinned, "10.0.0.1", key_file=Path("/k"), known_hosts=Path("/kh"), connect_timeout=0.2
    )
    assert "StrictHostKeyChecking=yes" in argv and "ConnectTimeout=1" in argv


def test_connect_address_checks_every_answer() -> None:
    """The first allowed answer is used; all refused is EgressRefused naming them."""
    answers = {"mixed": ["10.0.0.5", "93.184.216.34"], "inside": ["10.0.0.5", "127.0.0.1"]}

    def resolve(host: str, port: int) -> list[str]:
        return answers.get(host, [host])

    public = EgressPolicy()
    assert connect_address("mixed", 22, public, resolve) == "93.184.216.34"
    with pytest.raises(EgressRefused, match=r"10\.0\.0\.5 \(private\), 127\.0\.0\.1 \(loopback\)"):
        connect_address("inside", 22, public, resolve)
    lan = EgressPolicy.parse("10.0.0.0/8")
    assert connect_address("inside", 22, lan, resolve) == "10.0.0.5"
    with pytest.raises(OSError, match="resolves to no address"):
        connect_address("nowhere", 22, public, lambda host, port: [])
