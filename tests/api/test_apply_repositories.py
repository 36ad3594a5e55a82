"""`kind: Repository` through POST /api/apply: stored as a definition, its password, ssh key
and forge token as secret references, never shown back; shown by GET /api/repositories with
secrets masked; bad fields refused naming them, with nothing written; re-applying updates."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.repositories import RepositoryTarget
from core.secrets import MASK, SecretBox
from core.store.repositories import repository
from core.store.secret_values import open_secret
from tests.api.helpers import Api, error_of
from tests.conftest import TEST_SECRET_KEY

TOKEN = "ghp_forge-token-0123456789"
PASSWORD = "repo-pa55:word"
SSH_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
VALID: dict[str, Any] = {
    "org": "acme-corp",
    "name": "backend",
    "url": "https://git.example.com/acme-corp/backend.git",
}


def repo_doc(**fields: Any) -> str:
    return json.dumps({"kind": "Repository", **fields})


def stored(api: Api, org: str, name: str) -> RepositoryTarget | None:
    with api.stack.sessions() as session:
        return repository(session, org, name)


def opened(api: Api, ref: str | None) -> str:
    assert ref is not None
    with api.stack.sessions() as session:
        return open_secret(session, SecretBox(TEST_SECRET_KEY), ref)


async def test_repository_round_trip(api: Api) -> None:
    """Apply stores the repository with its secrets as references; the lookup and GET show it
    (secrets masked); re-applying updates it in place and keeps secrets left out or masked."""
    doc = {
        **VALID,
        "defaultBranch": "develop",
        "username": "deploy",
        "password": PASSWORD,
        "forge": "github",
        "forgeToken": TOKEN,
        "githubUrl": "https://ghe.example.com/api/v3/",
    }
    response = await api.apply_raw(repo_doc(**doc))
    assert response.status_code == 200, response.text
    (item,) = response.json()["items"]
    assert (item["kind"], item["name"], item["result"]) == (
        "Repository",
        "acme-corp/backend",
        "created",
    )
    assert TOKEN not in response.text and PASSWORD not in response.text

    target = stored(api, "acme-corp", "backend")
    assert target is not None
    assert (target.url, target.default_branch, target.forge, target.github_url) == (
        VALID["url"],
        "develop",
        "github",
        "https://ghe.example.com/api/v3",
    )
    assert target.username == "deploy" and target.ssh_key_ref is None
    assert opened(api, target.password_ref) == PASSWORD
    assert opened(api, target.forge_token_ref) == TOKEN

    shown = await api.get("/api/repositories/acme-corp/backend")
    assert shown.status_code == 200, shown.text
    assert shown.json() == {
        "kind": "Repository",
        "org": "acme-corp",
        "name": "backend",
        "url": VALID["url"],
        "defaultBranch": "develop",
        "forge": "github",
        "githubUrl": "https://ghe.example.com/api/v3",
        "username": "deploy",
        "password": MASK,
        "forgeToken": MASK,
    }
    listed = await api.get("/api/repositories")
    assert listed.json() == {"items": [shown.json()]}

    # The shown document applies back unchanged: masked secrets keep the stored ones.
    again = await api.apply(json.dumps(shown.json()))
    assert again == [{**item, "result": "updated"}]
    assert stored(api, "acme-corp", "backend") == target

    # Left out keeps a secret; null removes it; a new value replaces it.
    await api.apply(repo_doc(**VALID, forge="github", password=None, sshKey=SSH_KEY))
    after = stored(api, "acme-corp", "backend")
    assert after is not None and after.password_ref is None and after.default_branch == "main"
    assert after.forge_token_ref == target.forge_token_ref
    assert opened(api, after.ssh_key_ref) == SSH_KEY
    assert after.github_url == "https://api.github.com"

    # Back to the local forge: the token is dropped, and the view says so.
    await api.apply(repo_doc(**VALID))
    local = stored(api, "acme-corp", "backend")
    assert local is not None and (local.forge, local.forge_token_ref) == ("local", None)
    view = (await api.get("/api/repositories/acme-corp/backend")).json()
    assert "forgeToken" not in view and "githubUrl" not in view and view["sshKey"] == MASK


async def test_unknown_repository_is_404(api: Api) -> None:
    """The lookup answers None and the routes 404 for what no document created."""
    assert stored(api, "acme-corp", "nowhere") is None
    response = await api.get("/api/repositories/acme-corp/nowhere")
    assert error_of(response, 404) == "Repository not found."
    response = await api.get("/api/repositories/acme-corp/nowhere/pulls/1")
    assert error_of(response, 404) == "Pull request not found."


async def test_operator_cannot_apply_repositories(api: Api) -> None:
    """Repositories are applied by admins only; nothing is written; viewers may look."""
    operator = await api.add_person("ops@example.com", "operator")
    before = api.counts()
    response = await api.apply_raw(repo_doc(**VALID), auth=operator)
    assert response.status_code == 403
    assert api.counts() == before
    viewer = await api.add_person("viewer@example.com", "viewer")
    assert (await api.get("/api/repositories", auth=viewer)).json() == {"items": []}


BAD_REPOSITORIES: list[tuple[dict[str, Any], str]] = [
    ({"org": None}, "org: is required"),
    ({"org": "-acme"}, "org: '-acme' must be 1 to 100 letters"),
    ({"org": "ac me"}, "org: 'ac me' must be 1 to 100 letters"),
    ({"name": None}, "name: is required"),
    ({"name": ".."}, "name: '..' must be 1 to 100 letters"),
    ({"name": ["backend"]}, "name: must be a string"),
    ({"url": None}, "url: is required"),
    ({"url": "ext::sh -c touch% /tmp/x"}, 'url: repository url transport form "ext::"'),
    ({"url": "/srv/git/repo.git"}, "url: repository url '/srv/git/repo.git' has no scheme"),
    ({"url": "https://user:pw@git.example.com/r.git"}, "url: repository url must not contain"),
    ({"url": "https://git.example.com/" + "r" * 2100}, "url: must be at most 2048 characters"),
    ({"defaultBranch": "-main"}, "defaultBranch: ref \"-main\" must not start with '-'"),
    ({"defaultBranch": "a..b"}, 'defaultBranch: ref "a..b" must not contain ".."'),
    ({"defaultBranch": "refs/heads/main"}, "defaultBranch: must be a branch name"),
    ({"forge": "gitlab"}, "forge: must be one of local, github, not 'gitlab'"),
    ({"forge": "github"}, "forgeToken: is required for forge: github"),
    ({"forgeToken": TOKEN}, "forgeToken: is only for forge: github"),
    ({"githubUrl": "https://ghe.example.com"}, "githubUrl: is only for forge: github"),
    (
        {"forge": "github", "forgeToken": TOKEN, "githubUrl": "ftp://ghe.example.com"},
        "githubUrl: must be an http(s) URL with a host",
    ),
    (
        {"forge": "github", "forgeToken": TOKEN, "githubUrl": "https://x:y@ghe.example.com"},
        "githubUrl: must not hold credentials",
    ),
    ({"forge": "github", "forgeToken": "a\nb"}, "forgeToken: must be one line"),
    ({"forge": "github", "forgeToken": "t" * 5000}, "forgeToken: must be at most 4096 bytes"),
    ({"password": MASK}, "password: is masked, and none is stored for this repository"),
    ({"password": 12345}, "password: must be a non-empty string"),
    ({"sshKey": "hunter2"}, "sshKey: must be a private key"),
    ({"username": " deploy"}, "username: must not hold control characters or outer spaces"),
    ({"token": TOKEN}, "token: not a field of a Repository"),
]


@pytest.mark.parametrize(("change", "message"), BAD_REPOSITORIES)
@pytest.mark.usefixtures("unchanged")
async def test_bad_repository_is_400_naming_the_field(
    module_api: Api, change: dict[str, Any], message: str
) -> None:
    """A bad field is refused naming document and field; the valid repository before it is
    not written, and no secret is quoted back."""
    good = repo_doc(**{**VALID, "name": "first"}, password=PASSWORD)
    fields = {k: v for k, v in {**VALID, **change}.items() if v is not None}
    response = await module_api.apply_raw(f"{good}\n---\n{repo_doc(**fields)}\n")
    assert error_of(response, 400).startswith(f"document 1 (Repository): {message}")
    for secret in (TOKEN, PASSWORD, "hunter2"):
        assert secret not in response.text
    assert (await module_api.get("/api/repositories")).json() == {"items": []}
