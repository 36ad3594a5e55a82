"""Checks on what a definition author may put in a git source: URL, ref, commit and path.

Everything here runs before git does, because git treats some of these strings as options,
helper programs or local files; a value that fails these checks never reaches a git process.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

KNOWN_SCHEMES = ("https", "http", "ssh", "file")
# The port git connects to when a network url names none.
DEFAULT_PORTS = {"http": 80, "https": 443, "ssh": 22}

_SCHEME_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.DOTALL)
# git runs the helper program `git-remote-<transport>` for `<transport>::<address>`.
_TRANSPORT_FORM = re.compile(r"^([A-Za-z0-9+.-]*)::")
# git reads `[user@]host:path` as ssh when the colon comes before any slash.
_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/]*)@)?(?P<host>\[[^\]/]*\]|[^@/:\[\]]+):(?P<path>.*)$")
_COMMIT = re.compile(r"^[0-9a-fA-F]{4,40}$")
_REF_FORBIDDEN = set("~^:?*[\\")


class GitUrlError(ValueError):
    """A repository URL, ref or commit that runwright refuses to hand to git."""


class PathEscapeError(ValueError):
    """A repository-relative path that is absolute or leads outside its checkout."""


_USERINFO_SECRET = re.compile(r"(^|//)([^@/\s]*?):[^@/\s]*@")


def redact_url(url: str) -> str:
    """`url` with any password in its user part replaced by ***, for messages and logs."""
    return _USERINFO_SECRET.sub(r"\1\2:***@", url)


def _has_control_or_space(value: str) -> bool:
    return any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value)


def git_url_scheme(url: str) -> str:
    """The scheme git will use for `url` ("ssh" for scp-like); "" when it has none."""
    match = _SCHEME_URL.match(url)
    if match:
        return match.group(1).lower()
    if _SCP_LIKE.match(url):
        return "ssh"
    return ""


def remote_endpoint(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) git connects to for `url`; None when it opens no socket (file).

    `url` has passed `validate_git_url`."""
    scheme = git_url_scheme(url)
    if scheme not in DEFAULT_PORTS:
        return None
    if "://" not in url:
        scp = _SCP_LIKE.match(url)
        assert scp is not None  # an ssh url without a scheme is scp-like
        return "ssh", scp.group("host").strip("[]"), DEFAULT_PORTS["ssh"]
    parts = urlsplit(url)
    host = parts.hostname or ""
    return scheme, host, parts.port or DEFAULT_PORTS[scheme]


def validate_git_url(url: str, allowed_schemes: Sequence[str]) -> None:
    """Raise GitUrlError unless `url` is a remote git URL whose scheme is allowed."""
    allowed = [s.strip().lower() for s in allowed_schemes if s.strip()]
    if not url or not url.strip():
        raise GitUrlError("repository url is empty")
    if url.startswith("-"):
        raise GitUrlError(f"repository url {redact_url(url)!r} must not start with '-'")
    transport = _TRANSPORT_FORM.match(url)
    if transport:
        raise GitUrlError(
            f'repository url transport form "{transport.group(1)}::" is not allowed; '
            "use an https:// or ssh:// url"
        )
    if _has_control_or_space(url):
        raise GitUrlError(
            f"repository url {redact_url(url)!r} contains whitespace or control characters"
        )

    match = _SCHEME_URL.match(url)
    if match:
        scheme = match.group(1).lower()
        if scheme not in KNOWN_SCHEMES:
            raise GitUrlError(
                f'repository url scheme "{scheme}" is not supported '
                f"(supported: {', '.join(KNOWN_SCHEMES)})"
            )
        _check_allowed(scheme, allowed)
        _check_scheme_url(url, scheme)
        return

    scp = _SCP_LIKE.match(url)
    if scp:
        _check_allowed("ssh", allowed)
        user, host, path = scp.group("user"), scp.group("host"), scp.group("path")
        if user is not None and ":" in user:
            raise _credentials_error()
        if user == "":
            raise GitUrlError(f"repository url {redact_url(url)!r} has an empty user name")
        if host.startswith("-"):
            raise GitUrlError(f"repository url {redact_url(url)!r} has a host starting with '-'")
        if not path:
            raise GitUrlError(f"repository url {redact_url(url)!r} has no repository path")
        return

    raise GitUrlError(
        f"repository url {redact_url(url)!r} has no scheme; local paths are not accepted "
        "(use https://, ssh://, user@host:path or file://)"
    )


def _check_allowed(scheme: str, allowed: Sequence[str]) -> None:
    if scheme not in allowed:
        shown = ", ".join(allowed) if allowed else "none"
        raise GitUrlError(f'repository url scheme "{scheme}" is not allowed (allowed: {shown})')


def _credentials_error() -> GitUrlError:
    # The message must not echo the url: it holds the secret being refused.
    return GitUrlError(
        "repository url must not contain credentials; "
        "use the username and password (or ssh key) fields instead"
    )


def _check_scheme_url(url: str, scheme: str) -> None:
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise GitUrlError(f"repository url {redact_url(url)!r} is malformed: {exc}") from exc
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        # ssh:// may name the login user (git@host); https must not carry anything there,
        # since a token often sits in the user part alone.
        if scheme != "ssh" or ":" in userinfo or not userinfo:
            raise _credentials_error()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise GitUrlError(
                f"repository url {redact_url(url)!r} names a host; file urls must be local"
            )
        if not parts.path.startswith("/"):
            raise GitUrlError(f"repository url {redact_url(url)!r} has no absolute path")
        return
    host = parts.netloc.rpartition("@")[2]
    if not host or host.startswith(":"):
        raise GitUrlError(f"repository url {redact_url(url)!r} has no host")
    if host.startswith("-"):
        raise GitUrlError(f"repository url {redact_url(url)!r} has a host starting with '-'")
    try:
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError as exc:
        raise GitUrlError(f"repository url {redact_url(url)!r} has an invalid port") from exc
    if parts.path in ("", "/"):
        raise GitUrlError(f"repository url {redact_url(url)!r} has no repository path")


def validate_ref(ref: str) -> None:
    """Raise GitUrlError unless `ref` is a plausible branch or tag name (check-ref-format)."""
    if not ref:
        raise GitUrlError("ref is empty")
    if _has_control_or_space(ref):
        raise GitUrlError(f"ref {ref!r} contains whitespace or control characters")
    if ref.startswith("-"):
        raise GitUrlError(f"ref \"{ref}\" must not start with '-'")
    bad = sorted(set(ref) & _REF_FORBIDDEN)
    if bad:
        raise GitUrlError(f'ref "{ref}" contains forbidden characters: {" ".join(bad)}')
    if ".." in ref:
        raise GitUrlError(f'ref "{ref}" must not contain ".."')
    if "@{" in ref or ref == "@":
        raise GitUrlError(f'ref "{ref}" must not contain "@{{" or be "@"')
    if ref.endswith("/") or ref.startswith("/") or "//" in ref:
        raise GitUrlError(f'ref "{ref}" has an empty path component')
    if ref.endswith(".lock") or ref.endswith("."):
        raise GitUrlError(f'ref "{ref}" must not end in ".lock" or "."')
    if any(part.startswith(".") or part.endswith(".lock") for part in ref.split("/")):
        raise GitUrlError(f'ref "{ref}" has a component starting with "." or ending in ".lock"')


def validate_commit(sha: str) -> None:
    """Raise GitUrlError unless `sha` is 4 to 40 hexadecimal digits."""
    if not _COMMIT.match(sha):
        raise GitUrlError(f'commit "{sha}" is not a 4 to 40 digit hexadecimal sha')


def validate_relative_path(relative: str) -> None:
    """Raise PathEscapeError when `relative` is absolute or climbs out by "..", lexically."""
    if "\x00" in relative:
        raise PathEscapeError(f"path {relative!r} contains a NUL character")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or relative.startswith("\\") or re.match(r"^[A-Za-z]:[/\\]", relative):
        raise PathEscapeError(f'path "{relative}" must be relative to the repository')
    normal = os.path.normpath(relative) if relative else "."
    if normal == ".." or normal.startswith("../"):
        raise PathEscapeError(f'path "{relative}" leads outside the repository')


def safe_join(root: Path, relative: str) -> Path:
    """`root / relative` resolved, refusing absolute paths and anything that leaves root."""
    validate_relative_path(relative)
    base = root.resolve()
    # resolve() follows symlinks, so a link inside the tree pointing elsewhere is caught here.
    target = (base / relative).resolve()
    if not target.is_relative_to(base):
        raise PathEscapeError(f'path "{relative}" leads outside the repository')
    return target
