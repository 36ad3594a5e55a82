"""Process settings: one class, built by each entry point and passed down (never read at import)."""

from __future__ import annotations

import ipaddress
import os
import secrets as _secrets
import shlex
from collections.abc import MutableMapping
from datetime import timedelta
from pathlib import Path
from typing import Literal

from cryptography.fernet import Fernet
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.egress import DEV_ALLOW, EgressPolicy

DEV_SCHEMES = ("file", "http")
PLACEHOLDER_KEYS = {"", "changeme", "change-me"}


class Settings(BaseSettings):
    """Everything a runwright process reads from its environment (prefix RUNWRIGHT_)."""

    model_config = SettingsConfigDict(env_prefix="RUNWRIGHT_", extra="ignore")

    dev_mode: bool = False
    home: Path = Path(".runwright")

    database_url: str = ""
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = "runwright"

    # file://<dir> (the embedded store) or s3://bucket/prefix
    artifact_store: str = ""
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"

    # Fernet key: encrypts secrets at rest and Temporal payloads.
    secret_key: str = ""
    git_allowed_schemes: str = "https,ssh"
    workspace_dir: Path | None = None
    checkout_cache_size: int = 64

    # Browser origins allowed to call the API (comma list): the Temporal UI, for /codec.
    cors_origins: str = ""
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    ui_port: int = 8233
    temporal_port: int = 7233

    # Bounds for a run's pieces; the engine's own defaults, overridable per action.
    action_timeout_seconds: float = 3600.0
    heartbeat_timeout_seconds: float = 30.0
    max_attempts: int = 3
    # Output a run may store as events (lines, ansible events); past either, one marker event.
    run_max_events: int = Field(default=10_000, ge=10)
    run_max_output_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)

    # Run callbacks: HMAC-SHA256 key for X-Runwright-Signature (empty: unsigned), POST timeout.
    callback_signing_key: str = ""
    callback_timeout_seconds: float = 10.0

    # Outbound requests runwright makes for users (callbacks, `http` actions) reach public
    # addresses only, plus these networks (comma-separated CIDRs). Unset: none; loopback in
    # dev mode. An empty value allows none, also in dev mode.
    egress_allow: str | None = None
    # An `http` action keeps this much of a response body; the rest is never read.
    http_body_cap_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)

    # The hoop runbooks API: one git repository of runbook files per deployment.
    runbooks_git_url: str = ""
    runbooks_git_branch: str = ""  # empty: the remote's default branch
    runbooks_git_username: str = ""
    runbooks_git_password: str = ""
    runbooks_git_ssh_key: str = ""
    # How long a known commit is trusted before the remote is asked again (0: every request).
    runbooks_refresh_seconds: float = 5.0
    # An exec answers 202 (still running) after this long; upstream waits 50 s.
    runbooks_exec_wait_seconds: float = 50.0
    # An exec's output is cut here (at a UTF-8 boundary); it travels in the run's history.
    runbooks_output_cap_bytes: int = Field(default=1024 * 1024, ge=1, le=1536 * 1024)

    # Aviator runbooks: an OpenAI-compatible chat endpoint writes plans from free-text prompts
    # (unset: only runbook files and pasted runbooks are planned). The key is read from a file
    # (a mounted secret) when a plan is asked for, so it is in no environment or history.
    planner_url: str = ""
    planner_model: str = ""
    planner_api_key_file: Path | None = None
    planner_timeout_seconds: float = Field(default=120.0, gt=0, le=3600)
    # Where a runbook's `url` points: this base plus its number (`https://host/r/` gives
    # `https://host/r/42`); unset: the API's own `GET /api/v1/runbook/<n>` on the request's host.
    runbook_url_base: str = ""
    # A coding agent that carries out runbook steps instead of their shell blocks: a program
    # and its arguments (shell words), given the step's text on stdin in the step's tree.
    step_agent_command: str = ""
    # Names of the worker's environment variables the coding agent gets (its API keys, say),
    # comma-separated; their values are masked in every step's output.
    step_agent_env: str = ""

    # Automations: at most this many runs execute at once, the others wait as `queued`.
    automation_max_runs: int = Field(default=3, ge=1, le=1000)

    # Sign-in: this many failures from one client for one user within the window lock that
    # pair out (429) for the lockout; tokens expire after token_ttl_days (the longest allowed).
    login_failures_allowed: int = Field(default=5, ge=1)
    login_failure_window_seconds: int = Field(default=60, ge=1)
    login_lockout_seconds: int = Field(default=300, ge=1)
    token_ttl_days: float = Field(default=90.0, gt=0, le=36500)

    # Run every program an action starts inside bubblewrap (off: an explicit, logged opt-out).
    sandbox: bool = True

    # Every request body, declared or streamed, is refused (413) past this many bytes.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'runwright.db'}"
        if not self.artifact_store:
            self.artifact_store = f"file://{(self.home / 'artifacts').resolve()}"
        if self.workspace_dir is None:
            self.workspace_dir = self.home / "work"
        if self.dev_mode:
            if not is_loopback(self.api_host):
                raise ValueError(
                    f"RUNWRIGHT_API_HOST={self.api_host!r} is not a loopback address: dev mode "
                    "(open codec, generated key, dev admin) serves this machine only; use "
                    "127.0.0.1, ::1 or localhost, or run `runwright api` outside dev mode"
                )
            have = self.allowed_schemes
            extra = [s for s in DEV_SCHEMES if s not in have]
            if extra:
                self.git_allowed_schemes = ",".join([*have, *extra])
            if self.secret_key.strip() in PLACEHOLDER_KEYS:
                self.secret_key = _dev_secret_key(self.home)
            if not self.cors_origins:
                self.cors_origins = (
                    f"http://127.0.0.1:{self.ui_port},http://localhost:{self.ui_port}"
                )
        if self.egress_allow is None:
            self.egress_allow = DEV_ALLOW if self.dev_mode else ""
        EgressPolicy.parse(self.egress_allow)  # a bad network fails at start, naming it
        if self.planner_url:
            if not self.planner_url.lower().startswith(("https://", "http://")):
                raise ValueError("RUNWRIGHT_PLANNER_URL must be an http(s) URL")
            if not self.planner_model.strip():
                raise ValueError(
                    "RUNWRIGHT_PLANNER_MODEL must name the model when RUNWRIGHT_PLANNER_URL is set"
                )
        self.step_agent_argv  # noqa: B018  (unbalanced quotes fail at start, naming the setting)
        self.step_agent_environment  # noqa: B018  (a name the worker lacks fails at start)
        if self.secret_key.strip() in PLACEHOLDER_KEYS:
            raise ValueError(
                "RUNWRIGHT_SECRET_KEY must be set to a Fernet key outside dev mode "
                "(generate one with `runwright keygen`)"
            )
        try:
            Fernet(self.secret_key.encode())
        except ValueError as exc:
            raise ValueError(f"RUNWRIGHT_SECRET_KEY is not a valid Fernet key: {exc}") from exc
        return self

    @property
    def allowed_schemes(self) -> list[str]:
        """The git URL schemes this deployment accepts, lower case."""
        return [s.strip().lower() for s in self.git_allowed_schemes.split(",") if s.strip()]

    @property
    def step_agent_environment(self) -> dict[str, str]:
        """RUNWRIGHT_STEP_AGENT_ENV: each named variable of this process's environment."""
        names = [n.strip() for n in self.step_agent_env.split(",") if n.strip()]
        missing = [n for n in names if n not in os.environ]
        if missing:
            raise ValueError(
                f"RUNWRIGHT_STEP_AGENT_ENV names {', '.join(missing)}, not in the environment"
            )
        return {n: os.environ[n] for n in names}

    @property
    def step_agent_argv(self) -> list[str]:
        """RUNWRIGHT_STEP_AGENT_COMMAND as argv (empty: steps run their own commands)."""
        try:
            return shlex.split(self.step_agent_command)
        except ValueError as exc:
            raise ValueError(
                f"RUNWRIGHT_STEP_AGENT_COMMAND is not valid shell words: {exc}"
            ) from exc

    @property
    def egress_policy(self) -> EgressPolicy:
        """Where outbound requests made for users may go."""
        return EgressPolicy.parse(self.egress_allow or "")

    @property
    def cors_origin_list(self) -> list[str]:
        """Allowed browser origins."""
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def token_ttl(self) -> timedelta:
        """How long an API token lives, at most and by default."""
        return timedelta(days=self.token_ttl_days)

    @property
    def workspace(self) -> Path:
        """Per-worker directory for checkouts and run working directories."""
        assert self.workspace_dir is not None  # filled by the validator
        return self.workspace_dir


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback IP literals; other names could resolve anywhere."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def _dev_secret_key(home: Path) -> str:
    """A key kept under the dev home, so secrets written by one dev start decrypt in the next."""
    path = home / "secret.key"
    if path.exists():
        return path.read_text().strip()
    home.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode()
    path.touch(mode=0o600)
    path.write_text(key)
    return key


def generate_key() -> str:
    """A fresh Fernet key for RUNWRIGHT_SECRET_KEY."""
    return Fernet.generate_key().decode()


def random_token(nbytes: int = 32) -> str:
    """A URL-safe random token."""
    return _secrets.token_urlsafe(nbytes)


# Variables that carry credentials; once a process has built its clients it drops them, so
# no child (ansible-runner copies the whole environment into a play) can read them.
SECRET_ENV_PREFIXES = ("RUNWRIGHT_",)
SECRET_ENV_NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def scrub_environment(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Remove runwright's settings and cloud credentials from the environment; returns names."""
    env = os.environ if environ is None else environ
    gone = [k for k in env if k.startswith(SECRET_ENV_PREFIXES) or k in SECRET_ENV_NAMES]
    for name in gone:
        del env[name]
    return gone
