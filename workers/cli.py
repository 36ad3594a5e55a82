"""The `runwright` command."""

from __future__ import annotations

import argparse
import asyncio
import base64
import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from pydantic import ValidationError

from core.settings import Settings, generate_key

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def _settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        messages = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise SystemExit(f"runwright: bad settings: {messages}") from exc


def _dev(args: argparse.Namespace) -> None:
    from workers.dev import run_dev
    from workers.serving import configure_logging

    settings = _settings(dev_mode=True, home=Path(args.home), api_port=args.port)
    configure_logging(settings.log_level if settings.log_level != "INFO" else "WARNING")
    try:
        asyncio.run(run_dev(settings))
    except RuntimeError as exc:
        raise SystemExit(f"runwright dev: {exc}") from exc


def _api(args: argparse.Namespace) -> None:
    from api.app import create_app
    from workers.serving import configure_logging, serve_api, stop_on_signals

    settings = _settings()
    configure_logging(settings.log_level)

    async def main() -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        await serve_api(create_app(settings), settings.api_host, settings.api_port, stop)

    asyncio.run(main())


def _worker(args: argparse.Namespace) -> None:
    from activities.sandbox import SandboxUnavailable
    from core.temporal import connect
    from workers.main import sandbox_for, serve_worker
    from workers.serving import configure_logging, stop_on_signals

    settings = _settings()
    configure_logging(settings.log_level)
    try:
        sandbox_for(settings)  # refuse before connecting to anything
    except SandboxUnavailable as exc:
        raise SystemExit(f"runwright worker: {exc}") from exc

    async def main() -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        client = await connect(
            settings.temporal_address, settings.temporal_namespace, settings.secret_key
        )
        await serve_worker(settings, client, stop)

    asyncio.run(main())


def _migrate(args: argparse.Namespace) -> None:
    from core.store.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    print("database schema is up to date")


def _apply(args: argparse.Namespace) -> None:
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    user = args.user or os.environ.get("RUNWRIGHT_USER", "admin@local:admin")
    token = args.token or os.environ.get("RUNWRIGHT_TOKEN")
    auth = f"Bearer {token}" if token else "Basic " + base64.b64encode(user.encode()).decode()
    try:
        response = httpx.post(
            f"{args.server.rstrip('/')}/api/apply",
            content=text.encode(),
            headers={"Authorization": auth, "Content-Type": "application/yaml"},
            timeout=60,
        )
    except httpx.HTTPError as exc:
        raise SystemExit(f"runwright apply: cannot reach {args.server}: {exc}") from exc
    if response.status_code != 200:
        raise SystemExit(f"runwright apply: {response.status_code} {response.text}")
    for item in response.json()["items"]:
        print(f"{item['kind']} {item['name']} {item['result']} (id {item['id']})")


def _keygen(args: argparse.Namespace) -> None:
    print(generate_key())


def _read_password(from_stdin: bool) -> str:
    """The password from stdin (first line) when asked or when stdin is not a terminal,
    else typed twice at a prompt; never from the command line, where `ps` would show it."""
    if from_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise SystemExit("runwright user add: the passwords differ")
    if not password:
        raise SystemExit("runwright user add: the password is empty")
    return password


def _in_database(command: str, change: Callable[[Session], str]) -> None:
    """Run `change` in one transaction on the configured database; print what it says."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from core.store.accounts import AccountError
    from core.store.callback_keys import CallbackKeyError
    from core.store.session import make_engine, make_session_factory, transaction

    engine = make_engine(_settings().database_url)
    try:
        with transaction(make_session_factory(engine)) as session:
            print(change(session))
    except (AccountError, CallbackKeyError) as exc:
        raise SystemExit(f"runwright {command}: {exc}") from exc
    except (OperationalError, ProgrammingError) as exc:
        raise SystemExit(
            f"runwright {command}: the database is not ready (run `runwright migrate`): {exc.orig}"
        ) from exc
    finally:
        engine.dispose()


def _account_add(args: argparse.Namespace) -> None:
    from core.store.accounts import create_account

    def change(session: Session) -> str:
        account = create_account(session, args.alias, location_alias=args.location)
        return f"account {account.alias} created (id {account.id})"

    _in_database("account add", change)


def _account_callback_key(args: argparse.Namespace) -> None:
    from core.secrets import SecretBox
    from core.store.accounts import AccountError, get_account
    from core.store.callback_keys import clear_callback_key, set_callback_key

    given = sys.stdin.readline().rstrip("\r\n") if args.key_stdin else None
    box = SecretBox(_settings().secret_key)

    def change(session: Session) -> str:
        account = get_account(session, args.alias)
        if account is None:
            raise AccountError(f"account {args.alias!r} does not exist")
        if args.clear:
            had = clear_callback_key(session, account)
            state = "removed" if had else "was not set"
            return f"callback key of account {account.alias} {state}: the deployment's applies"
        key = set_callback_key(session, box, account, given)
        # A generated key is shown this once: the receiver needs it to check signatures.
        return key if given is None else f"callback key of account {account.alias} set"

    _in_database("account callback-key", change)


def _user_add(args: argparse.Namespace) -> None:
    from core.store.accounts import AccountError, add_account_user, get_account
    from core.store.users import get_by_email, upsert_user

    password = _read_password(args.password_stdin)

    def change(session: Session) -> str:
        if args.account is None:
            existed = get_by_email(session, args.email) is not None
            user = upsert_user(session, args.email, password=password, role=args.role)
            verb = "updated" if existed else "created"
            return f"user {user.email} {verb}: platform {args.role}"
        account = get_account(session, args.account)
        if account is None:
            raise AccountError(f"account {args.account!r} does not exist")
        user, created = add_account_user(
            session, account, args.email, password=password, role=args.role
        )
        if args.platform_role:
            user.role = args.platform_role
        verb = "created" if created else "updated"
        platform = f", platform {user.role}" if user.role else ""
        return f"user {user.email} {verb}: {args.role} of account {account.alias}{platform}"

    _in_database("user add", change)


ROLE_CHOICES = ["admin", "operator", "viewer"]


def parser() -> argparse.ArgumentParser:
    """The command line."""
    top = argparse.ArgumentParser(prog="runwright", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="run the whole stack on this machine (development only)")
    dev.add_argument("--home", default=".runwright", help="where state is kept")
    dev.add_argument("--port", type=int, default=8080, help="API port")
    dev.set_defaults(run=_dev)
    sub.add_parser("api", help="serve the REST API").set_defaults(run=_api)
    sub.add_parser("worker", help="run a worker").set_defaults(run=_worker)
    sub.add_parser("migrate", help="create or upgrade the database schema").set_defaults(
        run=_migrate
    )
    apply = sub.add_parser("apply", help="create or update documents through the API")
    apply.add_argument("-f", "--file", required=True, help="YAML file ('-' for stdin)")
    apply.add_argument("--server", default=os.environ.get("RUNWRIGHT_URL", "http://localhost:8080"))
    apply.add_argument("--user", help="EMAIL:PASSWORD (default: $RUNWRIGHT_USER, dev admin)")
    apply.add_argument("--token", help="a bearer token (default: $RUNWRIGHT_TOKEN)")
    apply.set_defaults(run=_apply)
    sub.add_parser("keygen", help="print a new RUNWRIGHT_SECRET_KEY").set_defaults(run=_keygen)
    account = sub.add_parser("account", help="Runner accounts").add_subparsers(
        dest="action", required=True
    )
    account_add = account.add_parser("add", help="create an account (written to the database)")
    account_add.add_argument("alias", help="the account alias (letters, digits, '-', '_')")
    account_add.add_argument("--location", default="", help="its location alias (data center)")
    account_add.set_defaults(run=_account_add)
    callback_key = account.add_parser(
        "callback-key",
        help="set the key that signs the account's callbacks (prints a generated one)",
    )
    callback_key.add_argument("alias", help="the account alias")
    how = callback_key.add_mutually_exclusive_group()
    how.add_argument(
        "--key-stdin", action="store_true", help="read the key from the first line of stdin"
    )
    how.add_argument(
        "--clear", action="store_true", help="remove it (RUNWRIGHT_CALLBACK_SIGNING_KEY applies)"
    )
    callback_key.set_defaults(run=_account_callback_key)
    users = sub.add_parser("user", help="platform users and users of Runner accounts")
    user = users.add_subparsers(dest="action", required=True)
    user_add = user.add_parser(
        "add",
        help="create or update a user: of the platform, or with --account of a Runner account",
    )
    user_add.add_argument("email", help="the user name to sign in with")
    user_add.add_argument(
        "--account", help="the Runner account alias (without it: a platform user)"
    )
    user_add.add_argument(
        "--role",
        required=True,
        choices=ROLE_CHOICES,
        help="the platform role, or with --account the role in that account",
    )
    user_add.add_argument(
        "--platform-role",
        choices=ROLE_CHOICES,
        help="with --account: also give this platform role (default: none)",
    )
    user_add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin (also when stdin is not a terminal)",
    )
    user_add.set_defaults(run=_user_add)
    return top


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `runwright` console script."""
    args = parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
