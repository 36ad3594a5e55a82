"""Bodies of the Automations API, as its authentication document gives them."""

from __future__ import annotations

from pydantic import BaseModel, Field

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
