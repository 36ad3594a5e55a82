"""Aviator's runbook Markdown: parse and validate it into a `core.runbooks.model.Runbook`.

The format::

    # React 19 upgrade                      optional title (the only level-1 heading)
    ## Objective                            required, its text the objective
    ## Analysis                             any other `##` section is kept as text
    ## Steps                                required, holds every step
    ### 1 Prepare the upgrade               a step: its number, then its name
    #### 1.1 Bump React                     a substep: one heading level per number level
    ```sh
    npm install react@19                    a shell block (sh, bash, shell): a command
    ```
    ## Validation                           kept as text

Numbers are contiguous (1, 2, 3; 1.1, 1.2 under 1), each number's depth is its heading's
(`###` for 1, `####` for 1.1, down to `######` for 1.2.3.4), names are unique (case and
spacing aside). Every heading inside `## Steps` is a step. Only top-level blocks count:
a heading or fence inside a list item, a quote or an indented code block is text, and so is a
fenced block in another language. Raw HTML is read as text, so an unclosed `<pre>` cannot
hide the steps after it.

`parse_runbook(text)` raises `RunbookFormatError(line, message)`, the line 1-based.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from markdown_it import MarkdownIt
from markdown_it.token import Token

from core.runbooks.model import (
    AFTER_STEPS,
    BEFORE_OBJECTIVE,
    BEFORE_STEPS,
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    MAX_NAME_CHARS,
    MAX_STEPS,
    SHELL_LANGUAGES,
    Runbook,
    Section,
    Step,
    name_key,
)

OBJECTIVE = "objective"
STEPS = "steps"
# A step heading's text: its number (a trailing dot tolerated), then its name.
STEP_HEADING = re.compile(r"(\d+(?:\.\d+)*)\.?\s+(\S.*)")
NUMBER_ONLY = re.compile(r"\d+(?:\.\d+)*\.?")

_markdown = MarkdownIt("commonmark").disable(["html_block", "html_inline"])


class RunbookFormatError(ValueError):
    """A document that is not a valid runbook: `line` (1-based) and what is wrong there."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}")


@dataclass
class _Heading:
    level: int
    text: str
    start: int  # 0-based first line
    end: int  # 0-based line after the heading


@dataclass
class _Draft:
    """A step being collected; frozen into a `Step` once the document is read."""

    number: str
    name: str
    line: int
    body: list[Token] = field(default_factory=list)
    start: int = 0
    end: int = 0
    children: list[_Draft] = field(default_factory=list)


def looks_like_runbook(text: str) -> bool:
    """Whether `text` is meant as a runbook: it has a `## Steps` section (maybe invalid)."""
    if len(text.encode("utf-8", errors="replace")) > MAX_DOCUMENT_BYTES:
        return "## Steps" in text or "## steps" in text
    heads = _top_headings(_markdown.parse(text.replace("\r\n", "\n"))).values()
    return any(h.level == 2 and h.text.strip().casefold() == STEPS for h in heads)


def parse_runbook(text: str) -> Runbook:
    """The runbook `text` describes; RunbookFormatError naming the line when it is invalid."""
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_DOCUMENT_BYTES:
        raise RunbookFormatError(1, f"the runbook is {size} bytes; at most {MAX_DOCUMENT_BYTES}")
    text = text.replace("\r\n", "\n")
    if "\x00" in text:
        raise RunbookFormatError(text[: text.index("\x00")].count("\n") + 1, "a NUL character")
    lines = text.split("\n")
    tokens = _markdown.parse(text)
    _check_fences_closed(tokens, lines)
    return _Reader(lines, tokens).read()


class _Reader:
    """One pass over the top-level tokens, section by section."""

    def __init__(self, lines: list[str], tokens: list[Token]) -> None:
        self.lines = lines
        # Top-level blocks only, each heading with its text: nested ones are text.
        self.heads = _top_headings(tokens)
        self.tokens = [t for t in tokens if t.level == 0 and t.type != "heading_close"]
        self.title: str | None = None
        self.preamble = ""
        self.objective: str | None = None
        self.steps_line: int | None = None
        self.steps_context = ""
        self.sections: list[Section] = []
        self.roots: list[_Draft] = []
        self.count = 0

    def read(self) -> Runbook:
        heads = [(i, self.heads[id(t)]) for i, t in enumerate(self.tokens) if id(t) in self.heads]
        first_h2 = next((h.start for _, h in heads if h.level == 2), len(self.lines))
        for n, (_, head) in enumerate(heads):
            if head.level == 1 and n > 0:
                raise RunbookFormatError(
                    head.start + 1, "only the title, the first heading, may be a level-1 heading"
                )
        if heads and heads[0][1].level == 1:
            title = heads[0][1]
            self.title = title.text.strip()
            self.preamble = self._text(title.end, first_h2)
            if self._text(0, title.start):
                raise RunbookFormatError(1, "text before the title")
        else:
            self.preamble = self._text(0, first_h2)
        sections = [(i, h) for i, h in heads if h.level == 2]
        for k, (index, head) in enumerate(sections):
            end_index = sections[k + 1][0] if k + 1 < len(sections) else len(self.tokens)
            end_line = sections[k + 1][1].start if k + 1 < len(sections) else len(self.lines)
            self._section(head, index, end_index, end_line)
        return self._finish()

    def _section(self, head: _Heading, index: int, end_index: int, end_line: int) -> None:
        name = head.text.strip()
        key = name.casefold()
        if key == OBJECTIVE:
            if self.objective is not None:
                raise RunbookFormatError(head.start + 1, "a second `## Objective` section")
            self.objective = self._text(head.end, end_line)
        elif key == STEPS:
            if self.steps_line is not None:
                raise RunbookFormatError(head.start + 1, "a second `## Steps` section")
            self.steps_line = head.start + 1
            self._steps(head, index + 1, end_index, end_line)
        else:
            if not name:
                raise RunbookFormatError(head.start + 1, "a `##` heading without a name")
            place = (
                AFTER_STEPS
                if self.steps_line is not None
                else BEFORE_STEPS
                if self.objective is not None
                else BEFORE_OBJECTIVE
            )
            self.sections.append(Section(name, self._text(head.end, end_line), place))

    def _steps(self, head: _Heading, start: int, end: int, end_line: int) -> None:
        stack: list[_Draft] = []
        current: _Draft | None = None
        i = start
        while i < end:
            token = self.tokens[i]
            if token.type != "heading_open":
                if current is not None:
                    current.body.append(token)
                i += 1
                continue
            step_head = self.heads[id(token)]
            if current is None:
                self.steps_context = self._text(head.end, step_head.start)
            else:
                current.end = step_head.start
            current = self._step(step_head, stack)
            i += 1
        if current is None:
            raise RunbookFormatError(head.start + 1, "`## Steps` has no steps (`### 1 <name>`)")
        current.end = end_line

    def _step(self, head: _Heading, stack: list[_Draft]) -> _Draft:
        line = head.start + 1
        text = head.text.strip()
        match = STEP_HEADING.fullmatch(text)
        if match is None:
            if NUMBER_ONLY.fullmatch(text):
                raise RunbookFormatError(line, f"step {text.rstrip('.')} has no name")
            raise RunbookFormatError(
                line,
                f"{text!r} is not a step: a heading under `## Steps` starts with its number "
                "(`### 1 Prepare the upgrade`, `#### 1.1 Bump React`)",
            )
        number, name = match.group(1), match.group(2).strip()
        depth = number.count(".") + 1
        if depth > MAX_DEPTH:
            raise RunbookFormatError(
                line, f"step {number} is {depth} levels deep; at most {MAX_DEPTH}"
            )
        expected = _next_numbers(stack)
        if number not in expected:
            raise RunbookFormatError(
                line,
                f"step {number} is out of order: the next step is "
                + " or ".join(expected)
                + " (numbers are contiguous, substeps start at .1 under their parent)",
            )
        if head.level != depth + 2:
            raise RunbookFormatError(
                line,
                f"step {number} is a level-{head.level} heading; a step numbered {number} "
                f"takes {'#' * (depth + 2)}",
            )
        if len(name) > MAX_NAME_CHARS:
            raise RunbookFormatError(
                line, f"step {number}'s name is over {MAX_NAME_CHARS} characters"
            )
        self.count += 1
        if self.count > MAX_STEPS:
            raise RunbookFormatError(line, f"more than {MAX_STEPS} steps")
        draft = _Draft(number, name, line, start=head.end)
        del stack[depth - 1 :]
        if stack:
            stack[-1].children.append(draft)
        else:
            self.roots.append(draft)
        stack.append(draft)
        return draft

    def _finish(self) -> Runbook:
        if self.objective is None:
            raise RunbookFormatError(1, "the runbook has no `## Objective` section")
        if self.steps_line is None:
            raise RunbookFormatError(1, "the runbook has no `## Steps` section")
        names: dict[str, str] = {}
        steps = [self._freeze(d, names) for d in self.roots]
        return Runbook(
            objective=self.objective,
            steps=steps,
            title=self.title,
            sections=self.sections,
            preamble=self.preamble,
            steps_context=self.steps_context,
        )

    def _freeze(self, draft: _Draft, names: dict[str, str]) -> Step:
        key = name_key(draft.name)
        if key in names:
            raise RunbookFormatError(
                draft.line,
                f"step {draft.number} has the name of step {names[key]} ({draft.name!r}); "
                "step names must be unique",
            )
        names[key] = draft.number
        own_end = draft.children[0].line - 1 if draft.children else draft.end
        commands: list[str] = []
        kept: list[str] = []
        cursor = draft.start
        for token in draft.body:
            if token.map is None:
                continue
            if token.map[0] >= own_end:
                break
            if token.type == "fence" and _language(token) in SHELL_LANGUAGES:
                kept.append(self._text(cursor, token.map[0]))
                cursor = token.map[1]
                body = token.content.rstrip("\n")
                if body.strip():
                    commands.append(body)
        kept.append(self._text(cursor, own_end))
        context = "\n\n".join(k for k in kept if k)
        children = [self._freeze(c, names) for c in draft.children]
        return Step(draft.number, draft.name, context, commands, children)

    def _text(self, start: int, end: int) -> str:
        """Lines [start, end) without the blank lines around them."""
        chunk = self.lines[start:end]
        while chunk and not chunk[0].strip():
            chunk.pop(0)
        while chunk and not chunk[-1].strip():
            chunk.pop()
        return "\n".join(chunk)


def _next_numbers(stack: list[_Draft]) -> list[str]:
    """The numbers the next step may take: a sibling at any open depth, or a first substep."""
    options = [f"{stack[-1].number}.1"] if stack else ["1"]
    for depth in range(len(stack), 0, -1):
        last = stack[depth - 1].number.split(".")
        options.append(".".join([*last[:-1], str(int(last[-1]) + 1)]))
    if len(stack) >= MAX_DEPTH:
        options.pop(0)
    return options


def _language(token: Token) -> str:
    info = token.info.strip().split()
    return info[0].casefold() if info else ""


def _top_headings(tokens: list[Token]) -> dict[int, _Heading]:
    """Each top-level heading_open token (by id) with its level, text and lines."""
    heads: dict[int, _Heading] = {}
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.level == 0 and token.map is not None:
            text = tokens[i + 1].content
            heads[id(token)] = _Heading(int(token.tag[1:]), text, token.map[0], token.map[1])
    return heads


def _check_fences_closed(tokens: list[Token], lines: list[str]) -> None:
    """An unclosed fence runs to the end and would swallow every heading after it."""
    for token in tokens:
        if token.type != "fence" or token.level != 0 or token.map is None:
            continue
        start, end = token.map
        last = lines[end - 1].strip() if end - start >= 2 else ""
        mark = token.markup[0]
        if not (last and set(last) == {mark} and len(last) >= len(token.markup)):
            raise RunbookFormatError(start + 1, f"this {token.markup} block is never closed")
