"""docker-compose.yml, read as YAML (no Docker engine needed): the multi-machine topology."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.settings import Settings
from workflows.contracts import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_PATH = ROOT / "docker-compose.yml"
RUNWRIGHT_SERVICES = ("migrate", "api", "worker")
REQUIRED_SERVICES = {
    "postgresql",
    "temporal-schema",
    "temporal",
    "temporal-ui",
    "temporal-setup",
    "minio",
    "minio-setup",
    *RUNWRIGHT_SERVICES,
}
NEEDED_BY_RUNWRIGHT = {
    "RUNWRIGHT_DATABASE_URL",
    "RUNWRIGHT_TEMPORAL_ADDRESS",
    "RUNWRIGHT_ARTIFACT_STORE",
    "RUNWRIGHT_SECRET_KEY",
    "RUNWRIGHT_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
}
SECRET_NAME = re.compile(r"PASSWORD|PWD|SECRET|TOKEN|(^|_)KEY($|_)")
# A bare substitution with no default: `${VAR}`, `${VAR:?message}` or `${VAR?message}`.
REQUIRED_SUBSTITUTION = re.compile(r"^\$\{[A-Z_][A-Z0-9_]*(:?\?[^}]*)?\}$")
SUBSTITUTION = re.compile(r"\$\{[^}]*\}")
CREDENTIALS_IN_URL = re.compile(r"://(?P<user>[^:/@]*):(?P<password>[^@]*)@")


def mask_substitutions(value: str) -> str:
    """REQUIRED for each default-free ${...} in value, DEFAULTED for the others."""
    return SUBSTITUTION.sub(
        lambda m: "REQUIRED" if REQUIRED_SUBSTITUTION.match(m.group()) else "DEFAULTED", value
    )


@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE_PATH.read_text()


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(compose_text)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def env_of(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, whichever of the two compose forms it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def command_text(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return "\n".join(command) if isinstance(command, list) else str(command)


def test_required_services_exist(services: dict[str, dict[str, Any]]) -> None:
    """Every service of the topology is defined."""
    assert REQUIRED_SERVICES <= set(services)


def test_no_service_uses_temporal_auto_setup(services: dict[str, dict[str, Any]]) -> None:
    """No image is the deprecated temporalio/auto-setup."""
    images = [str(s.get("image", "")) for s in services.values()]
    assert not [image for image in images if "temporalio/auto-setup" in image]


def test_temporal_images(services: dict[str, dict[str, Any]]) -> None:
    """Temporal uses the server image, admin-tools at the same tag for its jobs, and the UI."""
    assert services["temporal"]["image"].startswith("temporalio/server:")
    assert services["temporal-schema"]["image"].startswith("temporalio/admin-tools:")
    assert services["temporal-setup"]["image"].startswith("temporalio/admin-tools:")
    assert services["temporal-ui"]["image"].startswith("temporalio/ui:")
    server_tag = services["temporal"]["image"].split(":", 1)[1]
    assert services["temporal-schema"]["image"].endswith(f":{server_tag}")


def test_temporal_schema_job_sets_up_both_postgres12_databases(
    services: dict[str, dict[str, Any]],
) -> None:
    """temporal-schema runs temporal-sql-tool (postgres12) for temporal and temporal_visibility."""
    job = services["temporal-schema"]
    script = command_text(job)
    assert env_of(job)["SQL_PLUGIN"] == "postgres12"
    for db, schema_dir in [("temporal", "temporal"), ("temporal_visibility", "visibility")]:
        assert f"temporal-sql-tool --db {db} create-database" in script
        assert f"temporal-sql-tool --db {db} setup-schema -v 0.0" in script
        assert f"temporal-sql-tool --db {db} update-schema" in script
        assert f"/{schema_dir}/versioned" in script
    assert env_of(services["temporal"])["DB"] == "postgres12"


def test_start_order_waits_on_conditions(services: dict[str, dict[str, Any]]) -> None:
    """Services wait for healthy servers and successfully completed one-shot jobs."""
    expected = {
        ("temporal-schema", "postgresql"): "service_healthy",
        ("temporal", "temporal-schema"): "service_completed_successfully",
        ("temporal-setup", "temporal"): "service_healthy",
        ("minio-setup", "minio"): "service_healthy",
        ("migrate", "postgresql"): "service_healthy",
    }
    for name in ("api", "worker"):
        for job in ("migrate", "temporal-setup", "minio-setup"):
            expected[(name, job)] = "service_completed_successfully"
    for (name, dependency), condition in expected.items():
        assert services[name]["depends_on"][dependency]["condition"] == condition, name


def test_depends_on_names_defined_services(services: dict[str, dict[str, Any]]) -> None:
    """Every depends_on entry names a service of the file."""
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"


def test_worker_has_at_least_two_replicas(services: dict[str, dict[str, Any]]) -> None:
    """The worker service runs two or more replicas."""
    assert services["worker"]["deploy"]["replicas"] >= 2


def test_every_runwright_variable_is_a_settings_field(compose_text: str) -> None:
    """Each RUNWRIGHT_* name in the file is a Settings field (prefix + upper-cased name)."""
    known = {f"RUNWRIGHT_{name.upper()}" for name in Settings.model_fields}
    used = set(re.findall(r"\bRUNWRIGHT_[A-Z0-9_]+\b", compose_text))
    assert used, "the file sets no RUNWRIGHT_* variables"
    assert used <= known, f"not Settings fields: {sorted(used - known)}"


def test_runwright_env_is_written_once(
    compose_text: str, services: dict[str, dict[str, Any]]
) -> None:
    """migrate, api and worker share one environment, from the x-runwright-env anchor."""
    assert "x-runwright-env: &runwright-env" in compose_text
    environments = [services[name]["environment"] for name in RUNWRIGHT_SERVICES]
    assert all(env is environments[0] for env in environments)


@pytest.mark.parametrize("name", RUNWRIGHT_SERVICES)
def test_runwright_services_carry_what_they_need(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    """Database, Temporal, artifact store, S3 credentials and secret key reach each process."""
    env = env_of(services[name])
    assert set(env) >= NEEDED_BY_RUNWRIGHT
    assert env["RUNWRIGHT_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert env["RUNWRIGHT_DATABASE_URL"].split("@", 1)[1].startswith("postgresql:5432/")
    assert env["RUNWRIGHT_TEMPORAL_ADDRESS"] == "temporal:7233"
    assert env["RUNWRIGHT_ARTIFACT_STORE"] == "s3://runwright-artifacts/runs"
    assert env["RUNWRIGHT_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert env["RUNWRIGHT_API_HOST"] == "0.0.0.0"


def test_minio_setup_creates_the_artifact_bucket(services: dict[str, dict[str, Any]]) -> None:
    """minio-setup (minio/mc) creates the bucket RUNWRIGHT_ARTIFACT_STORE names."""
    job = services["minio-setup"]
    assert "minio/mc:" in job["image"]
    bucket = env_of(services["api"])["RUNWRIGHT_ARTIFACT_STORE"].removeprefix("s3://")
    assert f"mc mb --ignore-existing local/{bucket.split('/')[0]}" in command_text(job)


def test_registered_search_attributes_match_contracts(services: dict[str, dict[str, Any]]) -> None:
    """temporal-setup registers exactly workflows.contracts.SEARCH_ATTRIBUTES, as Keyword."""
    script = command_text(services["temporal-setup"])
    created = re.findall(r"search-attribute create --name (\w+) --type (\w+)", script)
    assert sorted(name for name, _ in created) == sorted(SEARCH_ATTRIBUTES)
    assert {kind for _, kind in created} == {"Keyword"}


@pytest.mark.parametrize("name", RUNWRIGHT_SERVICES)
def test_runwright_commands_use_the_console_script(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    """api, worker and migrate run `runwright <service name>`."""
    assert services[name]["command"] == ["runwright", name]


def test_runwright_console_script_is_declared() -> None:
    """pyproject.toml [project.scripts] defines the `runwright` command the services run."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "runwright" in pyproject["project"]["scripts"]


def test_runwright_services_build_the_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    """migrate, api and worker run the image built from the top-level Dockerfile."""
    for name in RUNWRIGHT_SERVICES:
        assert services[name]["build"] == "."
    assert (ROOT / "Dockerfile").is_file()


def test_api_and_ui_ports(services: dict[str, dict[str, Any]]) -> None:
    """The API is published on 8080 and the Temporal UI on 8233 (8080 in its container)."""
    assert "8080:8080" in services["api"]["ports"]
    assert "8233:8080" in services["temporal-ui"]["ports"]


def test_no_literal_secrets(services: dict[str, dict[str, Any]]) -> None:
    """Keys, passwords and URL credentials are ${VAR} substitutions with no default."""
    for name, service in services.items():
        for key, value in env_of(service).items():
            if SECRET_NAME.search(key):
                assert REQUIRED_SUBSTITUTION.match(value), f"{name}: {key} holds a literal"
            for match in CREDENTIALS_IN_URL.finditer(mask_substitutions(value)):
                assert match.group("password") == "REQUIRED", f"{name}: {key} URL password"


def test_dockerfile_is_slim_python_with_git_and_non_root() -> None:
    """The image starts from python:3.11-slim-bookworm, has git and ssh, and drops root."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim-bookworm\b", dockerfile, re.M)
    assert "git" in dockerfile and "openssh-client" in dockerfile
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users and users[-1] not in {"root", "0"}


def test_only_the_worker_relaxes_confinement_for_its_sandbox(
    services: dict[str, dict[str, Any]],
) -> None:
    """The worker gets exactly what bubblewrap needs (no capability, no privileged mode); no
    other service loosens Docker's defaults."""
    worker = services["worker"]
    assert sorted(worker.get("security_opt") or []) == [
        "apparmor=unconfined",
        "seccomp=unconfined",
        "systempaths=unconfined",
    ]
    assert not worker.get("cap_add") and not worker.get("privileged")
    others = [name for name, svc in services.items() if name != "worker"]
    assert [
        n for n in others if services[n].get("security_opt") or services[n].get("privileged")
    ] == []
