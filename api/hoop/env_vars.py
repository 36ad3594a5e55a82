"""hoop's `env_vars`: `{"envvar:NAME": base64, "filesystem:NAME": base64}`.

The document's example (`{"envvar": "PASSWORD:MTIz"}`) is a rendering of the same thing with
the name moved into the value; a key that is exactly a type takes its name from the value.
Names that change how programs run or where a database client connects are refused
(:mod:`core.env_names`), as for a template's `asenv`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.env_names import VALID_NAME, refused_env_name

KINDS = ("envvar", "filesystem")


class EnvVarsError(ValueError):
    """An env_vars entry that cannot be used; the message names it."""


@dataclass(frozen=True)
class EnvVars:
    """Decoded values: `env` as environment variables, `files` as paths to files holding them."""

    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


def _decode(value: str, where: str) -> str:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EnvVarsError(f"env_vars[{where}]: value is not valid base64") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvVarsError(f"env_vars[{where}]: value is not UTF-8 text once decoded") from exc
    if "\0" in text:
        raise EnvVarsError(f"env_vars[{where}]: value contains a NUL byte")
    return text


def parse_env_vars(raw: Mapping[str, str] | None) -> EnvVars:
    """The decoded env_vars of an exec request, or EnvVarsError naming the bad entry."""
    out = EnvVars()
    for key, value in (raw or {}).items():
        if key in KINDS:
            # The document's literal form: the name travels in front of the value.
            name, sep, encoded = value.partition(":")
            if not sep:
                raise EnvVarsError(
                    f"env_vars[{key}]: want the value as NAME:<base64> when the key is only a type"
                )
            kind = key
        else:
            parts = key.split(":")
            if len(parts) != 2:
                raise EnvVarsError(
                    f"env_vars[{key}]: environment variable key type in unknown format, "
                    "want=[keytype:key]"
                )
            kind, name = parts
            encoded = value
            if kind not in KINDS:
                raise EnvVarsError(
                    f'env_vars[{key}]: unknow environment variable type "{kind}", '
                    'accepted: "filesystem", "envvar"'
                )
        if not VALID_NAME.fullmatch(name):
            raise EnvVarsError(f"env_vars[{key}]: {name!r} is not a valid variable name")
        refusal = refused_env_name(name)
        if refusal:
            raise EnvVarsError(f"env_vars[{key}]: {name} {refusal}")
        target = out.env if kind == "envvar" else out.files
        target[name] = _decode(encoded, key)
    return out
