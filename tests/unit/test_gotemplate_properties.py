"""Property tests: whatever text comes in, the template engine fails only with its own errors.

A runbook or playbook field is text from a repository or a request; a crash other than
TemplateError (an IndexError, a RecursionError, an OverflowError) would be a 500 instead of a
message naming the line.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core.gotemplate import MAX_DEPTH, TemplateError, parse
from core.runbook_templates import RunbookInputError, RunbookTemplateError, parse_runbook

# Pieces of template syntax, so generated text reaches deep into the parser and evaluator.
_PIECES = [
    "{{", "}}", "{{-", "-}}", " ", "\n", ".", ".a", ".b.c", "$", "$x", "$x :=", "$i, $v :=",
    "=", ":=", "|", "(", ")", ",", "if", "else", "end", "range", "with", "break", "continue",
    "define", "template", "block", "nil", "true", "false", "0", "-1", "1e400", "0x1F", "1_000",
    "99999999999999999999", "1.5", '"s"', '"\\u00e9"', '"\\x"', "`raw`", "'c'", "/*", "*/",
    "index", "len", "eq", "lt", "and", "or", "not", "print", "printf", '"%d"', '"%*d"',
    '"%.99999999d"', '"%v"', "default", "upper", "replace", "split", "join", "toJSON",
    "fromJSON", '"[1,{}]"', "b64dec", '"!!"', "squote", "quote", "title", "contains",
    "required", "pattern", '"^(a+)+$"', "asenv", '"X"', "options", "maxlength", "minlength",
    "dquote", "quotechar", "encodeb64", "decodeb64", "'", '"', "#", "<<EOF", "f", "--", "\\",
]  # fmt: skip
_TEMPLATE_TEXT = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(_PIECES), max_size=40).map("".join),
    st.lists(st.one_of(st.sampled_from(_PIECES), st.text(max_size=3)), max_size=40).map("".join),
)
_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=10,
)
_DATA = st.dictionaries(st.sampled_from(["a", "b", "c", "x", "s"]), _VALUES, max_size=5)
_PARAMS = st.dictionaries(
    st.sampled_from(["a", "b", "c", "x", "s"]), st.text(max_size=20), max_size=5
)
# Found by these properties: nesting deep enough to exhaust Python's stack (RecursionError).
_DEEP_PARENS = "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}"
_DEEP_BLOCKS = "{{ if 1 }}" * 3000 + "x" + "{{ end }}" * 3000
_SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(text=_TEMPLATE_TEXT, data=_DATA)
@example(text=_DEEP_PARENS, data={})
@example(text=_DEEP_BLOCKS, data={})
def test_parse_and_render_raise_only_template_errors(text: str, data: dict[str, Any]) -> None:
    try:
        template = parse(text)
    except TemplateError:
        return
    try:
        rendered = template.render(data)
    except TemplateError:
        return
    assert isinstance(rendered, str)


@_SETTINGS
@given(
    text=_TEMPLATE_TEXT,
    params=_PARAMS,
    extension=st.sampled_from(["sh", "py", "sql", "txt"]),
)
@example(text=_DEEP_PARENS, params={}, extension="sh")
@example(text=_DEEP_BLOCKS, params={}, extension="sh")
def test_runbooks_raise_only_runbook_errors(
    text: str, params: dict[str, str], extension: str
) -> None:
    try:
        template = parse_runbook(text, f"x.runbook.{extension}")
    except RunbookTemplateError:
        return
    template.metadata()
    try:
        rendered = template.render(params)
    except RunbookInputError:
        return
    assert isinstance(rendered.text, str)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ " + "(" * MAX_DEPTH + "1" + ")" * MAX_DEPTH + " }}", "1"),
        ("{{ if 1 }}" * MAX_DEPTH + "x" + "{{ end }}" * MAX_DEPTH, "x"),
        ("{{ if 1 }}" * 50 + "{{ " + "(" * 50 + "1" + ")" * 50 + " }}" + "{{ end }}" * 50, "1"),
    ],
)
def test_nesting_up_to_the_limit_renders(text: str, expected: str) -> None:
    assert parse(text).render({}) == expected


@pytest.mark.parametrize(
    ("text", "col"),
    [
        ("{{ " + "(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1) + " }}", 4 + MAX_DEPTH),
        ("{{ if 1 }}" * (MAX_DEPTH + 1) + "{{ end }}" * (MAX_DEPTH + 1), 4 + 10 * MAX_DEPTH),
        ("{{ with 1 }}" * 60 + "{{ (" + "(" * 40 + "1" + ")" * 41 + " }}" + "{{ end }}" * 60, 0),
    ],
)
def test_deeper_nesting_is_a_template_error(text: str, col: int) -> None:
    with pytest.raises(TemplateError, match="max nesting depth exceeded: more than 100 levels"):
        parse(text)
    with pytest.raises(RunbookTemplateError, match=f"line 1, col {col or ''}"):
        parse_runbook(text, "x.runbook.sh")
