"""POST /api/apply: multi-document YAML, all or nothing, with errors naming document and field."""

from __future__ import annotations

import itertools
import json
import time
import uuid

import pytest
from sqlalchemy import select

from core.store.models import Definition, Resource, Secret
from tests.api.helpers import CONFIG_ID, PLAYBOOK_ID, Api, assert_error, error_of, playbook

SECRET_VALUE = "s3cr3t-apply-value"

VALID_PLAYBOOK = playbook(
    "valid",
    "  actions:\n"
    "    - name: call\n"
    "      exec:\n"
    '        script: "echo $TOKEN"\n'
    f"        env: [{{name: TOKEN, value: {SECRET_VALUE}}}]\n",
    playbook_id=PLAYBOOK_ID,
)
# Valid documents that precede each bad one: a bad document must undo them too.
VALID = f"""
kind: ConfigItem
id: {CONFIG_ID}
name: podinfo
type: Kubernetes::Deployment
tags: {{namespace: demo}}
---
kind: Person
email: someone@example.com
role: operator
---
kind: Team
name: ops
members: [someone@example.com, newcomer@example.com]
---
{VALID_PLAYBOOK}"""
BAD_INDEX = 4
HEAD = "apiVersion: mission-control.flanksource.com/v1\nkind: Playbook\nmetadata: {name: bad}\n"
GIT = "https://example.com/ops.git"


def action(text: str) -> str:
    """A playbook named `bad` whose one action is `text` (flow YAML)."""
    return f"{HEAD}spec:\n  actions:\n    - {text}\n"


def spec(text: str) -> str:
    """A playbook named `bad` with `text` added to a spec with one good action."""
    return f"{HEAD}spec:\n{text}  actions: [{{name: a, exec: {{script: x}}}}]\n"


P = f"document {BAD_INDEX} (Playbook) bad: spec."
BAD_DOCUMENTS = [
    # kinds and envelopes
    ("kind: Widget\nname: x", f"document {BAD_INDEX} (Widget): unknown kind 'Widget'"),
    ("name: x", f"document {BAD_INDEX} (no kind): kind is required"),
    ("- 1\n- 2", f"document {BAD_INDEX}: must be a mapping with a kind"),
    (
        "apiVersion: v1\nkind: Playbook\nmetadata: {name: x}\n"
        "spec: {actions: [{name: a, exec: {script: x}}]}",
        f"document {BAD_INDEX} (Playbook): apiVersion must be mission-control.flanksource.com/v1",
    ),
    (
        "kind: Playbook\nmetadata: {name: x}\nspec: {actions: [{name: a, exec: {script: x}}]}",
        f"document {BAD_INDEX} (Playbook): apiVersion must be",
    ),
    (
        "apiVersion: mission-control.flanksource.com/v1\nkind: Playbook\nmetadata: {}\n"
        "spec: {actions: [{name: a, exec: {script: x}}]}",
        f"document {BAD_INDEX} (Playbook) metadata: name is required",
    ),
    (
        "apiVersion: mission-control.flanksource.com/v1\nkind: Playbook\n"
        "spec: {actions: [{name: a, exec: {script: x}}]}",
        f"document {BAD_INDEX} (Playbook) metadata: name is required",
    ),
    (
        "apiVersion: mission-control.flanksource.com/v1\nkind: Playbook\nid: nope\n"
        "metadata: {name: x}\nspec: {actions: [{name: a, exec: {script: x}}]}",
        f"document {BAD_INDEX} (Playbook): id must be a UUID",
    ),
    # actions
    (action("{name: a}"), f"{P}actions[0]: needs exactly one action type of: exec, http, ansible"),
    (action("{exec: {script: x}}"), f"{P}actions[0].name: is required"),
    (
        action("{name: a, exec: {script: x}, http: {url: 'http://x'}}"),
        f"{P}actions[0]: needs exactly one action type",
    ),
    (
        action("{name: a, sql: {query: 'select 1'}}"),
        f"{P}actions[0].sql: action type 'sql' is not supported",
    ),
    (
        action("{name: a, gitops: {repo: {url: x}}}"),
        f"{P}actions[0].gitops: action type 'gitops' is not supported",
    ),
    (action("{name: a, exec: {}}"), f"{P}actions[0].exec.script: is required"),
    (
        action("{name: a, http: {url: 'http://x', method: BREW}}"),
        f"{P}actions[0].http.method: unsupported HTTP method 'BREW'",
    ),
    (
        action("{name: a, if: sometimes(), exec: {script: x}}"),
        f"{P}actions[0].if: unsupported filter 'sometimes()'",
    ),
    (
        action("{name: a, timeout: soon, exec: {script: x}}"),
        f"{P}actions[0].timeout: invalid duration 'soon'",
    ),
    (
        action("{name: a, delay: -5s, exec: {script: x}}"),
        f"{P}actions[0].delay: invalid duration '-5s'",
    ),
    (
        action("{name: a, exec: {script: '{{ .params.x | nosuchfunc }}'}}"),
        f"{P}actions[0].exec.script: template error: template: line 1, col 16: "
        f'function "nosuchfunc" not defined',
    ),
    (
        action("{name: a, exec: {script: '{{ .params.x '}}"),
        f"{P}actions[0].exec.script: template error:",
    ),
    (
        action("{name: a, http: {url: 'http://x/{{ bogus }}'}}"),
        f"{P}actions[0].http.url: template error:",
    ),
    (
        action("{name: a, exec: {script: x, artifacts: [{path: /etc/passwd}]}}"),
        f"{P}actions[0].exec.artifacts[0].path: must be relative to the working directory",
    ),
    # git sources
    (
        action("{name: a, exec: {script: x, checkout: {url: 'ftp://example.com/r.git'}}}"),
        f'{P}actions[0].exec.checkout.url: repository url scheme "ftp" is not supported',
    ),
    (
        action("{name: a, exec: {script: x, checkout: {url: 'ext::sh -c touch% /tmp/pwned'}}}"),
        f'{P}actions[0].exec.checkout.url: repository url transport form "ext::" is not allowed',
    ),
    (
        action("{name: a, exec: {script: x, checkout: {url: '-uhelp'}}}"),
        f"{P}actions[0].exec.checkout.url: repository url '-uhelp' must not start with '-'",
    ),
    (
        action("{name: a, exec: {script: x, checkout: {url: 'https://[::1/ops.git'}}}"),
        f"{P}actions[0].exec.checkout.url: repository url",
    ),
    (
        action("{name: a, exec: {script: x, checkout: {url: 'https://user:pw@example.com/r'}}}"),
        f"{P}actions[0].exec.checkout.url: repository url must not contain credentials",
    ),
    (
        action("{name: a, exec: {script: x, checkout: {url: ''}}}"),
        f"{P}actions[0].exec.checkout.url: is required",
    ),
    (
        action(f"{{name: a, exec: {{script: x, checkout: {{url: '{GIT}', branch: '--x'}}}}}}"),
        f"{P}actions[0].exec.checkout.branch: ref \"--x\" must not start with '-'",
    ),
    (
        action(f"{{name: a, exec: {{script: x, checkout: {{url: '{GIT}', commit: 'xyz'}}}}}}"),
        f"{P}actions[0].exec.checkout.commit: commit",
    ),
    (
        # What a read shows for a stored secret: with nothing stored here, it cannot be kept.
        action(
            f"{{name: a, exec: {{script: x, checkout: {{url: '{GIT}', password: '********'}}}}}}"
        ),
        f"{P}actions[0].exec.checkout.password: is masked (********); send the value itself",
    ),
    (
        action(f"{{name: a, exec: {{script: x, checkout: {{url: '{GIT}', path: '../up'}}}}}}"),
        f"{P}actions[0].exec.checkout.path: must stay inside the repository",
    ),
    (
        action(f"{{name: a, ansible: {{playbook: '../site.yml', checkout: {{url: '{GIT}'}}}}}}"),
        f"{P}actions[0].ansible.playbook: must be a path inside the repository",
    ),
    (
        action(f"{{name: a, ansible: {{playbook: /etc/site.yml, checkout: {{url: '{GIT}'}}}}}}"),
        f"{P}actions[0].ansible.playbook: must be a path inside the repository",
    ),
    (
        action("{name: a, ansible: {playbook: site.yml}}"),
        f"{P}actions[0].ansible.checkout: is required",
    ),
    # the rest of the spec
    (f"{HEAD}spec:\n  actions: []\n", f"{P}actions: a playbook needs at least one action"),
    (f"{HEAD}spec: {{}}\n", f"{P}actions: a playbook needs at least one action"),
    (
        spec("  parameters: [{name: a}, {name: a}]\n"),
        f"{P}parameters: parameter names must be unique",
    ),
    (
        spec("  parameters: [{name: a, type: colour}]\n"),
        f"{P}parameters[0].type: unknown parameter type 'colour'",
    ),
    (
        spec("  parameters: [{name: a, required: 'yes'}]\n"),
        f"{P}parameters[0].required: must be true or false",
    ),
    (spec("  parameters: [{label: x}]\n"), f"{P}parameters[0].name: is required"),
    (
        spec("  parameters: [{name: a, default: '{{ nosuch }}'}]\n"),
        f"{P}parameters[0].default: template error: template: line 1, col 4: "
        f'function "nosuch" not defined',
    ),
    (spec("  configs: {type: x}\n"), f"{P}configs: must be a list"),
    (spec("  checks: [{tags: [a]}]\n"), f"{P}checks[0].tags: must be an object"),
    (
        spec("  approval: {type: most, approvers: {people: [a@example.com]}}\n"),
        f"{P}approval.type: must be any or all",
    ),
    # catalog items, people and teams
    ("kind: ConfigItem\ntype: x", f"document {BAD_INDEX} (ConfigItem): name is required"),
    ("kind: ConfigItem\nname: x\ntags: [a]", f"document {BAD_INDEX} (ConfigItem): tags must be"),
    ("kind: Check\nname: x\nid: nope", f"document {BAD_INDEX} (Check): id must be a UUID"),
    (
        f"kind: Check\nname: x\nid: {CONFIG_ID}",
        f"document {BAD_INDEX} (Check): id {CONFIG_ID} is a config, not a check",
    ),
    ("kind: Person\nemail: nobody", f"document {BAD_INDEX} (Person): email 'nobody' is not"),
    ("kind: Person\nemail: a@b.c\nrole: root", f"document {BAD_INDEX} (Person): role must be"),
    ("kind: Team\nname: t\nmembers: a@b.c", f"document {BAD_INDEX} (Team): members must be"),
]


@pytest.mark.parametrize(("document", "message"), BAD_DOCUMENTS)
@pytest.mark.usefixtures("unchanged")
async def test_bad_document_is_400_and_nothing_is_written(
    module_api: Api, document: str, message: str
) -> None:
    """A bad document is refused naming index and field; earlier valid ones are not written."""
    response = await module_api.apply_raw(f"{VALID}---\n{document}\n")
    assert error_of(response, 400).startswith(message)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("key: [unclosed", "body is not valid YAML or JSON: "),
        ("", "no documents given"),
        ("---\n---\n", "no documents given"),
        ("!!python/object:os.system {}", "body is not valid YAML or JSON: "),
        ("[" * 5000 + "]" * 5000, "body is nested too deeply"),
        ("kind: Team\nname: " + "{a: " * 3000 + "1" + "}" * 3000, "body is nested too deeply"),
    ],
)
@pytest.mark.usefixtures("unchanged")
async def test_unreadable_body_is_400(module_api: Api, body: str, message: str) -> None:
    """A body that holds no readable documents is refused, not half-applied."""
    response = await module_api.apply_raw(body)
    assert error_of(response, 400).startswith(message)


@pytest.mark.usefixtures("unchanged")
async def test_non_utf8_body_is_400(module_api: Api) -> None:
    """A body that is not UTF-8 text is refused."""
    response = await module_api.post(
        "/api/apply",
        content=b"kind: Team\nname: \xff\n",
        headers={"Content-Type": "application/yaml"},
    )
    assert_error(response, 400, "invalid", "body must be UTF-8 text")


async def test_apply_reports_each_document(api: Api) -> None:
    """Each document is reported in order with its kind, name, id and `created`."""
    before = api.counts()
    items = await api.apply(VALID)
    kinds = [(i["kind"], i["name"], i["result"]) for i in items]
    assert kinds == [
        ("ConfigItem", "podinfo", "created"),
        ("Person", "someone@example.com", "created"),
        ("Team", "ops", "created"),
        ("Playbook", "default/valid", "created"),
    ]
    assert items[0]["id"] == CONFIG_ID
    assert items[3]["id"] == PLAYBOOK_ID
    after = api.counts()
    # The team's unknown member becomes a person too.
    assert after["users"] - before["users"] == 2
    assert (after["resources"], after["definitions"], after["teams"]) == (1, 1, 1)


async def test_reapply_updates_in_place(api: Api) -> None:
    """Applying the same documents again keeps every id and reports `updated`."""
    first = await api.apply(VALID)
    before = api.counts()
    again = await api.apply(VALID)
    assert [i["id"] for i in again] == [i["id"] for i in first]
    assert {i["result"] for i in again} == {"updated"}
    after = api.counts()
    # Only the playbook's secret is stored afresh; nothing else gains a row.
    assert {k: v for k, v in after.items() if k != "secrets"} == {
        k: v for k, v in before.items() if k != "secrets"
    }


async def test_reapply_without_id_finds_playbook_by_name(api: Api) -> None:
    """A playbook applied again by name alone keeps its id and takes the new spec."""
    [created] = await api.apply(playbook("named", "  actions: [{name: a, exec: {script: one}}]\n"))
    [updated] = await api.apply(playbook("named", "  actions: [{name: a, exec: {script: two}}]\n"))
    assert (updated["id"], updated["result"]) == (created["id"], "updated")
    with api.stack.sessions() as session:
        stored = session.get(Definition, created["id"])
        assert stored is not None
        assert stored.spec["actions"][0]["exec"]["script"] == "two"
        assert stored.updated_at >= stored.created_at


async def test_playbook_id_of_another_playbook_is_400(api: Api) -> None:
    """A new playbook may not take the id of an existing one with another name."""
    one_action = "  actions: [{name: a, exec: {script: x}}]\n"
    await api.apply(playbook("first", one_action, playbook_id=PLAYBOOK_ID))
    before = api.counts()
    response = await api.apply_raw(playbook("second", one_action, playbook_id=PLAYBOOK_ID))
    assert_error(
        response,
        400,
        "invalid",
        f"document 0 (Playbook): id {PLAYBOOK_ID} belongs to another definition",
    )
    assert api.counts() == before


async def test_json_list_body_applies_each_document(api: Api) -> None:
    """A JSON array of documents is applied like a multi-document YAML."""
    body = json.dumps(
        [
            {"kind": "Check", "name": "http", "type": "http", "labels": {"team": "a"}},
            {"kind": "Component", "name": "api", "type": "Service", "tags": {"tier": "b"}},
        ]
    )
    items = await api.apply(body)
    assert [(i["kind"], i["result"]) for i in items] == [
        ("Check", "created"),
        ("Component", "created"),
    ]
    with api.stack.sessions() as session:
        check = session.get(Resource, items[0]["id"])
        component = session.get(Resource, items[1]["id"])
        assert check is not None and component is not None
        # `labels` is a synonym of `tags`.
        assert (check.kind, check.tags) == ("check", {"team": "a"})
        assert (component.kind, component.tags) == ("component", {"tier": "b"})


async def test_secret_is_stored_encrypted_not_in_spec(api: Api) -> None:
    """A secret value in a playbook is stored encrypted and referenced from the spec."""
    await api.apply(VALID)
    with api.stack.sessions() as session:
        stored = session.get(Definition, PLAYBOOK_ID)
        assert stored is not None
        assert SECRET_VALUE not in json.dumps(stored.spec)
        [secret] = session.query(Secret).all()
        assert SECRET_VALUE not in secret.ciphertext


@pytest.mark.parametrize("role", ["viewer", "operator"])
async def test_non_admin_cannot_apply(api: Api, role: str) -> None:
    """Only admins apply documents; others get 403 and nothing is written."""
    auth = await api.add_person(f"{role}@example.com", role)
    before = api.counts()
    response = await api.apply_raw(VALID, auth=auth)
    assert_error(response, 403, "forbidden", "this needs the admin role")
    assert api.counts() == before


async def test_large_body_is_413(module_api: Api) -> None:
    """A body over one megabyte is refused before it is parsed."""
    response = await module_api.apply_raw("# " + "x" * (1024 * 1024) + "\n")
    assert error_of(response, 413).startswith("body: larger than 1048576 bytes")


def alias_bomb() -> str:
    """A playbook carrying "billion laughs": nine levels of nine aliases, 9**9 strings."""
    levels = "abcdefghi"
    rows = ['    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in itertools.pairwise(levels):
        rows.append(f"    {cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    return playbook(
        "laughs",
        "  laughs:\n" + "\n".join(rows) + "\n  actions: [{name: a, exec: {script: *i}}]\n",
    )


@pytest.mark.usefixtures("unchanged")
async def test_alias_bomb_is_400_at_once(module_api: Api) -> None:
    """YAML aliases are refused while parsing: a sub-kilobyte bomb never expands."""
    body = alias_bomb()
    assert len(body) < 1000
    started = time.monotonic()
    response = await module_api.apply_raw(body)
    assert error_of(response, 400) == (
        "body: aliases are not accepted (line 7): *a; write the value out"
    )
    assert time.monotonic() - started < 5


async def test_anchor_without_alias_is_harmless(module_api: Api) -> None:
    """An anchor that nothing refers to expands nothing, so it is accepted as plain YAML."""
    response = await module_api.apply_raw("kind: Team\nname: &n anchored\n")
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "field",
    [
        "extraVars: {leak: {secretRef: SECRET}}",
        "hosts: [{name: h, vars: {leak: {secretRef: SECRET}}}]",
        "env: [{name: LEAK, value: {secretRef: SECRET}}]",
        "sshKey: {secretRef: SECRET}",
    ],
)
async def test_secret_references_cannot_be_smuggled_in(module_api: Api, field: str) -> None:
    """A spec naming a stored secret by reference is refused: it would open that secret."""
    with module_api.stack.sessions() as session:
        secret_id = session.scalars(select(Secret.id)).first() or str(uuid.uuid4())
    document = f"""
apiVersion: mission-control.flanksource.com/v1
kind: Playbook
metadata: {{name: smuggler}}
spec:
  actions:
    - name: play
      ansible:
        checkout: {{url: "file:///srv/repo"}}
        playbook: site.yml
        {field.replace("SECRET", secret_id)}
"""
    response = await module_api.apply_raw(document)
    assert "secretRef" in error_of(response, 400)
