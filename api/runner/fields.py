"""Runner's own request fields, on top of the shared kit (api.fields): host ids and the
base64-encoded private keys Runner documents.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from api.fields import FieldError, text

# Host ids become inventory names and --limit patterns: names and addresses only, so none
# can be read as a pattern (`!x`, `~re`, `a,b`, `web[1:3]`, `*`).
HOST_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._:-]{0,252}$")


def decode_key(value: Any, path: str) -> str:
    """The text of a base64-encoded private key (line breaks in the base64 are allowed)."""
    if not isinstance(value, str):
        raise FieldError(path, "must be a base64 string")
    try:
        raw = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FieldError(path, "is not valid base64") from exc
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FieldError(path, "must be a base64-encoded private key (text)") from exc
    if not decoded.strip():
        raise FieldError(path, "is empty once decoded")
    return decoded


def host_id(value: Any, path: str) -> str:
    """A host id: a host name or address."""
    hid = text(value, path, required=True)
    if not HOST_ID.match(hid):
        raise FieldError(
            path, f"{hid!r} must be a host name or address (letters, digits, '.', '-', '_', ':')"
        )
    return hid
