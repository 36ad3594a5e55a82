"""The `github` forge against a local server speaking GitHub's pulls endpoints (and the GraphQL
draft mutations): what it sends, what it returns, and that the token stays out of errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest

from activities.forges import GitHubForge
from core.egress import EgressPolicy
from core.forges import ForgeError, PullRequest
from core.repositories import RepositoryTarget
from tests.github_server import FakeGitHub, fake_github

TOKEN = "ghp_0123456789abcdefTOKEN"
LOOPBACK = EgressPolicy.parse("127.0.0.0/8")
PULLS = "/repos/acme-corp/backend/pulls"
LABELS = "/repos/acme-corp/backend/issues/1/labels"


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


def test_labels_are_added_once_and_a_persons_stay(github: FakeGitHub) -> None:
    """Opening adds the labels with issues/add-labels; a second ensure adds nothing; an update
    adds only the missing names (GitHub's names match without regard to case) and keeps the
    labels a person put on the pull request."""
    forge = forge_of(github)
    opened = forge.ensure_pull_request("topic", "main", "T", labels=["deps", "q3", "deps"])
    assert opened.labels == ("deps", "q3")
    assert github.calls() == [("GET", PULLS), ("POST", PULLS), ("POST", LABELS)]
    assert github.received[-1].body == {"labels": ["deps", "q3"]}
    assert "labels" not in github.received[1].body  # pulls/create takes none

    start = len(github.received)
    assert forge.ensure_pull_request("topic", "main", "T", labels=["deps", "other"]) == opened
    assert github.calls()[start:] == [("GET", PULLS)]

    # A person adds a label on GitHub.
    person = httpx.post(
        f"{github.api_url}{LABELS}",
        json={"labels": ["urgent"]},
        headers={"Authorization": f"token {TOKEN}"},
    )
    assert person.status_code == 200
    start = len(github.received)
    updated = forge.update_pull_request(1, title="T2", labels=["Q3", "later", "deps"])
    assert (updated.title, updated.labels) == ("T2", ("deps", "q3", "urgent", "later"))
    assert github.calls()[start:] == [("PATCH", f"{PULLS}/1"), ("POST", LABELS)]
    assert github.received[-1].body == {"labels": ["later"]}

    start = len(github.received)
    assert forge.update_pull_request(1, labels=["DEPS", "later"]) == updated
    assert github.calls()[start:] == [("GET", f"{PULLS}/1")]
    assert forge.pull_requests(["topic"])["topic"].labels == updated.labels
    assert github.label_names("acme-corp", "backend", 1) == ["deps", "q3", "urgent", "later"]


def test_bad_labels_send_nothing(github: FakeGitHub) -> None:
    """A label name GitHub would refuse (over 50 characters, empty) or more than 20 fail
    before any request, not retryable."""
    forge = forge_of(github)
    cases = [
        (lambda: forge.ensure_pull_request("t", "main", "T", labels=["x" * 51]), r"labels\[0\]"),
        (lambda: forge.ensure_pull_request("t", "main", "T", labels=[""]), "non-empty"),
        (lambda: forge.update_pull_request(1, labels=[str(i) for i in range(21)]), "at most 20"),
    ]
    for call, message in cases:
        with pytest.raises(ForgeError, match=message) as caught:
            call()
        assert not caught.value.retryable
    assert github.received == []


def test_the_servers_add_labels_endpoint_answers_as_github_does(github: FakeGitHub) -> None:
    """issues/add-labels: 200 with the issue's label objects, 401 without a token, 404 for an
    unknown number, 422 for a body without labels."""
    forge_of(github).ensure_pull_request("topic", "main", "T")
    url = f"{github.api_url}{LABELS}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    added = httpx.post(url, json={"labels": ["bug", "Bug", "docs"]}, headers=auth)
    assert added.status_code == 200
    assert [(label["name"], label["default"]) for label in added.json()] == [
        ("bug", False),
        ("docs", False),
    ]
    assert set(added.json()[0]) == {
        "id",
        "node_id",
        "url",
        "name",
        "description",
        "color",
        "default",
    }
    pull = httpx.get(f"{github.api_url}{PULLS}/1", headers=auth).json()
    assert pull["labels"] == added.json()
    assert httpx.post(url, json={"labels": ["x"]}).status_code == 401
    missing = httpx.post(url.replace("/1/", "/9/"), json={"labels": ["x"]}, headers=auth)
    assert (missing.status_code, missing.json()["message"]) == (404, "Not Found")
    assert httpx.post(url, json={"labels": []}, headers=auth).status_code == 422


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
        forge.ensure_pull_request("topic", "main", "T", draft=True, labels=["deps"])
        forge.update_pull_request(1, draft=False)
        paths = [path for _, path in ghe.calls()]
        assert paths[:3] == [f"/api/v3{PULLS}", f"/api/v3{PULLS}", f"/api/v3{LABELS}"]
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
