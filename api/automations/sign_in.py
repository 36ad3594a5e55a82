"""Signing in to the Automations API: a platform user's password for a 24-hour token."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from api.auth import NO_PLATFORM_ROLE, check_password_login
from api.automations.schemas import LoginRequest, SignedIn
from api.db import write
from api.deps import Services
from api.errors import ApiError
from core.store.users import create_token

TOKEN_TTL = timedelta(hours=24)
BAD_CREDENTIALS = "Invalid credentials"


async def sign_in(services: Services, body: LoginRequest, client: str | None) -> SignedIn:
    """A token for these credentials; 401 when they prove no one (counted by the platform's
    sign-in throttle, 429 once locked out), 403 for an account user without a platform role."""

    def check(session: Session) -> SignedIn:
        user = check_password_login(session, services.auth, client, body.username, body.password)
        if user is None:
            raise ApiError(401, BAD_CREDENTIALS)
        if user.role is None:
            raise ApiError(403, NO_PLATFORM_ROLE)
        ttl = min(TOKEN_TTL, services.auth.token_max_age)
        _, token = create_token(session, user, name="automations login", ttl=ttl)
        return SignedIn(token=token, role=user.role, username=user.email)

    return await write(services.sessions, check)
