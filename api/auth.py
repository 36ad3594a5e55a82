"""Who is calling: HTTP Basic (email and password) or a Bearer token."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.orm import Session

from api.errors import ApiError
from api.throttle import LoginThrottle
from core.settings import Settings
from core.store.models import User
from core.store.users import authenticate, role_at_least, user_for_token

CHALLENGE = {"WWW-Authenticate": 'Basic realm="runwright"'}


class Unauthorized(ApiError):
    """401 with a Basic challenge, so curl -u and browsers know what to send."""

    def __init__(self, message: str) -> None:
        super().__init__(401, message)
        self.headers = CHALLENGE


@dataclass(frozen=True)
class AuthPolicy:
    """How credentials are checked: failed sign-ins throttled, tokens bounded in age."""

    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    token_max_age: timedelta = timedelta(days=90)

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthPolicy:
        """The policy `settings` describe, with a fresh (empty) throttle."""
        return cls(
            throttle=LoginThrottle(
                failures=settings.login_failures_allowed,
                window_seconds=settings.login_failure_window_seconds,
                lockout_seconds=settings.login_lockout_seconds,
            ),
            token_max_age=settings.token_ttl,
        )


def check_password_login(
    session: Session, policy: AuthPolicy, client: str | None, email: str, password: str
) -> User | None:
    """The user these credentials prove, or None (counted as a failure for this client and
    user); LockedOut, before any hashing, while the pair is locked out.

    A hash of an older kind is upgraded in `session`; the caller commits it.
    """
    policy.throttle.check(client, email)
    user = authenticate(session, email, password)
    if user is None:
        policy.throttle.failed(client, email)
        return None
    return user


def user_from_header(
    session: Session, authorization: str | None, policy: AuthPolicy, client: str | None
) -> User:
    """The user an Authorization header proves, or Unauthorized (LockedOut for a client that
    failed Basic sign-ins too often)."""
    if not authorization:
        raise Unauthorized("authentication required: use HTTP Basic or a Bearer token")
    scheme, _, credentials = authorization.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        user = user_for_token(session, credentials.strip(), max_age=policy.token_max_age)
        if user is None:
            raise Unauthorized("invalid or expired token")
        return user
    if scheme == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise Unauthorized("malformed Basic credentials") from exc
        email, sep, password = decoded.partition(":")
        if not sep:
            policy.throttle.check(client, email)
            policy.throttle.failed(client, email)
            raise Unauthorized("invalid username or password")
        user = check_password_login(session, policy, client, email, password)
        if user is None:
            raise Unauthorized("invalid username or password")
        if session.dirty:  # an upgraded hash: the callers' sessions otherwise only read
            session.commit()
        return user
    raise Unauthorized(f"unsupported authorization scheme {scheme!r}")


NO_PLATFORM_ROLE = "this needs a platform role; account users may use only the Runner API"


def require_platform_user(user: User) -> User:
    """`user`, who must hold a platform role: an account's own users reach only its Runner
    routes, whatever their role there."""
    if user.role is None:
        raise ApiError(403, NO_PLATFORM_ROLE)
    return user


def require_role(user: User, role: str) -> None:
    """Forbidden unless `user` has at least the platform role `role`."""
    require_platform_user(user)
    if not role_at_least(user.role, role):
        raise ApiError(403, f"this needs the {role} role")
