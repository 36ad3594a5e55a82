"""hoop.dev runbook templates: parameterised files from git, rendered without code injection.

A runbook is a file whose base name contains ``.runbook.`` (``ops/backup.runbook.sh``,
``sql/q.runbook.sql``, ``x.runbook.py``). Its text is a Go ``text/template`` parsed by
:mod:`core.gotemplate`; every parameter it reads is declared by the template itself::

    SELECT * FROM customers WHERE id = {{ .customer_id
        | description "the id of the customer" | required "customer_id is required"
        | type "number" | squote }}

Parameters
    Every field the template reads (``.key``, ``$.key``; also inside ``if``/``range``/``with``)
    is a parameter, declared in order of first appearance. Parameter values are plain text, so
    ``.a.b`` is an error, and so are ``.`` / ``$`` where they would mean the whole parameter set
    and field reads inside ``with``/``range`` bodies (where dot is no longer the parameters; write
    ``$.key`` there). As in Go, the piped value is the last argument of each function; the
    functions below other than ``squote``, ``dquote``, ``encodeb64`` and ``decodeb64`` describe
    the pipeline's parameter, which is the first parameter that pipeline reads.

Functions (arguments must be literals)
    metadata, passing the value through: ``description "d"``, ``type "t"`` (text, number, tel,
    time, date, url, email, select, textarea, password, file; an unknown type is ignored and the
    value's type is never checked, as upstream), ``placeholder "p"``, ``order 1``;
    checked at render (upstream only records them): ``minlength 2`` / ``maxlength 10`` (ints or
    digit strings; characters are counted, an empty value skips ``minlength``) and
    ``options "a" "b"`` (a non-empty value must be one of them);
    ``required "msg"`` fails with *msg* on an empty value; ``default "v"`` substitutes *v*;
    ``pattern "re"`` fails with ``pattern didn't match:<re>`` unless the regexp matches somewhere
    in the value (Go's ``regexp.Match``: unanchored, RE2 syntax and meaning, so ``$`` is the end
    of the text and ``^[0-9]+$`` refuses ``"1\\n"``; matched by RE2 in time linear in the value,
    so ``^(a+)+$`` can't stall the server; a pattern RE2 refuses is a parse error naming it);
    ``squote``, ``dquote``, ``quotechar "c"`` (below);
    ``encodeb64``, ``decodeb64``; ``asenv "NAME"`` renders nothing and hands the value to the
    process as environment variable NAME (a valid name; names that make programs load or run
    code, such as ``PATH``, ``LD_*``, ``HOME`` or ``BASH_ENV``, and database client variables
    such as ``PG*`` or ``MYSQL*`` are refused: see :mod:`core.env_names`). Go's ``and or not
    eq ne lt le gt ge len print printf`` are available; nothing else (no ``call``, ``template``,
    ``define``), and an unknown name fails to parse: ``function "require" not defined``.

Rendering
    Values are strings (anything else is refused, naming the parameter). Every declared key
    must be given unless it has a non-empty ``default``; otherwise one error lists the missing
    keys in declaration order: ``the following inputs are missing [a b]``. Extra keys are
    ignored. Render errors raise :class:`RunbookInputError` and name the parameter.

Safety (stronger than upstream)
    The template is the author's; parameter values come from API callers and never become
    code. The dialect comes from the extension after ``.runbook.``: ``sh``/``bash``/``zsh`` →
    shell, ``sql``/``psql`` → sql, ``py`` → python, anything else → generic.

    * ``squote``/``dquote`` quote for the dialect, so every value stays one literal:
      shell and generic ``'…'`` (``'`` → ``'\\''``) and ``"…"`` (``\\ " $ ``` escaped, ``!``
      spliced in as ``'!'`` so history expansion can't see it); sql ``'…'`` and the identifier
      ``"…"`` with the quote doubled; python a string literal with ``\\``, the quote, newlines
      and non-printable characters escaped. NUL is refused (except in python, where it is
      escaped); in sql a backslash is refused too, because MySQL reads it as an escape inside
      quotes and no single spelling means the same thing to every SQL engine.
      ``quotechar "'"`` and ``quotechar "\\""`` are squote and dquote; sql also takes a
      backtick (MySQL identifiers, doubled inside); any other character is a parse error
      (a backtick in shell would run the value).
    * A value inserted unquoted (its pipeline does not end in a quoting function, encodeb64
      or asenv) must match ``[A-Za-z0-9_.,:/@%+-]*``, and in sql and generic runbooks must not
      contain ``--`` (a comment; generic also ``//``); otherwise ``parameter "x": value contains
      characters that are not safe unquoted in this runbook; quote it in the template (squote,
      dquote)``. Quoting is tracked through the pipeline: ``decodeb64`` of a quoted or encoded
      value, ``default``, ``print``/``printf`` of a parameter are unquoted again.
    * An action that writes a value must stand where its quoting holds: inside a quote, a
      comment or a here-document of a shell or SQL runbook, inside a Python string literal or
      right after a Python string prefix (``f{{ .x | dquote }}``), the file is broken
      (``echo "{{ .x | squote }}"`` would run ``$(id)``); the parse error names the file and
      line. See :mod:`core.quote_context`.
    * What quoting can't fix stays the author's job: a quoted word still starts a command
      option when it begins with ``-`` (write ``--``), and an unquoted SQL value can still name
      a column (``WHERE id = id``).

Other choices where upstream is silent or loose: a parameter read by several pipelines gets
their metadata merged (later values win, ``required`` if any pipeline requires it; upstream
keeps only the last pipeline); the missing list is in declaration order (upstream: Go map
order); metadata keys come out sorted, as Go's encoding/json writes a map; the size limit is
upstream's: more than 1,000,000 bytes of UTF-8 is ``max template size [1000 KB] reached for
<file>``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import re2

from core.env_names import VALID_NAME, refused_env_name
from core.gotemplate import (
    BUILTIN_FUNCS,
    ActionNode,
    BranchNode,
    ChainNode,
    DotNode,
    FieldNode,
    FuncError,
    IdentifierNode,
    LiteralNode,
    Node,
    PipeNode,
    RangeNode,
    Template,
    TemplateError,
    TextNode,
    VariableNode,
    WithNode,
    parse,
    to_text,
)
from core.gotemplate_lexer import Source, go_quote
from core.quote_context import Action, Text, misplaced_actions

__all__ = [
    "INPUT_TYPES",
    "MAX_TEMPLATE_BYTES",
    "ParamSpec",
    "Rendered",
    "RunbookInputError",
    "RunbookTemplate",
    "RunbookTemplateError",
    "is_runbook_name",
    "parse_runbook",
    "runbook_dialect",
    "too_large_message",
]

MAX_TEMPLATE_BYTES = 1_000_000  # as upstream's maxTemplateSize
INPUT_TYPES = (
    "text",
    "number",
    "tel",
    "time",
    "date",
    "url",
    "email",
    "select",
    "textarea",
    "password",
    "file",
)
_DIALECTS = {
    "sh": "shell",
    "bash": "shell",
    "zsh": "shell",
    "sql": "sql",
    "psql": "sql",
    "py": "python",
}
_BUILTINS = frozenset(
    {"and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge", "len", "print", "printf"}
)
_QUOTING = frozenset({"squote", "dquote", "quotechar", "encodeb64", "decodeb64"})
_SAFE_UNQUOTED = re.compile(r"[A-Za-z0-9_.,:/@%+-]*")
_COMMENT_STARTS = {"sql": ("--",), "generic": ("--", "//")}
_UNSAFE = (
    "value contains characters that are not safe unquoted in this runbook; "
    "quote it in the template (squote, dquote)"
)


class RunbookTemplateError(ValueError):
    """The runbook file is broken (``template parse error: line L, col C: ...``)."""

    def __init__(self, message: str, line: int = 0, col: int = 0) -> None:
        super().__init__(message)
        self.message, self.line, self.col = message, line, col

    def __reduce__(self) -> tuple[Any, ...]:
        return RunbookTemplateError, (self.message, self.line, self.col)


class RunbookInputError(ValueError):
    """The caller's parameters can't render this runbook; ``parameter`` names the culprit."""

    def __init__(self, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.message, self.parameter = message, parameter

    def __reduce__(self) -> tuple[Any, ...]:
        return RunbookInputError, (self.message, self.parameter)


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter, with what the template's functions say about it."""

    name: str
    description: str = ""
    required: bool = False
    type: str = "text"
    default: str | None = None
    placeholder: str | None = None
    options: tuple[str, ...] | None = None
    order: int | None = None
    asenv: str | None = None
    minlength: int | None = None
    maxlength: int | None = None
    pattern: str | None = None

    def metadata(self) -> dict[str, Any]:
        """hoop's list shape; unset optional keys are left out, keys sorted as Go writes them."""
        meta: dict[str, Any] = {
            "description": self.description,
            "required": self.required,
            "type": self.type,
        }
        optional = ("default", "placeholder", "order", "asenv", "minlength", "maxlength")
        for key in optional:
            value = getattr(self, key)
            if value is not None:
                meta[key] = value
        if self.options is not None:
            meta["options"] = list(self.options)
        return dict(sorted(meta.items()))


@dataclass(frozen=True)
class Rendered:
    """A rendered runbook: the text to run and the environment set by ``asenv``."""

    text: str
    env: dict[str, str] = field(default_factory=dict)

    def hoop_env_vars(self) -> dict[str, str]:
        """``env`` in hoop's wire form: ``{"envvar:NAME": base64(value)}``."""
        return {
            f"envvar:{name}": base64.b64encode(value.encode()).decode()
            for name, value in self.env.items()
        }


def too_large_message(file_name: str) -> str:
    """Upstream's error for a file over :data:`MAX_TEMPLATE_BYTES`."""
    return f"max template size [{MAX_TEMPLATE_BYTES // 1000} KB] reached for {file_name}"


def is_runbook_name(path: str) -> bool:
    """Whether *path*'s base name contains ``.runbook.`` (upstream's IsRunbookFile)."""
    return ".runbook." in path.rsplit("/", 1)[-1]


def runbook_dialect(file_name: str) -> str:
    """``shell``, ``sql``, ``python`` or ``generic``, from the extension after ``.runbook.``."""
    base = file_name.rsplit("/", 1)[-1]
    if ".runbook." not in base:
        return "generic"
    return _DIALECTS.get(base.rsplit(".runbook.", 1)[1].lower(), "generic")


# --- values on their way through a pipeline -------------------------------------------------


class _Abort(Exception):
    """Stops rendering; the reason is already in the render state."""


class _Param:
    """A parameter's value as the caller sent it: rendering it directly checks it is safe."""

    __slots__ = ("_name", "_state", "_value")

    def __init__(self, name: str | None, value: str, state: _RenderState) -> None:
        self._name, self._value, self._state = name, value, state

    def __len__(self) -> int:
        return len(self._value)

    def __str__(self) -> str:  # called only when an action writes the value into the text
        return self._state.unquoted(self._name, self._value)

    def __repr__(self) -> str:
        return f"<parameter {self._name}>"


_Param.__name__ = "string"  # how the template engine names the value's type in its errors


class _Safe(str):
    """Text produced by quoting (or base64): safe anywhere, remembering its parameter."""

    param: str | None

    def __new__(cls, text: str, param: str | None) -> _Safe:
        made = super().__new__(cls, text)
        made.param = param
        return made


def _unpack(value: Any) -> tuple[str, str | None, str]:
    """(text, parameter name or None, kind): kind is ``raw``, ``safe`` or ``plain``."""
    if isinstance(value, _Param):
        return value._value, value._name, "raw"
    if isinstance(value, _Safe):
        return str(value), value.param, "safe"
    return to_text(value), None, "plain"


def _bare(value: Any) -> Any:
    return value._value if isinstance(value, _Param) else value


@dataclass
class _RenderState:
    dialect: str
    env: dict[str, str] = field(default_factory=dict)
    failure: RunbookInputError | None = None

    def fail(self, param: str | None, reason: str) -> _Abort:
        where = f"parameter {go_quote(param)}" if param else "template value"
        if self.failure is None:
            self.failure = RunbookInputError(f"{where}: {reason}", param)
        return _Abort(reason)

    def unquoted(self, param: str | None, value: str) -> str:
        if not _SAFE_UNQUOTED.fullmatch(value):
            raise self.fail(param, _UNSAFE)
        for start in _COMMENT_STARTS.get(self.dialect, ()):
            if start in value:
                raise self.fail(
                    param,
                    f"value contains {go_quote(start)}, which starts a comment in this runbook; "
                    "quote it in the template (squote, dquote)",
                )
        return value


# --- quoting --------------------------------------------------------------------------------

_PY_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _python_literal(text: str, quote: str) -> str:
    out = []
    for char in text:
        code = ord(char)
        if char in _PY_ESCAPES:
            out.append(_PY_ESCAPES[char])
        elif char == quote:
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return quote + "".join(out) + quote


def _shell_dquote(text: str) -> str:
    body = re.sub(r'([\\"$`])', r"\\\1", text)
    return '"' + body.replace("!", "\"'!'\"") + '"'


def _quote(dialect: str, quote: str, text: str) -> str:
    """*text* as one literal of *dialect*; ValueError(reason) when that can't be done safely."""
    if dialect == "python":
        return _python_literal(text, quote)
    if "\x00" in text:
        raise ValueError("value contains a NUL character, which can't be quoted safely")
    if dialect == "sql":
        if "\\" in text and quote != "`":
            raise ValueError(
                "value contains a backslash, which some SQL engines (MySQL) read as an escape "
                "inside quotes; it can't be quoted safely in a sql runbook"
            )
        return quote + text.replace(quote, quote * 2) + quote
    if quote == "'":
        return "'" + text.replace("'", "'\\''") + "'"
    return _shell_dquote(text)


def _quote_chars(dialect: str) -> tuple[str, ...]:
    return ("'", '"', "`") if dialect == "sql" else ("'", '"')


# --- Go regular expressions -----------------------------------------------------------------

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a bad pattern is the author's error, reported as such


_REPEAT = re.compile(r"\\.|\[\^?\]?(?:\\.|[^\]])*\]|\{([0-9]+)(?:,([0-9]*))?\}", re.S)
_MAX_REPEAT = 1000  # Go's (and RE2's) limit on a repetition count


def _check_repeat_counts(pattern: str) -> None:
    """ValueError for a count over 1000, which Go refuses but RE2 reads as literal text when
    it overflows (``a{99999999999}``)."""
    for match in _REPEAT.finditer(pattern):
        counts = [int(g) for g in match.groups() if g]
        if any(count > _MAX_REPEAT for count in counts):
            raise ValueError(f"invalid repeat count: {match.group()}")


@lru_cache(maxsize=256)
def _go_regexp(pattern: str) -> Any:
    """Compile a Go regexp with RE2, Go's own engine family: the same syntax and ``$``, and
    matching in linear time, so no value can make a check take exponential time.

    ValueError(reason) for a pattern Go refuses."""
    _check_repeat_counts(pattern)
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid pattern"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(str(reason)) from None


# --- template functions ---------------------------------------------------------------------


def _taint_text(func: Callable[..., Any]) -> Callable[..., Any]:
    """print/printf: the result is as unquoted as the most unquoted parameter it contains."""

    @functools.wraps(func)
    def wrapper(*args: Any) -> Any:
        text = func(*(_bare(arg) for arg in args))
        for arg in args:
            if isinstance(arg, _Param):
                return _Param(arg._name, text, arg._state)
        for arg in args:
            if isinstance(arg, _Safe):
                return _Safe(text, arg.param)
        return text

    return wrapper


def _bare_args(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any) -> Any:
        return func(*(_bare(arg) for arg in args))

    return wrapper


def _not_defined(*args: Any) -> Any:  # stands in for engine builtins runbooks don't offer
    raise FuncError("not available in runbooks")


_EXTRA_BUILTINS: dict[str, Callable[..., Any]] = {
    **{name: _bare_args(BUILTIN_FUNCS[name]) for name in ("eq", "ne", "lt", "le", "gt", "ge")},
    "len": _bare_args(BUILTIN_FUNCS["len"]),
    "print": _taint_text(BUILTIN_FUNCS["print"]),
    "printf": _taint_text(BUILTIN_FUNCS["printf"]),
    **{name: _not_defined for name in BUILTIN_FUNCS if name not in _BUILTINS},
}


def _functions(state: _RenderState) -> dict[str, Callable[..., Any]]:
    """The runbook functions for one render; they report failures through *state*."""
    dialect = state.dialect

    def passthrough(_arg: Any, value: Any) -> Any:
        return value

    def required(message: Any, value: Any) -> Any:
        text, name, _ = _unpack(value)
        if text == "":
            raise state.fail(name, to_text(message) or "a value is required")
        return value

    def default(fallback: Any, value: Any) -> Any:
        text, name, kind = _unpack(value)
        if text != "":
            return value
        return _Param(name, to_text(fallback), state) if kind == "raw" else fallback

    def pattern(expr: Any, value: Any) -> Any:
        text, name, _ = _unpack(value)
        try:
            matched = _go_regexp(to_text(expr)).search(text)
        except ValueError as exc:
            reason = f"pattern {go_quote(to_text(expr))}: regexp error: {exc}"
            raise state.fail(name, reason) from None
        if not matched:
            raise state.fail(name, f"pattern didn't match:{to_text(expr)}")
        return value

    def minlength(limit: Any, value: Any) -> Any:
        text, name, _ = _unpack(value)
        if text and len(text) < int(limit):
            raise state.fail(name, f"value must be at least {int(limit)} characters long")
        return value

    def maxlength(limit: Any, value: Any) -> Any:
        text, name, _ = _unpack(value)
        if len(text) > int(limit):
            raise state.fail(name, f"value must be at most {int(limit)} characters long")
        return value

    def options(*args: Any) -> Any:
        if not args:
            return ""
        value, choices = args[-1], [to_text(arg) for arg in args[:-1]]
        text, name, kind = _unpack(value)
        if choices and text and kind != "plain" and text not in choices:
            raise state.fail(name, f"value must be one of the options [{' '.join(choices)}]")
        return value

    def quoted(quote: str, value: Any) -> Any:
        text, name, kind = _unpack(value)
        if quote not in _quote_chars(dialect):
            raise state.fail(name, f"quotechar {go_quote(quote)} is not supported here")
        try:
            result = _quote(dialect, quote, text)
        except ValueError as exc:
            raise state.fail(name, str(exc)) from None
        return result if kind == "plain" else _Safe(result, name)

    def encodeb64(value: Any) -> Any:
        text, name, kind = _unpack(value)
        encoded = base64.b64encode(text.encode()).decode()
        return encoded if kind == "plain" else _Safe(encoded, name)

    def decodeb64(value: Any) -> Any:
        text, name, kind = _unpack(value)
        try:  # Go's StdEncoding skips \r and \n; anything else must be canonical base64
            raw = base64.b64decode(re.sub("[\r\n]", "", text), validate=True)
            decoded = raw.decode()
        except (binascii.Error, UnicodeDecodeError):
            raise state.fail(name, "value is not valid base64 (of UTF-8 text)") from None
        return decoded if kind == "plain" else _Param(name, decoded, state)

    def asenv(env_name: Any, value: Any) -> str:
        text, name, _ = _unpack(value)
        if "\x00" in text:
            raise state.fail(name, "value contains a NUL character, which an environment can't")
        state.env[to_text(env_name)] = text
        return ""

    return {
        **_EXTRA_BUILTINS,
        "description": passthrough,
        "type": passthrough,
        "placeholder": passthrough,
        "order": passthrough,
        "required": required,
        "default": default,
        "pattern": pattern,
        "minlength": minlength,
        "maxlength": maxlength,
        "options": options,
        "squote": lambda value: quoted("'", value),
        "dquote": lambda value: quoted('"', value),
        "quotechar": lambda quote, value: quoted(to_text(quote), value),
        "encodeb64": encodeb64,
        "decodeb64": decodeb64,
        "asenv": asenv,
    }


_METADATA = frozenset({"description", "type", "placeholder", "order", "minlength", "maxlength"})
_RUNBOOK_FUNCS = _METADATA | _QUOTING | {"options", "required", "default", "pattern", "asenv"}
_ALLOWED = _RUNBOOK_FUNCS | _BUILTINS


# --- reading the template -------------------------------------------------------------------

_ROOT = "$root"  # dot is the parameter set (a real parameter name never starts with "$")


@dataclass
class _Spec:
    name: str
    attrs: dict[str, Any] = field(default_factory=dict)
    required: bool = False

    def freeze(self) -> ParamSpec:
        return ParamSpec(self.name, required=self.required, **self.attrs)


class _Reader:
    """Walks the parsed template: declares parameters, checks and records function calls."""

    def __init__(self, text: str, dialect: str) -> None:
        self.src, self.dialect = Source(text), dialect
        self.specs: dict[str, _Spec] = {}

    def error(self, node: Node, reason: str) -> TemplateError:
        return self.src.error(node.pos, reason)

    def nodes(self, nodes: list[Node], dot: str | None) -> None:
        for node in nodes:
            if isinstance(node, ActionNode):
                self.pipe(node.pipe, dot, None)
            elif isinstance(node, BranchNode):
                key = self.pipe(node.pipe, dot, None)
                inner = None if isinstance(node, RangeNode) else dot
                if isinstance(node, WithNode):
                    inner = key
                self.nodes(node.body, inner)
                self.nodes(node.else_body, dot)

    def first_param(self, node: Node, dot: str | None) -> str | None:
        if isinstance(node, FieldNode) and dot == _ROOT:
            return node.chain[0]
        if isinstance(node, VariableNode) and node.name == "$" and node.chain:
            return node.chain[0]
        if isinstance(node, DotNode) and dot != _ROOT:
            return dot
        if isinstance(node, PipeNode):
            for cmd in node.cmds:
                for arg in cmd.args:
                    found = self.first_param(arg, dot)
                    if found:
                        return found
        return None

    def pipe(self, pipe: PipeNode, dot: str | None, outer: str | None) -> str | None:
        key = self.first_param(pipe, dot) or outer
        for stage, cmd in enumerate(pipe.cmds):
            for arg in cmd.args:
                self.operand(arg, dot, key)
            head = cmd.args[0]
            if isinstance(head, IdentifierNode):
                self.call(head, cmd.args[1:], stage > 0, key)
        return key

    def operand(self, node: Node, dot: str | None, key: str | None) -> None:
        if isinstance(node, FieldNode):
            if dot != _ROOT:
                raise self.error(
                    node,
                    f"field .{node.chain[0]} inside {{{{with}}}} or {{{{range}}}} reads the "
                    f"current value, not a parameter; write $.{node.chain[0]}",
                )
            self.declare(node, node.chain)
        elif isinstance(node, VariableNode):
            if node.name != "$" and node.chain:
                raise self.error(node, f"variable {node.name} is text; it has no fields")
            if node.name == "$":
                if not node.chain:
                    raise self.error(node, "$ is the whole parameter set; name one: $.name")
                self.declare(node, node.chain)
        elif isinstance(node, DotNode) and dot == _ROOT:
            raise self.error(node, "{{.}} is the whole parameter set; name one: .name")
        elif isinstance(node, ChainNode):
            raise self.error(node, "reading fields of a result is not supported; values are text")
        elif isinstance(node, PipeNode):
            self.pipe(node, dot, key)
        elif isinstance(node, IdentifierNode) and node.name not in _ALLOWED:
            raise self.error(node, f'function "{node.name}" not defined')

    def declare(self, node: Node, chain: tuple[str, ...]) -> None:
        if len(chain) > 1:
            raise self.error(node, f"parameter {chain[0]} is text; it has no field .{chain[1]}")
        self.specs.setdefault(chain[0], _Spec(chain[0]))

    def call(self, head: IdentifierNode, args: list[Node], piped: bool, key: str | None) -> None:
        name = head.name
        if name not in _RUNBOOK_FUNCS:
            return
        literals = args if piped else args[:-1]
        for arg in literals:
            if not isinstance(arg, LiteralNode):
                raise self.error(arg, f"arguments of {name} must be literals")
        values = [arg.value for arg in literals if isinstance(arg, LiteralNode)]
        if name in _QUOTING:
            if name == "quotechar" and values:
                self.check_quotechar(head, self.text_arg(head, values[0]))
            return
        if key is None:
            raise self.error(
                head, f"{name} must describe a parameter: {{{{ .name | {name} ... }}}}"
            )
        self.record(head, self.specs.setdefault(key, _Spec(key)), values)

    def record(self, head: IdentifierNode, spec: _Spec, values: list[Any]) -> None:
        name = head.name
        if name == "options":
            choices = [self.text_arg(head, value) for value in values]
            if choices:
                spec.attrs["options"] = tuple(choices)
            return
        if not values:
            return
        value = values[0]
        if name == "required":
            self.text_arg(head, value)
            spec.required = True
        elif name in ("order", "minlength", "maxlength"):
            spec.attrs[name] = self.int_arg(head, value, name != "order")
        elif name == "type":
            if self.text_arg(head, value) in INPUT_TYPES:  # upstream ignores unknown types
                spec.attrs["type"] = value
        elif name == "pattern":
            try:
                _go_regexp(self.text_arg(head, value))
            except ValueError as exc:
                raise self.error(head, f"pattern {go_quote(value)}: regexp error: {exc}") from None
            spec.attrs["pattern"] = value
        elif name == "asenv":
            self.check_env_name(head, self.text_arg(head, value))
            spec.attrs["asenv"] = value
        else:  # description, placeholder, default
            spec.attrs[name] = self.text_arg(head, value)

    def text_arg(self, head: IdentifierNode, value: Any) -> str:
        if not isinstance(value, str):
            raise self.error(head, f"{head.name} wants a string argument, got {to_text(value)}")
        return value

    def int_arg(self, head: IdentifierNode, value: Any, non_negative: bool) -> int:
        if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value):
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or (non_negative and value < 0):
            want = "a non-negative integer" if non_negative else "an integer"
            raise self.error(head, f"{head.name} wants {want}, got {to_text(value)}")
        return value

    def check_quotechar(self, head: IdentifierNode, quote: str) -> None:
        allowed = _quote_chars(self.dialect)
        if quote not in allowed:
            choices = " or ".join(go_quote(char) for char in allowed)
            raise self.error(
                head,
                f"quotechar {go_quote(quote)} is not supported in a {self.dialect} runbook; "
                f"use {choices}",
            )

    def check_env_name(self, head: IdentifierNode, name: str) -> None:
        if not VALID_NAME.fullmatch(name):
            raise self.error(head, f"asenv {go_quote(name)} is not a valid environment variable")
        refusal = refused_env_name(name)
        if refusal:
            raise self.error(head, f"asenv {go_quote(name)} {refusal}")


# --- public API -----------------------------------------------------------------------------


class RunbookTemplate:
    """A parsed runbook: its parameters (declaration order) and a safe :meth:`render`."""

    def __init__(
        self, file_name: str, dialect: str, template: Template, params: dict[str, ParamSpec]
    ) -> None:
        self.file_name, self.dialect, self.params = file_name, dialect, params
        self._template = template

    def __repr__(self) -> str:
        return f"<RunbookTemplate {self.file_name} ({self.dialect}) {list(self.params)}>"

    def metadata(self) -> dict[str, dict[str, Any]]:
        """``{param: {description, required, type, ...}}`` as hoop lists a runbook."""
        return {name: spec.metadata() for name, spec in self.params.items()}

    def render(self, parameters: Mapping[str, Any]) -> Rendered:
        """Render with the caller's *parameters*; RunbookInputError names what is wrong."""
        if not isinstance(parameters, Mapping):
            raise RunbookInputError("parameters must be an object of strings")
        for name in self.params:
            value = parameters.get(name)
            if name in parameters and not isinstance(value, str):
                raise RunbookInputError(
                    f"parameter {go_quote(name)}: value must be a string, got {_json_type(value)}",
                    name,
                )
        missing = [n for n, spec in self.params.items() if n not in parameters and not spec.default]
        if missing:
            raise RunbookInputError(f"the following inputs are missing [{' '.join(missing)}]")
        state = _RenderState(self.dialect)
        data = {name: _Param(name, parameters.get(name, ""), state) for name in self.params}
        try:
            text = self._template.render(data, _functions(state))
        except (TemplateError, _Abort) as exc:
            if state.failure is not None:
                raise state.failure from None
            where = f"line {exc.line}, col {exc.col}: " if isinstance(exc, TemplateError) else ""
            reason = exc.reason if isinstance(exc, TemplateError) else str(exc)
            raise RunbookInputError(f"template execution error: {where}{reason}") from None
        return Rendered(text, dict(state.env))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, Mapping):
        return "object"
    return "array" if isinstance(value, list | tuple) else type(value).__name__


def _pieces(nodes: list[Node]) -> Iterator[Text | Action]:
    """The template's text and value-writing actions in source order (both arms of a branch,
    one after the other)."""
    for node in nodes:
        if isinstance(node, TextNode):
            yield Text(node.text)
        elif isinstance(node, ActionNode):
            last = node.pipe.cmds[-1].args[0]
            writes_nothing = node.pipe.decls or (
                isinstance(last, IdentifierNode) and last.name == "asenv"
            )
            if not writes_nothing:
                yield Action(node.pos)
        elif isinstance(node, BranchNode):
            yield from _pieces(node.body)
            yield from _pieces(node.else_body)


def _check_quote_contexts(text: str, file_name: str, dialect: str, template: Template) -> None:
    """RunbookTemplateError for the first action written inside a quote (or other context)
    where its value's quoting would not hold: see :mod:`core.quote_context`."""
    found = misplaced_actions(dialect, _pieces(template.nodes))
    if not found:
        return
    first = found[0]
    line, col = Source(text).where(first.pos)
    close = text.find("}}", first.pos)
    action = " ".join(text[first.pos : close + 2 if close >= 0 else None].split())
    if len(action) > 60:
        action = action[:57] + "..."
    raise RunbookTemplateError(
        f"template parse error: line {line}, col {col}: the action {action} in {file_name} "
        f"sits {first.context}, where no quoting keeps a value data; {first.advice}",
        line,
        col,
    )


def parse_runbook(text: str, file_name: str) -> RunbookTemplate:
    """Parse a runbook file; RunbookTemplateError (with line/col when known) if it is broken."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_TEMPLATE_BYTES:
        raise RunbookTemplateError(too_large_message(file_name))
    dialect = runbook_dialect(file_name)
    try:
        template = parse(text, _functions(_RenderState(dialect)))
        reader = _Reader(text, dialect)
        reader.nodes(template.nodes, _ROOT)
    except TemplateError as exc:
        where = f"line {exc.line}, col {exc.col}: " if exc.line else ""
        raise RunbookTemplateError(
            f"template parse error: {where}{exc.reason}", exc.line, exc.col
        ) from None
    _check_quote_contexts(text, file_name, dialect, template)
    params = {name: spec.freeze() for name, spec in reader.specs.items()}
    for spec in params.values():
        low, high = spec.minlength, spec.maxlength
        if low is not None and high is not None and low > high:
            raise RunbookTemplateError(
                f"template parse error: parameter {go_quote(spec.name)}: "
                f"minlength {low} is greater than maxlength {high}"
            )
    return RunbookTemplate(file_name, dialect, template, params)
