"""What a host reached over SSH is: its address, port, login and keys, checked as data.

Pure functions shared by the catalog (a `kind: Host` document) and the `ssh` action (which
checks its spec again at execution, since a spec can come from any dialect). Every value here
ends up in an ssh command line or a known_hosts file, so each is held to a strict form: a
hostname or IP literal (never option-like), a POSIX user name, a port number, a public key of
a known type whose bytes say the same type.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
import struct
from dataclasses import dataclass
from typing import Any

DEFAULT_PORT = 22
MAX_NAME_LENGTH = 128
MAX_ADDRESS_LENGTH = 253  # the longest DNS name
MAX_USER_LENGTH = 32  # useradd's own limit
MAX_PRIVATE_KEY_BYTES = 16 * 1024  # an RSA-8192 key in OpenSSH format is about 6.5 KiB
MAX_HOST_KEY_BYTES = 16 * 1024
MAX_HOST_KEYS = 16

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# POSIX's portable user name: the portable filename characters, not starting with a hyphen.
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:OPENSSH |RSA |EC |DSA |ENCRYPTED )?PRIVATE KEY-----\n"
    r".+\n-----END (?:OPENSSH |RSA |EC |DSA |ENCRYPTED )?PRIVATE KEY-----",
    re.DOTALL,
)
KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ssh-dss",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)


class HostSpecError(ValueError):
    """A host value that cannot be used; `field` names it, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class HostKey:
    """One public key a host may present: its type and its base64 blob."""

    key_type: str
    blob: str

    def line(self, host: str) -> str:
        """The known_hosts line naming `host` with this key."""
        return f"{host} {self.key_type} {self.blob}"

    def fingerprint(self) -> str:
        """OpenSSH's SHA256 fingerprint (`SHA256:...`, unpadded base64)."""
        digest = hashlib.sha256(base64.b64decode(self.blob)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _text(value: Any, field: str) -> str:
    """A required string field."""
    if value is None or value == "":
        raise HostSpecError(field, "is required")
    if not isinstance(value, str):
        raise HostSpecError(field, "must be a string")
    return value


def host_name(given: Any, field: str = "name") -> str:
    """A host's catalog name: letters, digits, `_.-`, starting with a letter or digit."""
    value = _text(given, field)
    if not _NAME.fullmatch(value):
        raise HostSpecError(
            field,
            f"{value[:MAX_NAME_LENGTH]!r} must be 1 to {MAX_NAME_LENGTH} letters, digits, "
            "'_', '.' or '-', starting with a letter or digit",
        )
    return value


def address(given: Any, field: str = "address") -> str:
    """A DNS hostname or an IP literal (IPv6 with or without brackets), as ssh will get it."""
    value = _text(given, field)
    literal = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        return str(ipaddress.ip_address(literal))
    except ValueError:
        pass
    name = value[:-1] if value.endswith(".") else value
    labels = name.split(".")
    if (
        len(value) > MAX_ADDRESS_LENGTH
        or not all(_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()  # 10.0.0.256: a mistyped address, not a name
    ):
        raise HostSpecError(
            field, f"{value[:MAX_ADDRESS_LENGTH]!r} is not a hostname or IP address"
        )
    return value


def port(value: Any, field: str = "port") -> int:
    """A TCP port, 1-65535 (22 when not given); digits in a string are accepted."""
    if value is None or value == "":
        return DEFAULT_PORT
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise HostSpecError(field, f"must be a port number from 1 to 65535, not {value!r}")
    return value


def user(given: Any, field: str = "user") -> str:
    """A POSIX user name: up to 32 of `A-Za-z0-9_.-`, not starting with a digit, '.' or '-'."""
    value = _text(given, field)
    if not _USER.fullmatch(value):
        raise HostSpecError(
            field,
            f"{value[:MAX_USER_LENGTH]!r} is not a user name (up to {MAX_USER_LENGTH} letters, "
            "digits, '_', '.' or '-', starting with a letter or '_')",
        )
    return value


def private_key(value: Any, field: str = "sshKey") -> str:
    """A private key in PEM or OpenSSH form, as text ending with a newline (OpenSSH needs it)."""
    if not isinstance(value, str) or not value.strip():
        raise HostSpecError(field, "is required")
    if len(value.encode()) > MAX_PRIVATE_KEY_BYTES:
        raise HostSpecError(field, f"must be at most {MAX_PRIVATE_KEY_BYTES} bytes")
    text = value.replace("\r\n", "\n").strip() + "\n"
    # The message never quotes the value: it is a secret.
    if "\0" in text or not _PRIVATE_KEY.fullmatch(text.strip()):
        raise HostSpecError(
            field, "must be a private key (-----BEGIN ... PRIVATE KEY----- ... -----END ...)"
        )
    return text


def host_keys(value: Any, field: str = "hostKey") -> list[HostKey]:
    """The public keys in `value`: one per line, each a bare public key (`ssh-ed25519 AAAA...
    [comment]`, as in a host's .pub file) or a known_hosts line (`host[,host] type key`).

    The host names of known_hosts lines are not kept: the key is pinned to the host it is
    given for. Markers (`@cert-authority`, `@revoked`) are refused, as are keys whose bytes
    name another type than the line does.
    """
    if not isinstance(value, str) or not value.strip():
        raise HostSpecError(field, "must be a public key or a known_hosts line")
    if len(value.encode()) > MAX_HOST_KEY_BYTES:
        raise HostSpecError(field, f"must be at most {MAX_HOST_KEY_BYTES} bytes")
    keys: list[HostKey] = []
    lines = [ln.strip() for ln in value.splitlines()]
    for number, text in enumerate((ln for ln in lines if ln and not ln.startswith("#")), 1):
        where = f"line {number}" if len(lines) > 1 else "the key"
        words = text.split()
        if words[0].startswith("@"):
            raise HostSpecError(field, f"{where}: markers such as {words[0]} are not supported")
        at = next((i for i, w in enumerate(words[:2]) if w in KEY_TYPES), None)
        if at is None or at + 1 >= len(words):
            raise HostSpecError(
                field,
                f"{where}: expected 'TYPE KEY' or 'HOST TYPE KEY' with TYPE one of "
                + ", ".join(sorted(KEY_TYPES)),
            )
        key = HostKey(words[at], words[at + 1])
        if _blob_type(key.blob) != key.key_type:
            raise HostSpecError(field, f"{where}: the key is not a valid {key.key_type} key")
        keys.append(key)
    if not keys:
        raise HostSpecError(field, "must be a public key or a known_hosts line")
    if len(keys) > MAX_HOST_KEYS:
        raise HostSpecError(field, f"at most {MAX_HOST_KEYS} keys")
    return list(dict.fromkeys(keys))


def _blob_type(blob: str) -> str | None:
    """The key type written at the start of an SSH public key blob (None when unreadable)."""
    try:
        data = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(data) < 4:
        return None
    (length,) = struct.unpack(">I", data[:4])
    if length > 64 or len(data) < 4 + length:
        return None
    return data[4 : 4 + length].decode("ascii", errors="replace")


def known_hosts_text(keys: list[HostKey], host: str) -> str:
    """A known_hosts file pinning `keys` to `host`."""
    return "".join(key.line(host) + "\n" for key in keys)
