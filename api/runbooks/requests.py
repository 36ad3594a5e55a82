"""Request bodies of the Runbooks API, checked field by field (pure functions).

`parse_create`, `parse_follow_up`, `parse_execute` and `parse_stop` return plain dataclasses
(or nothing) or raise FieldError naming the field; unknown fields are refused too, so a
misspelt option is not silently dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.git_urls import GitUrlError, validate_ref
from core.runbooks.model import MAX_DEPTH, MAX_DOCUMENT_BYTES
from core.runbooks.status import PR_MODES

# A prompt may be a whole pasted runbook, so it is bounded like one.
MAX_PROMPT_BYTES = MAX_DOCUMENT_BYTES
MAX_TITLE_CHARS = 256
MAX_DESCRIPTION_CHARS = 16 * 1024
MAX_LABELS = 20
MAX_LABEL_CHARS = 50  # GitHub's limit on a label's name
MAX_EMAIL_CHARS = 320
MAX_NAME_CHARS = 100
MAX_BRANCH_CHARS = 255

CREATE_FIELDS = frozenset(
    {
        "repository",
        "prompt",
        "title",
        "oneshot",
        "draft",
        "pr_mode",
        "target_branch",
        "description",
        "labels",
        "author_email",
    }
)
FOLLOW_UP_FIELDS = frozenset({"prompt", "description", "labels"})
EXECUTE_FIELDS = frozenset({"step"})
STOP_FIELDS: frozenset[str] = frozenset()
# A step number as the format writes it: positive parts without leading zeros, at most
# MAX_DEPTH of them. Parts are bounded so that a huge number is a format error, not work.
STEP_NUMBER = re.compile(rf"[1-9][0-9]{{0,5}}(\.[1-9][0-9]{{0,5}}){{0,{MAX_DEPTH - 1}}}")
STEP_FORMAT = "must be a step number such as 2 or 1.2"


class FieldError(ValueError):
    """A bad field: `field` names it, the message says what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class CreateRequest:
    """A checked `POST /api/v1/runbook` body."""

    org: str
    name: str
    prompt: str
    title: str | None = None
    oneshot: bool = True
    draft: bool | None = None
    pr_mode: str | None = None
    target_branch: str | None = None
    description: str | None = None
    labels: list[str] | None = None
    author_email: str | None = None


@dataclass(frozen=True)
class FollowUpRequest:
    """A checked `PATCH /api/v1/runbook/<n>` body."""

    prompt: str
    description: str | None = None
    labels: list[str] | None = None


@dataclass(frozen=True)
class ExecuteRequest:
    """A checked `POST /api/v1/runbook/<n>/execute` body: the step number, as text."""

    step: str


def _object(body: Any, allowed: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise FieldError("body", "must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise FieldError(unknown[0], "is not a field of this request")
    return body


def _text(
    body: Mapping[str, Any], field: str, limit: int, *, required: bool = False, line: bool = False
) -> str | None:
    value = body.get(field)
    if value is None:
        if required:
            raise FieldError(field, "is required")
        return None
    if not isinstance(value, str):
        raise FieldError(field, "must be a string")
    if required and not value.strip():
        raise FieldError(field, "must not be empty")
    if len(value) > limit:
        raise FieldError(field, f"is longer than {limit} characters")
    if line and ("\n" in value or "\r" in value):
        raise FieldError(field, "must be one line")
    if "\x00" in value:
        raise FieldError(field, "must not contain NUL characters")
    return value


def _prompt(body: Mapping[str, Any]) -> str:
    prompt = _text(body, "prompt", MAX_PROMPT_BYTES, required=True)
    assert prompt is not None
    if len(prompt.encode()) > MAX_PROMPT_BYTES:
        raise FieldError("prompt", f"is larger than {MAX_PROMPT_BYTES} bytes")
    return prompt


def _flag(body: Mapping[str, Any], field: str) -> bool | None:
    value = body.get(field)
    if value is not None and not isinstance(value, bool):
        raise FieldError(field, "must be true or false")
    return value


def _labels(body: Mapping[str, Any]) -> list[str] | None:
    """The labels, de-duplicated in their order."""
    value = body.get("labels")
    if value is None:
        return None
    if not isinstance(value, list):
        raise FieldError("labels", "must be a list of strings")
    labels: list[str] = []
    for index, label in enumerate(value):
        where = f"labels[{index}]"
        if not isinstance(label, str) or not label.strip():
            raise FieldError(where, "must be a non-empty string")
        if len(label) > MAX_LABEL_CHARS or "\n" in label:
            raise FieldError(where, f"must be one line of at most {MAX_LABEL_CHARS} characters")
        if label not in labels:
            labels.append(label)
    if len(labels) > MAX_LABELS:
        raise FieldError("labels", f"at most {MAX_LABELS} labels")
    return labels


def parse_create(body: Any) -> CreateRequest:
    """The create body, or FieldError naming the first bad field."""
    doc = _object(body, CREATE_FIELDS)
    repo = doc.get("repository")
    if repo is None:
        raise FieldError("repository", "is required")
    if not isinstance(repo, dict):
        raise FieldError("repository", "must be an object with org and name")
    extra = sorted(set(repo) - {"org", "name"})
    if extra:
        raise FieldError(f"repository.{extra[0]}", "is not a field of repository")
    try:
        org = _text(repo, "org", MAX_NAME_CHARS, required=True, line=True)
        name = _text(repo, "name", MAX_NAME_CHARS, required=True, line=True)
    except FieldError as exc:
        raise FieldError(f"repository.{exc.field}", str(exc).split(": ", 1)[1]) from exc
    pr_mode = _text(doc, "pr_mode", 20)
    if pr_mode is not None and pr_mode not in PR_MODES:
        raise FieldError("pr_mode", f"must be one of {', '.join(PR_MODES)}")
    branch = _text(doc, "target_branch", MAX_BRANCH_CHARS, line=True)
    if branch is not None:
        try:
            validate_ref(branch)
        except GitUrlError as exc:
            raise FieldError("target_branch", str(exc)) from exc
    title = _text(doc, "title", MAX_TITLE_CHARS, line=True)
    oneshot = _flag(doc, "oneshot")
    assert org is not None and name is not None
    return CreateRequest(
        org=org,
        name=name,
        prompt=_prompt(doc),
        title=title.strip() or None if title is not None else None,
        oneshot=True if oneshot is None else oneshot,
        draft=_flag(doc, "draft"),
        pr_mode=pr_mode,
        target_branch=branch,
        description=_text(doc, "description", MAX_DESCRIPTION_CHARS),
        labels=_labels(doc),
        author_email=_text(doc, "author_email", MAX_EMAIL_CHARS, line=True),
    )


def parse_follow_up(body: Any) -> FollowUpRequest:
    """The follow-up body, or FieldError naming the first bad field."""
    doc = _object(body, FOLLOW_UP_FIELDS)
    return FollowUpRequest(
        prompt=_prompt(doc),
        description=_text(doc, "description", MAX_DESCRIPTION_CHARS),
        labels=_labels(doc),
    )


def parse_execute(body: Any) -> ExecuteRequest:
    """The execute body, or FieldError: `step` is a step number (`"1.2"`), or an integer
    naming a top-level step."""
    doc = _object(body, EXECUTE_FIELDS)
    value = doc.get("step")
    if value is None:
        raise FieldError("step", "is required")
    # bool is an int to Python, but `true` is no step number.
    if isinstance(value, int) and not isinstance(value, bool):
        step = str(value)
    elif isinstance(value, str):
        step = value
    else:
        raise FieldError("step", "must be a string or an integer")
    if not STEP_NUMBER.fullmatch(step):
        raise FieldError("step", STEP_FORMAT)
    return ExecuteRequest(step=step)


def parse_stop(body: Any) -> None:
    """The stop body: nothing, or an empty object."""
    if body is not None:
        _object(body, STOP_FIELDS)
