"""Outbound HTTP made by runwright itself (run callbacks, `http` actions, later webhooks).

A user chooses the URL, so without a check any tenant could make a worker call the cloud
metadata service (169.254.169.254), the database next door or the worker's own loopback
services. Every such request goes through `egress_client`, which refuses destinations whose
address is loopback, link-local, private, unspecified, multicast or otherwise not globally
routable, unless a network listed in RUNWRIGHT_EGRESS_ALLOW holds it.

The check runs where the socket is opened, on the address the socket is opened to: the
connection pool's network backend resolves the host once, checks every answer, and connects
to a checked address itself. Checking a URL at the API, or resolving once to check and again
to connect, would let a name that answers differently the second time (DNS rebinding) slip
through. The URL keeps its host name, so the Host header, TLS SNI and certificate checks are
httpx's own, unchanged. Environment proxies are never used: a proxy would make the check see
the proxy's address, not the destination's.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port -> the addresses it resolves to (strings, in the resolver's order)
Resolver = Callable[[str, int], Sequence[str]]

ALLOW_SETTING = "RUNWRIGHT_EGRESS_ALLOW"
METADATA_ADDRESSES = frozenset({"169.254.169.254", "fd00:ec2::254"})
EGRESS_LIMITS = httpx.Limits(max_connections=20, max_keepalive_connections=5)
# What dev mode (and the test suite) allows when RUNWRIGHT_EGRESS_ALLOW is not set.
DEV_ALLOW = "127.0.0.0/8,::1/128"


class EgressRefused(Exception):
    """A destination runwright will not connect to; the message names host and addresses.

    Deliberately not an httpx error: callers tell "refused by policy" (permanent) from
    "could not connect" (worth retrying).
    """

    def __init__(self, host: str, refused: Sequence[tuple[str, str]]) -> None:
        self.host = host
        self.refused = list(refused)
        why = ", ".join(f"{address} ({reason})" for address, reason in refused)
        target = why if [host] == [a for a, _ in refused] else f"{host}: {why}"
        super().__init__(
            f"refused to connect to {target}: not an allowed destination "
            f"({ALLOW_SETTING} lists the networks allowed)"
        )


def address_refusal(address: IPAddress) -> str | None:
    """Why `address` is not a public destination (None when it is globally routable)."""
    if isinstance(address, ipaddress.IPv6Address):
        # ::ffff:127.0.0.1 is 127.0.0.1 on the wire; 2002:7f00:1:: is 6to4 wrapped around it.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            inner = address_refusal(embedded)
            if inner is not None or address.ipv4_mapped is not None:
                return inner
    if str(address) in METADATA_ADDRESSES:
        return "cloud metadata"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if address.is_reserved or not address.is_global:
        return "not globally routable"
    return None


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """Comma-separated CIDRs (a bare address is a /32 or /128); ValueError naming a bad one."""
    networks: list[IPNetwork] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"{ALLOW_SETTING}: {item!r} is not an IP network ({exc})") from exc
    return tuple(networks)


@dataclass(frozen=True)
class EgressPolicy:
    """Which addresses outbound requests may reach: public ones, plus the listed networks."""

    allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str) -> EgressPolicy:
        """The policy of a RUNWRIGHT_EGRESS_ALLOW value."""
        return cls(parse_networks(text))

    def refusal(self, address: str) -> str | None:
        """Why a connection to `address` (an IP literal) is refused; None when allowed."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return "not an IP address"
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        if any(c in net for c in candidates for net in self.allowed if c.version == net.version):
            return None
        return address_refusal(ip)

    def literal_refusal(self, host: str) -> str | None:
        """For a URL host that is an IP literal, why it is refused; None for names (they are
        checked when resolved) and for allowed addresses. Lets an API refuse early."""
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return None
        return self.refusal(host.strip("[]"))


def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to for a TCP connection, in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, None] = {}
    for info in infos:
        seen.setdefault(str(info[4][0]), None)
    return list(seen)


class CheckedBackend(httpcore.NetworkBackend):
    """httpcore's network backend, connecting only to addresses the policy allows."""

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        resolve: Resolver = resolve_host,
        inner: httpcore.NetworkBackend | None = None,
    ) -> None:
        self._policy = policy
        self._resolve = resolve
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        """Resolve once, check every answer, connect to the first allowed one that answers."""
        try:
            addresses = self._resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        allowed: list[str] = []
        refused: list[tuple[str, str]] = []
        for address in addresses:
            reason = self._policy.refusal(address)
            if reason is None:
                allowed.append(address)
            else:
                refused.append((address, reason))
        if not allowed:
            if not refused:
                raise httpcore.ConnectError(f"{host} resolves to no address")
            raise EgressRefused(host, refused)
        last: Exception | None = None
        for address in allowed:
            try:
                # An IP literal: the inner backend connects to exactly this, no second lookup.
                return self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        """Never: a local socket is the most local destination there is."""
        raise EgressRefused(path, [(path, "unix socket")])

    def sleep(self, seconds: float) -> None:
        """As the inner backend sleeps (between retries)."""
        self._inner.sleep(seconds)


class EgressTransport(httpx.HTTPTransport):
    """httpx's transport with the connection pool built on `CheckedBackend`."""

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        resolve: Resolver = resolve_host,
        limits: httpx.Limits = EGRESS_LIMITS,
    ) -> None:
        super().__init__(trust_env=False, limits=limits)
        # httpx takes no network backend, so the pool it built is replaced by the same pool
        # with ours (tests/integration/test_egress.py fails if a new httpx stops using it).
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=CheckedBackend(policy, resolve=resolve),
        )


def egress_client(
    policy: EgressPolicy, *, timeout: float, resolve: Resolver = resolve_host
) -> httpx.Client:
    """A client for user-chosen URLs: policy checked at connect time, no redirects, no proxy."""
    return httpx.Client(
        transport=EgressTransport(policy, resolve=resolve),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )
