"""The `github` forge: real pull requests through GitHub's REST API, with githubkit.

The adapter is thin on purpose: it sends what GitHub's OpenAPI description defines for the
pulls endpoints and reads back only the fields it reports (number, html_url, head.ref,
base.ref, title, body, draft, state, merged_at, node_id, labels[].name), so GitHub Enterprise
servers whose schema differs in other fields work alike.

    POST  /repos/{owner}/{repo}/pulls                 open
    GET   /repos/{owner}/{repo}/pulls?head=owner:ref  find a branch's pull request
    GET   /repos/{owner}/{repo}/pulls/{number}        read one
    PATCH /repos/{owner}/{repo}/pulls/{number}        title, body
    POST  /repos/{owner}/{repo}/issues/{number}/labels  add labels (a pull request is an issue)
    POST  /graphql                                    draft <-> ready for review

Labels are only ever added, the missing ones by name (GitHub matches names without regard to
case), so labels a person put on the pull request stay.

The REST API cannot change `draft` of an existing pull request; GitHub does that with the
GraphQL mutations `markPullRequestReadyForReview` and `convertPullRequestToDraft`, sent to the
GraphQL endpoint beside the REST base (`/graphql`; `/api/graphql` for an `/api/v3` base).

Every connection goes through `core.egress` (the base URL is the repository author's), never
follows redirects nor uses environment proxies. The token travels only in the Authorization
header; errors name the method, path and GitHub's message, never the token. githubkit's own
retries are off: activities retry, and `ForgeError.retryable` says when that can help.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
from githubkit import GitHub
from githubkit.exception import GitHubException, GraphQLFailed, RequestError, RequestFailed
from githubkit.utils import UNSET

from activities.forges.local import check_branch
from core.egress import EgressPolicy, EgressRefused, EgressTransport
from core.forges import ForgeError, PullRequest, check_labels, check_text, missing_labels
from core.repositories import RepositoryTarget

DEFAULT_TIMEOUT_SECONDS = 30.0
_READY = """mutation($id: ID!) {
  markPullRequestReadyForReview(input: {pullRequestId: $id}) { pullRequest { isDraft } }
}"""
_TO_DRAFT = """mutation($id: ID!) {
  convertPullRequestToDraft(input: {pullRequestId: $id}) { pullRequest { isDraft } }
}"""


def pull_request_of(data: Any) -> PullRequest:
    """A pull request from GitHub's JSON (ForgeError when the answer is not one)."""
    try:
        merged = bool(data.get("merged_at"))
        return PullRequest(
            number=int(data["number"]),
            url=str(data["html_url"]),
            head=str(data["head"]["ref"]),
            base=str(data["base"]["ref"]),
            title=str(data["title"]),
            body=str(data.get("body") or ""),
            draft=bool(data.get("draft")),
            state="merged" if merged else str(data["state"]),
            labels=tuple(str(label["name"]) for label in data.get("labels") or ()),
        )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ForgeError(f"GitHub answered something that is not a pull request ({exc})") from exc


class GitHubForge:
    """Pull requests of one GitHub repository (`target.org/target.name`)."""

    def __init__(
        self,
        target: RepositoryTarget,
        token: str,
        *,
        policy: EgressPolicy,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self._target = target
        self._token = token
        self._policy = policy
        self._timeout = timeout

    @contextmanager
    def _github(self, what: str) -> Iterator[GitHub[Any]]:
        """A client for one call; every failure becomes a ForgeError naming `what`."""
        client: GitHub[Any] = GitHub(
            self._token,
            base_url=self._target.github_url,
            transport=EgressTransport(self._policy),
            follow_redirects=False,
            trust_env=False,
            http_cache=False,
            auto_retry=False,
            timeout=self._timeout,
            user_agent="runwright",
        )
        try:
            with client:
                yield client
        except GitHubException as exc:
            raise self._error(what, exc) from None

    def _error(self, what: str, exc: GitHubException) -> ForgeError:
        where = f"GitHub {what} for {self._target.slug}"
        if isinstance(exc, RequestFailed):
            status = exc.response.status_code
            try:
                reason = str(exc.response.json().get("message") or "")
            except (ValueError, AttributeError):
                reason = ""
            retryable = status >= 500 or status == 429
            message = f"{where} answered {status}{': ' + reason[:500] if reason else ''}"
            return ForgeError(self._redact(message), retryable=retryable)
        if isinstance(exc, GraphQLFailed):
            errors = "; ".join(e.message for e in exc.response.errors or [])
            return ForgeError(self._redact(f"{where} failed: {errors[:500]}"))
        if isinstance(exc, RequestError):
            cause: BaseException | None = exc.exc
            while cause is not None and not isinstance(cause, EgressRefused):
                cause = cause.__cause__ or cause.__context__
            if isinstance(cause, EgressRefused):
                return ForgeError(f"{where}: {cause}")
            inner = exc.exc
            kind = type(inner).__name__
            retryable = isinstance(inner, httpx.TransportError)
            return ForgeError(self._redact(f"{where} failed: {kind}: {inner}"), retryable=retryable)
        return ForgeError(self._redact(f"{where} failed: {type(exc).__name__}"))

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def _find_open(self, gh: GitHub[Any], head: str) -> dict[str, Any] | None:
        found: Any = gh.rest.pulls.list(
            self._target.org,
            self._target.name,
            state="open",
            head=f"{self._target.org}:{head}",
            per_page=100,
        ).json()
        matching = [p for p in found if p.get("head", {}).get("ref") == head]
        return dict(matching[0]) if matching else None

    def _add_labels(
        self, gh: GitHub[Any], number: int, data: dict[str, Any], wanted: Sequence[str]
    ) -> dict[str, Any]:
        """The pull request `data` with the labels of `wanted` it lacks added on GitHub."""
        present = [str(label.get("name")) for label in data.get("labels") or ()]
        added = missing_labels(wanted, present, casefold=True)
        if not added:
            return data
        labels: Any = gh.rest.issues.add_labels(
            self._target.org, self._target.name, number, labels=[*added]
        ).json()
        return {**data, "labels": labels}

    def ensure_pull_request(
        self,
        head: str,
        base: str,
        title: str,
        body: str = "",
        draft: bool = False,
        labels: Sequence[str] = (),
    ) -> PullRequest:
        """The open pull request of `head`, opened (into `base`, labelled) when there is
        none."""
        check_branch(head, "head")
        check_branch(base, "base")
        check_text(title, body)
        names = check_labels(labels)
        with self._github("pull request for head " + head) as gh:
            existing = self._find_open(gh, head)
            if existing is not None:
                return pull_request_of(existing)
            try:
                created = gh.rest.pulls.create(
                    self._target.org,
                    self._target.name,
                    head=head,
                    base=base,
                    title=title,
                    body=body,
                    draft=draft,
                ).json()
            except RequestFailed as exc:
                # 422 also means "a pull request already exists" (opened since the lookup).
                if exc.response.status_code != 422:
                    raise
                existing = self._find_open(gh, head)
                if existing is None:
                    raise
                return pull_request_of(existing)
            opened = pull_request_of(created)
            # Opening takes no labels. Should adding them fail, a retry finds the pull request
            # unlabelled and returns it as it is; the caller's update then adds them.
            return pull_request_of(self._add_labels(gh, opened.number, dict(created), names))

    def update_pull_request(
        self,
        number: int,
        *,
        title: str | None = None,
        body: str | None = None,
        draft: bool | None = None,
        labels: Sequence[str] | None = None,
    ) -> PullRequest:
        """Set the given fields of pull request `number` (draft through GraphQL); `labels` it
        lacks are added."""
        check_text(title, body)
        names = None if labels is None else check_labels(labels)
        owner, repo = self._target.org, self._target.name
        with self._github(f"update of pull request #{number}") as gh:
            data: Any
            if title is not None or body is not None:
                data = gh.rest.pulls.update(
                    owner,
                    repo,
                    number,
                    title=UNSET if title is None else title,
                    body=UNSET if body is None else body,
                ).json()
            else:
                data = gh.rest.pulls.get(owner, repo, number).json()
            if names:
                data = self._add_labels(gh, number, dict(data), names)
            if draft is not None and bool(data.get("draft")) != draft:
                gh.graphql.request(_TO_DRAFT if draft else _READY, {"id": data["node_id"]})
                data = gh.rest.pulls.get(owner, repo, number).json()
            return pull_request_of(data)

    def pull_requests(self, heads: Sequence[str]) -> dict[str, PullRequest]:
        """The newest pull request (any state) of each of `heads` that has one."""
        found: dict[str, PullRequest] = {}
        with self._github("pull request lookup") as gh:
            for head in dict.fromkeys(heads):
                listed = gh.rest.pulls.list(
                    self._target.org,
                    self._target.name,
                    state="all",
                    head=f"{self._target.org}:{head}",
                    per_page=100,
                ).json()
                pulls = [pull_request_of(p) for p in listed]
                mine = [p for p in pulls if p.head == head]
                if mine:
                    found[head] = max(mine, key=lambda p: p.number)
        return found
