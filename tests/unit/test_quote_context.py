"""An action that writes a value inside a quote, comment or here-document is a parse error."""

from __future__ import annotations

import pytest

from core.runbook_templates import RunbookTemplateError, parse_runbook

SH, PY, SQL, TXT = "ops/x.runbook.sh", "py/x.runbook.py", "sql/x.runbook.sql", "x.runbook.txt"


@pytest.mark.parametrize(
    ("text", "file_name", "where"),
    [
        (
            'echo "{{ .x | squote }}"\n',
            SH,
            f'line 1, col 7: the action {{{{ .x | squote }}}} in {SH} sits inside a "…" string',
        ),
        (
            "echo '{{ .x }}'\n",
            SH,
            f"line 1, col 7: the action {{{{ .x }}}} in {SH} sits inside a '…' string",
        ),
        ("echo ok\necho $'a{{ .x | squote }}'\n", SH, "line 2, col 9: the action"),
        ("echo `echo {{ .x | squote }}`\n", SH, "inside a `…` command substitution"),
        (
            "echo hi # {{ .x | squote }}\n",
            SH,
            f"line 1, col 11: the action {{{{ .x | squote }}}} in {SH} sits inside a comment",
        ),
        (
            "cat <<EOF\nx {{ .x | squote }}\nEOF\n",
            SH,
            f"line 2, col 3: the action {{{{ .x | squote }}}} in {SH} sits inside a here-document",
        ),
        ("cat <<-'END'\n\tx\n{{ .x | squote }}\n\tEND\n", SH, "line 3, col 1"),
        ("echo \\{{ .x | squote }}\n", SH, "sits right after a backslash"),
        ('echo "{{ if .a }}{{ .x | squote }}{{ end }}"\n', SH, 'inside a "…" string'),
        ('{{ if .a }}"{{ else }}x{{ end }}{{ .x | squote }}"\n', SH, 'inside a "…" string'),
        ('echo "{{ .x | squote }}\n', SH, 'inside a "…" string'),
        (
            "print(f{{ .x | dquote }})\n",
            PY,
            "line 1, col 8: the action {{ .x | dquote }} in "
            f"{PY} sits right after the string prefix f",
        ),
        ("print(rb{{ .x | squote }})\n", PY, "right after the string prefix rb"),
        ('print("{{ .x | dquote }}")\n', PY, 'inside a Python string literal ("…")'),
        ("print(f'a {{ .x }}')\n", PY, "inside a Python string literal ('…')"),
        ('s = """\n{{ .x | dquote }}\n"""\n', PY, "line 2, col 1: the action"),
        ("SELECT '{{ .x | squote }}';\n", SQL, "inside a '…' string"),
        ('SELECT "{{ .x | dquote }}";\n', SQL, 'inside a "…" identifier'),
        ("SELECT 1; -- {{ .x | squote }}\n", SQL, "inside a -- comment"),
        ("SELECT /* {{ .x | squote }} */ 1;\n", SQL, "inside a /* */ comment"),
        ("SELECT $fn$ {{ .x | squote }} $fn$;\n", SQL, "inside a $fn$…$fn$ string"),
    ],
)
def test_misplaced_action(text: str, file_name: str, where: str) -> None:
    with pytest.raises(RunbookTemplateError) as caught:
        parse_runbook(text, file_name)
    message = str(caught.value)
    assert message.startswith("template parse error: line ")
    assert where in message
    assert file_name in message


@pytest.mark.parametrize(
    ("text", "file_name"),
    [
        ("echo {{ .x | squote }} \"ok\" 'fine'\n", SH),
        ('echo "a" {{ .x | squote }} "b" {{ .y | dquote }}\n', SH),
        ("echo 'it''s' {{ .x | squote }}\n", SH),
        ('echo "say \\"hi\\"" {{ .x | squote }}\n', SH),
        ("echo $# ${#x} a#b {{ .x | squote }}\n", SH),
        ("cat <<'EOF'\n'\"\nEOF\necho {{ .x | squote }}\n", SH),
        ("cat <<EOF\ntext\nEOF\necho {{ .x | squote }}\n", SH),
        ("cat <<< 'x' {{ .x | squote }}\n", SH),
        ('{{ .t | asenv "T" }}echo "$T"\n', SH),
        ('echo "{{ if .x }}yes{{ else }}no{{ end }}"\n', SH),
        ('echo "{{ $v := .x }}"{{ $v | squote }}\n', SH),
        ("# comment\nprint({{ .x | squote }}, 'a', \"b\")\n", PY),
        ("# {{ .x | squote }}\nprint('''a\nb''', {{ .y | dquote }})\n", PY),
        ("print(elif{{ .x }})\n", PY),
        ("print('a\\'b', {{ .x | squote }})\n", PY),
        (
            "SELECT {{ .x | squote }}, 'a''b', \"c\" FROM t; /* c */ SELECT {{ .y | squote }};\n",
            SQL,
        ),
        ("SELECT $$ a $$, {{ .x | squote }};\n", SQL),
        ('echo "{{ .x }}"\n', TXT),
    ],
)
def test_well_placed_action(text: str, file_name: str) -> None:
    parse_runbook(text, file_name)
