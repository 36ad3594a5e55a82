"""Notification channel URLs (Apprise's `scheme://...` form): checked and masked, never shown.

A channel URL carries its service's credentials (tokens, passwords), so it is stored as a
secret and only its masked form (`json://***`) is ever displayed. `check_channel` lets an API
refuse a URL when it is submitted, with a reason that quotes nothing of the URL but its scheme.

Some of Apprise's schemes are refused here although Apprise knows them: those that act on the
worker's own machine (desktop notifications, the local syslog) and those whose library opens
its network connections where the egress rules cannot check them (see core/socket_egress.py).
"""

from __future__ import annotations

import re

import apprise
from apprise.apprise import N_MGR
from apprise.plugins.base import NotifyBase

MAX_URL_LENGTH = 4096
SCHEME_PATTERN = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]{0,31})://")
MASK = "***"

# Scheme -> why it is refused (what Apprise would otherwise do with it).
REFUSED_SCHEMES: dict[str, str] = {
    **dict.fromkeys(
        ("syslog", "dbus", "kde", "qt", "glib", "gio", "gnome", "windows", "macosx", "blink1"),
        "notifies the worker's own machine, not a remote service",
    ),
    # UDP sendto, paho's network thread, slixmpp's event loop: they resolve outside the check.
    **dict.fromkeys(
        ("rsyslog", "mqtt", "mqtts", "xmpp", "xmpps", "smpp", "smpps", "growl", "amqp", "amqps"),
        "connects through a library whose connections the egress rules cannot check",
    ),
}


def scheme_of(url: str) -> str | None:
    """The URL's scheme in lower case, or None when it does not start `scheme://`."""
    match = SCHEME_PATTERN.match(url)
    return match.group(1).lower() if match else None


def masked(url: str) -> str:
    """What is shown of a channel URL: its scheme and the mask (`json://***`); only the mask
    when the scheme is not a service's (whatever else stands there may be a credential)."""
    scheme = scheme_of(url)
    return f"{scheme}://{MASK}" if scheme is not None and scheme in N_MGR else MASK


def channel_plugin(url: str) -> NotifyBase | None:
    """Apprise's service object for `url`, or None when Apprise cannot use it. No I/O."""
    plugin = apprise.Apprise.instantiate(url, asset=apprise.AppriseAsset(secure_logging=True))
    return plugin if isinstance(plugin, NotifyBase) else None


def check_channel(url: str) -> str | None:
    """None when the URL is a channel runwright can notify, else a short reason that quotes
    nothing of the URL but its scheme (the rest may be a credential)."""
    if not url.strip():
        return "is empty"
    if len(url) > MAX_URL_LENGTH:
        return f"is longer than {MAX_URL_LENGTH} characters"
    scheme = scheme_of(url)
    if scheme is None:
        return "is not a notification URL (scheme://...)"
    if scheme in REFUSED_SCHEMES:
        return f"{scheme}:// {REFUSED_SCHEMES[scheme]}"
    if scheme not in N_MGR:
        # Not quoted: a scheme no service has may be anything, a credential included.
        return "its scheme is not a notification service Apprise knows"
    if not N_MGR[scheme].enabled:
        return f"{scheme}:// needs a library this installation does not have"
    if channel_plugin(url) is None:
        return f"{scheme}:// URL is not in a form Apprise accepts for that service"
    return None
