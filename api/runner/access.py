"""Who may call a Runner route: a Bearer token of a user of the account named in the path.

Order of refusals: 401 (no or a bad token), then 403 (another account's alias, or an alias
that does not exist: the two are not told apart), then 403 for a role too low, and only then
is the body read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Header, Query
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from api.deps import ServicesDep
from api.errors import ApiError
from core.store.accounts import account_of
from core.store.models import Account, Base, User
from core.store.users import role_at_least, user_for_token

# Our roles as the login response names them (CenturyLink Cloud's role names).
RUNNER_ROLES: dict[str, list[str]] = {
    "admin": ["AccountAdmin", "ServerAdmin"],
    "operator": ["ServerOperator"],
    "viewer": ["AccountViewer"],
}
MAX_PAGE = 2**31 - 1
M = TypeVar("M", bound=Base)


class BearerRequired(ApiError):
    """401 with a Bearer challenge."""

    def __init__(self, message: str) -> None:
        super().__init__(401, message)
        self.headers = {"WWW-Authenticate": 'Bearer realm="runwright"'}


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer` header, or 401."""
    if not authorization:
        raise BearerRequired("authorization required: send Authorization: Bearer <token>")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise BearerRequired(
            "use Authorization: Bearer with a token from POST /v2/authentication/login"
        )
    return token.strip()


@dataclass(frozen=True)
class Caller:
    """The authenticated user (detached), their account (None: they have none) and token."""

    user: User
    account: Account | None
    token: str


@dataclass(frozen=True)
class AccountCaller:
    """A caller allowed into the account named in the path."""

    user: User
    account: Account


def runner_caller(
    services: ServicesDep, authorization: Annotated[str | None, Header()] = None
) -> Caller:
    """The user a live Bearer token belongs to, with their account."""
    token = bearer_token(authorization)
    with services.sessions() as session:
        user = user_for_token(session, token, max_age=services.auth.token_max_age)
        if user is None:
            raise BearerRequired("invalid or expired token")
        account = account_of(session, user)
        session.expunge(user)
        if account is not None:
            session.expunge(account)
    return Caller(user=user, account=account, token=token)


RunnerCaller = Annotated[Caller, Depends(runner_caller)]


def account_caller(alias: str, caller: RunnerCaller) -> AccountCaller:
    """The caller, who must belong to the account `alias` (any case)."""
    if caller.account is None or caller.account.alias.lower() != alias.lower():
        raise ApiError(403, f"you do not have access to account {alias}")
    return AccountCaller(user=caller.user, account=caller.account)


def _at_least(role: str) -> Callable[[AccountCaller], AccountCaller]:
    """A dependency: the account's caller, who must have at least `role`."""

    def check(caller: Annotated[AccountCaller, Depends(account_caller)]) -> AccountCaller:
        if not role_at_least(caller.user.account_role, role):
            raise ApiError(403, f"this needs the {role} role ({', '.join(RUNNER_ROLES[role])})")
        return caller

    return check


ViewerCaller = Annotated[AccountCaller, Depends(account_caller)]
OperatorCaller = Annotated[AccountCaller, Depends(_at_least("operator"))]
AdminCaller = Annotated[AccountCaller, Depends(_at_least("admin"))]


@dataclass(frozen=True)
class Page:
    """A page request: 0-based page number and size."""

    page: int
    size: int

    @property
    def offset(self) -> int:
        """Rows before this page."""
        return self.page * self.size


def newest_first(
    session: Session, model: type[M], where: Sequence[ColumnElement[bool]], page: Page
) -> tuple[int, list[M]]:
    """(How many rows match, the page of them), most recently created first."""
    total = session.scalar(select(func.count()).select_from(model).where(*where)) or 0
    order = (model.created_at.desc(), model.id.desc())  # type: ignore[attr-defined]
    rows = session.scalars(
        select(model).where(*where).order_by(*order).offset(page.offset).limit(page.size)
    )
    return total, list(rows)


def paging(
    page: Annotated[int, Query(ge=0, le=MAX_PAGE, description="0-based page number.")] = 0,
    size: Annotated[int, Query(ge=1, le=100, description="Page size, 1 to 100.")] = 100,
) -> Page:
    """`page` and `size` query parameters (400 outside their bounds)."""
    return Page(page=page, size=size)


PageDep = Annotated[Page, Depends(paging)]
