"""An automation's params read with the field kit: what each type stores, the field each
bad value is refused under, and masks that keep the references stored before."""

from __future__ import annotations

from typing import Any

import pytest

from api.automations.params import approval_minutes, channels, check_params
from api.fields import FieldError

URL = "json://hook:pw@127.0.0.1:9/x"


def sealing() -> tuple[list[str], Any]:
    """A `PutSecret` that records what it sealed, and that list."""
    sealed: list[str] = []

    def put(value: str) -> str:
        sealed.append(value)
        return f"id{len(sealed)}"

    return sealed, put


@pytest.mark.parametrize(
    ("kind", "params", "stored"),
    [
        ("script", {"script": "cert-renew"}, {"script": "cert-renew", "args": [], "timeout": 300}),
        ("script", {"command": "echo hi", "timeout": 5.0}, {"command": "echo hi", "timeout": 5}),
        ("service_control", {"service": "nginx"},
         {"service": "nginx", "action": "restart", "timeout": 300}),
        ("service_control", {"service": "a.service", "action": "stop", "host": "web-1",
                             "timeout": 20},
         {"service": "a.service", "action": "stop", "host": "web-1", "timeout": 20}),
        ("agent_command", {"hostname": "db", "command": "uptime"},
         {"host": "db", "command": "uptime", "timeout": 300}),
        ("webhook", {"url": "https://h/x", "method": "put", "headers": {"X-Key": "k"}},
         {"url": "https://h/x", "method": "PUT", "headers": {"X-Key": {"secretRef": "id1"}},
          "timeout": 30}),
        ("notification", {"channels": [URL], "message": "m"},
         {"channels": [{"secretRef": "id1"}], "message": "m", "title": ""}),
        ("workflow", {"steps": ["auto_" + "a" * 32, {"approval": {"timeout_minutes": 1.5}}]},
         {"steps": ["auto_" + "a" * 32,
                    {"approval": {"message": "Approval required", "approvers": [],
                                  "timeout_minutes": 1.5, "on_timeout": "reject"}}]}),
        ("composite", {"automations": ["auto_" + "b" * 32]},
         {"automations": ["auto_" + "b" * 32]}),
    ],
)  # fmt: skip
def test_each_type_stores_its_params(kind: str, params: dict[str, Any], stored: Any) -> None:
    _, put = sealing()
    assert check_params(kind, params, put).params == stored


@pytest.mark.parametrize(
    ("kind", "params", "path"),
    [
        ("script", "echo", "params"),
        ("script", {"command": "a\0b"}, "params.command"),
        ("script", {"script": "cert-renew", "timeout": 1.5}, "params.timeout"),
        ("script", {"script": "cert-renew", "args": ["a", 1]}, "params.args"),
        ("script", {"command": "ls", "args": []}, "params.args"),
        ("service_control", {"service": "a", "host": "-oProxyCommand=x"}, "params.host"),
        ("service_control", {"service": "a", "timeout": 0}, "params.timeout"),
        ("webhook", {"url": "https://h", "headers": {"A": "x\r\nB: y"}}, "params.headers.A"),
        ("webhook", {"url": "https://h", "headers": {"A": "********"}}, "params.headers.A"),
        ("webhook", {"url": "https://h", "body": 3}, "params.body"),
        ("notification", {"channels": [], "message": "m"}, "params.channels"),
        ("notification", {"channels": ["mailto"], "message": "m"}, "params.channels[0]"),
        ("notification", {"channels": [URL], "message": "m", "x": 1}, "params.x"),
        ("workflow", {"steps": [{"approval": [], "x": 1}]}, "params.steps[0]"),
        ("workflow", {"steps": [{"approval": {"approvers": [""]}}]},
         "params.steps[0].approval.approvers[0]"),
        ("workflow", {"steps": [{"approval": {"when": 1}}]}, "params.steps[0].approval.when"),
        ("composite", {"automations": []}, "params.automations"),
    ],
)  # fmt: skip
def test_bad_values_name_their_field(kind: str, params: Any, path: str) -> None:
    sealed, put = sealing()
    with pytest.raises(FieldError) as caught:
        check_params(kind, params, put)
    assert caught.value.path == path, str(caught.value)
    assert sealed == []  # refused before anything was sealed


def test_masks_keep_the_references_stored_before() -> None:
    """An update sending back what was shown keeps each reference; a new value is sealed."""
    sealed, put = sealing()
    before = {"url": "https://h", "method": "POST", "timeout": 30,
              "headers": {"A": {"secretRef": "old-a"}, "B": {"secretRef": "old-b"}}}  # fmt: skip
    update = {"url": "https://h", "headers": {"A": "********", "B": "new"}}
    stored = check_params("webhook", update, put, before).params
    assert stored["headers"] == {"A": {"secretRef": "old-a"}, "B": {"secretRef": "id1"}}
    assert sealed == ["new"]


@pytest.mark.parametrize(
    ("value", "previous", "stored"),
    [
        ([URL], None, [{"secretRef": "id1"}]),
        (["json://***"], [{"secretRef": "k"}], [{"secretRef": "k"}]),
        (["********", URL], [{"secretRef": "k"}], [{"secretRef": "k"}, {"secretRef": "id1"}]),
        ([], [{"secretRef": "k"}], []),
    ],
)
def test_channels(value: Any, previous: Any, stored: Any) -> None:
    _, put = sealing()
    assert channels(value, "channels", put, previous) == stored


@pytest.mark.parametrize(("value", "minutes"), [(None, 60), (0.05, 0.05), (1, 1), (43200, 43200)])
def test_approval_minutes(value: Any, minutes: float) -> None:
    assert approval_minutes(value, "m") == minutes


@pytest.mark.parametrize("value", [0, -0.5, 43200.01, "1", True, float("nan")])
def test_approval_minutes_refused(value: Any) -> None:
    with pytest.raises(FieldError, match=r"^m: must be"):
        approval_minutes(value, "m")
