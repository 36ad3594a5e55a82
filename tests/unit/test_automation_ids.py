"""`auto_…` and `run_…` ids map to and from the engine's UUIDs, and nothing else maps."""

from __future__ import annotations

import uuid

import pytest

from api.automations.ids import (
    approval_engine_id,
    approval_public_id,
    automation_engine_id,
    automation_public_id,
    run_engine_id,
    run_public_id,
)

ENGINE = "0b7f3c9e-5d2a-4c1e-9f3b-2a6d8e4c1b70"


def test_round_trips() -> None:
    assert automation_public_id(ENGINE) == "auto_0b7f3c9e5d2a4c1e9f3b2a6d8e4c1b70"
    assert run_public_id(ENGINE) == "run_0b7f3c9e5d2a4c1e9f3b2a6d8e4c1b70"
    assert automation_engine_id(automation_public_id(ENGINE)) == ENGINE
    assert run_engine_id(run_public_id(ENGINE)) == ENGINE


@pytest.mark.parametrize(
    "public",
    [
        "",
        "auto_",
        "run_0b7f3c9e5d2a4c1e9f3b2a6d8e4c1b70",  # a run id is not an automation id
        "auto_0b7f3c9e5d2a4c1e9f3b2a6d8e4c1b7",  # too short
        "auto_0b7f3c9e5d2a4c1e9f3b2a6d8e4c1b70a",  # too long
        "auto_zb7f3c9e5d2a4c1e9f3b2a6d8e4c1b70",  # not hex
        ENGINE,  # the bare UUID is not a public id
        "AUTO_0b7f3c9e5d2a4c1e9f3b2a6d8e4c1b70",
        "auto_0B7F3C9E5D2A4C1E9F3B2A6D8E4C1B70",  # another spelling of the same UUID
        "auto_{b7f3c9e5d2a4c1e9f3b2a6d8e4c1b70}",
    ],
)
def test_other_strings_are_not_automation_ids(public: str) -> None:
    assert automation_engine_id(public) is None


def test_other_strings_are_not_run_ids() -> None:
    assert run_engine_id("auto_" + uuid.UUID(ENGINE).hex) is None
    assert run_engine_id("run_" + "g" * 32) is None


def test_approval_ids_round_trip_and_stay_apart() -> None:
    """`apr_…` names a gate's UUID (uuid5 as gates have them); other prefixes do not."""
    gate = str(uuid.uuid5(uuid.NAMESPACE_URL, "gate"))
    assert approval_public_id(gate) == "apr_" + uuid.UUID(gate).hex
    assert approval_engine_id(approval_public_id(gate)) == gate
    assert approval_engine_id("run_" + uuid.UUID(gate).hex) is None
    assert approval_engine_id("apr_" + uuid.UUID(gate).hex.upper()) is None
    assert approval_engine_id(gate) is None


FIRING = "s-0123456789ab-2030-01-31T18:00:00Z"


def test_a_schedule_firing_keeps_its_workflow_id() -> None:
    """A run a schedule started is `run_` and its workflow id, and maps back."""
    assert run_public_id(FIRING) == "run_" + FIRING
    assert run_engine_id("run_" + FIRING) == FIRING


@pytest.mark.parametrize(
    "public",
    [
        FIRING,  # no prefix
        "run_s-0123456789ab-2030-01-31T18:00:00+00:00",
        "run_s-0123456789AB-2030-01-31T18:00:00Z",
        "run_s-0123456789ab-2030-01-31T18:00:00Z/../x",
        "run_x-0123456789ab-2030-01-31T18:00:00Z",
    ],
)
def test_other_strings_are_not_firing_ids(public: str) -> None:
    assert run_engine_id(public) is None
