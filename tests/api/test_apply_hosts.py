"""`kind: Host` through POST /api/apply: stored as a definition, the key as a secret reference,
never echoed; bad fields refused naming them, with nothing written; re-applying updates."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.secrets import MASK, SecretBox
from core.store.hosts import host_target
from core.store.models import Definition
from core.store.secret_values import open_secret
from tests.api.helpers import Api, error_of
from tests.conftest import TEST_SECRET_KEY


def keypair(directory: Path, name: str) -> tuple[str, str]:
    """A fresh ed25519 (private key text, public key line)."""
    path = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path.read_text(), (directory / f"{name}.pub").read_text().strip()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, str]]]:
    directory = tmp_path_factory.mktemp("keys")
    yield {name: keypair(directory, name) for name in ("login", "other", "host")}


def host_doc(**fields: Any) -> str:
    return json.dumps({"kind": "Host", **fields})


def key_body(key: str) -> list[str]:
    return [ln for ln in key.splitlines() if len(ln) > 16 and not ln.startswith("-----")]


def stored(api: Api, name: str) -> tuple[Definition, dict[str, Any] | None]:
    with api.stack.sessions() as session:
        row = session.query(Definition).filter_by(dialect="host", name=name).one()
        session.expunge(row)
        return row, host_target(session, name)


def opened(api: Api, ref: str) -> str:
    with api.stack.sessions() as session:
        return open_secret(session, SecretBox(TEST_SECRET_KEY), ref)


async def test_host_round_trip(api: Api, keys: dict[str, tuple[str, str]]) -> None:
    """Apply stores the host with its key as a secret; re-applying updates it in place."""
    login, host_public = keys["login"][0], keys["host"][1]
    doc = {"name": "nas", "address": "nas.lan", "port": 2222, "user": "backup"}
    response = await api.apply_raw(host_doc(**doc, sshKey=login, hostKey=f"nas.lan {host_public}"))
    assert response.status_code == 200, response.text
    (item,) = response.json()["items"]
    assert item["kind"] == "Host" and item["name"] == "nas" and item["result"] == "created"
    assert not [line for line in key_body(login) if line in response.text]

    row, target = stored(api, "nas")
    assert row.id == item["id"] and row.namespace == "default"
    key_type, blob = host_public.split()[:2]
    assert target == {
        "address": "nas.lan",
        "port": 2222,
        "user": "backup",
        "ssh_key_ref": row.spec["ssh_key_ref"],
        "host_key": f"{key_type} {blob}",
    }
    assert not [line for line in key_body(login) if line in json.dumps(row.spec)]
    assert opened(api, target["ssh_key_ref"]) == login

    # Without sshKey (or masked) the stored key stays; other fields change, the pin is dropped.
    for kept in ({}, {"sshKey": MASK}):
        again = await api.apply(host_doc(**{**doc, "port": 22, "user": "root"}, **kept))
        assert again == [{**item, "result": "updated"}]
        row, target = stored(api, "nas")
        assert target is not None
        assert (target["port"], target["user"], target["host_key"]) == (22, "root", None)
        assert opened(api, target["ssh_key_ref"]) == login

    # A new key replaces the reference.
    other = keys["other"][0]
    await api.apply(host_doc(**doc, sshKey=other))
    _, target = stored(api, "nas")
    assert target is not None and opened(api, target["ssh_key_ref"]) == other


async def test_unknown_host_has_no_target(api: Api) -> None:
    """host_target answers None for a name no Host document created."""
    with api.stack.sessions() as session:
        assert host_target(session, "nowhere") is None


async def test_operator_cannot_apply_hosts(api: Api, keys: dict[str, tuple[str, str]]) -> None:
    """Hosts are applied by admins only, like every catalog kind; nothing is written."""
    operator = await api.add_person("ops@example.com", "operator")
    before = api.counts()
    doc = host_doc(name="box", address="10.0.0.2", user="root", sshKey=keys["login"][0])
    response = await api.apply_raw(doc, auth=operator)
    assert response.status_code == 403
    assert api.counts() == before


VALID = {"name": "box", "address": "192.168.1.20", "user": "root"}
BAD_HOSTS: list[tuple[dict[str, Any], str]] = [
    ({"name": None}, "name: is required"),
    ({"name": "web server"}, "name: 'web server' must be 1 to 128 letters"),
    ({"address": None}, "address: is required"),
    ({"address": "-oProxyCommand=touch%20x"}, "address: '-oProxyCommand=touch%20x' is not a"),
    ({"address": "a host"}, "address: 'a host' is not a hostname or IP address"),
    ({"port": 0}, "port: must be a port number from 1 to 65535, not 0"),
    ({"port": 65536}, "port: must be a port number from 1 to 65535, not 65536"),
    ({"port": "ssh"}, "port: must be a port number from 1 to 65535, not 'ssh'"),
    ({"user": None}, "user: is required"),
    ({"user": "-oProxyCommand"}, "user: '-oProxyCommand' is not a user name"),
    ({"user": "x" * 33}, "user: 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' is not a user name"),
    ({"sshKey": None}, "sshKey: is required"),
    ({"sshKey": MASK}, "sshKey: is masked, and no key is stored for this host"),
    ({"sshKey": "hunter2"}, "sshKey: must be a private key"),
    ({"sshKey": "x" * 20000}, "sshKey: must be at most 16384 bytes"),
    ({"hostKey": "ssh-ed25519 nope"}, "hostKey: the key: the key is not a valid ssh-ed25519 key"),
    ({"hostKey": ["ssh-ed25519"]}, "hostKey: must be a public key or a known_hosts line"),
    ({"password": "x"}, "password: not a field of a Host"),
]


@pytest.mark.parametrize(("change", "message"), BAD_HOSTS)
@pytest.mark.usefixtures("unchanged")
async def test_bad_host_is_400_naming_the_field(
    module_api: Api, keys: dict[str, tuple[str, str]], change: dict[str, Any], message: str
) -> None:
    """A bad field is refused naming document and field; the valid host before it is not
    written, and the key is never quoted back."""
    login = keys["login"][0]
    good = host_doc(**{**VALID, "name": "first"}, sshKey=login)
    fields = {k: v for k, v in {**VALID, "sshKey": login, **change}.items() if v is not None}
    response = await module_api.apply_raw(f"{good}\n---\n{host_doc(**fields)}\n")
    assert error_of(response, 400).startswith(f"document 1 (Host): {message}")
    assert not [line for line in key_body(login) if line in response.text]
    assert "hunter2" not in response.text
