"""What a connected repository is (`kind: Repository`): where its git remote lives, how to log
in to it, and which forge keeps its pull requests, checked as data.

Pure functions shared by the catalog (apply) and the runbook activities (which receive a
`RepositoryTarget`). Secrets never appear here as values: a target carries references to
secret rows (`*_ref`), opened only where git or the forge API is called.

Fields of the document, each refused with the field's name when wrong:

    org, name       the repository's owner and name, as a request's `repository: {org, name}`
    url             the git remote (https, http, ssh, scp-like or file, as the allowed schemes say)
    defaultBranch   the branch runbooks target unless told otherwise (main)
    username        login for http(s) remotes; password and sshKey are secrets
    forge           local (pull requests kept by Runwright) | github (GitHub's REST API)
    forgeToken      secret: the GitHub token (required for forge: github)
    githubUrl       the GitHub API base (https://api.github.com; GitHub Enterprise: .../api/v3)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from core.git_urls import GitUrlError, validate_git_url, validate_ref

FORGES = ("local", "github")
DEFAULT_BRANCH = "main"
DEFAULT_GITHUB_URL = "https://api.github.com"
MAX_URL_LENGTH = 2048
MAX_REF_LENGTH = 255
MAX_USERNAME_LENGTH = 256
MAX_PASSWORD_BYTES = 4096
MAX_TOKEN_BYTES = 4096
# GitHub's own limits: owners up to 39 characters, repository names up to 100.
_ORG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_NAME = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,99}")


class RepositorySpecError(ValueError):
    """A repository value that cannot be used; `field` names it, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class RepositoryTarget:
    """A connected repository as runbook activities need it (a Temporal payload: plain data).

    `password_ref`, `ssh_key_ref` and `forge_token_ref` are ids of secret rows, never values.
    """

    org: str
    name: str
    url: str
    default_branch: str = DEFAULT_BRANCH
    forge: str = "local"
    github_url: str = DEFAULT_GITHUB_URL
    username: str | None = None
    password_ref: str | None = None
    ssh_key_ref: str | None = None
    forge_token_ref: str | None = None

    @property
    def slug(self) -> str:
        """`org/name`, as GitHub and messages name the repository."""
        return f"{self.org}/{self.name}"


def _text(value: Any, field: str, *, required: bool = True) -> str:
    if value is None or value == "":
        if required:
            raise RepositorySpecError(field, "is required")
        return ""
    if not isinstance(value, str):
        raise RepositorySpecError(field, "must be a string")
    return value


def org(given: Any, field: str = "org") -> str:
    """An owner: up to 100 letters, digits, `_.-`, starting with a letter or digit."""
    value = _text(given, field)
    if not _ORG.fullmatch(value):
        raise RepositorySpecError(
            field,
            f"{value[:100]!r} must be 1 to 100 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit",
        )
    return value


def name(given: Any, field: str = "name") -> str:
    """A repository name: up to 100 letters, digits, `_.-`, not starting with '-', not '.'/'..'."""
    value = _text(given, field)
    if not _NAME.fullmatch(value) or value in (".", ".."):
        raise RepositorySpecError(
            field,
            f"{value[:100]!r} must be 1 to 100 letters, digits, '_', '.' or '-', "
            "not starting with '-' and not '.' or '..'",
        )
    return value


def git_url(given: Any, allowed_schemes: Sequence[str], field: str = "url") -> str:
    """A git remote URL that the checkout would accept under `allowed_schemes`."""
    value = _text(given, field)
    if len(value) > MAX_URL_LENGTH:
        raise RepositorySpecError(field, f"must be at most {MAX_URL_LENGTH} characters")
    try:
        validate_git_url(value, allowed_schemes)
    except GitUrlError as exc:
        raise RepositorySpecError(field, str(exc)) from exc
    return value


def branch(given: Any, field: str = "defaultBranch") -> str:
    """A branch name git accepts (`main` when not given)."""
    value = _text(given, field, required=False) or DEFAULT_BRANCH
    if len(value) > MAX_REF_LENGTH:
        raise RepositorySpecError(field, f"must be at most {MAX_REF_LENGTH} characters")
    if value.startswith("refs/"):
        raise RepositorySpecError(field, "must be a branch name, not a full ref")
    try:
        validate_ref(value)
    except GitUrlError as exc:
        raise RepositorySpecError(field, str(exc)) from exc
    return value


def forge(given: Any, field: str = "forge") -> str:
    """`local` (the default) or `github`."""
    value = _text(given, field, required=False) or "local"
    if value not in FORGES:
        raise RepositorySpecError(field, f"must be one of {', '.join(FORGES)}, not {value!r}")
    return value


def username(given: Any, field: str = "username") -> str | None:
    """An optional login name: printable, no whitespace at its ends, at most 256 characters."""
    value = _text(given, field, required=False)
    if not value:
        return None
    if len(value) > MAX_USERNAME_LENGTH:
        raise RepositorySpecError(field, f"must be at most {MAX_USERNAME_LENGTH} characters")
    if value != value.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise RepositorySpecError(field, "must not hold control characters or outer spaces")
    return value


def secret_text(given: Any, field: str, max_bytes: int) -> str:
    """A secret given as text: non-empty, bounded, one line. The message never quotes it."""
    if not isinstance(given, str) or not given:
        raise RepositorySpecError(field, "must be a non-empty string")
    if len(given.encode()) > max_bytes:
        raise RepositorySpecError(field, f"must be at most {max_bytes} bytes")
    if any(ch in given for ch in "\r\n\0"):
        raise RepositorySpecError(field, "must be one line")
    return given


def github_url(given: Any, field: str = "githubUrl") -> str:
    """A GitHub API base: http(s), a host, no credentials, query or fragment; no trailing '/'."""
    value = _text(given, field, required=False) or DEFAULT_GITHUB_URL
    if len(value) > MAX_URL_LENGTH:
        raise RepositorySpecError(field, f"must be at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError as exc:
        raise RepositorySpecError(field, f"is not a URL: {exc}") from exc
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise RepositorySpecError(field, "must be an http(s) URL with a host")
    if "@" in parts.netloc:
        raise RepositorySpecError(field, "must not hold credentials; give forgeToken instead")
    if parts.query or parts.fragment or any(ch.isspace() for ch in value):
        raise RepositorySpecError(field, "must not have a query, fragment or spaces")
    return value.rstrip("/")
