"""Mission Control's pure rules: resource filters and parameter resolution."""

from __future__ import annotations

from typing import Any

import pytest

from api.fields import FieldError
from api.mission_control.filters import filter_matches, playbook_applies
from api.mission_control.parameters import resolve_params, seal_params, stringify

DEPLOYMENT = "Kubernetes::Deployment"


@pytest.mark.parametrize(
    ("flt", "rtype", "tags", "matches"),
    [
        ({"type": DEPLOYMENT}, DEPLOYMENT, {}, True),
        ({"type": DEPLOYMENT}, "Kubernetes::Pod", {}, False),
        ({}, "anything", {"a": "1"}, True),
        ({"tags": {"env": "prod"}}, DEPLOYMENT, {"env": "prod", "team": "x"}, True),
        ({"tags": {"env": "prod"}}, DEPLOYMENT, {"env": "dev"}, False),
        ({"tags": {"env": "prod"}}, DEPLOYMENT, {}, False),
        ({"type": DEPLOYMENT, "tags": {"env": "prod"}}, DEPLOYMENT, {"env": "prod"}, True),
        ({"type": DEPLOYMENT, "tags": {"env": "prod"}}, "Other", {"env": "prod"}, False),
        ({"type": "", "tags": {}}, "Other", {}, True),
    ],
)
def test_filter_entry(flt: dict[str, Any], rtype: str, tags: dict[str, str], matches: bool) -> None:
    """A filter matches when its type (if set) is the resource's and its tags are a subset."""
    assert filter_matches(flt, rtype, tags) is matches


@pytest.mark.parametrize(
    ("spec", "kind", "applies"),
    [
        ({"configs": [{"type": "Other"}, {"type": DEPLOYMENT}]}, "config", True),
        ({"configs": [{"type": DEPLOYMENT}]}, "check", False),
        ({"checks": [{}]}, "check", True),
        ({}, "component", False),
        ({"components": []}, "component", False),
    ],
)
def test_playbook_applies(spec: dict[str, Any], kind: str, applies: bool) -> None:
    """Any matching entry of the kind's list applies the playbook; no list never applies."""
    assert playbook_applies(spec, kind, DEPLOYMENT, {"env": "prod"}) is applies


@pytest.mark.parametrize(
    ("value", "text"),
    [("1", "1"), (1, "1"), (True, "true"), (False, "false"), (1.5, "1.5"), (2.0, "2")],
)
def test_stringify(value: Any, text: str) -> None:
    """JSON scalars become Mission Control's string parameters."""
    assert stringify("p", value) == text


@pytest.mark.parametrize("value", [{"a": 1}, [1, 2], None])
def test_stringify_refuses_objects(value: Any) -> None:
    """Objects, arrays and null are refused, naming the parameter."""
    with pytest.raises(FieldError, match=r"params\.p: must be a string, number or boolean"):
        stringify("p", value)


DECLARED = [
    {"name": "replicas", "default": "2"},
    {"name": "namespace", "default": "{{.config.tags.namespace}}"},
    {"name": "target", "default": "{{.config.name}}-{{.params.replicas}}"},
    {"name": "reason", "required": True},
    {"name": "note"},
]
ENV = {"config": {"name": "podinfo", "tags": {"namespace": "demo"}}, "check": None}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            {"reason": "load"},
            {"replicas": "2", "namespace": "demo", "target": "podinfo-2", "reason": "load"},
        ),
        (
            {"reason": "load", "replicas": 5, "note": "n"},
            {"replicas": "5", "namespace": "demo", "target": "podinfo-5", "reason": "load",
             "note": "n"},
        ),
        (
            {"reason": "x", "namespace": ""},
            {"replicas": "2", "namespace": "demo", "target": "podinfo-2", "reason": "x"},
        ),
    ],
)  # fmt: skip
def test_resolve_params(given: dict[str, Any], expected: dict[str, str]) -> None:
    """Given values win; defaults are templated against the resource and earlier params."""
    assert resolve_params(DECLARED, given, ENV) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "missing required parameter(s): reason"),
        ({"reason": ""}, "missing required parameter(s): reason"),
        (
            {"reason": "x", "bogus": 1, "aaa": 2},
            "unknown parameter(s): aaa, bogus, valid parameters are: replicas, namespace, "
            "target, reason, note",
        ),
    ],
)
def test_resolve_params_refusals(given: dict[str, Any], message: str) -> None:
    """Unknown and missing required parameters are refused with the HEAD-era messages."""
    with pytest.raises(FieldError) as caught:
        resolve_params(DECLARED, given, ENV)
    assert str(caught.value) == message


def test_bad_default_template_names_the_parameter() -> None:
    """A default that fails to render names its parameter."""
    declared = [{"name": "x", "default": '{{ eq 1 "a" }}'}]
    with pytest.raises(FieldError, match=r"params\.x: default template error"):
        resolve_params(declared, {}, {})


SEALED_DECLARED: list[dict[str, Any]] = [
    {"name": "token", "type": "secret"},
    {"name": "header", "type": "text"},
    {"name": "reason"},
    {"name": "pin", "type": "secret"},
]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"reason": "why"}, {"reason": "why"}),
        ({"token": "tok-1234"}, {"token": {"secretRef": "ref-tok-1234"}}),
        ({"token": ""}, {"token": ""}),
        (
            {"token": "tok-1234", "header": "Bearer tok-1234", "reason": "tok"},
            {
                "token": {"secretRef": "ref-tok-1234"},
                "header": {"secretRef": "ref-Bearer tok-1234"},
                "reason": "tok",
            },
        ),
        # Too short to search for inside other values, but still a secret itself.
        (
            {"pin": "12", "reason": "12 replicas"},
            {"pin": {"secretRef": "ref-12"}, "reason": "12 replicas"},
        ),
    ],
)
def test_seal_params(values: dict[str, str], expected: dict[str, Any]) -> None:
    """Secret parameters, and values that contain one, become references; others stay."""
    assert seal_params(SEALED_DECLARED, values, lambda v: f"ref-{v}") == expected
