"""YAML from users, parsed without aliases: an alias is how a few hundred bytes of YAML
("billion laughs") expand into gigabytes of objects, and no document of ours needs one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.events import AliasEvent
from yaml.nodes import Node


class AliasRefused(ComposerError):
    """The text uses an alias (`*name`); the message gives its line."""


class NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases as it composes, before anything is expanded."""

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(AliasEvent):
            event: AliasEvent = self.peek_event()  # type: ignore[no-untyped-call]
            mark = event.start_mark
            line = f" (line {mark.line + 1})" if mark is not None else ""
            raise AliasRefused(
                f"aliases are not accepted{line}: *{event.anchor}; write the value out"
            )
        return super().compose_node(parent, index)


def load_all(text: str) -> Iterator[Any]:
    """Every document of `text`, as yaml.safe_load_all gives them, refusing aliases."""
    yield from yaml.load_all(text, Loader=NoAliasLoader)
