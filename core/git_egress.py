"""The egress rules for git's own connections (fetch, clone, ls-remote, push).

git opens its sockets itself, in a child process, so the check of `core.egress` (made where
httpx opens a socket) cannot run there. Instead the remote's host is resolved here, once, every
answer is checked against the policy, and git is pinned to the allowed addresses: curl gets
them through `http.curloptResolve` (no second lookup that could answer differently), ssh
through `HostName` (its host key still checked under the name). Redirects are not followed,
since a redirect would reach a host nobody checked, and no proxy is used, for the same reason
as in `core.egress`: a proxy would make the check see the proxy, not the destination.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from core.egress import EgressPolicy, EgressRefused, Resolver, resolve_host
from core.git_urls import remote_endpoint

# Environment variables curl reads for a proxy; empty means none.
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTPS_PROXY", "ALL_PROXY")


@dataclass(frozen=True)
class GitPin:
    """What git's environment needs so it connects only to the checked addresses."""

    config: tuple[tuple[str, str], ...] = ()
    ssh_options: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


def pin_remote(url: str, policy: EgressPolicy, resolve: Resolver = resolve_host) -> GitPin:
    """The pin that keeps git on the allowed addresses of `url`'s host.

    Raises EgressRefused when none of them is allowed, OSError when the host does not resolve.
    """
    endpoint = remote_endpoint(url)
    if endpoint is None:
        return GitPin()
    scheme, host, port = endpoint
    addresses = [host] if _is_address(host) else list(resolve(host, port))
    allowed = [a for a in addresses if policy.refusal(a) is None]
    if not allowed:
        refused = [(a, policy.refusal(a) or "") for a in addresses]
        if not refused:
            raise OSError(f"{host} resolves to no address")
        raise EgressRefused(host, refused)
    if scheme == "ssh":
        options = (
            f"HostName={allowed[0]}",
            f"HostKeyAlias={host}",
            "ProxyCommand=none",
            "ProxyJump=none",
        )
        return GitPin(ssh_options=options)
    resolved = ",".join(f"[{a}]" if ":" in a else a for a in allowed)
    config = (
        ("http.curloptResolve", f"{host}:{port}:{resolved}"),
        ("http.followRedirects", "false"),
        ("http.proxy", ""),
    )
    return GitPin(config=config, env={name: "" for name in PROXY_VARIABLES})


def ssh_command(options: Sequence[str], identity: str | None = None) -> str:
    """GIT_SSH_COMMAND: ssh with the key file `identity` (if any) and each option as `-o`."""
    words = ["ssh", *(["-i", identity] if identity else [])]
    for option in options:
        words += ["-o", option]
    return " ".join(shlex.quote(w) for w in words)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
