"""Accounts, their users and service accounts, and token revocation.

Functions that take a session, flush, never commit. Account aliases are matched without
regard to case, so `dev` and `DEV` can never name two accounts.
"""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.store.models import Account, ApiToken, ServiceAccount, User, utcnow
from core.store.users import ROLES, get_by_email, hash_password, set_password
from core.store.users import _token_hash as token_hash

ALIAS_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,49}$")
SERVICE_ACCOUNT_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_USERNAME = 320


class AccountError(ValueError):
    """A change to accounts or their users that cannot be made; the message says why.

    `field` names the input at fault (`alias`, `username`), when one is.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def check_alias(alias: str) -> str:
    """`alias` if it is a valid account alias (1-50 letters, digits, '-' or '_')."""
    if not ALIAS_PATTERN.match(alias):
        raise AccountError(
            f"account alias {alias!r} must be 1 to 50 letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return alias


def get_account(session: Session, alias: str) -> Account | None:
    """The account with this alias (any case), if any."""
    return session.scalar(select(Account).where(func.lower(Account.alias) == alias.lower()))


def create_account(session: Session, alias: str, *, location_alias: str = "") -> Account:
    """A new account; AccountError when the alias is malformed or taken (in any case)."""
    check_alias(alias)
    if get_account(session, alias) is not None:
        raise AccountError(f"account {alias!r} already exists")
    account = Account(alias=alias, location_alias=location_alias)
    session.add(account)
    session.flush()
    return account


def ensure_account(session: Session, alias: str, *, location_alias: str = "") -> Account:
    """The account with this alias, created when missing."""
    return get_account(session, alias) or create_account(
        session, alias, location_alias=location_alias
    )


def account_of(session: Session, user: User) -> Account | None:
    """The account a user belongs to, if any."""
    return session.get(Account, user.account_id) if user.account_id else None


def add_account_user(
    session: Session, account: Account, email: str, *, password: str, role: str
) -> tuple[User, bool]:
    """Create a user of `account`, or update one already in it; (user, created).

    `role` is the account role; a new user gets no platform role. A user of another account is
    refused: moving people between tenants is not a side effect of adding them.
    """
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    if not password:
        raise AccountError("the password is empty")
    user = get_by_email(session, email)
    created = user is None
    if user is None:
        user = User(email=email.strip().lower(), role=None, account_id=account.id)
        session.add(user)
    elif user.is_system:
        raise AccountError(f"{email} is a system user")
    elif user.account_id not in (None, account.id):
        raise AccountError(f"{email} belongs to another account")
    user.account_id = account.id
    user.account_role = role
    set_password(session, user, password)
    session.flush()
    return user, created


def service_accounts_of(session: Session, account_id: str) -> list[ServiceAccount]:
    """An account's service accounts, oldest first."""
    return list(
        session.scalars(
            select(ServiceAccount)
            .where(ServiceAccount.account_id == account_id)
            .order_by(ServiceAccount.created_at, ServiceAccount.alias)
        )
    )


def get_service_account(session: Session, account_id: str, alias: str) -> ServiceAccount | None:
    """The service account `alias` of an account, if any."""
    return session.scalar(
        select(ServiceAccount).where(
            ServiceAccount.account_id == account_id, ServiceAccount.alias == alias
        )
    )


def _username_free(session: Session, username: str, *, owner_id: str | None = None) -> None:
    name = username.strip()
    if not name or len(name) > MAX_USERNAME or any(c.isspace() or ord(c) < 32 for c in name):
        raise AccountError(
            f"must be 1 to {MAX_USERNAME} characters without spaces", field="username"
        )
    existing = get_by_email(session, name)
    if existing is not None and existing.id != owner_id:
        raise AccountError(f"{name!r} is already taken", field="username")


def create_service_account(
    session: Session, account: Account, alias: str, *, username: str, password: str
) -> tuple[ServiceAccount, User]:
    """A service account: an operator user of `account`, linked under `alias`."""
    if not SERVICE_ACCOUNT_ALIAS.match(alias):
        raise AccountError(
            "must be 1 to 100 letters, digits, '.', '-' or '_', starting with a letter or digit",
            field="alias",
        )
    if get_service_account(session, account.id, alias) is not None:
        raise AccountError(f"service account {alias!r} already exists", field="alias")
    _username_free(session, username)
    if not password:
        raise AccountError("must not be empty", field="password")
    user = User(
        email=username.strip().lower(),
        name=alias,
        role=None,
        account_role="operator",
        account_id=account.id,
        password_hash=hash_password(password),
    )
    session.add(user)
    session.flush()
    link = ServiceAccount(account_id=account.id, alias=alias, user_id=user.id)
    session.add(link)
    session.flush()
    return link, user


def update_service_account(
    session: Session,
    link: ServiceAccount,
    *,
    username: str | None = None,
    password: str | None = None,
) -> User:
    """New credentials for a service account's user (what is None stays as it is)."""
    user = session.get(User, link.user_id)
    assert user is not None  # the link cascades away with its user
    if username is not None:
        _username_free(session, username, owner_id=user.id)
        user.email = username.strip().lower()
    if password is not None:
        if not password:
            raise AccountError("must not be empty", field="password")
        set_password(session, user, password)
    session.flush()
    return user


def revoke_token(session: Session, token: str) -> bool:
    """Revoke a live bearer token; False when it is unknown or already revoked."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    session.flush()
    return True
