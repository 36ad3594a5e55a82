"""`runwright account callback-key`: an account's own key for signing its callbacks, run as
a command against a migrated database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from core.secrets import SecretBox
from core.settings import generate_key
from core.store.accounts import create_account, get_account
from core.store.callback_keys import callback_key
from core.store.migrate import upgrade
from core.store.models import Secret
from core.store.session import make_engine, make_session_factory, transaction

RUNWRIGHT = str(Path(sys.executable).parent / "runwright")
SECRET_KEY = generate_key()


def runwright(database: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWRIGHT_")}
    env |= {"RUNWRIGHT_DATABASE_URL": database, "RUNWRIGHT_SECRET_KEY": SECRET_KEY}
    return subprocess.run(
        [RUNWRIGHT, *args], input=stdin, env=env, capture_output=True, text=True, timeout=60
    )


def stored(database: str, alias: str) -> tuple[str | None, int]:
    """The account's key as the worker opens it, and how many secret rows exist."""
    engine = make_engine(database)
    try:
        with make_session_factory(engine)() as session:
            account = get_account(session, alias)
            assert account is not None
            key = callback_key(session, SecretBox(SECRET_KEY), account.id)
            return key, session.scalar(select(func.count()).select_from(Secret)) or 0
    finally:
        engine.dispose()


def test_callback_key_set_generated_given_and_cleared(tmp_path: Path) -> None:
    """A generated key is printed once and stored encrypted; a given one replaces it (the old
    row gone); --clear removes it; a short key or an unknown account is refused."""
    database = f"sqlite:///{tmp_path / 'cli.db'}"
    upgrade(database)
    engine = make_engine(database)
    with transaction(make_session_factory(engine)) as session:
        create_account(session, "ACME")
    engine.dispose()

    generated = runwright(database, "account", "callback-key", "acme")
    assert generated.returncode == 0, generated.stderr
    key = generated.stdout.strip()
    assert len(key) >= 32
    assert stored(database, "ACME") == (key, 1)

    given = runwright(
        database, "account", "callback-key", "ACME", "--key-stdin", stdin="k" * 20 + "\n"
    )
    assert given.returncode == 0, given.stderr
    assert "k" * 20 not in given.stdout
    assert stored(database, "ACME") == ("k" * 20, 1)

    short = runwright(database, "account", "callback-key", "ACME", "--key-stdin", stdin="abc\n")
    assert short.returncode != 0 and "at least 16 characters" in short.stderr
    assert stored(database, "ACME") == ("k" * 20, 1)

    missing = runwright(database, "account", "callback-key", "NOPE")
    assert missing.returncode != 0 and "'NOPE' does not exist" in missing.stderr

    cleared = runwright(database, "account", "callback-key", "ACME", "--clear")
    assert cleared.returncode == 0, cleared.stderr
    assert "removed" in cleared.stdout
    assert stored(database, "ACME") == (None, 0)
