"""Users, teams and bearer tokens: functions that take a session, flush, never commit."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.store.models import ApiToken, Team, TeamMember, User, utcnow

ROLES = ("viewer", "operator", "admin")
SYSTEM_EMAIL = "system@runwright.local"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    """A salted scrypt hash in `scrypt$salt$hash` form."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


# Basic auth sends the password with every request and scrypt is slow on purpose (~75 ms), so
# successful checks are remembered for a while. The key covers the stored hash, so a changed
# password is never answered from here; only digests are kept, never passwords.
VERIFIED_TTL_SECONDS = 300.0
VERIFIED_MAX = 4096
_verified: OrderedDict[str, float] = OrderedDict()
_verified_lock = threading.Lock()


def verify_password(password: str, stored: str | None) -> bool:
    """Whether `password` matches a hash made by hash_password (constant time)."""
    if not stored or not stored.startswith("scrypt$"):
        return False
    key = hashlib.sha256(f"{stored}\0{password}".encode()).hexdigest()
    now = time.monotonic()
    with _verified_lock:
        seen = _verified.get(key)
    if seen is not None and now - seen < VERIFIED_TTL_SECONDS:
        return True
    _, salt_hex, digest_hex = stored.split("$", 2)
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), **_SCRYPT)
    if not hmac.compare_digest(digest.hex(), digest_hex):
        return False
    with _verified_lock:
        _verified[key] = now
        _verified.move_to_end(key)
        while len(_verified) > VERIFIED_MAX:
            _verified.popitem(last=False)
    return True


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
        user.password_hash = hash_password(password)
    session.flush()
    return user


def system_user(session: Session) -> User:
    """The user runs are attributed to when no person started them."""
    user = get_by_email(session, SYSTEM_EMAIL)
    if user is None:
        user = User(email=SYSTEM_EMAIL, name="System", role="admin", is_system=True)
        session.add(user)
        session.flush()
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The user whose email and password match, or None."""
    user = get_by_email(session, email)
    if user is None or user.is_system or not verify_password(password, user.password_hash):
        return None
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


def user_for_token(session: Session, token: str, *, now: datetime | None = None) -> User | None:
    """The user a live (unexpired, unrevoked) bearer token belongs to."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _token_hash(token)))
    now = now or utcnow()
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    return session.get(User, row.user_id)


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
