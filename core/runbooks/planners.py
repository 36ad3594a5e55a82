"""Where a runbook's plan comes from, decided without I/O; `activities.planning` does the I/O.

Three planners, tried in this order:

1. `file`: the prompt names a Markdown file of the repository (`runbooks/react-19.md`) that
   is a runbook (it has a `## Steps` section). Only relative paths without `..` are
   considered; the activity also refuses one that resolves outside the checkout (a symlink).
2. `prompt`: the prompt itself is a runbook.
3. `model`: an OpenAI-compatible chat endpoint writes one from the prompt and the repository's
   file list (both bounded); the same parser validates the answer, and one retry shows the
   model the error.

With none of them, planning fails with `no_planner_message`, which says how to give a plan.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from core.runbooks.model import MAX_DEPTH, MAX_DOCUMENT_BYTES, MAX_STEPS

FILE = "file"
PROMPT = "prompt"
MODEL = "model"

# A relative path ending in .md, not inside a URL or a longer path (`https://x/y.md`).
MD_PATH = re.compile(r"(?<![\w/.:~-])((?:[\w.-]+/)*[\w.-]*\w\.md)(?![\w/-])")
MAX_NAMED_PATHS = 10
# What the model is shown: the prompt and file list are cut so a request stays bounded.
MAX_PROMPT_CHARS = 32 * 1024
MAX_LISTED_FILES = 2000
MAX_FILE_LIST_CHARS = 48 * 1024
MAX_ANSWER_BYTES = MAX_DOCUMENT_BYTES + 64 * 1024
MARKDOWN_OPEN = re.compile(r"(`{3,}|~{3,})[ \t]*(markdown|md)?[ \t]*", re.IGNORECASE)


class PlanError(Exception):
    """No plan could be made; the message is for the user (it names the file and line)."""


def named_paths(prompt: str) -> list[str]:
    """The `.md` paths a prompt names, in order, without duplicates or unsafe ones."""
    found: list[str] = []
    for match in MD_PATH.finditer(prompt):
        path = match.group(1).removeprefix("./")
        if is_safe_path(path) and path not in found:
            found.append(path)
        if len(found) == MAX_NAMED_PATHS:
            break
    return found


def is_safe_path(path: str) -> bool:
    """A plain relative path inside the checkout: no `..`, not absolute, no odd characters."""
    if not path or path.startswith(("/", "-")) or "\\" in path or "\x00" in path:
        return False
    return ".." not in PurePosixPath(path).parts


def no_planner_message(missing: list[str] | None = None) -> str:
    """Why a free-text prompt cannot be planned, and the three ways to give a plan."""
    lead = ""
    if missing:
        lead = f"{', '.join(missing)}: not a runbook file in the repository. "
    return (
        f"{lead}No planner for this prompt: name a runbook file of the repository in the "
        "prompt (e.g. runbooks/react-19.md), paste a runbook (a Markdown document with "
        "`## Objective` and `## Steps`) as the prompt, or set RUNWRIGHT_PLANNER_URL to an "
        "OpenAI-compatible chat endpoint so a model writes the plan."
    )


SYSTEM_PROMPT = f"""\
You plan changes to a software repository as a runbook: a Markdown document in this format.

# <short title>

## Objective

What the change achieves, in a few sentences.

## Analysis

What in the repository is affected (optional).

## Steps

### 1 <name of the first step>

What to do in this step and why.

```sh
<shell commands that make the change, run from the repository root>
```

#### 1.1 <name of a substep>

### 2 <name of the next step>

## Validation

How to check the result (optional).

Rules: every heading under `## Steps` is a step whose text starts with its number. Top-level
steps are numbered 1, 2, 3 under `###`; substeps take their parent's number as a prefix (1.1,
1.2 under `####`; 1.2.1 under `#####`), at most {MAX_DEPTH} levels. Numbers are contiguous and
step names unique. Only `sh` or `bash` blocks are run; other text is guidance for whoever
executes the step. At most {MAX_STEPS} steps. Answer with the runbook only, no other text."""


def model_messages(
    prompt: str, files: list[str], retry: tuple[str, str] | None = None
) -> list[dict[str, str]]:
    """The chat messages that ask for a runbook; `retry` is (the previous answer, its error)."""
    listing: list[str] = []
    size = 0
    for path in files[:MAX_LISTED_FILES]:
        size += len(path) + 1
        if size > MAX_FILE_LIST_CHARS:
            break
        listing.append(path)
    more = len(files) - len(listing)
    files_text = "\n".join(listing) + (f"\n... and {more} more files" if more else "")
    task = prompt[:MAX_PROMPT_CHARS]
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {
            "role": "user",
            "content": f"The task:\n\n{task}\n\nThe repository's files:\n\n{files_text}",
        },
    ]
    if retry is not None:
        answer, error = retry
        messages += [
            {"role": "assistant", "content": answer[:MAX_ANSWER_BYTES]},
            {
                "role": "user",
                "content": f"That runbook is not valid: {error}. Answer with the corrected "
                "runbook only.",
            },
        ]
    return messages


def answer_markdown(content: str) -> str:
    """The runbook in a model's answer: what a ```markdown fence around it holds, if any.

    The runbook's own ```sh blocks sit inside that fence, so the fence closes at the last
    closing line, not the first.
    """
    lines = content.strip().split("\n")
    for i, line in enumerate(lines):
        opening = MARKDOWN_OPEN.fullmatch(line.strip())
        # A bare fence counts only as the answer's first line; later, it is the runbook's.
        if opening is None or (opening.group(2) is None and i > 0):
            continue
        fence = opening.group(1)
        for j in range(len(lines) - 1, i, -1):
            last = lines[j].strip()
            if last and set(last) == {fence[0]} and len(last) >= len(fence):
                return "\n".join(lines[i + 1 : j])
        break
    return content.strip()
