"""Run parameters: stringified like Mission Control, defaults templated, then validated.

Values of `type: secret` parameters (and values derived from them) are then sealed: stored as
secret references, so the run row, the API and the workflow input never hold them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from api.fields import FieldError, PutSecret, secret_ref
from core.gotemplate import TemplateError, render
from core.secrets import MIN_REDACTED_LENGTH

SECRET_TYPE = "secret"  # noqa: S105 - a parameter type's name, not a secret

# Whole floats below this print as integers (`2.0` -> "2"), above it as `1e+21`.
WHOLE_LIMIT = 1e21


def stringify(name: str, value: Any) -> str:
    """A JSON scalar as Mission Control stores it (`true`, `1`, `1.5`); objects are refused."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # Whole numbers print without a fraction; huge and tiny ones keep their exponent.
        whole = value.is_integer() and abs(value) < WHOLE_LIMIT
        return str(int(value)) if whole else repr(value)
    if isinstance(value, str):
        return value
    raise FieldError(f"params.{name}", "must be a string, number or boolean")


def resolve_params(
    declared: list[Mapping[str, Any]], given: Mapping[str, Any], env: Mapping[str, Any]
) -> dict[str, str]:
    """The run's parameters: given values, then templated defaults, then the checks.

    Unknown names and missing required values are refused with the HEAD-era messages, which
    name every parameter at fault (a FieldError without a path).
    """
    names = [str(p["name"]) for p in declared]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise FieldError(
            "",
            f"unknown parameter(s): {', '.join(unknown)}, "
            f"valid parameters are: {', '.join(names) or '(none)'}",
        )
    # A null value is no value: the default applies, or the parameter stays absent.
    values = {name: stringify(name, value) for name, value in given.items() if value is not None}
    for param in declared:
        name = str(param["name"])
        default = param.get("default")
        if values.get(name, "") == "" and default not in (None, ""):
            try:
                values[name] = render(str(default), {**env, "params": dict(values)})
            except TemplateError as exc:
                raise FieldError(f"params.{name}", f"default template error: {exc}") from exc
    missing = [
        str(p["name"]) for p in declared if p.get("required") and not values.get(str(p["name"]))
    ]
    if missing:
        raise FieldError("", f"missing required parameter(s): {','.join(missing)}")
    return values


def secret_names(declared: list[Mapping[str, Any]]) -> set[str]:
    """The names of the parameters declared `type: secret`."""
    return {str(p["name"]) for p in declared if p.get("type") == SECRET_TYPE}


def seal_params(
    declared: list[Mapping[str, Any]], values: Mapping[str, str], put: PutSecret
) -> dict[str, Any]:
    """`values` with each secret one (and each that contains one) swapped for a reference.

    A default such as `{{ .params.token }}-suffix` copies a secret into another parameter:
    that value is a secret too, whatever its declared type.
    """
    secret = secret_names(declared)
    hidden = [v for k, v in values.items() if k in secret and len(v) >= MIN_REDACTED_LENGTH]
    sealed: dict[str, Any] = {}
    for name, value in values.items():
        derived = any(h in value for h in hidden)
        if value != "" and (name in secret or derived):
            sealed[name] = secret_ref(value, put)
        else:
            sealed[name] = value
    return sealed
