"""An account's own key for signing its callbacks, kept as an encrypted secret row.

Functions that take a session, flush, never commit. Without an account key, callbacks are
signed with the deployment's RUNWRIGHT_CALLBACK_SIGNING_KEY (or not at all).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.secrets import SecretBox
from core.settings import random_token
from core.store.models import Account, Secret
from core.store.secret_values import open_secret, put_secret

MIN_KEY_LENGTH = 16


class CallbackKeyError(ValueError):
    """A key that cannot be used; the message says why."""


def set_callback_key(session: Session, box: SecretBox, account: Account, key: str | None) -> str:
    """Give `account` a new callback key (`key`, or a random one when None); returns it.

    The previous key's row is deleted: receivers switch at once, as with a rotated password.
    """
    value = random_token() if key is None else key.strip()
    if len(value) < MIN_KEY_LENGTH:
        raise CallbackKeyError(f"a callback key needs at least {MIN_KEY_LENGTH} characters")
    previous = account.callback_secret_id
    account.callback_secret_id = put_secret(session, box, value)
    _drop(session, previous)
    session.flush()
    return value


def clear_callback_key(session: Session, account: Account) -> bool:
    """Remove `account`'s key (the deployment's applies again); False when it had none."""
    previous = account.callback_secret_id
    if previous is None:
        return False
    account.callback_secret_id = None
    _drop(session, previous)
    session.flush()
    return True


def callback_key(session: Session, box: SecretBox, account_id: str | None) -> str | None:
    """The key of the account with this id, when it has one."""
    account = session.get(Account, account_id) if account_id else None
    if account is None or account.callback_secret_id is None:
        return None
    return open_secret(session, box, account.callback_secret_id)


def _drop(session: Session, secret_id: str | None) -> None:
    row = session.get(Secret, secret_id) if secret_id else None
    if row is not None:
        session.delete(row)
