"""Where a runbook's template actions sit in the syntax of the runbook's language.

``squote``/``dquote`` make a value one literal *of the runbook's language*, which holds only
where the action stands outside every quote: ``echo "{{ .x | squote }}"`` with ``x=$(id)``
renders ``echo "'$(id)'"`` and the shell runs ``id``. The scanners below follow the text
around the actions with just enough of each language's lexical rules (quotes, escapes,
comments, here-documents) to say, for each action, in which context it would be written:

* shell: ``'…'``, ``"…"``, ``$'…'``, ```…```, a comment, a here-document, or right after a
  backslash. Nested ``$( "…" )`` inside double quotes is read as ending the outer quote; the
  scanner errs towards finding a context, never towards hiding one.
* python: a string literal (any quote, prefix or triple form), or right after a string
  prefix (``f{{ .x | dquote }}`` would make the quoted value an f-string, whose ``{…}`` runs).
  Comments are fine: Python literals written by ``squote`` escape newlines.
* sql: ``'…'``, ``"…"``, ```…```, ``$tag$…$tag$``, and ``--`` / ``/* */`` comments (SQL quoting
  keeps newlines, which end a ``--`` comment).

Branches are read in source order, both arms one after the other; a ``range`` body is read
once. Those are approximations of what renders, chosen because they flag, not hide.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_SHELL_WORD_BREAK = " \t\n;&|()<>"
_HEREDOC = re.compile(
    r"<<(-?)[ \t]*(?:'([^'\n]*)'|\"([^\"\n]*)\"|\\?([A-Za-z0-9_.+-]+))",
)
_PY_PREFIXES = frozenset({"r", "u", "f", "b", "t", "br", "rb", "fr", "rf", "tr", "rt"})
_SQL_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


@dataclass(frozen=True)
class Text:
    """Template text, written as it is."""

    text: str


@dataclass(frozen=True)
class Action:
    """An action that writes a value into the text; ``pos`` is its offset in the file."""

    pos: int


@dataclass(frozen=True)
class Misplaced:
    """An action written where its value's quoting would not hold."""

    pos: int
    context: str  # e.g. 'inside a "…" string'
    advice: str


class _Shell:
    def __init__(self) -> None:
        self.state: str | None = None
        self.escaped = False
        self.prev = "\n"
        self.pending: list[tuple[str, bool]] = []  # here-documents opened on this line
        self.heredoc: tuple[str, bool] | None = None
        self.line = ""

    def context(self) -> str | None:
        if self.heredoc is not None:
            return "inside a here-document"
        if self.escaped:
            return "right after a backslash"
        return {
            "sq": "inside a '…' string",
            "dq": 'inside a "…" string',
            "ansi": "inside a $'…' string",
            "bq": "inside a `…` command substitution",
            "comment": "inside a comment",
        }.get(self.state or "")

    def action(self) -> None:
        self.escaped = False
        self.prev = "x"
        self.line += "x"

    def feed(self, text: str) -> None:
        i = 0
        while i < len(text):
            char = text[i]
            if self.heredoc is not None:
                if char == "\n":
                    self.end_heredoc_line()
                else:
                    self.line += char
                i += 1
                continue
            if self.escaped:
                self.escaped = False
                self.prev = "x"
                i += 1
                continue
            state = self.state
            if state is None:
                i = self.normal(text, i)
                continue
            if state in ("dq", "ansi", "bq") and char == "\\":
                self.escaped = True
            elif (state, char) in (("sq", "'"), ("ansi", "'"), ("dq", '"'), ("bq", "`")):
                self.state = None
                self.prev = "x"
            elif state == "comment" and char == "\n":
                self.state = None
                self.newline()
            i += 1

    def normal(self, text: str, i: int) -> int:
        char = text[i]
        if char == "\\":
            self.escaped = True
        elif char == "'":
            self.state = "sq"
        elif char == "$" and text.startswith("'", i + 1):
            self.state = "ansi"
            return i + 2
        elif char == '"':
            self.state = "dq"
        elif char == "`":
            self.state = "bq"
        elif char == "#" and self.prev in _SHELL_WORD_BREAK:
            self.state = "comment"
        elif text.startswith("<<", i) and not text.startswith("<<<", i):
            match = _HEREDOC.match(text, i)
            if match:
                word = next(g for g in match.groups()[1:] if g is not None)
                self.pending.append((word, match.group(1) == "-"))
                self.prev = "x"
                return match.end()
        elif char == "\n":
            self.newline()
        self.prev = char
        return i + 1

    def newline(self) -> None:
        self.prev = "\n"
        if self.pending:
            self.heredoc = self.pending.pop(0)
            self.line = ""

    def end_heredoc_line(self) -> None:
        assert self.heredoc is not None
        word, strip_tabs = self.heredoc
        line = self.line.lstrip("\t") if strip_tabs else self.line
        self.line = ""
        if line == word:
            self.heredoc = self.pending.pop(0) if self.pending else None


class _Python:
    def __init__(self) -> None:
        self.quote: str | None = None  # the closing delimiter: ' " ''' or """
        self.comment = False
        self.word = ""  # identifier characters just before this point
        self.skip_next = False

    def context(self) -> str | None:
        if self.quote is not None:
            return f"inside a Python string literal ({self.quote}…{self.quote})"
        return None

    def prefix(self) -> str | None:
        if self.quote is None and not self.comment and self.word.lower() in _PY_PREFIXES:
            return self.word
        return None

    def action(self) -> None:
        self.word = "\0"  # a value: never a string prefix
        self.skip_next = False

    def feed(self, text: str) -> None:
        i = 0
        while i < len(text):
            char = text[i]
            if self.skip_next:
                self.skip_next = False
            elif self.quote is not None:
                if char == "\\":
                    self.skip_next = True  # raw strings too: \" never ends a literal
                elif text.startswith(self.quote, i):
                    i += len(self.quote)
                    self.quote, self.word = None, ""
                    continue
                elif char == "\n" and len(self.quote) == 1:
                    self.quote = None  # an unterminated literal: Python refuses the file
            elif self.comment:
                self.comment = char != "\n"
            elif char == "#":
                self.comment = True
            elif char in "'\"":
                self.quote = char * 3 if text.startswith(char * 3, i) else char
                i += len(self.quote)
                continue
            elif char.isalnum() or char == "_":
                self.word = self.word + char if self.word != "\0" else "\0"
            else:
                self.word = ""
            i += 1


class _Sql:
    def __init__(self) -> None:
        self.close: str | None = None  # what ends the current quote or comment
        self.kind = ""

    def context(self) -> str | None:
        return self.kind or None

    def action(self) -> None:
        pass

    def feed(self, text: str) -> None:
        i = 0
        while i < len(text):
            if self.close is not None:
                if text.startswith(self.close, i):
                    i += len(self.close)
                    self.close, self.kind = None, ""
                else:
                    i += 1
                continue
            char = text[i]
            dollar = _SQL_DOLLAR.match(text, i) if char == "$" else None
            if dollar:
                self.close, self.kind = (
                    dollar.group(),
                    f"inside a {dollar.group()}…{dollar.group()} string",
                )
                i = dollar.end()
                continue
            opened = {
                "'": ("'", "inside a '…' string"),
                '"': ('"', 'inside a "…" identifier'),
                "`": ("`", "inside a `…` identifier"),
            }.get(char)
            if text.startswith("--", i):
                opened = ("\n", "inside a -- comment")
            elif text.startswith("/*", i):
                opened = ("*/", "inside a /* */ comment")
            if opened:
                self.close, self.kind = opened
                i += 2 if opened[0] in ("\n", "*/") else 1
                continue
            i += 1


_ADVICE = "move the action out of it and quote the value with squote or dquote"


def misplaced_actions(dialect: str, pieces: Iterable[Text | Action]) -> list[Misplaced]:
    """The actions of `pieces` (a runbook's text and value-writing actions, in order) that
    sit where their quoting would not hold in `dialect`; none for ``generic`` runbooks."""
    scanner: _Shell | _Python | _Sql
    if dialect == "shell":
        scanner = _Shell()
    elif dialect == "python":
        scanner = _Python()
    elif dialect == "sql":
        scanner = _Sql()
    else:
        return []
    found: list[Misplaced] = []
    for piece in pieces:
        if isinstance(piece, Text):
            scanner.feed(piece.text)
            continue
        context = scanner.context()
        if context is not None:
            found.append(Misplaced(piece.pos, context, _ADVICE))
        elif isinstance(scanner, _Python) and (prefix := scanner.prefix()) is not None:
            found.append(
                Misplaced(
                    piece.pos,
                    f"right after the string prefix {prefix}",
                    "a quoted value there becomes a prefixed literal (an f-string runs "
                    "its {…}); remove the prefix",
                )
            )
        scanner.action()
    return found
