"""Runner sign-in, sign-out and service accounts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from api.auth import AuthPolicy, check_password_login
from api.db import write
from api.deps import Services
from api.errors import bad_request, not_found
from api.fields import FieldError, as_bad_request, text
from api.runner import schemas
from api.runner.access import RUNNER_ROLES, AccountCaller
from core.secrets import MASK
from core.store.accounts import (
    AccountError,
    account_of,
    create_service_account,
    get_service_account,
    revoke_token,
    service_accounts_of,
    update_service_account,
)
from core.store.models import Account, ServiceAccount, User
from core.store.users import create_token

TOKEN_TTL = timedelta(days=14)  # "reusable for up to 2 weeks"
BAD_CREDENTIALS = "We didn't recognize the username or password you entered. Please try again."


def _object(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise bad_request("body: must be a JSON object")
    return raw


def _text(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    try:
        return text(body.get(name), name, required=required) or None
    except FieldError as exc:
        raise as_bad_request(exc) from exc


def _account_error(exc: AccountError) -> Exception:
    return bad_request(f"{exc.field}: {exc}" if exc.field else str(exc))


# ---- login ---------------------------------------------------------------------------------


def signed_in(
    session: Session, policy: AuthPolicy, client: str | None, username: str, password: str
) -> tuple[User, Account, str] | None:
    """The user and account these credentials prove, with a new bearer token (valid 14 days,
    or the deployment's shorter token life); None for anyone without an account. Failures
    count against the (client, username) pair, which is refused with 429 once locked out."""
    user = check_password_login(session, policy, client, username, password)
    account = account_of(session, user) if user is not None else None
    if user is None or account is None:
        return None
    ttl = min(TOKEN_TTL, policy.token_max_age)
    _, token = create_token(session, user, name="runner login", ttl=ttl)
    return user, account, token


async def login(services: Services, raw: Any, client: str | None) -> schemas.Login:
    """Exchange a username and password for a bearer token."""
    body = _object(raw)
    username = _text(body, "username")
    password = _text(body, "password")
    assert username is not None and password is not None
    found = await write(services.sessions, signed_in, services.auth, client, username, password)
    if found is None:
        raise bad_request(BAD_CREDENTIALS)
    user, account, token = found
    return schemas.Login(
        userName=user.email,
        accountAlias=account.alias,
        locationAlias=account.location_alias,
        roles=RUNNER_ROLES.get(user.account_role or "", []),
        bearerToken=token,
    )


async def logout(services: Services, token: str) -> None:
    """Revoke the presented token."""
    await write(services.sessions, revoke_token, token)


# ---- service accounts ----------------------------------------------------------------------


def _document(link: ServiceAccount, user: User, alias: str) -> schemas.ServiceAccount:
    return schemas.ServiceAccount(
        id=link.id, accountAlias=alias, alias=link.alias, username=user.email, password=MASK
    )


def add_service_account(
    session: Session, caller: AccountCaller, raw: Any
) -> schemas.ServiceAccount:
    """A new service account: an operator user of the caller's account."""
    body = _object(raw)
    alias = _text(body, "alias")
    username = _text(body, "username")
    password = _text(body, "password")
    assert alias is not None and username is not None and password is not None
    try:
        link, user = create_service_account(
            session, caller.account, alias, username=username, password=password
        )
    except AccountError as exc:
        raise _account_error(exc) from exc
    return _document(link, user, caller.account.alias)


def change_service_account(
    session: Session, caller: AccountCaller, service_alias: str, raw: Any
) -> schemas.ServiceAccount:
    """New username and/or password for a service account."""
    link = get_service_account(session, caller.account.id, service_alias)
    if link is None:
        raise not_found(f"service account {service_alias} not found")
    body = _object(raw)
    username = _text(body, "username", required=False)
    password = _text(body, "password", required=False)
    if username is None and password is None:
        raise bad_request("body: give a username, a password or both")
    try:
        user = update_service_account(session, link, username=username, password=password)
    except AccountError as exc:
        raise _account_error(exc) from exc
    return _document(link, user, caller.account.alias)


def list_service_accounts(session: Session, account: Account) -> schemas.ServiceAccountList:
    """The aliases of the account's service accounts."""
    aliases = [s.alias for s in service_accounts_of(session, account.id)]
    return schemas.ServiceAccountList(accounts=aliases)


async def create(services: Services, caller: AccountCaller, raw: Any) -> schemas.ServiceAccount:
    """Create a service account (one transaction)."""
    return await write(services.sessions, add_service_account, caller, raw)


async def update(
    services: Services, caller: AccountCaller, service_alias: str, raw: Any
) -> schemas.ServiceAccount:
    """Update a service account (one transaction)."""
    return await write(services.sessions, change_service_account, caller, service_alias, raw)
