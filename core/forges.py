"""The forge interface: where a repository's pull requests live, behind one small protocol.

A forge opens, updates and lists pull requests of one repository. Two exist
(`activities/forges/`): `local` keeps them in Runwright's database, `github` calls GitHub's
REST API. Runbook activities call them, and activities retry, so every call is idempotent:

    ensure_pull_request(head, base, title, body, draft, labels)  the open pull request of
        branch `head`; opened (with `labels`) when there is none, returned as it is when there
        is one (so a retried call never opens a second). Update it to change it.
    update_pull_request(number, title=None, body=None, draft=None, labels=None)  sets what is
        given; `labels` are added where missing, and labels a person added stay.
    pull_requests(heads)  the newest pull request of each head branch that has one.

Everything here is plain data, safe in workflow code and Temporal payloads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

# GitHub's limits: a title of 256 characters, a body of 65,536, a label name of 50. The
# runbook API allows 20 labels; the forges check again, as they are called from elsewhere too.
MAX_TITLE_LENGTH = 256
MAX_BODY_LENGTH = 65_536
MAX_LABEL_LENGTH = 50
MAX_LABELS = 20
PR_STATES = ("open", "closed", "merged")


class ForgeError(Exception):
    """A forge call that failed; the message names the repository and never holds a secret.

    `retryable` is False when trying again cannot help (refused input, a missing pull
    request, bad credentials, an address the egress rules refuse).
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class PullRequest:
    """A pull request as a forge reports it."""

    number: int
    url: str
    head: str
    base: str
    title: str
    body: str
    draft: bool
    state: str  # open | closed | merged
    labels: tuple[str, ...] = ()  # names, in the order the forge reports them


class Forge(Protocol):
    """The pull requests of one repository."""

    def ensure_pull_request(
        self,
        head: str,
        base: str,
        title: str,
        body: str = "",
        draft: bool = False,
        labels: Sequence[str] = (),
    ) -> PullRequest:
        """The open pull request of `head`, opened (into `base`, labelled) when there is none."""
        ...

    def update_pull_request(
        self,
        number: int,
        *,
        title: str | None = None,
        body: str | None = None,
        draft: bool | None = None,
        labels: Sequence[str] | None = None,
    ) -> PullRequest:
        """Set the given fields of pull request `number` (adding the `labels` it lacks);
        returns it as it is now."""
        ...

    def pull_requests(self, heads: Sequence[str]) -> dict[str, PullRequest]:
        """The newest pull request (any state) of each of `heads` that has one."""
        ...


def check_text(title: str | None, body: str | None) -> None:
    """Raise ForgeError (not retryable) for a title or body no forge would take."""
    if title is not None:
        if not title.strip():
            raise ForgeError("pull request title: is empty")
        if len(title) > MAX_TITLE_LENGTH or "\n" in title:
            raise ForgeError(
                f"pull request title: must be one line of at most {MAX_TITLE_LENGTH} characters"
            )
    if body is not None and len(body) > MAX_BODY_LENGTH:
        raise ForgeError(f"pull request body: must be at most {MAX_BODY_LENGTH} characters")


def check_labels(labels: Sequence[str]) -> tuple[str, ...]:
    """The label names de-duplicated in their order; ForgeError (not retryable) for a name
    no forge would take or too many of them."""
    names: list[str] = []
    for index, label in enumerate(labels):
        if not isinstance(label, str) or not label.strip():
            raise ForgeError(f"pull request labels[{index}]: must be a non-empty string")
        if len(label) > MAX_LABEL_LENGTH or "\n" in label:
            raise ForgeError(
                f"pull request labels[{index}]: must be one line of at most"
                f" {MAX_LABEL_LENGTH} characters"
            )
        if label not in names:
            names.append(label)
    if len(names) > MAX_LABELS:
        raise ForgeError(f"pull request labels: at most {MAX_LABELS} labels")
    return tuple(names)


def missing_labels(
    wanted: Sequence[str], present: Sequence[str], *, casefold: bool = False
) -> tuple[str, ...]:
    """The names of `wanted` that `present` lacks, in `wanted`'s order, each once.

    `casefold` compares names without regard to case, as GitHub does: there a label "Deps"
    on the pull request is the "deps" asked for.
    """

    def key(name: str) -> str:
        return name.casefold() if casefold else name

    have = {key(name) for name in present}
    missing: dict[str, str] = {}
    for name in wanted:
        if key(name) not in have:
            missing.setdefault(key(name), name)
    return tuple(missing.values())
