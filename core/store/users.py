"""Users, teams and bearer tokens: functions that take a session, flush, never commit."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.passwords import check_password, check_password_of_nobody, hash_password
from core.store.models import ApiToken, Team, TeamMember, User, utcnow

ROLES = ("viewer", "operator", "admin")
SYSTEM_EMAIL = "system@runwright.local"
__all__ = ["hash_password"]  # re-exported: callers hash through the store


def role_at_least(role: str | None, needed: str) -> bool:
    """Whether `role` includes `needed` (viewer < operator < admin); no role includes none."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def get_by_email(session: Session, email: str) -> User | None:
    """The user with this email (case-insensitive), if any."""
    return session.scalar(select(User).where(User.email == email.strip().lower()))


def upsert_user(
    session: Session,
    email: str,
    *,
    name: str = "",
    password: str | None = None,
    role: str | None = None,
) -> User:
    """Create or update a user by email; a given password replaces the old one."""
    user = get_by_email(session, email)
    if user is None:
        user = User(email=email.strip().lower(), name=name, role=role or "viewer")
        session.add(user)
    else:
        if name:
            user.name = name
        if role:
            user.role = role
    if password is not None:
        set_password(session, user, password)
    session.flush()
    return user


def set_password(session: Session, user: User, password: str) -> bool:
    """Give `user` this password; a new one revokes every token they hold. Whether it changed.

    Setting the password a user already has (a document applied again) keeps their tokens.
    """
    if user.password_hash and user.id is not None:
        same, upgraded = check_password(password, user.password_hash)
        if same:
            if upgraded:
                user.password_hash = upgraded
            return False
    user.password_hash = hash_password(password)
    if user.id is not None:
        revoke_tokens_of(session, user.id)
    return True


def revoke_tokens_of(session: Session, user_id: str) -> int:
    """Revoke every live token of a user; how many were."""
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )
    return int(getattr(result, "rowcount", 0) or 0)


def system_user(session: Session) -> User:
    """The user runs are attributed to when no person started them."""
    user = get_by_email(session, SYSTEM_EMAIL)
    if user is None:
        user = User(email=SYSTEM_EMAIL, name="System", role="admin", is_system=True)
        session.add(user)
        session.flush()
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The user whose email and password match, or None.

    Unknown users, system users and users without a password cost one hash like everyone
    else, so the time taken does not tell who exists. A hash of an older kind is replaced
    (for the caller to commit) once the password has proved right.
    """
    user = get_by_email(session, email)
    if user is None or user.is_system or not user.password_hash:
        check_password_of_nobody(password)
        return None
    valid, upgraded = check_password(password, user.password_hash)
    if not valid:
        return None
    if upgraded:
        user.password_hash = upgraded
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    session: Session, user: User, *, name: str = "", ttl: timedelta | None = None
) -> tuple[ApiToken, str]:
    """A new bearer token for `user`; the plain token is returned once and never stored."""
    plain = secrets.token_hex(32)
    expires = utcnow() + ttl if ttl else None
    row = ApiToken(user_id=user.id, token_hash=_token_hash(plain), name=name, expires_at=expires)
    session.add(row)
    session.flush()
    return row, plain


def token_expiry(row: ApiToken, max_age: timedelta | None) -> datetime | None:
    """When a token stops working: its own expiry, or (tokens made without one) `max_age`
    after it was made."""
    if row.expires_at is not None:
        return row.expires_at
    return row.created_at + max_age if max_age is not None else None


def user_for_token(
    session: Session,
    token: str,
    *,
    now: datetime | None = None,
    max_age: timedelta | None = None,
) -> User | None:
    """The user a live (unexpired, unrevoked) bearer token belongs to.

    `max_age` bounds tokens stored without an expiry (made before tokens had to expire).
    """
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _token_hash(token)))
    now = now or utcnow()
    if row is None or row.revoked_at is not None:
        return None
    expires = token_expiry(row, max_age)
    if expires is not None and expires <= now:
        return None
    return session.get(User, row.user_id)


def list_tokens(
    session: Session, *, limit: int, offset: int = 0, email: str | None = None
) -> list[tuple[ApiToken, str]]:
    """Tokens with their user's email, newest first; only `email`'s when given."""
    query = select(ApiToken, User.email).join(User, User.id == ApiToken.user_id)
    if email:
        query = query.where(User.email == email.strip().lower())
    query = query.order_by(ApiToken.created_at.desc(), ApiToken.id).limit(limit).offset(offset)
    return [(row, user_email) for row, user_email in session.execute(query).all()]


def revoke_token_by_id(session: Session, token_id: str) -> tuple[ApiToken, str] | None:
    """Revoke a token by its id (a revoked one stays as it was); None when there is none."""
    found = session.execute(
        select(ApiToken, User.email)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.id == token_id)
    ).first()
    if found is None:
        return None
    row, user_email = found
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return row, user_email


def upsert_team(session: Session, name: str, member_emails: list[str]) -> Team:
    """Create or update a team by name; its members become exactly `member_emails`."""
    team = session.scalar(select(Team).where(Team.name == name))
    if team is None:
        team = Team(name=name)
        session.add(team)
        session.flush()
    wanted: set[str] = set()
    for email in member_emails:
        user = get_by_email(session, email) or upsert_user(session, email)
        wanted.add(user.id)
    current = set(session.scalars(select(TeamMember.user_id).where(TeamMember.team_id == team.id)))
    for user_id in current - wanted:
        member = session.get(TeamMember, (team.id, user_id))
        if member is not None:
            session.delete(member)
    for user_id in wanted - current:
        session.add(TeamMember(team_id=team.id, user_id=user_id))
    session.flush()
    return team


def teams_by_name(session: Session, names: list[str]) -> dict[str, Team]:
    """The teams with these names, by name (missing names are absent)."""
    if not names:
        return {}
    return {t.name: t for t in session.scalars(select(Team).where(Team.name.in_(names)))}


def team_ids_of(session: Session, user_id: str) -> set[str]:
    """Ids of the teams `user_id` belongs to."""
    return set(session.scalars(select(TeamMember.team_id).where(TeamMember.user_id == user_id)))


def team_names_of(session: Session, user_id: str) -> set[str]:
    """Names of the teams `user_id` belongs to (hoop's groups)."""
    return set(
        session.scalars(
            select(Team.name)
            .join(TeamMember, TeamMember.team_id == Team.id)
            .where(TeamMember.user_id == user_id)
        )
    )
