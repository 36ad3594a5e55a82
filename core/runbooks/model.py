"""A runbook's plan as data: `Runbook`, `Step`, `Section`, standard library only.

Plain dataclasses, so Temporal's data converter carries them in workflow and activity payloads
and a workflow may import this module. `core.runbooks.format.parse_runbook` builds them from
Markdown; `Runbook.render()` writes Markdown that parses back to an equal `Runbook`.

A step is numbered by its position (`1`, `1.2`, `1.2.1`); a step without substeps is a leaf,
the unit that executes and is counted. `context` is the step's own text with its shell blocks
taken out; `commands` are those blocks' bodies, in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

# Bounds on one plan: a runbook is read by people and runs as one workflow, so neither a
# planner nor a user can hand in something unbounded.
MAX_DOCUMENT_BYTES = 256 * 1024
MAX_STEPS = 200
MAX_DEPTH = 4  # 1.2.3.4 under ######, the deepest Markdown heading
MAX_NAME_CHARS = 200

# Where a kept `##` section sits relative to the two sections the format defines.
BEFORE_OBJECTIVE = "before_objective"
BEFORE_STEPS = "before_steps"
AFTER_STEPS = "after_steps"
SHELL_LANGUAGES = ("sh", "bash", "shell")


class RunbookConflict(ValueError):
    """Two plans that cannot be combined (`Runbook.append`): the message says why."""


@dataclass(frozen=True)
class Step:
    """One numbered step; `children` are its substeps, in order."""

    number: str
    name: str
    context: str = ""
    commands: list[str] = field(default_factory=list)
    children: list[Step] = field(default_factory=list)

    @property
    def depth(self) -> int:
        """1 for a top-level step, 2 for `1.1`, and so on."""
        return self.number.count(".") + 1

    @property
    def is_leaf(self) -> bool:
        """Whether this step executes (it has no substeps)."""
        return not self.children

    def walk(self) -> Iterator[Step]:
        """This step, then its substeps depth first, in document order."""
        yield self
        for child in self.children:
            yield from child.walk()

    def renumbered(self, number: str) -> Step:
        """This step numbered `number`, its substeps renumbered beneath it."""
        children = [c.renumbered(f"{number}.{i}") for i, c in enumerate(self.children, 1)]
        return replace(self, number=number, children=children)

    def text(self) -> str:
        """What a person or a coding agent reads for this step: heading, context, commands."""
        return _render_step(self, with_children=False)


@dataclass(frozen=True)
class Section:
    """A `##` section the format does not interpret (Metadata, Analysis, Validation, ...)."""

    name: str
    text: str = ""
    place: str = BEFORE_STEPS  # BEFORE_OBJECTIVE | BEFORE_STEPS | AFTER_STEPS


@dataclass(frozen=True)
class Runbook:
    """A validated plan: objective, numbered steps, and the other sections kept as text."""

    objective: str
    steps: list[Step]
    title: str | None = None
    sections: list[Section] = field(default_factory=list)
    preamble: str = ""  # text between the title and the first `##` section
    steps_context: str = ""  # text under `## Steps` before the first step

    def walk(self) -> Iterator[Step]:
        """Every step, parents before their substeps, in document order."""
        for step in self.steps:
            yield from step.walk()

    def leaves(self) -> list[Step]:
        """The steps that execute, in order."""
        return [s for s in self.walk() if s.is_leaf]

    def find(self, number: str) -> Step | None:
        """The step numbered `number`, if there is one."""
        return next((s for s in self.walk() if s.number == number), None)

    def append(self, other: Runbook) -> Runbook:
        """This plan with `other`'s steps after its own, renumbered to follow them.

        A follow-up prompt is planned on its own (its steps start at 1) and lands as new
        steps; the objective, title and sections stay this runbook's.
        """
        offset = len(self.steps)
        added = [s.renumbered(str(offset + i)) for i, s in enumerate(other.steps, 1)]
        combined = replace(self, steps=[*self.steps, *added])
        taken: dict[str, str] = {}
        for step in combined.walk():
            key = name_key(step.name)
            if key in taken:
                raise RunbookConflict(
                    f"step {step.number} is named {step.name!r} like step {taken[key]}: "
                    "step names must be unique"
                )
            taken[key] = step.number
        if len(taken) > MAX_STEPS:
            raise RunbookConflict(f"a runbook has at most {MAX_STEPS} steps, this has {len(taken)}")
        return combined

    def render(self) -> str:
        """The runbook as Markdown in the format `parse_runbook` reads."""
        parts: list[str] = []
        if self.title is not None:
            parts.append(f"# {self.title}")
        if self.preamble:
            parts.append(self.preamble)
        parts += [_render_section(s) for s in self.sections if s.place == BEFORE_OBJECTIVE]
        parts.append("## Objective")
        if self.objective:
            parts.append(self.objective)
        parts += [_render_section(s) for s in self.sections if s.place == BEFORE_STEPS]
        parts.append("## Steps")
        if self.steps_context:
            parts.append(self.steps_context)
        parts += [_render_step(s, with_children=True) for s in self.steps]
        parts += [_render_section(s) for s in self.sections if s.place == AFTER_STEPS]
        return "\n\n".join(parts) + "\n"


def name_key(name: str) -> str:
    """What makes two step names the same: case and spacing do not count."""
    return " ".join(name.split()).casefold()


def shell_fence(body: str, language: str = "sh") -> str:
    """A fenced block holding `body`, its fence longer than any backtick run inside."""
    longest = run = 0
    for char in body:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{body}\n{fence}"


def _render_section(section: Section) -> str:
    return f"## {section.name}\n\n{section.text}" if section.text else f"## {section.name}"


def _render_step(step: Step, *, with_children: bool) -> str:
    parts = [f"{'#' * (step.depth + 2)} {step.number} {step.name}"]
    if step.context:
        parts.append(step.context)
    parts += [shell_fence(c) for c in step.commands]
    if with_children:
        parts += [_render_step(c, with_children=True) for c in step.children]
    return "\n\n".join(parts)
