"""Templates, export and import: the guide's six templates applied with overrides, an export
imported back with new ids and tokens, NOBA's YAML, invalid items skipped with reasons."""

from __future__ import annotations

import yaml
from sqlalchemy import func, select

from core.store.models import Definition
from core.store.session import transaction
from core.store.users import upsert_user
from tests.stack import ADMIN, Stack, basic

ADMIN_AUTH = basic(*ADMIN)
OPERATOR = basic("op@corp.test", "pw-op")
GUIDE = {"NAS Backup", "Cloud Sync", "Disk Cleanup", "Update Check", "Certificate Renew",
         "Docker Prune"}  # fmt: skip


def operator(stack: Stack) -> None:
    with transaction(stack.sessions) as session:
        upsert_user(session, "op@corp.test", password="pw-op", role="operator")


def automations(stack: Stack) -> int:
    with stack.sessions() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Definition)
                .where(Definition.dialect == "automations", Definition.deleted_at.is_(None))
            )
            or 0
        )


async def test_templates_are_the_guides_six_and_apply_with_overrides(stack: Stack) -> None:
    operator(stack)
    listed = (await stack.api.get("/api/automations/templates", headers=OPERATOR)).json()
    assert {t["name"] for t in listed} == GUIDE
    assert all(
        {"id", "name", "description", "type", "params", "schedule"} <= set(t) for t in listed
    )
    applied = await stack.api.post(
        "/api/automations/templates/nas-backup/apply",
        json={"name": "Nightly NAS", "schedule": "30 2 * * *",
              "params": {"script": "nas-backup", "args": ["/data/", "nas:/backup/"]}},
        headers=OPERATOR,
    )  # fmt: skip
    assert applied.status_code == 201, applied.text
    auto_id = applied.json()["id"]
    one = (await stack.api.get(f"/api/automations/{auto_id}", headers=OPERATOR)).json()
    assert (one["name"], one["schedule"], one["type"]) == ("Nightly NAS", "30 2 * * *", "script")
    assert one["params"]["args"] == ["/data/", "nas:/backup/"]
    plain = await stack.api.post("/api/automations/templates/docker-prune/apply", headers=OPERATOR)
    assert plain.status_code == 201, plain.text
    missing = await stack.api.post("/api/automations/templates/nope/apply", headers=OPERATOR)
    assert missing.status_code == 404 and set(missing.json()) == {"error"}
    bad = await stack.api.post(
        "/api/automations/templates/cert-renew/apply", json={"schedule": "every day"},
        headers=OPERATOR,
    )  # fmt: skip
    assert bad.status_code == 400 and bad.json()["error"].startswith("schedule:")
    assert automations(stack) == 2


async def test_export_then_import_gives_new_ids_and_tokens(stack: Stack) -> None:
    operator(stack)
    for body in (
        {"name": "a", "type": "script", "params": {"script": "update-check"},
         "schedule": "0 1 * * *"},
        {"name": "b", "type": "service_control", "params": {"service": "nginx"},
         "autonomy": "approve"},
        {"name": "c", "type": "webhook",
         "params": {"url": "https://h.example/x", "headers": {"X-Token": "abcd-secret"}}},
    ):  # fmt: skip
        assert (
            await stack.api.post("/api/automations", json=body, headers=OPERATOR)
        ).status_code == 201
    exported = (await stack.api.get("/api/automations/export", headers=OPERATOR)).json()
    assert [e["name"] for e in exported] == ["a", "b", "c"]
    assert "abcd-secret" not in str(exported) and "webhook_token" not in exported[0]
    before = {
        i["id"]: i for i in (await stack.api.get("/api/automations", headers=OPERATOR)).json()
    }

    refused = await stack.api.post("/api/automations/import", json=exported, headers=OPERATOR)
    assert refused.status_code == 403  # importing is for admins
    answer = await stack.api.post("/api/automations/import", json=exported, headers=ADMIN_AUTH)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    # The webhook's header was exported masked: that item is skipped, saying why.
    assert (body["imported"], body["skipped"]) == (2, 1), body
    assert body["errors"][0]["index"] == 2 and "masked" in body["errors"][0]["error"]
    after = (await stack.api.get("/api/automations", headers=OPERATOR)).json()
    new = [i for i in after if i["id"] not in before]
    assert [(i["name"], i["schedule"], i["autonomy"]) for i in new] == [
        ("a", "0 1 * * *", "execute"), ("b", None, "approve"),
    ]  # fmt: skip
    old_tokens = {i["webhook_token"] for i in before.values()}
    assert all(i["webhook_token"] not in old_tokens for i in new)


async def test_nobas_yaml_export_imports(stack: Stack) -> None:
    text = yaml.safe_dump(
        {"automations": [
            {"id": "auto_old", "name": "Restart", "type": "service",
             "config": {"service": "nginx", "action": "restart"}, "schedule": ""},
            {"name": "broken", "type": "teleport", "config": {}},
            "not an object",
        ]}
    )  # fmt: skip
    answer = await stack.api.post(
        "/api/automations/import", content=text,
        headers={**ADMIN_AUTH, "Content-Type": "application/yaml"},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["imported"], body["skipped"]) == (1, 2)
    assert [e["index"] for e in body["errors"]] == [1, 2]
    assert body["errors"][0]["error"].startswith("type:")
    [item] = (await stack.api.get("/api/automations", headers=ADMIN_AUTH)).json()
    assert item["type"] == "service_control" and item["id"] != "auto_old"


async def test_import_bodies_that_are_not_a_list_are_400(stack: Stack) -> None:
    for content, kind in (('{"name": "x"}', "application/json"), ("[1,", "application/json"),
                          ("a: [", "application/yaml")):  # fmt: skip
        answer = await stack.api.post(
            "/api/automations/import", content=content,
            headers={**ADMIN_AUTH, "Content-Type": kind},
        )  # fmt: skip
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"].startswith("body:")
    assert automations(stack) == 0
