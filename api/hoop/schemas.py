"""The hoop runbooks API's documented shapes (plugin API v1)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ExecRequest(BaseModel):
    """`POST /api/plugins/runbooks/connections/{name}/exec`."""

    model_config = ConfigDict(extra="ignore")

    file_name: str = Field(description="The runbook's path in the repository.")
    client_args: list[str] | None = Field(
        default=None,
        description="Appended to the command; each must be in the connection's "
        "allowed_client_args.",
    )
    env_vars: dict[str, str] | None = Field(
        default=None, description='{"envvar:NAME": base64, "filesystem:NAME": base64}'
    )
    metadata: dict[str, Any] | None = Field(default=None, description="Kept on the session.")
    parameters: dict[str, str] | None = Field(
        default=None, description="The runbook's declared parameters."
    )
    ref_hash: str | None = Field(default=None, description="The commit the caller expects.")


class ExecResponse(BaseModel):
    """An exec's outcome (200), or a session still running (202)."""

    execution_time: int
    exit_code: int
    has_review: bool
    output: str
    output_status: Literal["success", "failed", "running"]
    session_id: str
    truncated: bool


class ReviewUpdate(BaseModel):
    """`PUT /api/reviews/{id}`."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["APPROVED", "REJECTED", "REVOKED"]
