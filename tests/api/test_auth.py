"""Who may call the Mission Control routes: HTTP Basic as documented, and Bearer tokens."""

from __future__ import annotations

import base64

import pytest

from tests.api.helpers import (
    ADMIN_AUTH,
    CONFIG_ID,
    PLAYBOOK_ID,
    UNKNOWN_ID,
    Api,
    assert_error,
    error_of,
)
from tests.stack import ADMIN, basic

CHALLENGE = 'Basic realm="runwright"'

# Every route of the document (approval aside), with a request that would otherwise be valid.
ROUTES: list[tuple[str, str, bytes | None]] = [
    ("POST", "/playbook/run", f'{{"id": "{PLAYBOOK_ID}"}}'.encode()),
    ("POST", "/playbook/run", b"{not json"),
    ("GET", f"/playbook/list?config_id={CONFIG_ID}", None),
    ("POST", f"/playbook/list?config_id={CONFIG_ID}", None),
    ("GET", f"/playbook/run/{UNKNOWN_ID}", None),
    ("GET", f"/artifacts/list/playbook_run/{UNKNOWN_ID}", None),
    ("GET", f"/artifacts/download/{UNKNOWN_ID}", None),
    ("POST", "/api/apply", b"kind: Team\nname: sneaky\n"),
    ("POST", "/api/tokens", b"{}"),
]


def encoded(text: str) -> str:
    """`text` in base64, as Basic credentials carry it."""
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(("method", "url", "content"), ROUTES)
@pytest.mark.usefixtures("unchanged")
async def test_no_credentials_is_401_with_challenge(
    seeded: Api, method: str, url: str, content: bytes | None
) -> None:
    """A request without credentials is refused with 401 and a Basic challenge."""
    kind = "application/yaml" if url == "/api/apply" else "application/json"
    headers = {"Content-Type": kind} if content else {}
    response = await seeded.stack.api.request(method, url, content=content, headers=headers)
    assert_error(
        response,
        401,
        "unauthorized",
        "authentication required: use HTTP Basic or a Bearer token",
    )
    assert response.headers["WWW-Authenticate"] == CHALLENGE


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (f"Basic {encoded('admin@local:wrong')}", "invalid username or password"),
        (f"Basic {encoded('admin@local:')}", "invalid username or password"),
        (f"Basic {encoded('nobody@local:admin')}", "invalid username or password"),
        (f"Basic {encoded('admin@local')}", "invalid username or password"),
        ("Basic %%%not-base64", "malformed Basic credentials"),
        ("Bearer not-a-token", "invalid or expired token"),
        ("Bearer ", "invalid or expired token"),
        ("Digest username=admin", "unsupported authorization scheme 'digest'"),
    ],
)
@pytest.mark.usefixtures("unchanged")
async def test_bad_credentials_are_401(seeded: Api, authorization: str, message: str) -> None:
    """Wrong passwords, unknown users, bad tokens and other schemes are refused with 401."""
    response = await seeded.run_request({"id": PLAYBOOK_ID}, auth={"Authorization": authorization})
    assert_error(response, 401, "unauthorized", message)
    assert response.headers["WWW-Authenticate"] == CHALLENGE


async def test_documented_basic_credentials_run(seeded: Api) -> None:
    """`curl -u 'admin@local:admin'` as in the document starts a run."""
    response = await seeded.run_request({"id": PLAYBOOK_ID}, auth=basic(*ADMIN))
    assert response.status_code == 201, response.text


async def test_basic_email_is_case_insensitive(seeded: Api) -> None:
    """The email part of Basic credentials is matched without regard to case."""
    response = await seeded.get(
        f"/playbook/list?config_id={CONFIG_ID}", auth=basic("Admin@Local", ADMIN[1])
    )
    assert response.status_code == 200, response.text


async def test_token_from_api_tokens_works_as_bearer(seeded: Api) -> None:
    """A token from POST /api/tokens is accepted as `Authorization: Bearer`."""
    created = await seeded.post("/api/tokens", json={"name": "ci"}, auth=ADMIN_AUTH)
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == {"id", "token", "expires_at"}
    assert body["expires_at"]
    bearer = {"Authorization": f"Bearer {body['token']}"}
    response = await seeded.run_request({"id": PLAYBOOK_ID}, auth=bearer)
    assert response.status_code == 201, response.text


async def test_token_with_ttl_has_an_expiry(seeded: Api) -> None:
    """A token asked for with ttl_hours says when it expires."""
    created = await seeded.post("/api/tokens", json={"ttl_hours": 1})
    assert created.status_code == 201, created.text
    assert created.json()["expires_at"]


@pytest.mark.parametrize("ttl", [0, -1, 2161, 4e142])
@pytest.mark.usefixtures("unchanged")
async def test_token_with_a_lifetime_out_of_bounds_is_400(seeded: Api, ttl: float) -> None:
    """A token lifetime of zero or less, or beyond the deployment's (90 days), is refused naming
    ttl_hours."""
    response = await seeded.post("/api/tokens", json={"ttl_hours": ttl})
    assert_error(response, 400, "invalid", "ttl_hours: must be more than 0 and at most 2160")


@pytest.mark.usefixtures("unchanged")
async def test_token_request_with_malformed_json_is_400(seeded: Api) -> None:
    """A token request that is not JSON is refused with 400, not 500."""
    response = await seeded.post(
        "/api/tokens", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert error_of(response, 400).startswith("body: invalid JSON")


async def test_viewer_token_cannot_run_but_can_read(seeded: Api) -> None:
    """A viewer's token reads the playbook list but is refused runs with 403."""
    viewer = await seeded.add_person("reader@example.com", "viewer")
    before = seeded.counts()
    listed = await seeded.get(f"/playbook/list?config_id={CONFIG_ID}", auth=viewer)
    assert listed.status_code == 200, listed.text
    response = await seeded.run_request({"id": PLAYBOOK_ID}, auth=viewer)
    assert_error(response, 403, "forbidden", "this needs the operator role")
    assert seeded.counts() == before


async def test_person_without_password_cannot_use_basic(seeded: Api) -> None:
    """A person applied without a password cannot sign in with Basic."""
    await seeded.add_person("nopass@example.com", "operator")
    response = await seeded.run_request({"id": PLAYBOOK_ID}, auth=basic("nopass@example.com", ""))
    assert_error(response, 401, "unauthorized", "invalid username or password")


async def test_viewer_is_refused_before_the_body_is_read(seeded: Api) -> None:
    """A viewer sending a malformed run request gets 403, not a parse error."""
    viewer = await seeded.add_person("curious@example.com", "viewer")
    response = await seeded.post(
        "/playbook/run",
        auth=viewer,
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 403, "forbidden", "this needs the operator role")
