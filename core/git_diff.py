"""The diff of a pull request kept by the `local` forge: head against base, read from the
repository's own remote.

Git runs as everywhere else (`core.git_commands`: credentials in the environment only,
protocols limited to the allowed schemes, no hooks, no helpers) in a scratch repository that is
removed afterwards. The diff is `base...head` (what the head branch adds since it left the
base, as a forge shows it), without external diff drivers or text conversion, and bounded.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.egress import EgressPolicy
from core.git_commands import git_session, summarize
from core.git_urls import GitUrlError, redact_url, validate_git_url, validate_ref

MAX_DIFF_BYTES = 4 * 1024 * 1024
TIMEOUT_SECONDS = 120.0
TRUNCATED = b"\n[diff cut: it is longer than the limit]\n"


class DiffUnavailable(Exception):
    """The diff could not be read; the message names the remote (without credentials)."""


@dataclass(frozen=True)
class Diff:
    """A unified diff as bytes (git's own encoding of paths and contents)."""

    text: bytes
    truncated: bool


def branch_diff(
    url: str,
    base: str,
    head: str,
    *,
    allowed_schemes: Sequence[str],
    username: str | None = None,
    password: str | None = None,
    ssh_key: str | None = None,
    max_bytes: int = MAX_DIFF_BYTES,
    egress: EgressPolicy | None = None,
) -> Diff:
    """What branch `head` changes relative to where it left `base`, on the remote at `url`."""
    try:
        validate_git_url(url, allowed_schemes)
        validate_ref(base)
        validate_ref(head)
    except GitUrlError as exc:
        raise DiffUnavailable(str(exc)) from exc
    scratch = Path(tempfile.mkdtemp(prefix="runwright-diff-"))
    try:
        with git_session(
            allowed_schemes,
            TIMEOUT_SECONDS,
            username=username,
            password=password,
            ssh_key=ssh_key,
            remote=url,
            egress=egress,
        ) as runner:
            repo = str(scratch / "repo.git")
            status, _, err = runner.run("init", "--bare", "--quiet", "--", repo)
            if status == 0:
                status, _, err = runner.run(
                    "--git-dir",
                    repo,
                    "fetch",
                    "--quiet",
                    "--no-tags",
                    "--",
                    url,
                    f"+refs/heads/{base}:refs/diff/base",
                    f"+refs/heads/{head}:refs/diff/head",
                )
            if status != 0:
                where = redact_url(url)
                raise DiffUnavailable(f"cannot read {base} and {head} of {where}: {summarize(err)}")
            out = runner.output(
                "--git-dir",
                repo,
                "diff",
                "--no-color",
                "--no-ext-diff",
                "--no-textconv",
                "refs/diff/base...refs/diff/head",
            )
            if out is None:
                raise DiffUnavailable(f"cannot compare {base} and {head}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if len(out) > max_bytes:
        return Diff(out[:max_bytes] + TRUNCATED, truncated=True)
    return Diff(out, truncated=False)
