"""Aviator's runbook Markdown: what a valid document parses to, and each error's line."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from temporalio.converter import DataConverter

from core.runbooks.format import RunbookFormatError, looks_like_runbook, parse_runbook
from core.runbooks.model import (
    AFTER_STEPS,
    BEFORE_OBJECTIVE,
    BEFORE_STEPS,
    MAX_DOCUMENT_BYTES,
    MAX_STEPS,
    Runbook,
    RunbookConflict,
    Section,
    Step,
)

SAMPLE = """\
# React 19 upgrade

Some preamble.

## Metadata

owner: web

## Objective

Upgrade React to 19.

## Analysis

### Findings

We use React 18.

## Steps

Intro text.

### 1 Prepare the upgrade

Read the changelog.

#### 1.1 Bump React

Bump it.

```sh
npm install react@19
```

Then:

```js
console.log("not a command")
```

```bash
npm test
```

#### 1.2 Fix types

- item
  ```sh
  nested stays context
  ```

### 2 Clean up

```shell
git status
```

## Validation

Tests pass.
"""


def test_sample_parses_to_steps_commands_and_kept_sections() -> None:
    """Steps nest by number, shell blocks become commands, other sections are kept as text."""
    rb = parse_runbook(SAMPLE)
    assert rb.title == "React 19 upgrade"
    assert rb.preamble == "Some preamble."
    assert rb.objective == "Upgrade React to 19."
    assert rb.steps_context == "Intro text."
    assert rb.sections == [
        Section("Metadata", "owner: web", BEFORE_OBJECTIVE),
        Section("Analysis", "### Findings\n\nWe use React 18.", BEFORE_STEPS),
        Section("Validation", "Tests pass.", AFTER_STEPS),
    ]
    assert [s.number for s in rb.walk()] == ["1", "1.1", "1.2", "2"]
    assert [s.number for s in rb.leaves()] == ["1.1", "1.2", "2"]
    bump = rb.find("1.1")
    assert bump is not None
    assert bump.name == "Bump React"
    assert bump.commands == ["npm install react@19", "npm test"]
    # A fence in another language stays in the context; the shell blocks leave it.
    assert bump.context == 'Bump it.\n\nThen:\n\n```js\nconsole.log("not a command")\n```'
    step1 = rb.find("1")
    assert step1 is not None and step1.context == "Read the changelog." and step1.commands == []
    types = rb.find("1.2")
    assert types is not None and types.commands == []  # a fence inside a list item is text
    assert "nested stays context" in types.context
    assert rb.find("2") == Step("2", "Clean up", "", ["git status"], [])
    assert rb.find("3") is None


def test_render_parses_back_to_the_same_runbook() -> None:
    """A parsed-and-rendered runbook parses to the same thing, and rendering is stable."""
    rb = parse_runbook(SAMPLE)
    again = parse_runbook(rb.render())
    assert again == rb
    assert again.render() == rb.render()


def test_runbook_crosses_the_temporal_data_converter() -> None:
    """The plan is a payload: Temporal's JSON converter carries it unchanged."""
    rb = parse_runbook(SAMPLE)
    converter = DataConverter.default.payload_converter
    payload = converter.to_payload(rb)
    assert converter.from_payload(payload, Runbook) == rb
    assert json.loads(payload.data) == json.loads(json.dumps(asdict(rb)))


def test_fence_content_is_never_a_heading() -> None:
    """A `### 2` line inside a fenced block is part of the command, not a step."""
    doc = "## Objective\n\nx\n\n## Steps\n\n### 1 One\n\n```sh\n### 2 Not a step\necho hi\n```\n"
    rb = parse_runbook(doc)
    assert [s.number for s in rb.walk()] == ["1"]
    assert rb.steps[0].commands == ["### 2 Not a step\necho hi"]


def test_crlf_and_trailing_dot_numbers_are_read() -> None:
    """Windows line ends and `### 1. Name` are accepted; the number is kept without the dot."""
    doc = "## Objective\r\n\r\nx\r\n\r\n## Steps\r\n\r\n### 1. One\r\n\r\n#### 1.1. Sub\r\n"
    rb = parse_runbook(doc)
    assert [(s.number, s.name) for s in rb.walk()] == [("1", "One"), ("1.1", "Sub")]


HEAD = "## Objective\n\nDo it.\n\n## Steps\n\n"  # the steps start on line 7

ERRORS = [
    ("# T\n\n# Again\n\n" + HEAD + "### 1 A\n", 3, "level-1 heading"),
    ("intro\n\n# T\n\n" + HEAD + "### 1 A\n", 1, "text before the title"),
    ("## Steps\n\n### 1 A\n", 1, "no `## Objective`"),
    ("## Objective\n\nx\n", 1, "no `## Steps`"),
    (HEAD, 5, "has no steps"),
    (HEAD + "Just text.\n", 5, "has no steps"),
    (HEAD + "### Prepare\n", 7, "is not a step"),
    (HEAD + "### 1\n", 7, "step 1 has no name"),
    (HEAD + "### 2 Two\n", 7, "step 2 is out of order: the next step is 1"),
    (HEAD + "### 1 A\n\n### 3 C\n", 9, "step 3 is out of order: the next step is 1.1 or 2"),
    (HEAD + "### 1 A\n\n##### 1.1.1 Deep\n", 9, "next step is 1.1 or 2"),
    (HEAD + "### 1 A\n\n#### 1.2 B\n", 9, "step 1.2 is out of order"),
    (HEAD + "### 1 A\n\n#### 2.1 B\n", 9, "step 2.1 is out of order"),
    (
        HEAD + "### 1 A\n\n### 1.1 B\n",
        9,
        "step 1.1 is a level-3 heading; a step numbered 1.1 takes ####",
    ),
    (HEAD + "#### 1 A\n", 7, "takes ###"),
    (HEAD + "### 1 Same\n\n### 2 same\n", 9, "has the name of step 1"),
    (
        HEAD + "### 1 A\n\n#### 1.1 B\n\n##### 1.1.1 C\n\n###### 1.1.1.1 D\n\n###### 1.1.1.1.1 E\n",
        15,
        "5 levels deep",
    ),
    (HEAD + "### 1 A\n\n```sh\nnpm test\n", 9, "never closed"),
    (HEAD + "### 1 A\n\n~~~~bash\nnpm test\n~~~\n", 9, "never closed"),
    ("## Objective\n\nx\n\n## Objective\n\ny\n\n## Steps\n\n### 1 A\n", 5, "second `## Objective`"),
    (HEAD + "### 1 A\n\n## Steps\n\n### 1 B\n", 9, "second `## Steps`"),
    (HEAD + "### 1 A\x00\n", 7, "NUL"),
    (HEAD + "### 1 " + "n" * 201 + "\n", 7, "over 200 characters"),
]


@pytest.mark.parametrize(("doc", "line", "fragment"), ERRORS)
def test_invalid_runbooks_name_the_line(doc: str, line: int, fragment: str) -> None:
    """Each malformed document is refused with the 1-based line and what is wrong there."""
    with pytest.raises(RunbookFormatError) as caught:
        parse_runbook(doc)
    assert (caught.value.line, fragment in caught.value.message) == (line, True), caught.value
    assert str(caught.value).startswith(f"line {line}: ")


def test_size_and_step_limits() -> None:
    """A document over the byte limit, or with too many steps, is refused."""
    with pytest.raises(RunbookFormatError, match="bytes; at most"):
        parse_runbook(HEAD + "### 1 A\n\n" + "x" * MAX_DOCUMENT_BYTES)
    many = HEAD + "".join(f"### {i} S{i}\n\n" for i in range(1, MAX_STEPS + 2))
    with pytest.raises(RunbookFormatError) as caught:
        parse_runbook(many)
    assert caught.value.line == 7 + 2 * MAX_STEPS and "more than" in caught.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (SAMPLE, True),
        ("## steps\n\nnothing valid", True),
        ("Upgrade React to v19 in runbooks/react-19.md", False),
        ("```\n## Steps\n```\n", False),
        ("> ## Steps\n", False),
    ],
)
def test_looks_like_runbook(text: str, expected: bool) -> None:
    """A document is meant as a runbook when it has a top-level `## Steps` heading."""
    assert looks_like_runbook(text) is expected


def test_append_renumbers_the_follow_up_after_the_existing_steps() -> None:
    """A follow-up's steps come after the existing ones, renumbered with their substeps."""
    rb = parse_runbook(SAMPLE)
    follow = parse_runbook(HEAD + "### 1 Docs\n\n#### 1.1 Changelog\n\n### 2 Release\n")
    combined = rb.append(follow)
    assert [s.number for s in combined.walk()] == ["1", "1.1", "1.2", "2", "3", "3.1", "4"]
    assert [s.name for s in combined.walk()][4:] == ["Docs", "Changelog", "Release"]
    assert combined.objective == rb.objective and combined.sections == rb.sections
    assert parse_runbook(combined.render()) == combined
    assert rb.find("3") is None  # the original is unchanged


def test_append_refuses_a_name_taken_and_too_many_steps() -> None:
    """A follow-up step named like an existing one, or one step too many, is refused."""
    rb = parse_runbook(SAMPLE)
    with pytest.raises(RunbookConflict, match=r"like step 1\.1"):
        rb.append(parse_runbook(HEAD + "### 1 bump  react\n"))
    big = parse_runbook(HEAD + "".join(f"### {i} S{i}\n\n" for i in range(1, MAX_STEPS)))
    with pytest.raises(RunbookConflict, match=f"at most {MAX_STEPS}"):
        big.append(parse_runbook(HEAD + "### 1 X\n\n### 2 Y\n"))


# -- property: render then parse is the identity on runbooks ------------------------------

_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)
_line = st.lists(_word, min_size=1, max_size=6).map(" ".join)
_text = st.lists(st.tuples(_line, st.booleans()), max_size=4).map(
    lambda items: "".join(f"{line}\n\n" if gap else f"{line}\n" for line, gap in items).strip()
)
_command = st.text(alphabet="ab #`~-'\"$|\n", min_size=1, max_size=40).filter(
    lambda body: body.strip() != "" and not body.endswith("\n") and not body.startswith("\n")
)


@st.composite
def _steps(draw: st.DrawFn, prefix: str = "", depth: int = 1) -> list[Step]:
    count = draw(st.integers(min_value=1 if depth == 1 else 0, max_value=3 if depth < 3 else 0))
    steps = []
    for i in range(1, count + 1):
        number = f"{prefix}{i}"
        children = draw(_steps(prefix=f"{number}.", depth=depth + 1)) if depth < 3 else []
        name = f"{draw(_line)} s{number}"  # unique by its number
        steps.append(
            Step(number, name, draw(_text), draw(st.lists(_command, max_size=2)), children)
        )
    return steps


@st.composite
def _runbooks(draw: st.DrawFn) -> Runbook:
    places = st.sampled_from([BEFORE_OBJECTIVE, BEFORE_STEPS, AFTER_STEPS])
    names = _line.filter(lambda name: name not in ("objective", "steps"))
    sections = draw(st.lists(st.builds(Section, names, _text, places), max_size=3))
    order = {BEFORE_OBJECTIVE: 0, BEFORE_STEPS: 1, AFTER_STEPS: 2}
    return Runbook(
        objective=draw(_text),
        steps=draw(_steps()),
        title=draw(st.none() | _line),
        sections=sorted(sections, key=lambda s: order[s.place]),
        preamble=draw(_text),
        steps_context=draw(_text),
    )


@settings(max_examples=150, deadline=None)
@given(_runbooks())
def test_rendered_runbooks_parse_back(rb: Runbook) -> None:
    """Any runbook renders to Markdown that parses back to an equal runbook."""
    assert parse_runbook(rb.render()) == rb
