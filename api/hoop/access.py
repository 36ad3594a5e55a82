"""Who calls the hoop routes: `Authorization: Bearer <token>` or `Api-Key: <token>`.

An API key is a runwright token (from `POST /v2/authentication/login`); HTTP Basic works too,
as on every other route.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from api.auth import require_platform_user, require_role, user_from_header
from api.deps import ServicesDep, client_address
from core.store.models import User


def hoop_user(
    request: Request,
    services: ServicesDep,
    authorization: Annotated[str | None, Header()] = None,
    api_key: Annotated[str | None, Header(alias="Api-Key")] = None,
) -> User:
    """The authenticated caller with a platform role, detached."""
    if not authorization and api_key:
        authorization = f"Bearer {api_key.strip()}"
    with services.sessions() as session:
        user = user_from_header(session, authorization, services.auth, client_address(request))
        session.expunge(user)
    return require_platform_user(user)


def hoop_operator(user: Annotated[User, Depends(hoop_user)]) -> User:
    """A caller who may run runbooks."""
    require_role(user, "operator")
    return user


def hoop_admin(user: Annotated[User, Depends(hoop_user)]) -> User:
    """A caller who may manage connections."""
    require_role(user, "admin")
    return user


HoopUser = Annotated[User, Depends(hoop_user)]
HoopOperator = Annotated[User, Depends(hoop_operator)]
HoopAdmin = Annotated[User, Depends(hoop_admin)]
