"""`runwright account add` and `runwright user add`, run as commands against a migrated DB;
and the dev stack's account DEV."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from core.settings import generate_key
from core.store.accounts import add_account_user, create_account, get_account
from core.store.migrate import upgrade
from core.store.models import User
from core.store.session import make_engine, make_session_factory, transaction
from core.store.users import authenticate
from workers.dev import seed_dev_admin

RUNWRIGHT = str(Path(sys.executable).parent / "runwright")


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    """A migrated SQLite database's URL."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    yield url


def runwright(database: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The command with only the database and a key configured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWRIGHT_")}
    env |= {"RUNWRIGHT_DATABASE_URL": database, "RUNWRIGHT_SECRET_KEY": generate_key()}
    return subprocess.run(
        [RUNWRIGHT, *args], input=stdin, env=env, capture_output=True, text=True, timeout=60
    )


def accounts(database: str, *aliases: str) -> None:
    """Accounts made in the database directly (the command's own test is above)."""
    engine = make_engine(database)
    with transaction(make_session_factory(engine)) as session:
        for alias in aliases:
            create_account(session, alias)
    engine.dispose()


def user(database: str, email: str, password: str) -> User | None:
    """The user these credentials sign in as, if any."""
    engine = make_engine(database)
    try:
        with make_session_factory(engine)() as session:
            return authenticate(session, email, password)
    finally:
        engine.dispose()


def test_account_add_creates_an_account_once(database: str) -> None:
    """An alias is created with its location; the same alias in another case is refused."""
    done = runwright(database, "account", "add", "ACME", "--location", "VA1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("account ACME created")
    engine = make_engine(database)
    with make_session_factory(engine)() as session:
        account = get_account(session, "acme")
        assert account is not None and account.location_alias == "VA1"
    engine.dispose()
    again = runwright(database, "account", "add", "acme")
    assert again.returncode == 1
    assert again.stderr.strip() == "runwright account add: account 'acme' already exists"
    bad = runwright(database, "account", "add", "no spaces")
    assert bad.returncode == 1 and "account alias 'no spaces' must be" in bad.stderr


def test_user_add_reads_the_password_from_stdin(database: str) -> None:
    """A user of the account is created with the account role and the password given on stdin,
    and no platform role."""
    accounts(database, "ACME")
    done = runwright(
        database, "user", "add", "Ops@Acme.test", "--account", "acme", "--role", "admin",
        "--password-stdin", stdin="s3cret pass\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "user ops@acme.test created: admin of account ACME"
    found = user(database, "ops@acme.test", "s3cret pass")
    assert found is not None and found.account_role == "admin" and found.account_id is not None
    assert found.role is None
    again = runwright(
        database, "user", "add", "ops@acme.test", "--account", "ACME", "--role", "viewer",
        stdin="other pass\n",
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "updated: viewer" in again.stdout
    assert user(database, "ops@acme.test", "s3cret pass") is None
    changed = user(database, "ops@acme.test", "other pass")
    assert changed is not None and changed.account_role == "viewer" and changed.role is None


def test_user_add_gives_platform_roles(database: str) -> None:
    """Without --account the role is a platform role; --platform-role adds one to an account's
    user."""
    accounts(database, "ACME")
    done = runwright(
        database, "user", "add", "ops@corp.test", "--role", "operator", stdin="pw one\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "user ops@corp.test created: platform operator"
    platform = user(database, "ops@corp.test", "pw one")
    assert platform is not None and platform.role == "operator" and platform.account_id is None
    both = runwright(
        database, "user", "add", "lead@acme.test", "--account", "ACME", "--role", "admin",
        "--platform-role", "viewer", stdin="pw two\n",
    )  # fmt: skip
    assert both.returncode == 0, both.stderr
    assert both.stdout.strip().endswith("admin of account ACME, platform viewer")
    lead = user(database, "lead@acme.test", "pw two")
    assert lead is not None and (lead.role, lead.account_role) == ("viewer", "admin")


def test_user_add_refusals(database: str) -> None:
    """Unknown accounts, empty passwords and users of another account are refused."""
    accounts(database, "ACME", "OTHER")
    engine = make_engine(database)
    with transaction(make_session_factory(engine)) as session:
        acme = get_account(session, "ACME")
        assert acme is not None
        add_account_user(session, acme, "kim@acme.test", password="pw", role="viewer")
    engine.dispose()
    refusals = [
        (["--account", "NOPE", "--role", "admin"], "pw\n", "account 'NOPE' does not exist"),
        (["--account", "ACME", "--role", "admin"], "\n", "the password is empty"),
        (["--account", "OTHER", "--role", "operator"], "pw\n", "belongs to another account"),
    ]
    for args, stdin, error in refusals:
        done = runwright(database, "user", "add", "kim@acme.test", *args, stdin=stdin)
        assert done.returncode == 1, args
        assert error in done.stderr, done.stderr


def test_user_add_on_an_unmigrated_database_says_so(tmp_path: Path) -> None:
    """Without the schema the command says to migrate, instead of a traceback."""
    done = runwright(f"sqlite:///{tmp_path / 'empty.db'}", "account", "add", "ACME")
    assert done.returncode == 1
    assert "run `runwright migrate`" in done.stderr


def test_dev_seed_makes_the_dev_admin_admin_of_dev(database: str) -> None:
    """`runwright dev` seeds account DEV whose admin is admin@local, also a platform admin (and
    seeding twice is fine)."""
    seed_dev_admin(database)
    seed_dev_admin(database)
    engine = make_engine(database)
    with make_session_factory(engine)() as session:
        account = get_account(session, "DEV")
        admin = session.scalar(select(User).where(User.email == "admin@local"))
        assert account is not None and admin is not None
        assert admin.account_id == account.id
        assert (admin.role, admin.account_role) == ("admin", "admin")
    engine.dispose()
