"""Which runbook files a connection may run, their parsed parameters, and their rendering."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from api.errors import ApiError, bad_request, not_found
from api.hoop.repository import RunbookFile, Snapshot
from core.runbook_templates import (
    RunbookTemplate,
    RunbookTemplateError,
    is_runbook_name,
    parse_runbook,
)
from core.store.models import Definition


def runbook_path(file_name: str) -> str:
    """`file_name` checked as a path inside the repository; 400 naming `file_name` otherwise."""
    if not file_name or file_name.strip() != file_name:
        raise bad_request("file_name: must be a non-empty path without surrounding spaces")
    if "\0" in file_name or "\\" in file_name:
        raise bad_request("file_name: must not contain NUL or backslash characters")
    if file_name.startswith("/") or ".." in file_name.split("/"):
        raise bad_request("file_name: must be a relative path inside the repository, without ..")
    return file_name


def runs_runbooks(connection: Definition) -> bool:
    """Whether the runbooks plugin is enabled for the connection."""
    return bool((connection.spec.get("runbooks") or {}).get("enabled", True))


def prefix_of(connection: Definition) -> str:
    """The path prefix a connection's runbooks must start with ("" for any)."""
    return str((connection.spec.get("runbooks") or {}).get("path_prefix") or "")


def may_run(connection: Definition, path: str) -> bool:
    """Whether `connection` can run the runbook at `path`."""
    return runs_runbooks(connection) and path.startswith(prefix_of(connection))


@lru_cache(maxsize=512)
def _parsed(commit: str, path: str, text: str) -> RunbookTemplate | str:
    """The parsed template, or the parse error's message (kept per commit and file)."""
    try:
        return parse_runbook(text, path)
    except RunbookTemplateError as exc:
        return str(exc)


def parsed(snapshot: Snapshot, item: RunbookFile) -> RunbookTemplate | str:
    """A runbook file's template, or why it cannot be used."""
    if item.text is None:
        return item.error or "runbook file cannot be read"
    return _parsed(snapshot.commit, item.path, item.text)


def find_runbook(snapshot: Snapshot, connection: Definition, file_name: str) -> RunbookTemplate:
    """The template `connection` runs for `file_name`: 404 when it is not one of its runbooks,
    400 when the file is broken."""
    path = runbook_path(file_name)
    item = snapshot.files.get(path)
    if item is None or not is_runbook_name(path) or not path.startswith(prefix_of(connection)):
        raise not_found(f"runbook file {path} not found")
    template = parsed(snapshot, item)
    if isinstance(template, str):
        raise bad_request(template)
    return template


def check_ref_hash(snapshot: Snapshot, ref_hash: str | None) -> None:
    """400 when the caller pinned a commit other than the repository's current one."""
    if ref_hash and ref_hash != snapshot.commit:
        raise bad_request(f"mismatch git commit, want={ref_hash}, have={snapshot.commit}")


def runbook_list(
    snapshot: Snapshot, connections: Iterable[Definition], *, only: Definition | None = None
) -> dict[str, Any]:
    """hoop's `RunbookList`: every runbook (or those `only` may run), parsed, with the
    connections that can run each."""
    runners = [c for c in connections if runs_runbooks(c)]
    items = []
    for path in sorted(snapshot.files):
        if only is not None and not may_run(only, path):
            continue
        template = parsed(snapshot, snapshot.files[path])
        broken = isinstance(template, str)
        items.append(
            {
                "name": path,
                "metadata": {} if isinstance(template, str) else template.metadata(),
                "connections": sorted(c.name for c in runners if may_run(c, path)),
                "error": template if broken else None,
            }
        )
    return {
        "items": items,
        "commit": snapshot.commit,
        "commit_author": snapshot.author,
        "commit_message": snapshot.message,
    }


def plugin_enabled(connection: Definition) -> None:
    """422 when the runbooks plugin is not enabled for the connection (upstream's code)."""
    if not runs_runbooks(connection):
        raise ApiError(422, f"the runbooks plugin is not enabled for connection {connection.name}")
