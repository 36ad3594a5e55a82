"""Dependencies every route shares: the session, the caller, the Temporal client, the stores."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from api.auth import AuthPolicy, require_platform_user, require_role, user_from_header
from api.hoop.repository import RunbookRepository
from api.run_stream import RunFeeds
from core.artifacts import ArtifactStore
from core.secrets import SecretBox
from core.settings import Settings
from core.store.models import User


@dataclass
class Services:
    """What the app was built with; one per app, on app.state."""

    settings: Settings
    sessions: sessionmaker[Session]
    temporal: Client
    store: ArtifactStore
    box: SecretBox
    runbooks: RunbookRepository
    auth: AuthPolicy
    feeds: RunFeeds  # the live logs this process streams, one poller per run


def get_services(request: Request) -> Services:
    """The app's services."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_session(services: ServicesDep) -> Iterator[Session]:
    """A session whose transaction the route owns; rolled back unless the route commits."""
    with services.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def client_address(request: Request) -> str | None:
    """The address of the peer that sent the request (a proxy's, behind one)."""
    return request.client.host if request.client else None


def current_user(
    request: Request,
    services: ServicesDep,
    authorization: Annotated[str | None, Header()] = None,
) -> User:
    """The authenticated caller with a platform role, detached: checking who calls holds no
    connection afterwards."""
    with services.sessions() as session:
        user = user_from_header(session, authorization, services.auth, client_address(request))
        session.expunge(user)
    return require_platform_user(user)


CurrentUser = Annotated[User, Depends(current_user)]


def current_user_or_query_token(
    request: Request,
    services: ServicesDep,
    authorization: Annotated[str | None, Header()] = None,
    token: Annotated[
        str | None,
        Query(description="A bearer token, for clients that cannot send headers (EventSource)"),
    ] = None,
) -> User:
    """The caller as `current_user` proves it, or by the bearer token in `?token=`.

    Only for routes a browser opens with EventSource, which cannot send an Authorization
    header; every other route refuses a token in the URL, where logs and histories keep it.
    """
    if not authorization and token:
        authorization = f"Bearer {token}"
    return current_user(request, services, authorization)


QueryTokenUser = Annotated[User, Depends(current_user_or_query_token)]


def operator(user: CurrentUser) -> User:
    """The caller, who must be an operator or admin."""
    require_role(user, "operator")
    return user


def admin(user: CurrentUser) -> User:
    """The caller, who must be an admin."""
    require_role(user, "admin")
    return user


OperatorUser = Annotated[User, Depends(operator)]
AdminUser = Annotated[User, Depends(admin)]
