"""Bodies of the Automations API, as its authentication document gives them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_CREDENTIAL = 1024


class LoginRequest(BaseModel):
    """`POST /api/login`."""

    username: str = Field(min_length=1, max_length=MAX_CREDENTIAL)
    password: str = Field(min_length=1, max_length=MAX_CREDENTIAL)


class SignedIn(BaseModel):
    """A bearer token (valid 24 hours), the user's platform role and their name."""

    token: str
    role: str
    username: str


AUTONOMY_LEVELS = ("execute", "approve", "notify", "disabled")
Autonomy = Literal["execute", "approve", "notify", "disabled"]


class MaintenanceWindowIn(BaseModel):
    """`POST /api/maintenance`: times are ISO 8601, UTC unless they carry an offset."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    start: datetime
    end: datetime
    recurring: str | None = Field(default=None, max_length=200)
    scope: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=500
    )
    autonomy_override: Autonomy = "disabled"


class MaintenanceWindow(BaseModel):
    """A window as listed, with whether it is open now."""

    id: str
    name: str
    start: str
    end: str
    recurring: str | None
    scope: list[str]
    autonomy_override: str
    active: bool


class WindowChanged(MaintenanceWindow):
    """A window after a write, with what happened (`created`, `activated`, `deactivated`)."""

    status: Literal["created", "activated", "deactivated"]


class Deleted(BaseModel):
    status: Literal["deleted"] = "deleted"


class Created(BaseModel):
    id: str
    status: Literal["created"] = "created"


class Updated(BaseModel):
    status: Literal["updated"] = "updated"


class AutomationIn(BaseModel):
    """`POST /api/automations` (all fields) and `PUT` (any of them): see docs/automations.md
    for each type's `params`."""

    name: str = Field(max_length=200)
    type: Literal[
        "script", "service_control", "service", "agent_command", "webhook", "notification",
        "workflow", "composite",
    ]  # fmt: skip
    params: dict[str, Any] = Field(default_factory=dict)
    icon: str | None = None
    schedule: str | None = None
    enabled: bool = True
    autonomy: Autonomy = "execute"
    approvers: list[str] = Field(default_factory=list)
    description: str | None = None
    webhook_secret: str | None = None


class RunRequest(BaseModel):
    """`POST /api/automations/{id}/run`: values for the automation's templates."""

    variables: dict[str, str | int | float | bool | None] = Field(default_factory=dict)


class Decision(BaseModel):
    """`POST /api/approvals/{id}/approve` and `/reject`: an optional comment."""

    comment: str | None = Field(default=None, max_length=2000)


class Started(BaseModel):
    run_id: str
    status: str


class TemplateOverrides(BaseModel):
    """`POST /api/automations/templates/{id}/apply`: any automation field, over the template's."""

    name: str | None = None
    params: dict[str, Any] | None = None
    schedule: str | None = None


class Imported(BaseModel):
    """How many items became automations, how many were skipped, and why each was."""

    imported: int
    skipped: int
    errors: list[dict[str, Any]]
