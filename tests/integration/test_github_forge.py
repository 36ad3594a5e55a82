"""The `github` forge against a local server speaking GitHub's pulls endpoints (and the GraphQL
draft mutations): what it sends, what it returns, and that the token stays out of errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from activities.forges import GitHubForge
from core.egress import EgressPolicy
from core.forges import ForgeError, PullRequest
from core.repositories import RepositoryTarget
from tests.github_server import FakeGitHub, fake_github

TOKEN = "ghp_0123456789abcdefTOKEN"
LOOPBACK = EgressPolicy.parse("127.0.0.0/8")
PULLS = "/repos/acme-corp/backend/pulls"


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with fake_github(TOKEN) as server:
        yield server


def forge_of(
    server: FakeGitHub, *, token: str = TOKEN, policy: EgressPolicy = LOOPBACK
) -> GitHubForge:
    target = RepositoryTarget(
        org="acme-corp",
        name="backend",
        url="https://github.com/acme-corp/backend.git",
        forge="github",
        github_url=server.api_url,
        forge_token_ref="unused-here",
    )
    return GitHubForge(target, token, policy=policy)


def test_ensure_opens_once_per_head(github: FakeGitHub) -> None:
    """The first ensure looks the head up, then POSTs the documented body with the token; the
    second finds the open pull request and opens nothing."""
    forge = forge_of(github)
    opened = forge.ensure_pull_request("av/rb-1-1-abc", "main", "[WIP] React 19", "Steps", True)
    assert opened == PullRequest(
        1,
        f"{github.base_url}/acme-corp/backend/pull/1",
        "av/rb-1-1-abc",
        "main",
        "[WIP] React 19",
        "Steps",
        True,
        "open",
    )
    assert github.calls() == [("GET", PULLS), ("POST", PULLS)]
    lookup, create = github.received
    assert lookup.query == {
        "state": ["open"],
        "head": ["acme-corp:av/rb-1-1-abc"],
        "per_page": ["100"],
    }
    assert create.body == {
        "head": "av/rb-1-1-abc",
        "base": "main",
        "title": "[WIP] React 19",
        "body": "Steps",
        "draft": True,
    }
    for request in github.received:
        assert request.headers["Authorization"] == f"token {TOKEN}"
        assert request.headers["Accept"] == "application/vnd.github+json"
        assert request.headers["X-GitHub-Api-Version"]

    again = forge.ensure_pull_request("av/rb-1-1-abc", "main", "another title")
    assert again == opened
    assert github.calls()[2:] == [("GET", PULLS)]
    second = forge.ensure_pull_request("av/rb-1-2-def", "av/rb-1-1-abc", "Step 2")
    assert (second.number, second.base, second.draft) == (2, "av/rb-1-1-abc", False)


def test_ensure_after_a_lost_race_returns_the_winner(github: FakeGitHub) -> None:
    """When the create meets GitHub's 422 (the head's pull request appeared since the lookup),
    ensure returns that pull request instead of failing or opening another."""
    forge = forge_of(github)
    first = forge.ensure_pull_request("topic", "main", "First")
    github.hide_next_lists = 1
    start = len(github.received)
    assert forge.ensure_pull_request("topic", "main", "Second") == first
    assert github.calls()[start:] == [("GET", PULLS), ("POST", PULLS), ("GET", PULLS)]
    assert len(github.pulls[("acme-corp", "backend")]) == 1


def test_update_text_and_draft(github: FakeGitHub) -> None:
    """Title and body go in one PATCH; draft changes go through the GraphQL mutations with the
    pull request's node id, since the REST API cannot change them."""
    forge = forge_of(github)
    forge.ensure_pull_request("topic", "main", "[WIP] Upgrade", "0/2 steps", draft=True)
    start = len(github.received)

    ready = forge.update_pull_request(1, title="Upgrade", body="2/2 steps", draft=False)
    assert (ready.title, ready.body, ready.draft) == ("Upgrade", "2/2 steps", False)
    calls = github.received[start:]
    assert [(c.method, c.path) for c in calls] == [
        ("PATCH", f"{PULLS}/1"),
        ("POST", "/graphql"),
        ("GET", f"{PULLS}/1"),
    ]
    assert calls[0].body == {"title": "Upgrade", "body": "2/2 steps"}
    assert "markPullRequestReadyForReview" in calls[1].body["query"]
    assert calls[1].body["variables"] == {"id": "PR_acme-corp_backend_1"}

    start = len(github.received)
    assert forge.update_pull_request(1, draft=False) == ready  # already ready: no mutation
    assert github.calls()[start:] == [("GET", f"{PULLS}/1")]
    back = forge.update_pull_request(1, draft=True)
    assert back.draft and "convertPullRequestToDraft" in github.received[-2].body["query"]


def test_pull_requests_by_head(github: FakeGitHub) -> None:
    """Each head with a pull request maps to its newest, in any state; others are left out."""
    forge = forge_of(github)
    one = forge.ensure_pull_request("a", "main", "A")
    two = forge.ensure_pull_request("b", "main", "B")
    github.pulls[("acme-corp", "backend")][1]["merged_at"] = "2026-01-02T00:00:00Z"
    github.pulls[("acme-corp", "backend")][1]["state"] = "closed"
    found = forge.pull_requests(["a", "b", "c"])
    assert found == {"a": one, "b": PullRequest(**{**vars(two), "state": "merged"})}
    for request in github.received[-3:]:
        assert request.query["state"] == ["all"]


def test_enterprise_base_url() -> None:
    """A GitHub Enterprise base (`.../api/v3`) is used for REST, and `/api/graphql` for drafts."""
    with fake_github(TOKEN, prefix="/api/v3") as ghe:
        forge = forge_of(ghe)
        forge.ensure_pull_request("topic", "main", "T", draft=True)
        forge.update_pull_request(1, draft=False)
        paths = [path for _, path in ghe.calls()]
        assert paths[:2] == [f"/api/v3{PULLS}", f"/api/v3{PULLS}"]
        assert "/api/graphql" in paths
        assert ghe.pulls[("acme-corp", "backend")][0]["draft"] is False


def test_failures_name_the_call_never_the_token(
    github: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    """Bad credentials, unknown pull requests and server errors become ForgeErrors naming the
    call and GitHub's message; only server errors are worth retrying; no log holds the token."""
    caplog.set_level(logging.DEBUG)
    wrong = "ghp_wrong-token-9876"
    with pytest.raises(ForgeError) as caught:
        forge_of(github, token=wrong).ensure_pull_request("topic", "main", "T")
    assert "answered 401: Bad credentials" in str(caught.value)
    assert wrong not in str(caught.value) and not caught.value.retryable

    forge = forge_of(github)
    with pytest.raises(ForgeError, match="answered 404: Not Found") as caught:
        forge.update_pull_request(42, title="x")
    assert not caught.value.retryable

    github.fail_next = 502
    with pytest.raises(ForgeError, match="answered 502") as caught:
        forge.pull_requests(["topic"])
    assert caught.value.retryable

    with pytest.raises(ForgeError, match="title: is empty"):
        forge.ensure_pull_request("topic", "main", "")
    assert not [r for r in github.received if r.method == "POST"]
    for text in (caplog.text, *(str(r.args) for r in caplog.records)):
        assert TOKEN not in text and wrong not in text


def test_egress_rules_apply_to_the_api_url(github: FakeGitHub) -> None:
    """A base URL on an address the egress rules refuse is never connected to."""
    forge = forge_of(github, policy=EgressPolicy())
    with pytest.raises(
        ForgeError, match=r"refused to connect to 127\.0\.0\.1 \(loopback\)"
    ) as caught:
        forge.ensure_pull_request("topic", "main", "T")
    assert not caught.value.retryable
    assert github.received == []
