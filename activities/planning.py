"""The planning activity: a runbook from a prompt, in the runbook's checkout.

`core.runbooks.planners` says which planner applies and what the model is asked; this module
reads the checkout (the named runbook file, the file list) and calls the chat endpoint.

The endpoint is the operator's (RUNWRIGHT_PLANNER_URL), yet the request still goes through
`core.egress`: a local model server must be allowed by RUNWRIGHT_EGRESS_ALLOW like any other
private address. The API key is read from its file per plan and never enters the payloads,
the logs (the log redactor learns it) or an error message. Failures the user must fix (an
invalid runbook, no planner, a refused endpoint) are non-retryable `RunbookPlanFailed`
errors naming the file and line; an endpoint that is down or overloaded is retried.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeats import while_heartbeating
from activities.http_requests import read_capped
from core.egress import EgressPolicy, EgressRefused, egress_client
from core.runbooks.format import RunbookFormatError, looks_like_runbook, parse_runbook
from core.runbooks.model import MAX_DOCUMENT_BYTES, Runbook
from core.runbooks.planners import (
    FILE,
    MAX_ANSWER_BYTES,
    MAX_LISTED_FILES,
    MODEL,
    PROMPT,
    PlanError,
    answer_markdown,
    model_messages,
    named_paths,
    no_planner_message,
)
from core.secrets import log_redactor
from core.settings import Settings
from workflows.contracts import PLAN_RUNBOOK, PlanRunbookInput, PlanRunbookResult

PLAN_FAILED = "RunbookPlanFailed"
PLANNER_UNAVAILABLE = "RunbookPlannerUnavailable"
CHAT_PATH = "/chat/completions"
# Statuses that say "try again later" rather than "this request is wrong".
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})
# How often a planning activity heartbeats while the planner works.
HEARTBEAT_SECONDS = 2.0


class PlannerUnavailable(Exception):
    """The chat endpoint did not answer usefully this time (down, overloaded): retry."""


@dataclass(frozen=True)
class PlannerConfig:
    """The model planner's endpoint; `url` empty means there is none."""

    url: str = ""
    model: str = ""
    api_key_file: Path | None = None
    timeout_seconds: float = 120.0
    policy: EgressPolicy = field(default_factory=EgressPolicy)

    @classmethod
    def from_settings(cls, settings: Settings) -> PlannerConfig:
        """The planner a worker's settings describe."""
        return cls(
            url=settings.planner_url,
            model=settings.planner_model,
            api_key_file=settings.planner_api_key_file,
            timeout_seconds=settings.planner_timeout_seconds,
            policy=settings.egress_policy,
        )


def chat_url(url: str) -> str:
    """The completions endpoint: the URL as given when it names it, else under it (`/v1`)."""
    url = url.rstrip("/")
    return url if url.endswith(CHAT_PATH) else url + CHAT_PATH


def repository_files(root: Path, limit: int = MAX_LISTED_FILES) -> list[str]:
    """Up to `limit` file paths under `root`, sorted, without `.git` or symlinked dirs."""
    found: list[str] = []
    for current, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        base = Path(current).relative_to(root)
        for name in sorted(files):
            found.append((base / name).as_posix())
            if len(found) >= limit:
                return found
    return found


class Planner:
    """Makes a plan from a prompt in a checkout (the three planners, in order)."""

    def __init__(self, config: PlannerConfig) -> None:
        self._config = config

    def plan(self, checkout: Path, prompt: str) -> PlanRunbookResult:
        """The plan, or PlanError saying what to fix; PlannerUnavailable to try again."""
        missing: list[str] = []
        for path in named_paths(prompt):
            text = self._read_named(checkout, path)
            if text is None or not looks_like_runbook(text):
                missing.append(path)
                continue
            return PlanRunbookResult(_parse(text, path), FILE, path)
        if looks_like_runbook(prompt):
            return PlanRunbookResult(_parse(prompt, "the prompt"), PROMPT)
        if not self._config.url:
            raise PlanError(no_planner_message(missing))
        return PlanRunbookResult(self._ask_model(checkout, prompt), MODEL)

    def _read_named(self, checkout: Path, path: str) -> str | None:
        """The file's text when it is a regular file of the checkout, else None."""
        root = checkout.resolve()
        try:
            resolved = (root / path).resolve(strict=True)
        except OSError:
            return None
        if not resolved.is_relative_to(root):
            raise PlanError(f"{path} leads outside the repository")
        if not resolved.is_file():
            return None
        size = resolved.stat().st_size
        if size > MAX_DOCUMENT_BYTES:
            raise PlanError(f"{path} is {size} bytes; a runbook is at most {MAX_DOCUMENT_BYTES}")
        try:
            return resolved.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise PlanError(f"{path} is not UTF-8 text") from exc

    def _ask_model(self, checkout: Path, prompt: str) -> Runbook:
        files = repository_files(checkout)
        answer = answer_markdown(self._complete(model_messages(prompt, files)))
        try:
            return parse_runbook(answer)
        except RunbookFormatError as exc:
            retry = (answer, str(exc))
        answer = answer_markdown(self._complete(model_messages(prompt, files, retry)))
        return _parse(answer, "the planner's runbook")

    def _api_key(self) -> str | None:
        if self._config.api_key_file is None:
            return None
        try:
            key = self._config.api_key_file.read_text().strip()
        except OSError as exc:
            raise PlanError(
                f"RUNWRIGHT_PLANNER_API_KEY_FILE cannot be read: {exc.strerror}"
            ) from exc
        log_redactor.add(key)
        return key or None

    def _complete(self, messages: list[dict[str, str]]) -> str:
        """One chat completion's text."""
        url = chat_url(self._config.url)
        headers = {"Accept": "application/json"}
        key = self._api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        body = {"model": self._config.model, "messages": messages, "temperature": 0}
        try:
            with (
                egress_client(self._config.policy, timeout=self._config.timeout_seconds) as client,
                client.stream("POST", url, json=body, headers=headers) as response,
            ):
                data, more = read_capped(response, MAX_ANSWER_BYTES)
        except EgressRefused as exc:
            raise PlanError(f"the planner at {url} is not an allowed destination: {exc}") from exc
        except httpx.HTTPError as exc:
            raise PlannerUnavailable(
                log_redactor.redact(f"the planner at {url} did not answer: {exc}")
            ) from exc
        status = response.status_code
        if status >= 500 or status in RETRYABLE_STATUSES:
            raise PlannerUnavailable(f"the planner at {url} answered HTTP {status}")
        if status >= 400:
            said = log_redactor.redact(data[:300].decode("utf-8", errors="replace"))
            raise PlanError(f"the planner at {url} answered HTTP {status}: {said}")
        if more:
            raise PlanError(f"the planner's answer is over {MAX_ANSWER_BYTES} bytes")
        return _completion_text(data, url)


def _completion_text(data: bytes, url: str) -> str:
    """`choices[0].message.content` of a chat completion."""
    try:
        document: Any = json.loads(data)
        content = document["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise PlanError(f"the planner at {url} did not answer with a chat completion") from exc
    if not isinstance(content, str) or not content.strip():
        raise PlanError(f"the planner at {url} answered with no text")
    return content


def _parse(text: str, where: str) -> Runbook:
    try:
        return parse_runbook(text)
    except RunbookFormatError as exc:
        raise PlanError(f"{where}, line {exc.line}: {exc.message}") from exc


class PlanningActivities:
    """The planning activity, bound to the worker's planner settings."""

    def __init__(self, config: PlannerConfig) -> None:
        self._planner = Planner(config)

    @activity.defn(name=PLAN_RUNBOOK)
    def plan_runbook(self, inp: PlanRunbookInput) -> PlanRunbookResult:
        """Plan the runbook (sync: file reads and blocking HTTP calls), heartbeating while the
        planner works, so a worker lost mid-plan is noticed within the heartbeat timeout
        rather than after the planner's whole timeout."""
        try:
            return while_heartbeating(
                lambda: self._planner.plan(Path(inp.checkout), inp.prompt),
                activity.heartbeat,
                HEARTBEAT_SECONDS,
            )
        except PlanError as exc:
            raise ApplicationError(str(exc), type=PLAN_FAILED, non_retryable=True) from exc
        except PlannerUnavailable as exc:
            raise ApplicationError(str(exc), type=PLANNER_UNAVAILABLE) from exc
