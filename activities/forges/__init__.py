"""Forges behind one interface (`core.forges.Forge`), and pushing branches to the remote.

    forge_for(target, sessions=..., open_ref=..., policy=...) -> Forge
        `local` (activities.forges.local.LocalForge) or `github`
        (activities.forges.github.GitHubForge, its token opened through `open_ref`).
    push_branch(target, workdir, branch, credentials=..., allowed_schemes=...) -> Pushed
    open_credentials(target, open_ref) -> GitCredentials

Runbook activities use these; every call is idempotent, as activity retries need.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from activities.forges.github import GitHubForge
from activities.forges.local import DEFAULT_URL_TEMPLATE, LocalForge
from activities.forges.push import GitCredentials, Pushed, open_credentials, push_branch
from core.egress import EgressPolicy
from core.forges import Forge, ForgeError
from core.repositories import RepositoryTarget

__all__ = [
    "GitCredentials",
    "GitHubForge",
    "LocalForge",
    "Pushed",
    "forge_for",
    "open_credentials",
    "push_branch",
]


def forge_for(
    target: RepositoryTarget,
    *,
    sessions: sessionmaker[Session],
    open_ref: Callable[[str], str],
    policy: EgressPolicy,
    local_url_template: str = DEFAULT_URL_TEMPLATE,
) -> Forge:
    """The forge of `target`, ready to call."""
    if target.forge == "github":
        if not target.forge_token_ref:
            raise ForgeError(f"repository {target.slug} has no forgeToken for forge: github")
        return GitHubForge(target, open_ref(target.forge_token_ref), policy=policy)
    if target.forge == "local":
        return LocalForge(sessions, target, url_template=local_url_template)
    raise ForgeError(f"repository {target.slug} names an unknown forge {target.forge!r}")
