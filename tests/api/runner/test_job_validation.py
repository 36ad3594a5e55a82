"""Bad job bodies: a 400 naming the field, in Runner's `{"message"}` shape, and nothing stored."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.runner.support import ACME, KEY_B64, Runner, job_body, message_of

REPO = "https://github.com/example/playbooks.git"
DEEP: dict[str, Any] = {}
for _ in range(40):
    DEEP = {"a": DEEP}


def repo(**fields: Any) -> dict[str, Any]:
    """A job body whose repository has `fields` (over a valid one)."""
    return job_body(repository={"url": REPO, "defaultPlaybook": "site.yml", **fields})


CASES: list[tuple[str, Any, str]] = [
    ("not-an-object", [1], "body: must be an object"),
    ("no-repository", {"hosts": []}, "repository: is required"),
    ("repository-string", job_body(repository=REPO), "repository: must be an object"),
    ("no-url", job_body(repository={"defaultPlaybook": "a.yml"}), "repository.url: is required"),
    (
        "ftp-url",
        repo(url="ftp://example.com/r.git"),
        'repository.url: repository url scheme "ftp" is not supported '
        "(supported: https, http, ssh, file)",
    ),
    ("ext-url", repo(url="ext::sh -c touch% /tmp/pwned"), "repository.url: "),
    ("option-url", repo(url="--upload-pack=touch /tmp/x"), "repository.url: "),
    (
        "credentials-in-url",
        repo(url="https://user:pw@github.com/x/y.git"),
        "repository.url: repository url must not contain credentials",
    ),
    ("bad-branch", repo(branch="-x"), "repository.branch: ref \"-x\" must not start with '-'"),
    (
        "absolute-playbook",
        repo(defaultPlaybook="/etc/passwd"),
        "repository.defaultPlaybook: must be a path inside the repository",
    ),
    (
        "climbing-playbook",
        repo(defaultPlaybook="plays/../../x.yml"),
        "repository.defaultPlaybook: must be a path inside the repository",
    ),
    (
        "dotdot-playbook",
        repo(defaultPlaybook="a/../b.yml"),
        "repository.defaultPlaybook: must be a path inside the repository",
    ),
    ("playbook-number", repo(defaultPlaybook=3), "repository.defaultPlaybook: must be a string"),
    ("credentials-list", repo(credentials=["u"]), "repository.credentials: must be an object"),
    (
        "bad-repo-key",
        repo(credentials={"sshPrivateKey": "not base64!"}),
        "repository.credentials.sshPrivateKey: is not valid base64",
    ),
    (
        "binary-key",
        repo(credentials={"sshPrivateKey": "/w=="}),
        "repository.credentials.sshPrivateKey: must be a base64-encoded private key (text)",
    ),
    (
        "masked-on-create",
        repo(credentials={"password": "********"}),
        "repository.credentials.password: is masked (********); send the value itself",
    ),
    ("repo-tags", repo(playbookTags=[1]), "repository.playbookTags[0]: must be a string"),
    ("no-hosts", {"repository": {"url": REPO}}, "hosts: is required"),
    ("hosts-object", job_body(hosts={"id": "a"}), "hosts: must be an array"),
    ("host-no-id", job_body(hosts=[{"hostVars": {}}]), "hosts[0].id: is required"),
    ("host-space", job_body(hosts=[{"id": "a b"}]), "hosts[0].id: 'a b' must be a host name"),
    ("host-pattern", job_body(hosts=[{"id": "!web"}]), "hosts[0].id: '!web' must be a host name"),
    (
        "host-twice",
        job_body(hosts=[{"id": "a"}, {"id": "a"}]),
        "hosts[1].id: host 'a' is listed twice",
    ),
    (
        "host-vars-list",
        job_body(hosts=[{"id": "a", "hostVars": ["x"]}]),
        "hosts[0].hostVars: must be an object",
    ),
    (
        "host-key",
        job_body(hosts=[{"id": "a", "sshPrivateKey": "%%%"}]),
        "hosts[0].sshPrivateKey: is not valid base64",
    ),
    ("job-key", job_body(sshPrivateKey=42), "sshPrivateKey: must be a base64 string"),
    ("empty-key", job_body(sshPrivateKey="ICAg"), "sshPrivateKey: is empty once decoded"),
    ("properties-list", job_body(properties=[{"a": 1}]), "properties: must be an object"),
    (
        "properties-too-deep",
        job_body(properties=DEEP),
        "properties" + ".a" * 32 + ": nests objects and arrays more than 32 levels deep",
    ),
    (
        "reference-in-properties",
        job_body(properties={"a": {"b": {"secretRef": "some-id"}}}),
        'properties.a.b: objects of the form {"secretRef": ...} are not accepted',
    ),
    (
        "reference-in-host-vars",
        job_body(hosts=[{"id": "a", "hostVars": {"k": [{"secretRef": "some-id"}]}}]),
        'hosts[0].hostVars.k[0]: objects of the form {"secretRef": ...} are not accepted',
    ),
    ("ttl-zero", job_body(executionTtl=0), "executionTtl: must be between 1 and 525600 minutes"),
    ("ttl-string", job_body(executionTtl="180"), "executionTtl: must be a whole number of minutes"),
    ("ttl-fraction", job_body(executionTtl=1.5), "executionTtl: must be a whole number of minutes"),
    ("ttl-bool", job_body(executionTtl=True), "executionTtl: must be a whole number of minutes"),
    (
        "callback-level",
        job_body(callbacks=[{"url": "https://h.test", "level": "INFO"}]),
        "callbacks[0].level: must be DEBUG, ERROR or RESULT",
    ),
    (
        "callback-url",
        job_body(callbacks=[{"url": "file:///etc/passwd"}]),
        "callbacks[0].url: must be an http or https URL",
    ),
    ("callback-no-url", job_body(callbacks=[{"level": "DEBUG"}]), "callbacks[0].url: is required"),
    (
        "callback-metadata",
        job_body(callbacks=["http://169.254.169.254/latest/meta-data/"]),
        "callbacks[0].url: 169.254.169.254 is cloud metadata: not an allowed destination",
    ),
    (
        "callback-private",
        job_body(callbacks=[{"url": "https://h.test"}, {"url": "http://10.1.2.3:8080/hook"}]),
        "callbacks[1].url: 10.1.2.3 is private: not an allowed destination",
    ),
    (
        "callback-mapped-link-local",
        job_body(callbacks=["http://[::ffff:169.254.1.1]/"]),
        "callbacks[0].url: ::ffff:169.254.1.1 is link-local: not an allowed destination",
    ),
    (
        "callbacks-object",
        job_body(callbacks={"url": "https://h.test"}),
        "callbacks: must be an array",
    ),
    ("tags-object", job_body(playbookTags={"a": 1}), "playbookTags: must be an array"),
    (
        "dynamic-string",
        job_body(useDynamicInventory="yes"),
        "useDynamicInventory: must be true or false",
    ),
    ("description-number", job_body(description=5), "description: must be a string"),
    (
        "inline-playbook",
        job_body(playbook="LS0tCg=="),
        "playbook: inline playbooks are not supported; use repository",
    ),
]


@pytest.mark.parametrize(("body", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
@pytest.mark.usefixtures("unchanged")
async def test_bad_job_is_400_naming_the_field(runner: Runner, body: Any, message: str) -> None:
    """Each bad field is refused with a message that starts with its path."""
    response = await runner.request("POST", f"/jobs/{ACME}", json=body)
    assert message_of(response, 400).startswith(message)


@pytest.mark.usefixtures("unchanged")
async def test_bad_json_is_400(runner: Runner) -> None:
    """A body that is not JSON (or uses NaN) is a 400 about the body."""
    for content in (b"{not json", b'{"executionTtl": NaN}'):
        response = await runner.request("POST", f"/jobs/{ACME}", content=content)
        assert message_of(response, 400).startswith("body: invalid JSON")


@pytest.mark.usefixtures("unchanged")
async def test_bad_immediate_is_400(runner: Runner) -> None:
    """`immediate` must be a boolean."""
    response = await runner.request("POST", f"/jobs/{ACME}?immediate=soon", json=job_body())
    assert message_of(response, 400).startswith("immediate: Input should be a valid boolean")


async def test_a_refused_update_leaves_the_job_as_it_was(runner: Runner) -> None:
    """A PUT with a bad field changes nothing: neither the job nor the secrets."""
    job = await runner.create_job(job_body(sshPrivateKey=KEY_B64))
    before = runner.counts()
    bad = job_body(sshPrivateKey=KEY_B64, hosts=[{"id": "a"}, {"id": "a"}])
    response = await runner.request("PUT", f"/jobs/{ACME}/{job['id']}", json=bad)
    assert message_of(response, 400) == "hosts[1].id: host 'a' is listed twice"
    assert runner.counts() == before
    assert (await runner.request("GET", f"/jobs/{ACME}/{job['id']}")).json() == job


async def test_lenient_forms_are_accepted(runner: Runner) -> None:
    """`ref` names the branch, tags may be one comma-separated string, a callback a bare URL,
    and an absent defaultPlaybook is playbook.yml."""
    body = job_body(
        repository={"url": REPO, "ref": "feature", "playbookTags": "a, b"},
        playbookTags="c,a",
        callbacks=["https://h.test/hook"],
    )
    job = await runner.create_job(body)
    assert job["repository"]["branch"] == "feature"
    assert job["repository"]["defaultPlaybook"] == "playbook.yml"
    assert job["repository"]["playbookTags"] == ["a", "b"]
    assert job["playbookTags"] == ["c", "a"]
    assert job["callbacks"] == [{"url": "https://h.test/hook", "level": "DEBUG"}]
