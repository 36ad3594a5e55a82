"""State-changing requests take JSON or YAML bodies only: no cross-site form posts."""

from __future__ import annotations

import pytest

from api.content_types import refusal
from tests.api.helpers import CONFIG_ID, PLAYBOOK_ID, UNKNOWN_ID, Api, assert_error
from tests.stack import ADMIN, basic

FORM_TYPES = [
    "text/plain",
    "text/plain;charset=UTF-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/xml",
]

# Each route with a body it would otherwise accept (or at least read).
ROUTES = [
    ("POST", "/playbook/run", f'{{"id": "{PLAYBOOK_ID}", "config_id": "{CONFIG_ID}"}}'),
    ("POST", "/api/apply", "kind: Team\nname: via-form\n"),
    ("POST", "/api/tokens", '{"name": "via-form"}'),
    ("POST", "/api/connections", '{"name": "via-form", "type": "custom", "command": ["sh"]}'),
]


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        (None, "Content-Type: missing; send the body as application/json (or YAML)"),
        ("", "Content-Type: missing; send the body as application/json (or YAML)"),
        (
            "text/plain; charset=UTF-8",
            "Content-Type: 'text/plain' is not accepted; send the body as application/json "
            "(or YAML)",
        ),
        (
            "Application/X-WWW-Form-Urlencoded",
            "Content-Type: 'application/x-www-form-urlencoded' is not accepted; send the body "
            "as application/json (or YAML)",
        ),
        ("application/json", None),
        ("application/json; charset=utf-8", None),
        ("APPLICATION/JSON", None),
        ("application/merge-patch+json", None),
        ("application/yaml", None),
        ("application/x-yaml", None),
        ("text/yaml", None),
        ("text/x-yaml", None),
    ],
)
def test_refusal(content_type: str | None, message: str | None) -> None:
    """JSON and YAML media types pass; anything else is named in the refusal."""
    assert refusal(content_type) == message


@pytest.mark.parametrize("content_type", FORM_TYPES)
@pytest.mark.parametrize(("method", "url", "body"), ROUTES)
@pytest.mark.usefixtures("unchanged")
async def test_form_bodies_are_415_and_write_nothing(
    seeded: Api, method: str, url: str, body: str, content_type: str
) -> None:
    """A body a browser could post cross-site is refused before the route acts on it."""
    response = await seeded.stack.api.request(
        method,
        url,
        content=body.encode(),
        headers={**basic(*ADMIN), "Content-Type": content_type},
    )
    kind = content_type.split(";")[0]
    message = f"Content-Type: {kind!r} is not accepted; send the body as application/json (or YAML)"
    assert response.status_code == 415, response.text
    assert response.json()["message"] == message


@pytest.mark.usefixtures("unchanged")
async def test_typeless_body_is_415(seeded: Api) -> None:
    """A body without any Content-Type (a typeless fetch Blob) is refused too."""
    response = await seeded.stack.api.post(
        "/api/apply", content=b"kind: Team\nname: typeless\n", headers=basic(*ADMIN)
    )
    assert_error(
        response,
        415,
        "unsupported media type",
        "Content-Type: missing; send the body as application/json (or YAML)",
    )


@pytest.mark.usefixtures("unchanged")
async def test_runner_routes_refuse_in_their_own_shape(seeded: Api) -> None:
    """Runner routes answer `{"message"}` as their document does."""
    response = await seeded.stack.api.post(
        "/jobs/DEV", content=b"a=b", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 415
    assert response.json() == {
        "message": "Content-Type: 'application/x-www-form-urlencoded' is not accepted; "
        "send the body as application/json (or YAML)"
    }


async def test_json_and_yaml_bodies_are_served(api: Api) -> None:
    """JSON with a charset, and every YAML media type, reach their routes."""
    created = await api.post(
        "/api/tokens",
        content=b'{"name": "cli"}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert created.status_code == 201, created.text
    for i, kind in enumerate(["application/yaml", "application/x-yaml", "text/yaml"]):
        applied = await api.post(
            "/api/apply",
            content=f"kind: Team\nname: t{i}\n".encode(),
            headers={"Content-Type": kind},
        )
        assert applied.status_code == 200, applied.text


@pytest.mark.usefixtures("unchanged")
async def test_bodyless_posts_need_no_content_type(seeded: Api) -> None:
    """POSTs without a body (list, approve) work without a Content-Type, whatever else is sent."""
    listed = await seeded.post(f"/playbook/list?config_id={CONFIG_ID}")
    assert listed.status_code == 200, listed.text
    approve = f"/playbook/run/approve/{PLAYBOOK_ID}/{UNKNOWN_ID}"
    no_type = await seeded.post(approve)
    stray_type = await seeded.post(
        approve, headers={"Content-Type": "text/plain", "Content-Length": "0"}
    )
    for response in (no_type, stray_type):
        assert response.status_code == 404, response.text
