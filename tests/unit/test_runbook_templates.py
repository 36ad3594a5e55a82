"""Table tests for core.runbook_templates: hoop.dev runbook templates and their safe rendering."""

from __future__ import annotations

import os
import pickle
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from core.runbook_templates import (
    INPUT_TYPES,
    MAX_TEMPLATE_BYTES,
    ParamSpec,
    Rendered,
    RunbookInputError,
    RunbookTemplate,
    RunbookTemplateError,
    is_runbook_name,
    parse_runbook,
    runbook_dialect,
    too_large_message,
)

SH, SQL, PY, GEN = "x.runbook.sh", "x.runbook.sql", "x.runbook.py", "x.runbook.txt"


def rows(*cases: tuple[Any, ...]) -> list[Any]:
    """pytest params with the first item (a template or name) as the id."""
    return [pytest.param(*case, id=repr(case[0])[:70]) for case in cases]


def render(text: str, params: dict[str, Any], name: str = SH) -> str:
    return parse_runbook(text, name).render(params).text


def parse_error(text: str, name: str = SH) -> str:
    with pytest.raises(RunbookTemplateError) as info:
        parse_runbook(text, name)
    return str(info.value)


def input_error(text: str, params: dict[str, Any], name: str = SH) -> RunbookInputError:
    template = parse_runbook(text, name)
    with pytest.raises(RunbookInputError) as info:
        template.render(params)
    return info.value


# --- names and dialects --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    rows(
        ("ops/backup.runbook.sh", True),
        ("team/finops/dba/charge.runbook.sql", True),
        ("x.runbook.py", True),
        ("x.runbook.", True),
        ("team/finops/dba/charge.runb.sql", False),
        ("ops.runbook.d/backup.sh", False),
        ("runbook.sh", False),
        ("", False),
    ),
)
def test_is_runbook_name(path: str, expected: bool) -> None:
    assert is_runbook_name(path) is expected


@pytest.mark.parametrize(
    ("path", "dialect"),
    rows(
        ("ops/backup.runbook.sh", "shell"),
        ("a.runbook.bash", "shell"),
        ("a.runbook.zsh", "shell"),
        ("a.runbook.SH", "shell"),
        ("sql/q.runbook.sql", "sql"),
        ("sql/q.runbook.psql", "sql"),
        ("x.runbook.py", "python"),
        ("x.runbook.rb", "generic"),
        ("x.runbook.sh.txt", "generic"),
        ("x.runbook.", "generic"),
        ("plain.sh", "generic"),
        ("a.runbook.d/x.sh", "generic"),
    ),
)
def test_runbook_dialect(path: str, dialect: str) -> None:
    assert runbook_dialect(path) == dialect
    assert parse_runbook("x", path).dialect == dialect


# --- parameters and metadata ---------------------------------------------------------------

DEFAULTS = {"description": "", "required": False, "type": "text"}


@pytest.mark.parametrize(
    ("text", "expected"),
    rows(
        ("SELECT 1", {}),
        ("name = {{ .name }}", {"name": DEFAULTS}),
        ("{{ .b }}{{ .a }}{{ .b }}", {"b": DEFAULTS, "a": DEFAULTS}),
        ("{{ $.a }}", {"a": DEFAULTS}),
        ("{{- .a -}}", {"a": DEFAULTS}),
        ("{{/* {{ .nope }} */}}{{ .a }}", {"a": DEFAULTS}),
        (
            '{{ .url | default "http://localhost:3000" | required "url is required" '
            '| description "The URL to fetch" | type "url" | asenv "FETCH_URL" }}',
            {
                "url": {
                    "asenv": "FETCH_URL",
                    "default": "http://localhost:3000",
                    "description": "The URL to fetch",
                    "required": True,
                    "type": "url",
                }
            },
        ),
        (
            '{{ .gender | placeholder "the gender type" | options "male" "female" "unknown" '
            '| type "select" | order 3 }}',
            {
                "gender": {
                    "description": "",
                    "options": ["male", "female", "unknown"],
                    "order": 3,
                    "placeholder": "the gender type",
                    "required": False,
                    "type": "select",
                }
            },
        ),
        (
            '{{ .name | minlength 2 | maxlength "50" | order "7" | pattern "^[a-z]+$" }}',
            {"name": {**DEFAULTS, "maxlength": 50, "minlength": 2, "order": 7}},
        ),
        ('{{ .n | type "nubmer" }}', {"n": DEFAULTS}),
        (
            '{{ .n | description "say \\"hi\\" | ok" }}',
            {"n": {**DEFAULTS, "description": 'say "hi" | ok'}},
        ),
        ("{{ .a | options }}", {"a": DEFAULTS}),
        ('{{ description "d" .a }}', {"a": {**DEFAULTS, "description": "d"}}),
        (
            '{{ .a | description "first" }}{{ .a | description "second" | required "r" }}{{ .a }}',
            {"a": {**DEFAULTS, "description": "second", "required": True}},
        ),
        (
            '{{ if eq .mode "x" }}{{ .yes | squote }}{{ else }}{{ .no }}{{ end }}',
            {"mode": DEFAULTS, "yes": DEFAULTS, "no": DEFAULTS},
        ),
        (
            '{{ with .a }}{{ . | description "via dot" }}{{ $.b }}{{ else }}{{ .c }}{{ end }}',
            {"a": {**DEFAULTS, "description": "via dot"}, "b": DEFAULTS, "c": DEFAULTS},
        ),
        ("{{ range $i := 2 }}{{ $.a }}{{ end }}", {"a": DEFAULTS}),
        ("{{ $x := .a | squote }}{{ $x }}", {"a": DEFAULTS}),
        (
            '{{ printf "%s-%s" .a .b | description "d" }}',
            {"a": {**DEFAULTS, "description": "d"}, "b": DEFAULTS},
        ),
        ('{{ (.a | default "x") | squote }}', {"a": {**DEFAULTS, "default": "x"}}),
    ),
)
def test_metadata(text: str, expected: dict[str, Any]) -> None:
    template = parse_runbook(text, SH)
    assert template.metadata() == expected
    assert list(template.metadata()) == list(expected)  # declaration order
    for meta in template.metadata().values():
        assert list(meta) == sorted(meta)  # as Go's encoding/json writes a map


def test_param_spec_fields_and_shape() -> None:
    text = (
        '{{ .p | description "d" | required "m" | type "password" | default "x" '
        '| placeholder "ph" | options "x" "y" | order 1 | asenv "P" | minlength 1 '
        '| maxlength 9 | pattern "^[xy]$" }}'
    )
    spec = parse_runbook(text, SH).params["p"]
    assert spec == ParamSpec(
        "p", "d", True, "password", "x", "ph", ("x", "y"), 1, "P", 1, 9, "^[xy]$"
    )
    assert spec.metadata() == {
        "asenv": "P",
        "default": "x",
        "description": "d",
        "maxlength": 9,
        "minlength": 1,
        "options": ["x", "y"],
        "order": 1,
        "placeholder": "ph",
        "required": True,
        "type": "password",
    }
    assert ParamSpec("q").metadata() == DEFAULTS


@pytest.mark.parametrize("kind", INPUT_TYPES)
def test_every_input_type_is_recorded_and_not_enforced(kind: str) -> None:
    template = parse_runbook(f'{{{{ .v | type "{kind}" | squote }}}}', SH)
    assert template.params["v"].type == kind
    assert template.render({"v": "not a valid anything"}).text == "'not a valid anything'"


# --- parse errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    rows(
        ('{{ .x | require "a" }}', 'line 1, col 9: function "require" not defined'),
        ("a\n  {{ .x | upper }}", 'line 2, col 11: function "upper" not defined'),
        ("{{ call .x }}", 'function "call" not defined'),
        ("{{ index .x 0 }}", 'function "index" not defined'),
        ("{{ .x | toJSON }}", 'function "toJSON" not defined'),
        ('{{ template "x" }}', "{{template}} is not supported"),
        ('{{ define "x" }}y{{ end }}', "{{define}} is not supported"),
        ("{{ .mynput }", 'line 1, col 12: unexpected "}" in action'),
        ("{{ .x ", "no closing }}"),
        ("{{ if .x }}", "missing {{end}}"),
        ("{{ .x | required }}", "wrong number of args for required: want 2 got 1"),
        ('{{ .x | squote "a" }}', "wrong number of args for squote: want 1 got 2"),
        ("{{ .x | quotechar }}", "wrong number of args for quotechar: want 2 got 1"),
        ("{{ .x | default .y }}", "line 1, col 17: arguments of default must be literals"),
        ('{{ .x | options "a" .y }}', "arguments of options must be literals"),
        ("{{ required .m .x }}", "arguments of required must be literals"),
        ("{{ .x | description 1 }}", "description wants a string argument, got 1"),
        ("{{ .x | required true }}", "required wants a string argument, got true"),
        ('{{ .x | options "a" 2 }}', "options wants a string argument, got 2"),
        ('{{ .x | order "first" }}', "order wants an integer, got first"),
        ("{{ .x | order 1.5 }}", "order wants an integer, got 1.5"),
        ("{{ .x | order true }}", "order wants an integer, got true"),
        ("{{ .x | minlength -1 }}", "minlength wants a non-negative integer, got -1"),
        ('{{ .x | maxlength "ten" }}', "maxlength wants a non-negative integer, got ten"),
        (
            "{{ .x | minlength 5 | maxlength 2 }}",
            'parameter "x": minlength 5 is greater than maxlength 2',
        ),
        ('{{ .x | pattern "(" }}', 'pattern "(": regexp error: missing )'),
        # Go's syntax, checked by RE2: what Python's re would accept, Go refuses.
        ('{{ .x | pattern "(?<=a)b" }}', 'pattern "(?<=a)b": regexp error: invalid perl operator'),
        ('{{ .x | pattern "(a)\\\\1" }}', "regexp error: invalid escape sequence: \\1"),
        ('{{ .x | pattern "[[:foo:]]" }}', "regexp error: invalid character class range"),
        ('{{ .x | pattern "a{1001}" }}', 'pattern "a{1001}": regexp error: invalid repeat count'),
        ('{{ .x | pattern "a{99999999999}" }}', "regexp error: invalid repeat count"),
        ('{{ .x | asenv "1BAD" }}', 'asenv "1BAD" is not a valid environment variable'),
        ('{{ .x | asenv "A-B" }}', 'asenv "A-B" is not a valid environment variable'),
        ('{{ .x | asenv "" }}', 'asenv "" is not a valid environment variable'),
        ('{{ .x | asenv "LD_PRELOAD" }}', 'asenv "LD_PRELOAD" would let the caller change how'),
        ('{{ .x | asenv "PATH" }}', 'asenv "PATH" would let the caller change how programs run'),
        ('{{ .x | asenv "bash_env" }}', 'asenv "bash_env" would let the caller change'),
        ('{{ .x | asenv "BASH_FUNC_ls%%" }}', "is not a valid environment variable"),
        ('{{ .x | asenv "HOME" }}', 'asenv "HOME" would let the caller change how programs run'),
        ('{{ .x | asenv "GIT_DIR" }}', 'asenv "GIT_DIR" would let the caller change how'),
        ('{{ .x | asenv "PYTHONWARNINGS" }}', 'asenv "PYTHONWARNINGS" would let the caller'),
        ('{{ .x | asenv "PGHOSTADDR" }}', 'asenv "PGHOSTADDR" belongs to the database client'),
        ('{{ .x | asenv "mysql_pwd" }}', 'asenv "mysql_pwd" belongs to the database client'),
        (
            '{{ .x | quotechar "`" }}',
            'quotechar "`" is not supported in a shell runbook; use "\'" or "\\""',
        ),
        ('{{ .x | quotechar "x" }}', 'quotechar "x" is not supported in a shell runbook'),
        ("{{ .x | quotechar \"''\" }}", "is not supported in a shell runbook"),
        ('{{ "x" | description "d" }}', "description must describe a parameter"),
        ('{{ "x" | required "m" }}', "required must describe a parameter"),
        ("{{ .a.b }}", "line 1, col 4: parameter a is text; it has no field .b"),
        ("{{ $.a.b }}", "parameter a is text; it has no field .b"),
        ("{{ . }}", "{{.}} is the whole parameter set; name one: .name"),
        ("{{ $ }}", "$ is the whole parameter set; name one: $.name"),
        ("{{ range $k, $v := . }}{{ end }}", "{{.}} is the whole parameter set"),
        ("{{ $x := .a }}{{ $x.b }}", "variable $x is text; it has no fields"),
        ("{{ (.a).b }}", "reading fields of a result is not supported"),
        (
            "{{ with .a }}{{ .b }}{{ end }}",
            "field .b inside {{with}} or {{range}} reads the current",
        ),
        ("{{ range .a }}{{ .b }}{{ end }}", "write $.b"),
    ),
)
def test_parse_errors(text: str, message: str) -> None:
    error = parse_error(text)
    assert error.startswith("template parse error: ")
    assert message in error


def test_parse_error_position_and_pickling() -> None:
    with pytest.raises(RunbookTemplateError) as info:
        parse_runbook('ok\n\n  {{ .x | require "a" }}', SH)
    assert (info.value.line, info.value.col) == (3, 11)
    assert str(info.value) == 'template parse error: line 3, col 11: function "require" not defined'
    copy = pickle.loads(pickle.dumps(info.value))  # noqa: S301 - our own object
    assert (str(copy), copy.line, copy.col) == (str(info.value), 3, 11)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    rows(
        (SQL, '{{ .x | quotechar "`" }}', None),
        (SQL, '{{ .x | quotechar "[" }}', 'use "\'" or "\\"" or "`"'),
        (PY, '{{ .x | quotechar "`" }}', "is not supported in a python runbook"),
        (GEN, '{{ .x | quotechar "`" }}', "is not supported in a generic runbook"),
        (SH, '{{ .x | quotechar "\'" }}', None),
        (PY, '{{ .x | quotechar "\\"" }}', None),
    ),
)
def test_quotechar_is_checked_per_dialect(name: str, text: str, message: str | None) -> None:
    if message is None:
        parse_runbook(text, name)
    else:
        assert message in parse_error(text, name)


def test_size_limit() -> None:
    assert MAX_TEMPLATE_BYTES == 1_000_000
    assert (
        too_large_message("a/b.runbook.sh")
        == "max template size [1000 KB] reached for a/b.runbook.sh"
    )
    parse_runbook("x" * MAX_TEMPLATE_BYTES, SH)
    with pytest.raises(RunbookTemplateError) as info:
        parse_runbook("x" * (MAX_TEMPLATE_BYTES + 1), "ops/big.runbook.sh")
    assert str(info.value) == "max template size [1000 KB] reached for ops/big.runbook.sh"
    with pytest.raises(RunbookTemplateError):  # the limit counts UTF-8 bytes
        parse_runbook("é" * (MAX_TEMPLATE_BYTES // 2 + 1), SH)


# --- rendering: functions ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "params", "expected"),
    rows(
        ("SELECT id FROM customers WHERE id = 10", {}, "SELECT id FROM customers WHERE id = 10"),
        (
            "amount = {{ .amount00 }}, wallet = {{ .wallet_id }}, debug = {{ .DEBUG_me }}",
            {"amount00": "10.4", "wallet_id": "59842", "DEBUG_me": "True", "extra": "$(x)"},
            "amount = 10.4, wallet = 59842, debug = True",
        ),
        ('name = {{ .name | default "Tony" }}', {"name": ""}, "name = Tony"),
        ('name = {{ .name | default "Tony" }}', {}, "name = Tony"),
        ('name = {{ .name | default "Tony" }}', {"name": "Peter"}, "name = Peter"),
        ('{{ .n | options "Peter" | default "Tony" }}', {"n": ""}, "Tony"),
        ('{{ .p | default "pro" | options "basic" "pro" | type "select" }}', {}, "pro"),
        ('{{ .p | default "pro" | options "basic" "pro" }}', {"p": "basic"}, "basic"),
        ('{{ .t | options "house" "car" }}', {"t": ""}, ""),
        ('{{ .id | required "id is required" }}', {"id": "7"}, "7"),
        ('{{ .w | pattern "^[0-9]+" }}', {"w": "1234567890"}, "1234567890"),
        ('{{ .w | pattern "[0-9]" }}', {"w": "abc1"}, "abc1"),
        ('{{ .w | pattern "^[[:alpha:]]+$" }}', {"w": "abc"}, "abc"),
        ('{{ .w | pattern "(?m)^b$" | squote }}', {"w": "a\nb\nc"}, "'a\nb\nc'"),
        ('{{ .w | pattern "^[a-z]+\\\\z" }}', {"w": "abc"}, "abc"),
        ('{{ .w | pattern "^[$]+$" | squote }}', {"w": "$$"}, "'$$'"),
        ("{{ .w | minlength 2 | maxlength 3 }}", {"w": "abc"}, "abc"),
        ("{{ .w | minlength 2 }}", {"w": ""}, ""),
        ("{{ .w | maxlength 3 | squote }}", {"w": "äöü"}, "'äöü'"),
        ('{{ .w | description "d" | placeholder "p" | type "number" | order 1 }}', {"w": "5"}, "5"),
        (
            "a={{ .a | squote }}, b={{ .b | dquote }}",
            {"a": "Tony", "b": "Stark"},
            "a='Tony', b=\"Stark\"",
        ),
        ("{{ .u | encodeb64 }}", {"u": "https://api.foo.tld"}, "aHR0cHM6Ly9hcGkuZm9vLnRsZA=="),
        ("{{ .u | decodeb64 }}", {"u": "aHR0cHM6Ly9hcGkuZm9vLnRsZA=="}, "https://api.foo.tld"),
        ("{{ .u | decodeb64 }}", {"u": "aHR0cHM6Ly9h\r\ncGkuZm9vLnRsZA=="}, "https://api.foo.tld"),
        ("{{ .u | encodeb64 | decodeb64 | squote }}", {"u": "a b'c"}, "'a b'\\''c'"),
        ('[{{ .s | asenv "SECRET" }}]', {"s": "$(rm -rf /)"}, "[]"),
        ("{{ squote .a }}", {"a": "x y"}, "'x y'"),
        ('{{ quotechar "\'" .a }}', {"a": "x'y"}, "'x'\\''y'"),
        ('{{ required "m" .a | squote }}', {"a": "x y"}, "'x y'"),
        ("{{ if .on }}on{{ else }}off{{ end }}", {"on": ""}, "off"),
        ('{{ if eq .env "prod" }}careful{{ end }}', {"env": "prod"}, "careful"),
        ('{{ if and .a (ne .b "x") }}yes{{ end }}', {"a": "1", "b": "y"}, "yes"),
        ("{{ if not .a }}empty{{ end }}", {"a": ""}, "empty"),
        ("{{ if gt (len .a) 2 }}long{{ end }}", {"a": "abc"}, "long"),
        ("{{ with .a }}{{ . | squote }}{{ else }}none{{ end }}", {"a": "x y"}, "'x y'"),
        ("{{ with .a }}{{ . }}{{ else }}none{{ end }}", {"a": ""}, "none"),
        ('{{ printf "%s-%s" .a .b | squote }}', {"a": "x y", "b": "z"}, "'x y-z'"),
        ("{{ print .a 1 }}", {"a": "x"}, "x1"),
        ('{{ or .a "fallback" }}', {"a": ""}, "fallback"),
        ("{{ $x := .a | squote }}{{ $x }}{{ $x }}", {"a": "a;b"}, "'a;b''a;b'"),
        ("{{ range 2 }}{{ $.a }}{{ end }}", {"a": "z"}, "zz"),
        ("{{ .a | squote }}", {"a": "{{ .b }}"}, "'{{ .b }}'"),
        ('{{ "lit" | squote }} {{ print "author text; ok" }}', {}, "'lit' author text; ok"),
    ),
)
def test_render(text: str, params: dict[str, Any], expected: str) -> None:
    assert render(text, params) == expected


def test_asenv_env_and_hoop_wire_form() -> None:
    template = parse_runbook(
        'psql {{ .pw | required "pw" | asenv "DB_PASSWORD" }}-c {{ .q | asenv "QUERY" | squote }}',
        SH,
    )
    rendered = template.render({"pw": "s3 cr$t'", "q": "SELECT 1; -- x"})
    assert rendered == Rendered(
        "psql -c ''", {"DB_PASSWORD": "s3 cr$t'", "QUERY": "SELECT 1; -- x"}
    )
    assert rendered.hoop_env_vars() == {
        "envvar:DB_PASSWORD": "czMgY3IkdCc=",
        "envvar:QUERY": "U0VMRUNUIDE7IC0tIHg=",
    }
    assert parse_runbook("x", SH).render({}).env == {}


# --- rendering: errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "params", "message", "parameter"),
    rows(
        ("{{ .id }}", {"input_id": ""}, "the following inputs are missing [id]", None),
        (
            "{{ .c }}{{ .a }}{{ if .b }}{{ .d }}{{ end }}{{ .a }}",
            {"a": ""},
            "the following inputs are missing [c b d]",
            None,
        ),
        ('{{ .a | default "" }}', {}, "the following inputs are missing [a]", None),
        ('{{ .a | default "x" }}{{ .b }}', {}, "the following inputs are missing [b]", None),
        ("{{ .a }}", {"a": 1}, 'parameter "a": value must be a string, got number', "a"),
        ("{{ .a }}", {"a": True}, 'parameter "a": value must be a string, got boolean', "a"),
        ("{{ .a }}", {"a": None}, 'parameter "a": value must be a string, got null', "a"),
        ("{{ .a }}", {"a": ["x"]}, 'parameter "a": value must be a string, got array', "a"),
        ("{{ .a }}", {"a": {"x": 1}}, 'parameter "a": value must be a string, got object', "a"),
        (
            '{{ .id | required "id is required" }}',
            {"id": ""},
            'parameter "id": id is required',
            "id",
        ),
        ('{{ .id | required "" }}', {"id": ""}, 'parameter "id": a value is required', "id"),
        (
            '{{ .w | pattern "^[0-9]+" }}',
            {"w": "abc1234567890"},
            'parameter "w": pattern didn\'t match:^[0-9]+',
            "w",
        ),
        (
            '{{ .w | pattern "^[0-9]+$" | squote }}',
            {"w": "123\n"},
            'parameter "w": pattern didn\'t match:^[0-9]+$',
            "w",
        ),
        ('{{ .w | pattern "^a" }}', {"w": ""}, "pattern didn't match:^a", "w"),
        (
            "{{ .w | minlength 3 }}",
            {"w": "ab"},
            'parameter "w": value must be at least 3 characters long',
            "w",
        ),
        (
            "{{ .w | maxlength 2 }}",
            {"w": "abc"},
            'parameter "w": value must be at most 2 characters long',
            "w",
        ),
        (
            '{{ .p | options "basic" "pro" }}',
            {"p": "gold"},
            'parameter "p": value must be one of the options [basic pro]',
            "p",
        ),
        (
            "{{ .u | decodeb64 }}",
            {"u": "not base64!"},
            'parameter "u": value is not valid base64 (of UTF-8 text)',
            "u",
        ),
        ("{{ .u | decodeb64 }}", {"u": "/w=="}, "value is not valid base64 (of UTF-8 text)", "u"),
        (
            '{{ .s | asenv "S" }}',
            {"s": "a\x00b"},
            'parameter "s": value contains a NUL character, which an environment can\'t',
            "s",
        ),
        ("{{ .a | squote }}", {"a": "a\x00b"}, "value contains a NUL character", "a"),
        (
            "{{ range .a }}x{{ end }}",
            {"a": "abc"},
            "template execution error: line 1, col 10: at <.a>: range can't iterate over string",
            None,
        ),
    ),
)
def test_render_errors(
    text: str, params: dict[str, Any], message: str, parameter: str | None
) -> None:
    error = input_error(text, params)
    assert message in str(error)
    assert error.parameter == parameter


def test_input_error_pickles_and_missing_is_checked_after_types() -> None:
    error = input_error("{{ .a }}{{ .b }}", {"b": 5})
    assert str(error) == 'parameter "b": value must be a string, got number'
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object
    assert (str(copy), copy.parameter) == (str(error), "b")
    with pytest.raises(RunbookInputError, match="must be an object"):
        parse_runbook("x", SH).render(["a"])  # type: ignore[arg-type]


UNSAFE = (
    "value contains characters that are not safe unquoted in this runbook; "
    "quote it in the template (squote, dquote)"
)


@pytest.mark.parametrize(
    ("name", "text", "value", "message"),
    rows(
        (SH, "rm {{ .f }}", "a b", UNSAFE),
        (SH, "echo {{ .v }}", "$(id)", UNSAFE),
        (SQL, "SELECT {{ .v }}", "1; DROP TABLE t", UNSAFE),
        (PY, "x = {{ .v }}", "__import__('os')", UNSAFE),
        (GEN, "{{ .v }}", "a\nb", UNSAFE),
        (SQL, "WHERE id = {{ .v }} AND org = 1", "5--", '"--", which starts a comment'),
        (GEN, "x = {{ .v }}", "1//", '"//", which starts a comment'),
        (GEN, "x = {{ .v }}", "1--", '"--", which starts a comment'),
        (PY, "f(x, {{ .v }})", "shell=True", UNSAFE),
        (SH, '{{ .v | default "a b" }}', "", UNSAFE),
        (SH, "{{ .v | squote | decodeb64 }}", "x", "value is not valid base64"),
        (SH, "{{ .v | encodeb64 | decodeb64 }}", "$(id)", UNSAFE),
        (SH, '{{ printf "%s" (.v | encodeb64) | decodeb64 }}', "$(id)", UNSAFE),
        (SH, '{{ printf "x=%s" .v }}', "a;b", UNSAFE),
        (SH, "{{ print .v }}", "a;b", UNSAFE),
        (SH, "{{ with .v }}{{ . }}{{ end }}", "a;b", UNSAFE),
        (SH, "{{ $x := .v }}{{ $x }}", "a;b", UNSAFE),
        (SH, '{{ or .v "x" }}', "a;b", UNSAFE),
        (SH, '{{ .v | description "d" }}', "é", UNSAFE),
    ),
)
def test_unquoted_values_must_be_plain(name: str, text: str, value: str, message: str) -> None:
    error = input_error(text, {"v": value, "f": value}, name)
    assert str(error).startswith('parameter "')
    assert message in str(error)


@pytest.mark.parametrize("dialect_file", [SH, SQL, PY, GEN])
@pytest.mark.parametrize(
    "value", ["", "abc", "ABC_123", "1.5", "-n", "a,b:c/d@e%f+g", "user@example.com", "2024-01-01"]
)
def test_plain_values_pass_unquoted(dialect_file: str, value: str) -> None:
    assert render("{{ .v }}", {"v": value}, dialect_file) == value


# --- quoting per dialect -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "value", "expected"),
    rows(
        (SH, "{{ .v | squote }}", "it's", "'it'\\''s'"),
        (SH, "{{ .v | dquote }}", 'a"b\\c$d`e', '"a\\"b\\\\c\\$d\\`e"'),
        (SH, "{{ .v | dquote }}", "hi!", '"hi"\'!\'""'),
        (SH, "{{ .v | dquote }}", "a\nb", '"a\nb"'),
        (SH, '{{ .v | quotechar "\\"" }}', "$x", '"\\$x"'),
        (GEN, "{{ .v | squote }}", "it's", "'it'\\''s'"),
        (GEN, "{{ .v | dquote }}", "$x", '"\\$x"'),
        (SQL, "{{ .v | squote }}", "O'Brien", "'O''Brien'"),
        (SQL, "{{ .v | dquote }}", 'my "table"', '"my ""table"""'),
        (SQL, '{{ .v | quotechar "`" }}', "a`b\\c", "`a``b\\c`"),
        (SQL, '{{ .v | quotechar "\'" }}', "'", "''''"),
        (
            PY,
            "{{ .v | squote }}",
            'it\'s "q" \\ \n\t\r\x00\x7f\u202e\U0001f600',
            "'it\\'s \"q\" \\\\ \\n\\t\\r\\x00\\x7f\\u202e\U0001f600'",
        ),
        (PY, "{{ .v | dquote }}", 'say "hi"', '"say \\"hi\\""'),
        (PY, '{{ .v | quotechar "\'" }}', "\u2028", "'\\u2028'"),
    ),
)
def test_quoting(name: str, text: str, value: str, expected: str) -> None:
    assert render(text, {"v": value}, name) == expected


@pytest.mark.parametrize("text", ["{{ .v | squote }}", "{{ .v | dquote }}"])
@pytest.mark.parametrize("value", ["a\\b", "\\' OR 1=1 --", "x\\"])
def test_sql_refuses_backslashes_in_quotes(text: str, value: str) -> None:
    error = input_error(text, {"v": value}, SQL)
    assert str(error).startswith('parameter "v": value contains a backslash')


# --- injection corpus, run for real ---------------------------------------------------------

CORPUS = [
    "'; DROP TABLE t; --",
    "$(touch pwned)",
    "`touch pwned`",
    '"; touch pwned; echo "',
    "'; touch pwned; echo '",
    "a'b\"c\\d",
    "line1\nline2\n",
    "{{ .x }}",
    "${HOME} $HOME !! !$ \\$ $'x'",
    "tab\there; semi | pipe & amp > gt < lt * ? [x] ~ # %s",
    "';\n.shell touch pwned\nSELECT '",
    "\\",
    "x\\",
    "\\'",
    "'",
    '"',
    "",
    "-n",
    "é ü 中文 \u202e",
    "\r\n\x1b[31m\x7f",
]
BACKSLASH_FREE = [value for value in CORPUS if "\\" not in value]
UNSAFE_CORPUS = [value for value in CORPUS if value not in ("", "-n")]


def run(argv: list[str], cwd: Path, stdin: str | None = None) -> str:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "LC_ALL": "C.UTF-8"}
    done = subprocess.run(
        argv,
        cwd=cwd,
        input=None if stdin is None else stdin.encode(),
        capture_output=True,
        env=env,
        timeout=20,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout.decode()


@pytest.mark.parametrize("quote", ["squote", "dquote"])
@pytest.mark.parametrize("value", CORPUS)
def test_shell_quoting_keeps_values_data(value: str, quote: str, tmp_path: Path) -> None:
    script = render(f"printf %s {{{{ .v | {quote} }}}}", {"v": value}, SH)
    assert run(["bash", "-c", script], tmp_path) == value
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("value", ["a!!b", "!$", "x!-1y"])
def test_shell_dquote_survives_history_expansion(value: str, tmp_path: Path) -> None:
    body = render("printf %s {{ .v | dquote }}", {"v": value}, SH)
    script = tmp_path / "h.sh"
    script.write_text(f"set -H\nset -o history\ntrue\n{body}\n")
    assert run(["bash", str(script)], tmp_path) == value


@pytest.mark.parametrize("quote", ["squote", "dquote"])
@pytest.mark.parametrize("value", CORPUS)
def test_python_quoting_keeps_values_data(value: str, quote: str, tmp_path: Path) -> None:
    script = render(f"import sys\nsys.stdout.write({{{{ .v | {quote} }}}})", {"v": value}, PY)
    assert run([sys.executable, "-I", "-S", "-c", script], tmp_path) == value
    assert not (tmp_path / "pwned").exists()


SQLITE = shutil.which("sqlite3")


@pytest.mark.skipif(SQLITE is None, reason="needs the sqlite3 command")
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT {{ .v | squote }} AS x;", "x\n{v}\n"),
        ("SELECT 1 AS {{ .v | dquote }};", "{v}\n1\n"),
        ('SELECT 1 AS {{ .v | quotechar "`" }};', "{v}\n1\n"),
    ],
    ids=["squote", "dquote", "backtick"],
)
@pytest.mark.parametrize("value", BACKSLASH_FREE)
@pytest.mark.parametrize("stdin", [False, True], ids=["argv", "stdin"])
def test_sql_quoting_keeps_values_data(
    value: str, text: str, expected: str, stdin: bool, tmp_path: Path
) -> None:
    assert SQLITE is not None
    script = render(text, {"v": value}, SQL)
    argv = [SQLITE, "-batch", "-header", ":memory:"]
    if stdin:  # as a runbook runs: dot-commands are live; the CLI reads lines, dropping \r
        out = run(argv, tmp_path, stdin=script)
        assert out == expected.format(v=value.replace("\r\n", "\n"))
    else:
        assert run([*argv, script], tmp_path) == expected.format(v=value)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("name", [SH, SQL, PY, GEN])
@pytest.mark.parametrize("value", UNSAFE_CORPUS)
def test_injection_corpus_refused_unquoted(name: str, value: str) -> None:
    error = input_error("run {{ .v }}", {"v": value}, name)
    assert str(error) == f'parameter "v": {UNSAFE}'


def test_rendering_never_reparses_values() -> None:
    template = parse_runbook("{{ .a | squote }} {{ .b | dquote }}", SH)
    text = template.render({"a": "{{ .b }}", "b": '{{ printf "%s" "x" }}'}).text
    assert text == '\'{{ .b }}\' "{{ printf \\"%s\\" \\"x\\" }}"'
    assert re.fullmatch(r"'[^']*' \"[^$`]*\"", text)


def test_template_is_reusable_and_repr() -> None:
    template: RunbookTemplate = parse_runbook('{{ .a | asenv "A" }}{{ .b | squote }}', SH)
    first = template.render({"a": "1", "b": "x"})
    second = template.render({"a": "2", "b": "y"})
    assert (first.env, second.env) == ({"A": "1"}, {"A": "2"})
    assert (first.text, second.text) == ("'x'", "'y'")
    assert repr(template) == "<RunbookTemplate x.runbook.sh (shell) ['a', 'b']>"


def test_pattern_is_linear_time() -> None:
    """RE2 answers a catastrophic-backtracking pattern at once (Python's re would not end)."""
    template = parse_runbook('{{ .x | pattern "^(a+)+$" | squote }}', SH)
    started = time.monotonic()
    with pytest.raises(RunbookInputError, match=r"pattern didn't match:\^\(a\+\)\+\$"):
        template.render({"x": "a" * 40 + "!"})
    with pytest.raises(RunbookInputError):
        template.render({"x": "a" * 100_000 + "!"})
    assert time.monotonic() - started < 1
    assert template.render({"x": "aaaa"}).text == "'aaaa'"
