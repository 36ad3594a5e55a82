"""The template library: the guide's six automations, each a script of the script library."""

from __future__ import annotations

from typing import Any

from api.errors import bad_request, not_found

TEMPLATES: list[dict[str, Any]] = [
    {
        "id": "nas-backup",
        "name": "NAS Backup",
        "description": "Mirror a directory to the NAS with rsync every night.",
        "type": "script",
        "icon": "fa-database",
        "params": {"script": "nas-backup", "args": ["/srv/data/", "nas:/volume1/backup/data/"]},
        "schedule": "0 3 * * *",
    },
    {
        "id": "cloud-sync",
        "name": "Cloud Sync",
        "description": "Sync a directory to a cloud remote with rclone every six hours.",
        "type": "script",
        "icon": "fa-cloud-upload-alt",
        "params": {"script": "cloud-sync", "args": ["/srv/data/", "remote:backup/data"]},
        "schedule": "0 */6 * * *",
    },
    {
        "id": "disk-cleanup",
        "name": "Disk Cleanup",
        "description": "Delete week-old temporary files and vacuum the journal.",
        "type": "script",
        "icon": "fa-broom",
        "params": {"script": "disk-cleanup", "args": ["/var/tmp", "7", "500M"]},  # noqa: S108
        "schedule": "0 7 * * *",
    },
    {
        "id": "update-check",
        "name": "Update Check",
        "description": "List the packages with updates waiting.",
        "type": "script",
        "icon": "fa-sync",
        "params": {"script": "update-check", "args": []},
        "schedule": "0 8 * * 1",
    },
    {
        "id": "cert-renew",
        "name": "Certificate Renew",
        "description": "Renew the certificates certbot manages that are due.",
        "type": "script",
        "icon": "fa-certificate",
        "params": {"script": "cert-renew", "args": []},
        "schedule": "0 4 * * *",
    },
    {
        "id": "docker-prune",
        "name": "Docker Prune",
        "description": "Remove stopped containers and unused images, networks and volumes.",
        "type": "script",
        "icon": "fa-docker",
        "params": {"script": "docker-prune", "args": ["168h"]},
        "schedule": "0 5 * * 0",
    },
]


def template_or_404(template_id: str) -> dict[str, Any]:
    """The template `template_id`, or 404."""
    for template in TEMPLATES:
        if template["id"] == template_id:
            return template
    raise not_found(f"template {template_id!r} not found")


def from_template(template_id: str, overrides: Any) -> dict[str, Any]:
    """The create body of an automation from a template, with `name`, `params`, `schedule`
    (and the other automation fields) taken from `overrides` where given."""
    template = template_or_404(template_id)
    body = {k: v for k, v in template.items() if k != "id"}
    if overrides is None:
        return body
    if not isinstance(overrides, dict):
        raise bad_request("body: must be a JSON object")
    return body | overrides
