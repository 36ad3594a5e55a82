"""Run requests with secret parameters that are refused or cannot start leave no secret behind."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.api.helpers import Api, api_for, assert_error
from tests.conftest import TEST_SECRET_KEY
from tests.stack import client_of_a_stopped_temporal, make_settings, stack_for

PLAYBOOK_ID = "9d2b8f3e-1c4a-4e6b-8f0d-2a7c5e3b1d90"
PLAYBOOK = f"""
apiVersion: mission-control.flanksource.com/v1
kind: Playbook
id: {PLAYBOOK_ID}
metadata: {{name: secret-token}}
spec:
  parameters:
    - {{name: token, type: secret, required: true}}
    - {{name: reason, required: true}}
  actions:
    - name: use
      exec: {{script: "echo $PARAM_TOKEN"}}
"""


async def test_refused_request_stores_no_secret(api: Api) -> None:
    """A request refused for another parameter stores no secret row for the token."""
    await api.apply(PLAYBOOK)
    before = api.counts()
    response = await api.run_request({"id": PLAYBOOK_ID, "params": {"token": "tok-123456"}})
    message = "invalid parameters: missing required parameter(s): reason"
    assert_error(response, 400, "invalid", message)
    assert api.counts() == before


async def test_secret_given_as_an_object_is_refused_naming_it(api: Api) -> None:
    """A secret parameter must be a scalar like any other: 400 naming `params.token`."""
    await api.apply(PLAYBOOK)
    before = api.counts()
    body = {"id": PLAYBOOK_ID, "params": {"token": {"secretRef": "x"}, "reason": "r"}}
    response = await api.run_request(body)
    message = "invalid parameters: params.token: must be a string, number or boolean"
    assert_error(response, 400, "invalid", message)
    assert api.counts() == before


@pytest.fixture
async def down_api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    """A runwright whose Temporal server has gone away after it connected (no worker)."""
    client = await client_of_a_stopped_temporal()
    settings = make_settings(tmp_path_factory.mktemp("down"), secret_key=TEST_SECRET_KEY)
    async with stack_for(settings, client, worker=False) as stack:
        yield api_for(stack)


async def test_run_that_cannot_start_keeps_no_secret(down_api: Api) -> None:
    """With Temporal gone the run is 503, and neither the run nor its stored token stays."""
    await down_api.apply(PLAYBOOK)
    before = down_api.counts()
    body = {"id": PLAYBOOK_ID, "params": {"token": "tok-123456", "reason": "r"}}
    response = await down_api.run_request(body)
    assert response.status_code == 503, response.text
    assert down_api.counts() == before
