"""Real servers the test suite talks to: moto's S3 server, a throwaway PostgreSQL, an OpenSSH
server on loopback, git's http-backend behind HTTP Basic auth, and notification receivers (an
HTTP server taking JSON, an SMTP server).

Plain helpers (no pytest fixtures) so any fixture or script can start one; tests/conftest.py
wraps them in session-scoped fixtures.
"""

from __future__ import annotations

import base64
import email
import email.message
import glob
import json
import os
import pwd
import random
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from core.egress import DEV_ALLOW, EgressPolicy

# The egress rules that let git and http reach the servers here (as dev mode's do).
LOOPBACK_EGRESS = EgressPolicy.parse(DEV_ALLOW)
POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"
POSTGRES_OS_USER = "postgres"
POSTGRES_TEST_DB = "runwright_test"


class ServerUnavailable(RuntimeError):
    """A test server could not be started; the message says what to install or fix."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def fixed_port() -> int:
    """A free TCP port on 127.0.0.1 below the kernel's ephemeral range: for a process that
    binds it later, after starting others (Temporal picks random ports for its own services
    from the ephemeral range and could take one handed out by `free_port` meanwhile)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(10000, low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _http_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):  # noqa: S310 (loopback URL we built)
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP status means the server is up
    except OSError:
        return False


@contextmanager
def moto_s3_server(log_dir: Path, timeout: float = 20.0) -> Iterator[str]:
    """Run moto's S3 server on a free loopback port; yields its endpoint URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = log_dir / "moto-server.log"
    # Output goes to a file: a pipe nobody drains would block the server once it fills.
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + timeout
        while not _http_answers(url):
            if proc.poll() is not None:
                raise ServerUnavailable(
                    f"moto server exited with {proc.returncode}:\n{log_path.read_text()}"
                )
            if time.monotonic() > deadline:
                raise ServerUnavailable(
                    f"moto server did not answer on {url} within {timeout}s:\n"
                    f"{log_path.read_text()}"
                )
            time.sleep(0.05)
        yield url
    finally:
        _stop(proc)


def postgres_bin_dir() -> Path:
    """The bin directory of the newest PostgreSQL server installed from Debian's packages."""
    candidates = []
    for path in glob.glob(POSTGRES_BIN_GLOB):
        version = Path(path).parent.name
        if os.access(os.path.join(path, "initdb"), os.X_OK) and os.access(
            os.path.join(path, "pg_ctl"), os.X_OK
        ):
            try:
                candidates.append((tuple(int(p) for p in version.split(".")), Path(path)))
            except ValueError:
                continue
    if not candidates:
        raise ServerUnavailable(
            f"no PostgreSQL server binaries (initdb, pg_ctl) under {POSTGRES_BIN_GLOB}. "
            "The postgres tests need a real server: run the suite through the project's "
            "test command, which installs the Debian `postgresql` package "
            "(or install it yourself: apt-get install postgresql)."
        )
    return max(candidates)[1]


@dataclass(frozen=True)
class PostgresServer:
    """A running throwaway cluster."""

    port: int
    data_dir: Path
    url: str  # SQLAlchemy URL of the test database


def _as_cluster_owner(argv: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root, and CI runs as root: hand the cluster
    # to the account Debian's package creates for exactly this.
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", POSTGRES_OS_USER, "--", *argv]


def _cluster_owner() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(POSTGRES_OS_USER)
    except KeyError as exc:
        raise ServerUnavailable(
            f"running as root but there is no {POSTGRES_OS_USER!r} system user to own the "
            "cluster; reinstall the Debian `postgresql` package, which creates it"
        ) from exc


def _run(argv: list[str], what: str, cwd: Path, log_path: Path | None = None) -> None:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        server_log = log_path.read_text() if log_path and log_path.exists() else ""
        raise ServerUnavailable(
            f"{what} failed ({result.returncode}): {shlex.join(argv)}\n"
            f"{result.stdout}{result.stderr}{server_log}"
        )


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Init, start and finally stop a PostgreSQL cluster on a free loopback port."""
    bin_dir = postgres_bin_dir()
    owner = _cluster_owner()
    # Not pytest's tmp_path: its base directory is private to the invoking user, so the
    # postgres account could not reach a cluster inside it.
    base = Path(tempfile.mkdtemp(prefix="runwright-pg-"))
    data_dir = base / "data"
    log_path = base / "server.log"
    port = free_port()
    started = False
    try:
        if owner is not None:
            os.chown(base, owner.pw_uid, owner.pw_gid)
        _run(
            _as_cluster_owner(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            ),
            "initdb",
            cwd=base,
        )
        # Durability off: a crash only loses a cluster that is thrown away anyway. pg_ctl
        # hands these to a shell, hence the quoting.
        server_opts = [
            "-c listen_addresses=127.0.0.1",
            f"-c port={port}",
            f"-c unix_socket_directories={shlex.quote(str(base))}",
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
        ]
        started = True
        _run(
            _as_cluster_owner(
                [
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(data_dir),
                    "-l",
                    str(log_path),
                    "-o",
                    " ".join(server_opts),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            "pg_ctl start",
            cwd=base,
            log_path=log_path,
        )
        _run(
            [
                str(bin_dir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "postgres",
                POSTGRES_TEST_DB,
            ],
            "createdb",
            cwd=base,
        )
        yield PostgresServer(
            port=port,
            data_dir=data_dir,
            url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/{POSTGRES_TEST_DB}",
        )
    finally:
        if started:
            subprocess.run(
                _as_cluster_owner(
                    [str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "immediate", "-w", "stop"]
                ),
                cwd=base,
                capture_output=True,
                check=False,
            )
        shutil.rmtree(base, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# OpenSSH server on loopback: key-only logins for one user, every file in a temp dir.
# --------------------------------------------------------------------------------------------

SSHD = "/usr/sbin/sshd"  # sshd refuses to start unless called by its absolute path
SSHD_PRIVSEP_DIR = Path("/run/sshd")


@dataclass(frozen=True)
class SshServer:
    """A running sshd that accepts `private_key_text` for `user` on host:port, nothing else."""

    host: str
    port: int
    user: str
    private_key_text: str  # OpenSSH format, ed25519, no passphrase
    private_key_path: Path  # 0600; for ssh/git commands run by the tests themselves
    public_key_text: str
    host_public_key: str  # "ssh-ed25519 AAAA..."
    known_hosts: Path  # a known_hosts file naming [host]:port with the host key
    log_path: Path  # sshd's own log (-e): why a login was refused

    def ssh_argv(self, *command: str) -> list[str]:
        """An ssh command line that logs in with the test key and checks the host key."""
        return [
            "ssh",
            "-F",
            os.devnull,
            "-i",
            str(self.private_key_path),
            "-p",
            str(self.port),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            f"{self.user}@{self.host}",
            *command,
        ]

    def log(self) -> str:
        """sshd's log so far (empty when it has none)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def _ssh_keygen(path: Path, comment: str) -> None:
    _run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        f"ssh-keygen {path.name}",
        cwd=path.parent,
    )


def _ssh_banner(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def _sshd_config(base: Path, port: int, user: str, path: str | None = None) -> str:
    return "\n".join(
        [
            # SetEnv overrides sshd's compiled-in PATH for every session (OpenSSH 8.7+).
            *([f"SetEnv PATH={path}"] if path else []),
            "ListenAddress 127.0.0.1",
            f"Port {port}",
            f"HostKey {base / 'host_ed25519'}",
            f"PidFile {base / 'sshd.pid'}",
            f"AuthorizedKeysFile {base / 'authorized_keys'}",
            f"AllowUsers {user}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            # The temp dir is not root-owned all the way up, which StrictModes would refuse.
            "StrictModes no",
            "UsePAM no",
            "PrintMotd no",
            "PrintLastLog no",
            "PermitUserEnvironment no",
            "AllowAgentForwarding no",
            "AllowTcpForwarding no",
            "X11Forwarding no",
            # ansible copies its modules with sftp; ssh multiplexing opens several sessions.
            "Subsystem sftp internal-sftp",
            "MaxSessions 32",
            "LogLevel VERBOSE",
            "",
        ]
    )


@contextmanager
def sshd_server(timeout: float = 20.0, *, path: str | None = None) -> Iterator[SshServer]:
    """Run /usr/sbin/sshd on a free 127.0.0.1 port with fresh keys; stop it afterwards.

    As root (CI) the login user is root; otherwise the current user, which is the only one an
    unprivileged sshd can log in. Keys live in a temp dir that is deleted at the end. `path`,
    when given, is the PATH of the remote sessions: a host with programs of the test's own.
    """
    if not os.access(SSHD, os.X_OK) or shutil.which("ssh-keygen") is None:
        raise ServerUnavailable(
            f"no OpenSSH server at {SSHD} (or no ssh-keygen). The ssh tests need a real sshd: "
            "run the suite through scripts/test, which installs the Debian `openssh-server` "
            "package (or install it yourself: apt-get install openssh-server)."
        )
    user = pwd.getpwuid(os.geteuid()).pw_name
    if os.geteuid() == 0 and not SSHD_PRIVSEP_DIR.is_dir():
        # Debian's unit creates it at boot; containers without systemd never do.
        SSHD_PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="runwright-sshd-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        _ssh_keygen(base / "host_ed25519", "runwright-test-host")
        _ssh_keygen(base / "client_ed25519", "runwright-test-client")
        public_key = (base / "client_ed25519.pub").read_text().strip()
        host_key = (base / "host_ed25519.pub").read_text().strip()
        # `from=` keeps the key usable from loopback only, whatever else listens later.
        (base / "authorized_keys").write_text(f'from="127.0.0.1" {public_key}\n')
        port = free_port()
        config = base / "sshd_config"
        config.write_text(_sshd_config(base, port, user, path))
        known_hosts = base / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {' '.join(host_key.split()[:2])}\n")
        log_path = base / "sshd.log"
        _run([SSHD, "-t", "-f", str(config)], "sshd -t (config test)", cwd=base)
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while not _ssh_banner("127.0.0.1", port):
            if proc.poll() is not None:
                raise ServerUnavailable(
                    f"sshd exited with {proc.returncode}:\n{log_path.read_text()}"
                )
            if time.monotonic() > deadline:
                raise ServerUnavailable(
                    f"sshd did not answer on 127.0.0.1:{port} within {timeout}s:\n"
                    f"{log_path.read_text()}"
                )
            time.sleep(0.05)
        yield SshServer(
            host="127.0.0.1",
            port=port,
            user=user,
            private_key_text=(base / "client_ed25519").read_text(),
            private_key_path=base / "client_ed25519",
            public_key_text=public_key,
            host_public_key=host_key,
            known_hosts=known_hosts,
            log_path=log_path,
        )
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(base, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# git http-backend behind HTTP Basic auth: the smart HTTP protocol, as hosting services speak it.
# --------------------------------------------------------------------------------------------


class _GitHttpHandler(BaseHTTPRequestHandler):
    """Serves repositories under `project_root` through git http-backend, behind Basic auth."""

    project_root: Path
    credentials: str
    authorized: list[str]
    refused: list[str]
    ref_delay: float  # seconds every ref advertisement waits: a slow or distant remote

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean

    def _serve(self) -> None:
        expected = "Basic " + base64.b64encode(self.credentials.encode()).decode()
        if self.headers.get("Authorization") != expected:
            self.refused.append(self.path)
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.authorized.append(self.path)
        path, _, query = self.path.partition("?")
        if path.endswith("/info/refs"):
            time.sleep(self.ref_delay)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(self.project_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "REMOTE_USER": self.credentials.partition(":")[0],
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
        }
        done = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
        )
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        status = 200
        headers: list[tuple[str, str]] = []
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name and name.lower() != "content-length":
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@dataclass
class GitHttpServer:
    """git http-backend on 127.0.0.1 serving every repository under `project_root`."""

    base_url: str  # http://127.0.0.1:<port>
    project_root: Path
    authorized: list[str] = field(default_factory=list)  # paths served to the right credentials
    refused: list[str] = field(default_factory=list)  # paths answered 401

    def url(self, name: str) -> str:
        """The clone URL of repository `name` (a path under project_root, e.g. "repo.git")."""
        return f"{self.base_url}/{name}"


@contextmanager
def git_http_server(
    project_root: Path, username: str, password: str, *, ref_delay: float = 0.0
) -> Iterator[GitHttpServer]:
    """Serve the bare repositories under `project_root` over http, to `username:password` only
    (each ref advertisement `ref_delay` seconds late)."""
    served = GitHttpServer(base_url="", project_root=project_root)
    handler = type(
        "GitHttpHandler",
        (_GitHttpHandler,),
        {
            "project_root": project_root,
            "credentials": f"{username}:{password}",
            "authorized": served.authorized,
            "refused": served.refused,
            "ref_delay": ref_delay,
        },
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    served.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# --------------------------------------------------------------------------------------------
# Notification receivers: an HTTP server recording the JSON posted to it, and an SMTP server
# (aiosmtpd) that takes a login over plain SMTP and keeps each message.
# --------------------------------------------------------------------------------------------


class _JsonRecorder(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, Any]]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.received.append((self.path, json.loads(self.rfile.read(length) or b"{}")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean


@dataclass
class JsonReceiver:
    """An HTTP server on 127.0.0.1 that answers 200 to every POST and keeps its JSON body."""

    port: int
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (path, body)


@contextmanager
def json_receiver() -> Iterator[JsonReceiver]:
    """Record every JSON document POSTed to a loopback HTTP server."""
    receiver = JsonReceiver(port=0)
    handler = type("JsonRecorder", (_JsonRecorder,), {"received": receiver.received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@dataclass
class SmtpServer:
    """aiosmtpd on 127.0.0.1: accepts one user's login, keeps each message it is given."""

    port: int
    user: str
    password: str
    messages: list[email.message.Message] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)  # the user of each accepted login
    greetings: int = 0  # EHLO/HELO commands: every client that spoke to it at all


class _SmtpKeeper:
    def __init__(self, server: SmtpServer) -> None:
        self._server = server

    async def handle_EHLO(
        self, smtp: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self._server.greetings += 1
        session.host_name = hostname
        return responses

    async def handle_HELO(self, smtp: Any, session: Any, envelope: Any, hostname: str) -> str:
        self._server.greetings += 1
        session.host_name = hostname
        return f"250 {smtp.hostname}"

    async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
        self._server.messages.append(email.message_from_bytes(envelope.original_content))
        return "250 OK"


@contextmanager
def smtp_server(user: str, password: str) -> Iterator[SmtpServer]:
    """A plain (unencrypted) SMTP server on a free loopback port that offers a login."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    served = SmtpServer(port=free_port(), user=user, password=password)

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == user
            and data.password.decode() == password
        )
        if ok:
            served.logins.append(user)
        return AuthResult(success=ok, handled=False)

    # AUTH offered over plain SMTP (loopback, no TLS to set up); `logins` shows it was used.
    controller = Controller(
        _SmtpKeeper(served),
        hostname="127.0.0.1",
        port=served.port,
        authenticator=authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield served
    finally:
        controller.stop()
