"""The `notify` action: one message to notification channels, sent with Apprise.

Spec (after templating):

    urls_ref   [secret id, ...]   each secret's value is one Apprise URL (`json://...`,
                                  `mailto://...`); the URL holds the channel's credentials
    title      str, optional      at most 64 KiB (UTF-8)
    body       str                at most 64 KiB, not empty
    (checked by core.notify_spec, which also bounds the number of channels)

Apprise is a library: it runs here, in the worker, like the `http` kind, with no program and
so no sandbox. A URL is shown only masked (`json://***`) in events, results and errors; what
Apprise's service objects know to be private in it (passwords, tokens) is taught to the run's
redactor before anything is sent, so Apprise's own messages are masked too.

Each channel's destination obeys the egress rules twice: before sending, the host its URL
names (the SMTP server of a `mailto://`) is resolved and checked, so a refused channel fails
without a connection; while sending, `core.socket_egress` checks every address Apprise looks
up. The action completes when every channel accepted the message and fails naming, by index
and masked URL, each channel that did not; the other channels are still sent.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from apprise.plugins.base import NotifyBase

from activities.executors import ActionContext, Executed
from core.egress import EgressPolicy, EgressRefused, resolve_host
from core.events import EventLevel, EventRecord
from core.notify_spec import NotifyRequest, NotifySpecError, parse_spec
from core.notify_urls import channel_plugin, check_channel, masked
from core.secrets import Redactor
from core.socket_egress import checked_resolution

# Apprise's defaults are 4 s and 4 s, 15 s for SMTP; an action's own timeout lowers them.
CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 10.0
MAX_REASON_CHARS = 300
APPRISE_LOGGER = "apprise"
# What separates the parts of an Apprise URL, to find the parts its private form hides.
URL_SEPARATORS = re.compile(r"[/:@?&=,]+")


def hidden_parts(plugin: NotifyBase) -> set[str]:
    """The parts of the plugin's URL that its private form hides: its credentials."""
    # Apprise's url() has no annotations.
    url_of = cast(Callable[..., str], plugin.url)
    shown = set(URL_SEPARATORS.split(url_of(privacy=True)))
    return {p for p in URL_SEPARATORS.split(url_of(privacy=False)) if p and p not in shown}


def destination_host(plugin: NotifyBase) -> str | None:
    """The host the URL names as the server to connect to, when it names one.

    E-mail goes to its SMTP host (the URL's own host, a well-known provider's server, or
    `smtp=`). For most other services the URL's host is a server only when the service takes
    a `{host}` token; for the rest it is a token (a webhook id) and the service's address is
    its own, checked when it is looked up.
    """
    smtp_host = getattr(plugin, "smtp_host", None)
    if isinstance(smtp_host, str) and smtp_host:
        return smtp_host
    tokens = getattr(plugin, "template_tokens", {}) or {}
    host = getattr(plugin, "host", None)
    if "host" in tokens and isinstance(host, str) and host:
        return host
    return None


def host_refusal(
    host: str,
    port: int,
    policy: EgressPolicy,
    resolve: Callable[[str, int], list[str]] = resolve_host,
) -> str | None:
    """Why no connection to `host` is allowed (None when one is, or it does not resolve: the
    lookup made while sending is checked as well)."""
    host = host.strip("[]")
    literal = policy.literal_refusal(host)
    if literal is not None:
        return str(EgressRefused(host, [(host, literal)]))
    try:
        addresses = resolve(host, port)
    except OSError:
        return None
    refused = [(a, r) for a in addresses if (r := policy.refusal(a)) is not None]
    return str(EgressRefused(host, refused)) if refused else None


class _ThreadRecords(logging.Handler):
    """Apprise's warnings and errors logged by one thread (its reasons for a failure)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self._thread:
            self.messages.append(record.getMessage())


@contextmanager
def _apprise_reasons() -> Iterator[_ThreadRecords]:
    handler = _ThreadRecords()
    logger = logging.getLogger(APPRISE_LOGGER)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _bounded_timeouts(plugin: NotifyBase, action_timeout: float | None) -> None:
    limit = action_timeout if action_timeout and action_timeout > 0 else None
    plugin.socket_connect_timeout = min(CONNECT_TIMEOUT_SECONDS, limit or CONNECT_TIMEOUT_SECONDS)
    plugin.socket_read_timeout = min(READ_TIMEOUT_SECONDS, limit or READ_TIMEOUT_SECONDS)


def send_channel(
    plugin: NotifyBase,
    request: NotifyRequest,
    *,
    policy: EgressPolicy,
    redactor: Redactor,
    action_timeout: float | None = None,
) -> str | None:
    """Send the message on one channel; None when the service accepted it, else why not."""
    host = destination_host(plugin)
    if host is not None:
        port = plugin.port if isinstance(plugin.port, int) else 0
        refusal = host_refusal(host, port, policy)
        if refusal is not None:
            return refusal
    _bounded_timeouts(plugin, action_timeout)
    with _apprise_reasons() as reasons, checked_resolution(policy) as check:
        accepted = plugin.notify(body=request.body, title=request.title)
    if accepted:
        return None
    if check.refused:
        return str(check.refused[0])
    reason = reasons.messages[-1] if reasons.messages else "the service did not accept it"
    return redactor.redact(reason)[:MAX_REASON_CHARS]


def run_notify(ctx: ActionContext) -> Executed:
    """Send the spec's message to each of its channels."""
    try:
        request = parse_spec(ctx.spec)
    except NotifySpecError as exc:
        return Executed(error=str(exc))
    if ctx.open_ref is None:
        return Executed(error="urls_ref cannot be opened here")
    plugins: list[tuple[str, NotifyBase]] = []
    for i, ref in enumerate(request.refs):
        try:
            url = ctx.open_ref(ref)
        except KeyError:
            return Executed(error=f"urls_ref[{i}]: secret {ref} not found")
        shown = masked(url)
        reason = check_channel(url)
        plugin = channel_plugin(url) if reason is None else None
        if plugin is None:
            return Executed(error=f"channel {i} ({shown}): {reason or 'not a usable URL'}")
        for part in hidden_parts(plugin):
            ctx.redactor.add(part)
        plugins.append((shown, plugin))
    channels: list[dict[str, Any]] = []
    for i, (shown, plugin) in enumerate(plugins):
        error = send_channel(
            plugin,
            request,
            policy=ctx.http.policy,
            redactor=ctx.redactor,
            action_timeout=ctx.action.timeout_seconds,
        )
        channels.append({"index": i, "url": shown, "sent": error is None, "error": error})
        ctx.events.emit(
            EventRecord(
                "notification_sent" if error is None else "notification_failed",
                f"channel {i} ({shown}): " + ("sent" if error is None else error),
                EventLevel.INFO if error is None else EventLevel.ERROR,
                data={"channel": i, "url": shown},
            )
        )
    lines = [f"channel {c['index']} ({c['url']}): {c['error'] or 'sent'}" for c in channels]
    stdout = "\n".join(lines)
    ctx.write_output(stdout)
    failed = [line for c, line in zip(channels, lines, strict=True) if c["error"]]
    error = None
    if failed:
        error = f"{len(failed)} of {len(channels)} channels failed: " + "; ".join(failed)
    return Executed(stdout=stdout, error=error, data={"channels": channels})
