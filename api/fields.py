"""Request fields read one at a time, each failure a FieldError naming the field's path.

Every dialect reads its bodies and documents with these and maps FieldError to its own error
shape (`as_bad_request` gives the plain 400). Conventions shared by all readers:

- `path` is where the value sits in the request (`params.command`, `hosts[0].id`); a message
  reads `<path>: <problem>`.
- An absent value (None, and "" for strings) takes the reader's default unless `required`.
- A secret is swapped for a reference (`{"secretRef": id}`) by a `PutSecret` callback before
  anything is stored; the mask `********` sent back on an update keeps the stored reference.

Pure functions, no I/O beyond the callback.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from api.errors import ApiError, bad_request
from core.secrets import MASK, SECRET_REF, is_ref

PutSecret = Callable[[str], str]  # plain value -> reference id
Read = Callable[[Any, str], str]  # (value, path) -> plain text, or FieldError
Bound = int | None  # a limit, or None for none

# Deeper than any document a person writes; bounds the recursion of walking client data.
MAX_DEPTH = 32


class FieldError(ValueError):
    """A request field that cannot be taken; `str` is `<path>: <message>`.

    An empty path stands for several fields at once, which the message then names itself.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


def as_bad_request(exc: FieldError) -> ApiError:
    """A field error as the 400 it is (the dialect's error handler gives it its shape)."""
    return bad_request(str(exc))


def _absent(value: Any, path: str, required: bool, *, blank: bool = True) -> bool:
    """Whether `value` is absent (None, or "" with `blank`); FieldError when it is but must
    not be."""
    if value is None or (blank and value == ""):
        if required:
            raise FieldError(path, "is required")
        return True
    return False


def obj(value: Any, path: str, *, required: bool = False) -> dict[str, Any]:
    """An object field ({} when absent, unless required)."""
    if _absent(value, path, required, blank=False):
        return {}
    if not isinstance(value, dict):
        raise FieldError(path, "must be an object")
    return value


def only_keys(value: Mapping[str, Any], path: str, allowed: Collection[str]) -> None:
    """FieldError naming the first key of `value` that is not one of `allowed`."""
    for key in value:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise FieldError(where, f"is not a known field (known: {', '.join(allowed)})")


def array(
    value: Any,
    path: str,
    *,
    required: bool = False,
    max_items: Bound = None,
    expect: str = "an array",
) -> list[Any]:
    """An array field ([] when absent, unless required); `expect` words the type's name."""
    if _absent(value, path, required, blank=False):
        return []
    if not isinstance(value, list):
        raise FieldError(path, f"must be {expect}")
    if max_items is not None and len(value) > max_items:
        raise FieldError(path, f"must have at most {max_items} items")
    return value


def text(
    value: Any, path: str, *, required: bool = False, max_len: Bound = None, allow_nul: bool = True
) -> str:
    """A string field ("" when absent or empty, unless required), at most `max_len` long."""
    if _absent(value, path, required):
        return ""
    if not isinstance(value, str):
        raise FieldError(path, "must be a string")
    if max_len is not None and len(value) > max_len:
        raise FieldError(path, f"must be at most {max_len} characters")
    if not allow_nul and "\0" in value:
        raise FieldError(path, "must not contain a NUL character")
    return value


def string_list(
    value: Any, path: str, *, required: bool = False, max_items: Bound = None, max_len: Bound = None
) -> list[str]:
    """A list of strings ([] when absent, unless required), each at most `max_len` long."""
    expect = "a list of strings"
    items = array(value, path, required=required, max_items=max_items, expect=expect)
    if not all(isinstance(v, str) for v in items):
        raise FieldError(path, f"must be {expect}")
    for i, item in enumerate(items):
        text(item, f"{path}[{i}]", max_len=max_len)
    return list(items)


def flag(value: Any, path: str, *, default: bool = False) -> bool:
    """A boolean field (`default` when absent)."""
    if value is None:
        return default
    if not isinstance(value, bool):
        raise FieldError(path, "must be true or false")
    return value


def choice(value: Any, path: str, choices: Sequence[str], *, default: str | None = None) -> str:
    """One of `choices` (`default` when absent; required when there is none)."""
    if _absent(value, path, default is None):
        return str(default)
    if value not in choices:
        *first, last = choices
        listed = f"{', '.join(first)} or {last}" if first else last
        raise FieldError(path, f"must be {listed}")
    return str(value)


def _in_range(value: Any, path: str, low: float, high: float, default: Any, unit: str) -> Any:
    """`value` (a number, or None for `default`) when from `low` to `high`."""
    if value is None:
        if default is None:
            raise FieldError(path, "is required")
        return default
    if not low <= value <= high:
        # Whole bounds print whole (`525600`, not `525600.0` or `5.256e+05`).
        low_s, high_s = (str(int(b)) if float(b).is_integer() else f"{b:g}" for b in (low, high))
        raise FieldError(path, f"must be between {low_s} and {high_s}{f' {unit}' if unit else ''}")
    return value


def integer(
    value: Any, path: str, *, low: int, high: int, default: int | None = None, unit: str = ""
) -> int:
    """A whole number from `low` to `high` (`2.0` counts; `default` when absent, else required).

    `unit` names what is counted in the messages: "must be a whole number of minutes".
    """
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise FieldError(path, f"must be a whole number{f' of {unit}' if unit else ''}")
    return int(_in_range(value, path, low, high, default, unit))


def number(
    value: Any, path: str, *, low: float, high: float, default: float | None = None, unit: str = ""
) -> float:
    """A finite number from `low` to `high` (`default` when absent, else required)."""
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
    ):
        raise FieldError(path, f"must be a number{f' of {unit}' if unit else ''}")
    return float(_in_range(value, path, low, high, default, unit))


def secret_ref(value: str, put: PutSecret) -> dict[str, str]:
    """`value` stored through `put`, as the reference that stands for it."""
    return {SECRET_REF: put(value)}


def kept_secret(previous: Any, path: str) -> dict[str, str]:
    """The stored reference a masked value keeps; FieldError when nothing is stored."""
    if not is_ref(previous):
        raise FieldError(path, f"is masked ({MASK}); send the value itself")
    return dict(previous)


def secret(
    value: Any, path: str, put: PutSecret, *, previous: Any = None, read: Read = text
) -> dict[str, str] | None:
    """A secret field's stored form: a reference, or None when not given.

    The mask keeps `previous` (the reference stored there before); any other value is read
    with `read` (a plain string by default) and stored through `put`.
    """
    if value is None or value == "":
        return None
    if value == MASK:
        return kept_secret(previous, path)
    return secret_ref(read(value, path), put)


def plain_data(
    value: Any, path: str, *, max_depth: int = MAX_DEPTH, max_bytes: Bound = None
) -> Any:
    """`value` (JSON data) if nothing in it has the form of a secret reference, it nests at
    most `max_depth` levels and, as compact JSON, takes at most `max_bytes` bytes.

    The engine opens every reference in a spec, so one written by a client could reach any
    stored secret.
    """
    _walk_plain(value, path, max_depth, max_depth)
    if max_bytes is not None:
        dumped = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        size = len(dumped.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            raise FieldError(path, f"must be at most {max_bytes} bytes as JSON, not {size}")
    return value


def _walk_plain(value: Any, path: str, left: int, limit: int) -> None:
    if is_ref(value):
        raise FieldError(path, f'objects of the form {{"{SECRET_REF}": ...}} are not accepted')
    if isinstance(value, dict | list) and left <= 0:
        raise FieldError(path, f"nests objects and arrays more than {limit} levels deep")
    if isinstance(value, dict):
        for key, item in value.items():
            _walk_plain(item, f"{path}.{key}", left - 1, limit)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _walk_plain(item, f"{path}[{i}]", left - 1, limit)
