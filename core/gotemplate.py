"""The subset of Go's ``text/template`` that Mission Control playbooks use in action fields.

A lexer (:mod:`core.gotemplate_lexer`) feeds a recursive-descent parser that builds an
inspectable AST (:class:`Template`); an evaluator walks it against plain data. Stdlib only.

Supported: text; actions ``{{ }}`` with ``{{-`` / ``-}}`` trimming; comments ``{{/* */}}``;
fields ``.a.b``, ``.``, ``$``, ``$.a``, ``$x.a``, ``(pipeline).a``; string (Go escapes and raw
backtick), int, float, bool and nil literals; pipelines with ``|``; parenthesised
sub-pipelines; ``$x := ...`` / ``$x = ...``; ``if``/``else if``/``else``, ``range`` (lists,
tuples, maps in sorted key order, ints; ``$i, $v :=``; ``else``; ``break``/``continue``),
``with``/``else with``; the functions in :data:`BUILTIN_FUNCS`.

Deliberate differences from Go, chosen for playbook authors:

* A missing map key renders as an empty string, not Go's ``<no value>``: an absent
  parameter is empty. A field of nil (``.absent.deeper``) and ``index`` of nil are nil too.
* nil renders as empty (also in ``print`` and ``printf`` ``%v``/``%s``); lists and maps
  render as compact JSON (keys sorted, as Go's ``encoding/json`` does).
* ``split`` returns a list (Sprig's ``splitList``), not Sprig's ``{"_0": ...}`` map.
* String functions accept any value and use its rendered text; ``len`` of nil is 0, and
  strings are indexed and measured in characters (Go counts bytes).
* As in Go, ``eq``/``lt``/... refuse to compare a string with a number; nil equals only nil.
* Names used as functions must be known when the template is parsed (builtins, plus any
  passed to :func:`parse` as ``funcs``); ``render(funcs=...)`` may supply or override them.

Rendering is data only: fields read mapping keys and public, non-callable attributes; nothing
in the data is ever called, and there is no ``call``, ``template`` or ``define``.
"""

from __future__ import annotations

import base64
import inspect
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from core.gotemplate_lexer import Source, TemplateError, Tok, Token, go_quote, lex

__all__ = [
    "BUILTIN_FUNCS",
    "FieldRef",
    "FuncCall",
    "FuncError",
    "Node",
    "PipelineInfo",
    "Template",
    "TemplateError",
    "parse",
    "render",
    "render_fields",
    "to_text",
    "truth",
    "validate",
    "validate_fields",
]

_MISSING: Any = object()
# Parentheses and if/range/with blocks nest at most this deep: the parser, the evaluator and
# the runbook reader recurse once per level, and deeper text would exhaust Python's stack.
MAX_DEPTH = 100


class FuncError(Exception):
    """Raise from a template function to fail with just this message (``error calling f: ...``)."""


# --- AST ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Node:
    """Base of every AST node; ``pos`` is the source offset."""

    pos: int


@dataclass(slots=True)
class TextNode(Node):
    text: str


@dataclass(slots=True)
class DotNode(Node):
    pass


@dataclass(slots=True)
class FieldNode(Node):
    chain: tuple[str, ...]


@dataclass(slots=True)
class VariableNode(Node):
    name: str  # "$" or "$x"
    chain: tuple[str, ...]


@dataclass(slots=True)
class IdentifierNode(Node):
    name: str  # a function name


@dataclass(slots=True)
class LiteralNode(Node):
    value: Any  # str, int, float, bool or None


@dataclass(slots=True)
class CommandNode(Node):
    args: list[Node]
    end: int


@dataclass(slots=True)
class PipeNode(Node):
    decls: list[str]
    is_assign: bool
    cmds: list[CommandNode]
    end: int
    context: str  # "action", "if", "range", "with" or "paren"


@dataclass(slots=True)
class ChainNode(Node):
    node: Node  # a parenthesised pipeline or a function identifier
    chain: tuple[str, ...]


@dataclass(slots=True)
class ActionNode(Node):
    pipe: PipeNode


@dataclass(slots=True)
class BranchNode(Node):
    pipe: PipeNode
    body: list[Node]
    else_body: list[Node]


class IfNode(BranchNode):
    __slots__ = ()


class RangeNode(BranchNode):
    __slots__ = ()


class WithNode(BranchNode):
    __slots__ = ()


@dataclass(slots=True)
class BreakNode(Node):
    pass


@dataclass(slots=True)
class ContinueNode(Node):
    pass


_BRANCHES: dict[str, type[BranchNode]] = {"if": IfNode, "range": RangeNode, "with": WithNode}


@dataclass(frozen=True, slots=True)
class FieldRef:
    """A field chain read by a pipeline: ``root`` is ``"."``, ``"$"`` or ``"$name"``."""

    root: str
    chain: tuple[str, ...]

    def __str__(self) -> str:
        if self.root == "." and self.chain:
            return "." + ".".join(self.chain)
        return self.root + "".join("." + name for name in self.chain)


@dataclass(frozen=True, slots=True)
class FuncCall:
    """A function call in a pipeline; ``piped`` when it also receives the previous value."""

    name: str
    args: tuple[Node, ...]
    piped: bool

    def literal_args(self) -> tuple[Any, ...]:
        """The arguments' values; TemplateError unless every argument is a literal."""
        if not all(isinstance(arg, LiteralNode) for arg in self.args):
            raise TemplateError(f"arguments of {self.name} must be literals")
        return tuple(arg.value for arg in self.args if isinstance(arg, LiteralNode))


@dataclass(frozen=True, slots=True)
class PipelineInfo:
    """One pipeline of a template, as listed by :meth:`Template.pipelines`."""

    line: int
    col: int
    source: str
    context: str
    declares: tuple[str, ...]
    fields: tuple[FieldRef, ...]
    calls: tuple[FuncCall, ...]


# --- parser ------------------------------------------------------------------------------


class _Parser:
    def __init__(self, src: Source, funcs: Mapping[str, Callable[..., Any] | None]) -> None:
        self.src, self.funcs = src, funcs
        self.tokens, self.index = lex(src), 0
        self.vars, self.range_depth = ["$"], 0
        self.depth = 0  # open parentheses and branches, bounded so nothing recurses too deep

    def peek(self) -> Token:
        return self.tokens[self.index]

    def next(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def fail(self, token: Token, reason: str) -> TemplateError:
        return self.src.error(token.pos, reason, token.text)

    def unexpected(self, token: Token, where: str) -> TemplateError:
        shown = "EOF" if token.kind is Tok.EOF else go_quote(token.text.strip())
        return self.fail(token, f"unexpected {shown} in {where}")

    def expect(self, kind: Tok, where: str) -> Token:
        if self.peek().kind is not kind:
            raise self.unexpected(self.peek(), where)
        return self.next()

    def items(self, opener: Token | None) -> tuple[list[Node], Token]:
        """Parse text and actions up to EOF (top level) or ``{{end}}``/``{{else}}``."""
        nodes: list[Node] = []
        while True:
            token = self.next()
            if token.kind is Tok.TEXT:
                nodes.append(TextNode(token.pos, token.value))
                continue
            if token.kind is Tok.EOF:
                if opener is not None:
                    raise self.fail(opener, f"unclosed {{{{{opener.text}}}}}: missing {{{{end}}}}")
                return nodes, token
            word = self.peek()
            if word.kind is Tok.KEYWORD and word.text in ("end", "else"):
                if opener is None:
                    raise self.fail(word, f"unexpected {{{{{word.text}}}}}")
                return nodes, self.next()
            if word.kind is Tok.KEYWORD:
                nodes.append(self.control(token, self.next()))
            else:
                pipe = self.pipeline("action")
                self.expect(Tok.RIGHT, "command")
                nodes.append(ActionNode(token.pos, pipe))

    def control(self, left: Token, word: Token) -> Node:
        if word.text in ("break", "continue"):
            if not self.range_depth:
                raise self.fail(word, f"{{{{{word.text}}}}} outside {{{{range}}}}")
            self.expect(Tok.RIGHT, word.text)
            return BreakNode(left.pos) if word.text == "break" else ContinueNode(left.pos)
        if word.text not in _BRANCHES:
            raise self.fail(word, f"{{{{{word.text}}}}} is not supported")
        return self.branch(left.pos, word)

    def nested(self, token: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(token, f"max nesting depth exceeded: more than {MAX_DEPTH} levels")

    def branch(self, pos: int, word: Token) -> BranchNode:
        self.nested(word)
        mark = len(self.vars)
        pipe = self.pipeline(word.text)
        self.expect(Tok.RIGHT, word.text)
        self.range_depth += word.text == "range"
        body, stop = self.items(word)
        self.range_depth -= word.text == "range"
        del self.vars[mark + (0 if pipe.is_assign else len(pipe.decls)) :]
        else_body: list[Node] = []
        if stop.text == "else":
            chained = self.peek()
            if chained.kind is Tok.KEYWORD and chained.text == word.text != "range":
                else_body = [self.branch(chained.pos, self.next())]  # it consumes our {{end}}
            else:
                self.expect(Tok.RIGHT, "else")
                else_body, stop = self.items(word)
                if stop.text == "else":
                    raise self.fail(
                        stop, f"expected {{{{end}}}}; found {{{{else}}}} in {word.text}"
                    )
        if stop.text == "end":
            self.expect(Tok.RIGHT, "end")
        del self.vars[mark:]
        self.depth -= 1
        return _BRANCHES[word.text](pos, pipe, body, else_body)

    def pipeline(self, context: str) -> PipeNode:
        start = self.peek()
        decls, is_assign = self.declarations(context)
        cmds: list[CommandNode] = []
        while True:
            cmd = self.command(context, len(cmds))
            cmds.append(cmd)
            if self.peek().kind is not Tok.PIPE:
                break
            self.next()
        for name in decls:
            if is_assign and name not in self.vars:
                raise self.fail(start, f"undefined variable {go_quote(name)}")
        if not is_assign:
            self.vars.extend(decls)
        return PipeNode(start.pos, decls, is_assign, cmds, cmds[-1].end, context)

    def declarations(self, context: str) -> tuple[list[str], bool]:
        first = self.peek()
        if first.kind is not Tok.VARIABLE:
            return [], False
        names, saved = [self.next()], self.index
        if self.peek().kind is Tok.COMMA:
            self.next()
            if self.peek().kind is not Tok.VARIABLE:
                raise self.unexpected(self.peek(), "declaration")
            names.append(self.next())
        op = self.peek()
        if op.kind not in (Tok.DECLARE, Tok.ASSIGN):
            if len(names) > 1:
                raise self.unexpected(op, "declaration")
            self.index = saved - 1
            return [], False
        self.next()
        if len(names) > 1 and context != "range":
            raise self.fail(first, "too many declarations in command")
        if any(n.text == "$" for n in names):
            raise self.fail(first, "cannot declare or assign $")
        return [n.text for n in names], op.kind is Tok.ASSIGN

    def command(self, context: str, stage: int) -> CommandNode:
        start = self.peek()
        args: list[Node] = []
        while self.peek().kind not in (Tok.RIGHT, Tok.RPAREN, Tok.PIPE, Tok.EOF):
            if args and not self.peek().spaced:
                raise self.unexpected(self.peek(), "operand")
            args.append(self.operand())
        if not args:
            raise self.fail(start, f"missing value for {context.replace('action', 'command')}")
        head = args[0]
        for arg in args:  # a function name as an operand is a call without arguments
            inner = arg.node if isinstance(arg, ChainNode) else arg
            if isinstance(inner, IdentifierNode) and inner is not head:
                self.check_arity(inner, 0)
        if isinstance(head, LiteralNode) and head.value is None:
            raise self.fail(start, "nil is not a command")
        if isinstance(head, IdentifierNode):
            self.check_arity(head, len(args) - 1 + (stage > 0))
        elif stage > 0:
            raise self.fail(start, f"non executable command in pipeline stage {stage + 1}")
        elif len(args) > 1:
            text = self.src.text[head.pos : args[1].pos].strip()
            raise self.fail(start, f"can't give argument to non-function {text}")
        end = self.peek().pos
        return CommandNode(start.pos, args, end)

    def operand(self) -> Node:
        token = self.next()
        node: Node
        if token.kind is Tok.FIELD:
            return FieldNode(token.pos, (token.value, *self.chain()))
        if token.kind is Tok.VARIABLE:
            if token.text not in self.vars:
                raise self.fail(token, f"undefined variable {go_quote(token.text)}")
            return VariableNode(token.pos, token.text, self.chain())
        if token.kind is Tok.IDENT:
            if token.text not in self.funcs:
                raise self.fail(token, f'function "{token.text}" not defined')
            node = IdentifierNode(token.pos, token.text)
        elif token.kind is Tok.LPAREN:
            self.nested(token)
            node = self.pipeline("paren")
            if self.next().kind is not Tok.RPAREN:
                raise self.fail(token, "unclosed left paren")
            self.depth -= 1
        elif token.kind is Tok.DOT:
            node = DotNode(token.pos)
        elif token.kind in (Tok.STRING, Tok.NUMBER, Tok.BOOL, Tok.NIL):
            node = LiteralNode(token.pos, token.value)
        else:
            raise self.unexpected(token, "operand")
        chain = self.chain()
        if chain and isinstance(node, DotNode | LiteralNode):
            raise self.fail(token, f"unexpected . after term {go_quote(token.text)}")
        return ChainNode(token.pos, node, chain) if chain else node

    def chain(self) -> tuple[str, ...]:
        names: list[str] = []
        while self.peek().kind is Tok.FIELD and not self.peek().spaced:
            names.append(self.next().value)
        return tuple(names)

    def check_arity(self, ident: IdentifierNode, count: int) -> None:
        func = self.funcs.get(ident.name)
        problem = _arity_problem(ident.name, func, count) if func is not None else None
        if problem:
            raise self.src.error(ident.pos, problem, ident.name)


@lru_cache(maxsize=512)
def _arity(func: Callable[..., Any]) -> tuple[int, int | None] | None:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return None
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = sum(p.default is p.empty for p in positional)
    variadic = any(p.kind is p.VAR_POSITIONAL for p in params)
    return required, None if variadic else len(positional)


def _arity_problem(name: str, func: Callable[..., Any], count: int) -> str | None:
    try:
        bounds = _arity(func)
    except TypeError:  # unhashable callable
        return None
    if bounds is None or bounds[0] <= count <= (count if bounds[1] is None else bounds[1]):
        return None
    low, high = bounds
    want = f"at least {low}" if high is None else str(low) if low == high else f"{low} to {high}"
    return f"wrong number of args for {name}: want {want} got {count}"


# --- evaluation --------------------------------------------------------------------------


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Exec:
    def __init__(self, src: Source, funcs: Mapping[str, Callable[..., Any]], root: Any) -> None:
        self.src, self.funcs = src, funcs
        self.vars: list[list[Any]] = [["$", root]]
        self.out: list[str] = []

    def fail(self, node: Node, end: int, reason: str) -> TemplateError:
        snippet = self.src.text[node.pos : end].strip()
        return self.src.error(node.pos, f"at <{snippet}>: {reason}", snippet)

    def walk(self, dot: Any, nodes: list[Node]) -> None:
        for node in nodes:
            if isinstance(node, TextNode):
                self.out.append(node.text)
            elif isinstance(node, ActionNode):
                value = self.pipeline(dot, node.pipe)
                if not node.pipe.decls:
                    try:
                        self.out.append(to_text(value))
                    except FuncError as exc:
                        raise self.fail(node.pipe, node.pipe.end, str(exc)) from None
            elif isinstance(node, BranchNode):
                mark = len(self.vars)
                try:
                    self.branch(dot, node)
                finally:
                    del self.vars[mark:]
            elif isinstance(node, BreakNode):
                raise _Break
            elif isinstance(node, ContinueNode):
                raise _Continue

    def branch(self, dot: Any, node: BranchNode) -> None:
        if not isinstance(node, RangeNode):
            value = self.pipeline(dot, node.pipe)
            if truth(value):
                self.walk(value if isinstance(node, WithNode) else dot, node.body)
            else:
                self.walk(dot, node.else_body)
            return
        decls = node.pipe.decls
        items = self.iterate(node, self.pipeline(dot, node.pipe, declare=False))
        mark, looped = len(self.vars), False
        for key, value in items:
            looped = True
            del self.vars[mark:]
            pairs = zip(decls, (key, value) if len(decls) == 2 else (value,), strict=False)
            self.vars += [[name, val] for name, val in pairs]
            try:
                self.walk(value, node.body)
            except _Break:
                break
            except _Continue:
                continue
        if not looped:
            self.walk(dot, node.else_body)

    def iterate(self, node: BranchNode, value: Any) -> Iterable[tuple[Any, Any]]:
        if value is None:
            return []
        if isinstance(value, Mapping):
            return [(key, value[key]) for key in _sorted_keys(value)]
        if isinstance(value, list | tuple):
            return list(enumerate(value))
        if isinstance(value, int) and not isinstance(value, bool):
            return [(i, i) for i in range(value)]
        kind = _go_type(value)
        raise self.fail(node.pipe, node.pipe.end, f"range can't iterate over {kind}")

    def pipeline(self, dot: Any, pipe: PipeNode, declare: bool = True) -> Any:
        value = _MISSING
        for cmd in pipe.cmds:
            value = self.command(dot, cmd, value)
        for name in pipe.decls if declare else ():
            if pipe.is_assign:
                next(v for v in reversed(self.vars) if v[0] == name)[1] = value
            else:
                self.vars.append([name, value])
        return value

    def command(self, dot: Any, cmd: CommandNode, final: Any) -> Any:
        head = cmd.args[0]
        if isinstance(head, IdentifierNode):
            return self.call(dot, head.name, cmd, cmd.args[1:], final)
        return self.arg(dot, head, cmd.end)

    def call(self, dot: Any, name: str, cmd: Node, args: list[Node], final: Any) -> Any:
        end = cmd.end if isinstance(cmd, CommandNode) else cmd.pos + len(name)
        func = self.funcs.get(name)
        if func is None:
            raise self.fail(cmd, end, f'function "{name}" not defined')
        count = len(args) + (final is not _MISSING)
        problem = _arity_problem(name, func, count)
        if problem:
            raise self.fail(cmd, end, problem)
        if (func is _and or func is _or) and args:  # Go short-circuits and/or
            for node in args:
                value = self.arg(dot, node, end)
                if truth(value) is (func is _or):
                    return value
            return value if final is _MISSING else final
        values = [self.arg(dot, node, end) for node in args]
        if final is not _MISSING:
            values.append(final)
        try:
            return func(*values)
        except Exception as exc:  # noqa: BLE001 - a function's failure becomes a template error
            reason = exc.reason if isinstance(exc, TemplateError) else str(exc)
            raise self.fail(cmd, end, f"error calling {name}: {reason}") from None

    def arg(self, dot: Any, node: Node, end: int) -> Any:
        if isinstance(node, LiteralNode):
            return node.value
        if isinstance(node, DotNode):
            return dot
        if isinstance(node, FieldNode):
            return self.fields(dot, node, node.chain, end)
        if isinstance(node, VariableNode):
            value = next(v[1] for v in reversed(self.vars) if v[0] == node.name)
            return self.fields(value, node, node.chain, end)
        if isinstance(node, PipeNode):
            return self.pipeline(dot, node)
        if isinstance(node, IdentifierNode):
            return self.call(dot, node.name, node, [], _MISSING)
        assert isinstance(node, ChainNode)
        return self.fields(self.arg(dot, node.node, end), node, node.chain, end)

    def fields(self, value: Any, node: Node, chain: tuple[str, ...], end: int) -> Any:
        for name in chain:
            try:
                value = _field(value, name)
            except FuncError as exc:
                if isinstance(node, FieldNode | VariableNode):  # name just the operand
                    root = node.name if isinstance(node, VariableNode) else ""
                    end = node.pos + len(root) + sum(len(n) + 1 for n in chain)
                raise self.fail(node, end, str(exc)) from None
        return value


def _field(value: Any, name: str) -> Any:
    """Read one field: a mapping key or a public, non-callable attribute. Never calls."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return value[name] if name in value else None
    if callable(value) or isinstance(value, str | bytes | int | float | list | tuple | set):
        raise FuncError(f"can't evaluate field {name} in type {_go_type(value)}")
    attr = getattr(value, name, _MISSING) if not name.startswith("_") else _MISSING
    if attr is _MISSING:
        raise FuncError(f"can't evaluate field {name} in type {_go_type(value)}")
    if callable(attr):
        raise FuncError(f"field {name} in type {_go_type(value)} is a method; data only")
    return attr


# --- values ------------------------------------------------------------------------------


def truth(value: Any) -> bool:
    """Go truthiness: false, 0, nil and empty strings/lists/maps are false."""
    if value is None:
        return False
    if isinstance(value, bool | int | float | complex):
        return bool(value)
    return len(value) > 0 if isinstance(value, Sized) else True


def _go_type(value: Any) -> str:
    if value is None:
        return "<nil>"
    if callable(value):
        return "func"
    names = {bool: "bool", int: "int", float: "float64", str: "string"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    if isinstance(value, Mapping):
        return "map"
    return "slice" if isinstance(value, list | tuple) else type(value).__name__


def _sorted_keys(value: Mapping[Any, Any]) -> list[Any]:
    try:
        return sorted(value)
    except TypeError:
        return list(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if callable(value):
        raise FuncError("can't print value of type func")
    return str(value)


def to_json(value: Any) -> str:
    """Compact JSON as Go's ``encoding/json`` writes it (map keys sorted)."""
    options: dict[str, Any] = {"separators": (",", ":"), "ensure_ascii": False}
    try:
        return json.dumps(value, sort_keys=True, default=_json_default, **options)
    except TypeError:
        return json.dumps(value, default=_json_default, **options)


def format_float(value: float) -> str:
    """A float as Go's ``%v`` prints it: shortest digits, exponent form outside [1e-4, 1e6)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits)).rstrip("0")
    point = len(digits) + exponent  # the value is 0.<text> * 10**point
    prefix = "-" if sign else ""
    if point - 1 < -4 or point - 1 >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if point < 1 else '+'}{abs(point - 1):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return prefix + text + "0" * (point - len(text))
    return f"{prefix}{text[:point]}.{text[point:]}"


def to_text(value: Any) -> str:
    """How a value renders: strings as-is, nil empty, bools, Go floats, lists/maps as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        return to_json(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if callable(value):
        raise FuncError("can't print value of type func")
    return str(value)


_VERB_RE = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d*))?(.?)", re.DOTALL)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _format_verb(verb: str, arg: Any, flags: str, precision: int | None) -> str | None:
    """One ``printf`` operand, or None when the verb does not fit the value."""
    if verb in "vs":
        text = to_text(arg)
        return text if precision is None else text[:precision]
    if verb == "q":
        return go_quote(to_text(arg))
    if verb == "t":
        return to_text(arg) if isinstance(arg, bool) else None
    if verb in "dxX" and isinstance(arg, int) and not isinstance(arg, bool):
        text = format(arg, {"d": "d", "x": "x", "X": "X"}[verb])
        return "+" + text if "+" in flags and arg >= 0 else text
    if verb in "xX" and isinstance(arg, str):
        return format(int.from_bytes(arg.encode(), "big"), verb) if arg else ""
    if verb in "feEgG" and _is_number(arg):
        if verb in "gG" and precision is None:
            text = format_float(float(arg))
            return text.upper() if verb == "G" else text
        sign = "+" if "+" in flags else " " if " " in flags else ""
        return format(float(arg), f"{sign}.{6 if precision is None else precision}{verb}")
    return None


def sprintf(spec: str, *args: Any) -> str:
    """Go's ``fmt.Sprintf`` for the verbs %v %s %q %d %f %e %g %x %t and %%."""
    out, used, pos = [], 0, 0
    for match in _VERB_RE.finditer(spec):
        out.append(spec[pos : match.start()])
        pos = match.end()
        flags, width, precision, verb = match.groups()
        if verb == "%":
            out.append("%")
            continue
        if not verb:
            out.append("%!(NOVERB)")
            continue
        if used >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[used]
        used += 1
        text = _format_verb(verb, arg, flags, None if precision is None else int(precision or 0))
        if text is None:
            shown = _go_type(arg) if arg is None else f"{_go_type(arg)}={to_text(arg)}"
            text = f"%!{verb}({shown})"
        size = int(width or 0)
        if "-" in flags:
            text = text.ljust(size)
        elif "0" in flags and text[:1] in ("+", "-") and verb not in "vsq":
            text = text[0] + text[1:].rjust(size - 1, "0")
        else:
            text = text.rjust(size, "0" if "0" in flags else " ")
        out.append(text)
    out.append(spec[pos:])
    if used < len(args):
        extra = ", ".join(f"{_go_type(a)}={to_text(a)}" for a in args[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


# --- functions ---------------------------------------------------------------------------


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if item is None:
            return None
        if isinstance(item, Mapping):
            item = item.get(key)
        elif isinstance(item, list | tuple | str):
            if not isinstance(key, int) or isinstance(key, bool):
                raise FuncError(f"cannot index {_go_type(item)} with {_go_type(key)}")
            if not 0 <= key < len(item):
                raise FuncError(f"index out of range: {key}")
            item = item[key]
        else:
            raise FuncError(f"can't index item of type {_go_type(item)}")
    return item


def _len(item: Any) -> int:
    if item is None:
        return 0
    if isinstance(item, str | bytes | list | tuple | Mapping | set | frozenset):
        return len(item)
    raise FuncError(f"len of type {_go_type(item)}")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    return "number" if _is_number(value) else _go_type(value)


def _equal(left: Any, right: Any) -> bool:
    if left is None or right is None:
        return left is right
    kinds = {_kind(left), _kind(right)}
    if len(kinds) > 1 and kinds & {"bool", "number", "string"}:
        raise FuncError(f"incompatible types for comparison: {_kind(left)} and {_kind(right)}")
    return bool(left == right)


def _compare(left: Any, right: Any) -> int:
    kind = _kind(left)
    if kind != _kind(right):
        raise FuncError(f"incompatible types for comparison: {kind} and {_kind(right)}")
    if kind not in ("number", "string"):
        raise FuncError(f"invalid type for comparison: {kind}")
    return int(left > right) - int(left < right)


def _eq(left: Any, right: Any, *more: Any) -> bool:
    return any(_equal(left, other) for other in (right, *more))


def _and(first: Any, *rest: Any) -> Any:
    for value in (first, *rest):
        if not truth(value):
            return value
    return value


def _or(first: Any, *rest: Any) -> Any:
    for value in (first, *rest):
        if truth(value):
            return value
    return value


def _print(*args: Any) -> str:
    parts: list[str] = []
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            parts.append(" ")
        parts.append(to_text(arg))
    return "".join(parts)


def _title(text: Any) -> str:
    out, previous = [], " "
    for char in to_text(text):
        boundary = not (previous.isalnum() or previous == "_")
        out.append(char.upper() if boundary else char)
        previous = char
    return "".join(out)


def _join(sep: Any, items: Any) -> str:
    if items is None:
        return ""
    if not isinstance(items, list | tuple | set | frozenset):
        return to_text(items)
    return to_text(sep).join(to_text(item) for item in items if item is not None)


def _split(sep: Any, text: Any) -> list[str]:
    sep, text = to_text(sep), to_text(text)
    return list(text) if sep == "" else text.split(sep)


def _b64dec(text: Any) -> str:
    try:
        return base64.b64decode(to_text(text), validate=True).decode("utf-8", "replace")
    except ValueError as exc:
        raise FuncError(f"illegal base64 data: {exc}") from None


def _from_json(text: Any) -> Any:
    try:
        return json.loads(to_text(text))
    except ValueError as exc:
        raise FuncError(f"invalid JSON: {exc}") from None


BUILTIN_FUNCS: Mapping[str, Callable[..., Any]] = MappingProxyType(
    {
        "index": _index,
        "len": _len,
        "eq": _eq,
        "ne": lambda left, right: not _equal(left, right),
        "lt": lambda left, right: _compare(left, right) < 0,
        "le": lambda left, right: _compare(left, right) <= 0,
        "gt": lambda left, right: _compare(left, right) > 0,
        "ge": lambda left, right: _compare(left, right) >= 0,
        "and": _and,
        "or": _or,
        "not": lambda value: not truth(value),
        "print": _print,
        "printf": lambda spec, *args: sprintf(to_text(spec), *args),
        "default": lambda fallback, *given: given[0] if given and truth(given[0]) else fallback,
        "upper": lambda text: to_text(text).upper(),
        "lower": lambda text: to_text(text).lower(),
        "title": _title,
        "trim": lambda text: to_text(text).strip(),
        "trimSpace": lambda text: to_text(text).strip(),
        "replace": lambda old, new, text: to_text(text).replace(to_text(old), to_text(new)),
        "contains": lambda part, text: to_text(part) in to_text(text),
        "hasPrefix": lambda prefix, text: to_text(text).startswith(to_text(prefix)),
        "hasSuffix": lambda suffix, text: to_text(text).endswith(to_text(suffix)),
        "quote": lambda *args: " ".join(go_quote(to_text(a)) for a in args if a is not None),
        "squote": lambda *args: " ".join(f"'{to_text(a)}'" for a in args if a is not None),
        "toJSON": to_json,
        "toJson": to_json,
        "fromJSON": _from_json,
        "fromJson": _from_json,
        "join": _join,
        "split": _split,
        "b64enc": lambda text: base64.b64encode(to_text(text).encode()).decode(),
        "b64dec": _b64dec,
    }
)


# --- public API --------------------------------------------------------------------------


class Template:
    """A parsed template: ``nodes`` is the AST; :meth:`render` evaluates it against data."""

    def __init__(
        self, text: str, nodes: list[Node], funcs: Mapping[str, Callable[..., Any]]
    ) -> None:
        self.text, self.nodes, self._funcs = text, nodes, funcs
        self._src = Source(text)

    def render(
        self, data: Mapping[str, Any], funcs: Mapping[str, Callable[..., Any]] | None = None
    ) -> str:
        """Evaluate against *data*; *funcs* add or override functions for this call."""
        table = {**self._funcs, **(funcs or {})}
        executor = _Exec(self._src, table, data)
        executor.walk(data, self.nodes)
        return "".join(executor.out)

    def walk(self) -> Iterator[Node]:
        """Every node of the AST, depth first in source order (pipelines included)."""
        stack: list[Node] = list(reversed(self.nodes))
        while stack:
            node = stack.pop()
            yield node
            children: list[Node] = []
            if isinstance(node, ActionNode):
                children = [node.pipe]
            elif isinstance(node, BranchNode):
                children = [node.pipe, *node.body, *node.else_body]
            elif isinstance(node, PipeNode):
                children = list(node.cmds)
            elif isinstance(node, CommandNode):
                children = node.args
            elif isinstance(node, ChainNode):
                children = [node.node]
            stack.extend(reversed(children))

    def pipelines(self) -> list[PipelineInfo]:
        """Every pipeline (sub-pipelines too) with the fields it reads and functions it calls."""
        found = []
        for node in self.walk():
            if not isinstance(node, PipeNode):
                continue
            fields: list[FieldRef] = []
            calls: list[FuncCall] = []
            for stage, cmd in enumerate(node.cmds):
                for arg in cmd.args:
                    if isinstance(arg, FieldNode):
                        fields.append(FieldRef(".", arg.chain))
                    elif isinstance(arg, VariableNode):
                        fields.append(FieldRef(arg.name, arg.chain))
                    elif isinstance(arg, DotNode):
                        fields.append(FieldRef(".", ()))
                    elif isinstance(arg, IdentifierNode):
                        args = tuple(cmd.args[1:]) if arg is cmd.args[0] else ()
                        calls.append(FuncCall(arg.name, args, stage > 0 and arg is cmd.args[0]))
                    elif isinstance(arg, ChainNode) and isinstance(arg.node, IdentifierNode):
                        calls.append(FuncCall(arg.node.name, (), False))
            line, col = self._src.where(node.pos)
            source = self.text[node.pos : node.end].strip()
            decls = tuple(node.decls)
            found.append(
                PipelineInfo(line, col, source, node.context, decls, (*fields,), (*calls,))
            )
        return found


def parse(
    text: str, funcs: Mapping[str, Callable[..., Any]] | Iterable[str] | None = None
) -> Template:
    """Parse *text*; *funcs* names (or supplies) functions beyond :data:`BUILTIN_FUNCS`."""
    table: dict[str, Callable[..., Any]] = dict(BUILTIN_FUNCS)
    known: dict[str, Callable[..., Any] | None] = dict(table)
    if isinstance(funcs, Mapping):
        table.update(funcs)
        known.update(funcs)
    elif funcs is not None:
        known.update(dict.fromkeys(funcs))
    parser = _Parser(Source(text), known)
    nodes, _ = parser.items(None)
    return Template(text, nodes, table)


@lru_cache(maxsize=256)
def _parse_cached(text: str) -> Template:
    return parse(text)


def render(
    text: str, data: Mapping[str, Any], funcs: Mapping[str, Callable[..., Any]] | None = None
) -> str:
    """Parse and render *text* in one step."""
    template = _parse_cached(text) if funcs is None else parse(text, funcs)
    return template.render(data, funcs)


def validate(text: str) -> None:
    """Parse only: raises TemplateError for a template that could never render."""
    _parse_cached(text)


def _each_string(value: Any, path: str, action: Callable[[str], Any]) -> Any:
    if isinstance(value, str):
        if "{{" not in value:
            return value
        try:
            return action(value)
        except TemplateError as exc:
            raise exc.at_field(path) from None
    if isinstance(value, Mapping):
        return {
            k: _each_string(v, f"{path}.{k}" if path else str(k), action) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        items = [_each_string(v, f"{path}[{i}]", action) for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    return value


def render_fields(
    value: Any, data: Mapping[str, Any], funcs: Mapping[str, Callable[..., Any]] | None = None
) -> Any:
    """Render every string inside nested dicts/lists/tuples; other values are kept as-is.

    Keys are not templated. An error names the failing field, e.g. ``exec.script``.
    """
    return _each_string(value, "", lambda text: render(text, data, funcs))


def validate_fields(value: Any) -> None:
    """:func:`validate` every string inside nested dicts/lists (a whole action spec)."""
    _each_string(value, "", validate)
