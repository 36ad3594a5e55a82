"""Connected repositories as the catalog shows them, and the pull requests of `local` forges.

A local pull request's diff (`.../pulls/{number}/diff`, `text/x-diff`) is read from the
repository's remote with its credentials, so it shows what the branches hold now; a remote
that cannot be read is a 502 naming it (without credentials).

Read-only: repositories are created and changed by applying `kind: Repository` documents.
Secrets are shown as `********`, so a shown repository can be applied back as it is.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel

from api.deps import CurrentUser, ServicesDep, SessionDep
from api.errors import ApiError, not_found
from core.git_diff import DiffUnavailable, branch_diff
from core.store import pull_requests
from core.store.repositories import list_repositories, repository, repository_id, repository_view
from core.store.secret_values import open_secret

router = APIRouter(prefix="/api/repositories", tags=["Runwright"])
MAX_OFFSET = 2**31 - 1


class RepositoryList(BaseModel):
    """Repositories ordered by org and name, each as its (masked) document."""

    items: list[dict[str, Any]]


class PullRequestView(BaseModel):
    """A pull request Runwright keeps for a repository whose forge is `local`."""

    number: int
    head: str
    base: str
    title: str
    body: str
    draft: bool
    state: str
    labels: list[str]
    created_at: str
    updated_at: str


@router.get("", response_model=RepositoryList)
def list_repository_documents(
    session: SessionDep,
    _user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Skip this many.")] = 0,
) -> RepositoryList:
    """Every connected repository, secrets masked."""
    targets = list_repositories(session, limit=limit, offset=offset)
    return RepositoryList(items=[repository_view(t) for t in targets])


@router.get("/{org}/{name}", response_model=dict[str, Any])
def show_repository(org: str, name: str, session: SessionDep, _user: CurrentUser) -> dict[str, Any]:
    """One connected repository as its document, secrets masked."""
    target = repository(session, org, name)
    if target is None:
        raise not_found("Repository not found.")
    return repository_view(target)


@router.get("/{org}/{name}/pulls/{number}", response_model=PullRequestView)
def show_pull_request(
    org: str,
    name: str,
    number: Annotated[int, Path(ge=1, le=MAX_OFFSET)],
    session: SessionDep,
    _user: CurrentUser,
) -> PullRequestView:
    """A pull request of a repository whose forge is `local`."""
    found = repository_id(session, org, name)
    row = pull_requests.get_by_number(session, found, number) if found else None
    if row is None:
        raise not_found("Pull request not found.")
    return PullRequestView(
        number=row.number,
        head=row.head,
        base=row.base,
        title=row.title,
        body=row.body,
        draft=row.draft,
        state=row.state,
        labels=list(row.labels or []),
        created_at=row.created_at.isoformat(),
        updated_at=row.updated_at.isoformat(),
    )


@router.get(
    "/{org}/{name}/pulls/{number}/diff",
    response_class=Response,
    responses={200: {"content": {"text/x-diff": {}}, "description": "The unified diff."}},
)
def show_pull_request_diff(
    org: str,
    name: str,
    number: Annotated[int, Path(ge=1, le=MAX_OFFSET)],
    session: SessionDep,
    services: ServicesDep,
    _user: CurrentUser,
) -> Response:
    """What a `local` pull request's head branch changes since it left its base."""
    target = repository(session, org, name)
    found = repository_id(session, org, name)
    row = pull_requests.get_by_number(session, found, number) if found else None
    if target is None or row is None:
        raise not_found("Pull request not found.")
    box = services.box
    try:
        diff = branch_diff(
            target.url,
            row.base,
            row.head,
            allowed_schemes=services.settings.allowed_schemes,
            username=target.username,
            password=open_secret(session, box, target.password_ref)
            if target.password_ref
            else None,
            ssh_key=open_secret(session, box, target.ssh_key_ref) if target.ssh_key_ref else None,
            egress=services.settings.egress_policy,
        )
    except DiffUnavailable as exc:
        raise ApiError(502, f"the diff of pull request {number}: {exc}") from exc
    headers = {"X-Diff-Truncated": "true"} if diff.truncated else {}
    return Response(diff.text, media_type="text/x-diff", headers=headers)
