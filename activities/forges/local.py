"""The `local` forge: pull requests kept in Runwright's database, numbered per repository.

The branches themselves are pushed to the repository's remote (`activities.forges.push`);
this forge records what a forge would show of them: number, head, base, title, body, draft,
state and labels. Each pull request's `url` comes from `url_template`, which the caller chooses
(by default the API's view of the record).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.forges import ForgeError, PullRequest, check_labels, check_text
from core.git_urls import GitUrlError, validate_ref
from core.repositories import RepositoryTarget
from core.store import pull_requests
from core.store.models import ForgePullRequest
from core.store.repositories import repository_id
from core.store.session import transaction

DEFAULT_URL_TEMPLATE = "/api/repositories/{org}/{name}/pulls/{number}"
# Two callers racing for the same repository: the loser retries on the winner's row.
_RACE_ATTEMPTS = 5


def check_branch(value: str, what: str) -> None:
    """Raise ForgeError (not retryable) unless `value` is a branch name git accepts."""
    try:
        validate_ref(value)
    except GitUrlError as exc:
        raise ForgeError(f"{what}: {exc}") from exc
    if value.startswith("refs/") or len(value) > 255:
        raise ForgeError(f"{what}: must be a branch name of at most 255 characters")


class LocalForge:
    """Pull requests of one repository, in the database `sessions` opens."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        target: RepositoryTarget,
        *,
        url_template: str = DEFAULT_URL_TEMPLATE,
    ) -> None:
        self._sessions = sessions
        self._target = target
        self._url_template = url_template

    def _repository_id(self, session: Session) -> str:
        found = repository_id(session, self._target.org, self._target.name)
        if found is None:
            raise ForgeError(f"repository {self._target.slug} is not connected")
        return found

    def _shown(self, row: ForgePullRequest) -> PullRequest:
        url = self._url_template.format(
            org=self._target.org, name=self._target.name, number=row.number
        )
        return pull_requests.as_pull_request(row, url)

    def ensure_pull_request(
        self,
        head: str,
        base: str,
        title: str,
        body: str = "",
        draft: bool = False,
        labels: Sequence[str] = (),
    ) -> PullRequest:
        """The open pull request of `head`, recorded (into `base`, labelled) when there is
        none."""
        check_branch(head, "head")
        check_branch(base, "base")
        check_text(title, body)
        names = check_labels(labels)
        if head == base:
            raise ForgeError(f"head and base are the same branch ({head})")
        for _ in range(_RACE_ATTEMPTS):
            try:
                with transaction(self._sessions) as session:
                    row, _created = pull_requests.ensure_open(
                        session,
                        self._repository_id(session),
                        head=head,
                        base=base,
                        title=title,
                        body=body,
                        draft=draft,
                        labels=names,
                    )
                    return self._shown(row)
            except IntegrityError:
                continue
        raise ForgeError(f"could not record a pull request for {head}", retryable=True)

    def update_pull_request(
        self,
        number: int,
        *,
        title: str | None = None,
        body: str | None = None,
        draft: bool | None = None,
        labels: Sequence[str] | None = None,
    ) -> PullRequest:
        """Set the given fields of pull request `number`; `labels` it lacks are added."""
        check_text(title, body)
        names = None if labels is None else check_labels(labels)
        with transaction(self._sessions) as session:
            row = pull_requests.get_by_number(session, self._repository_id(session), number)
            if row is None:
                raise ForgeError(f"pull request #{number} of {self._target.slug} not found")
            pull_requests.update(row, title=title, body=body, draft=draft, labels=names)
            session.flush()
            return self._shown(row)

    def pull_requests(self, heads: Sequence[str]) -> dict[str, PullRequest]:
        """The newest pull request of each of `heads` that has one."""
        with self._sessions() as session:
            rows = pull_requests.newest_for_heads(session, self._repository_id(session), heads)
            return {head: self._shown(row) for head, row in rows.items()}
