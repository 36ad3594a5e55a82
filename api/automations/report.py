"""The `notify` autonomy's report: a final `notify` action telling the automation's channels
what ran and how it ended, in NOBA's words (`done`, `failed`, `timeout`, `cancelled`).

The engine gives a final action the run's status so far as `.outcome` (a canonical status);
the message is a Go template built here that turns it into the automation's word. The
automation's name is written into the template as a quoted string, so text in a name is never
read as a template.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.gotemplate_lexer import go_quote
from core.statuses import TERMINAL_RUN_STATUSES, automation_run_status
from workflows.contracts import OUTCOME_KEY, ActionSpec

REPORT_ACTION = "notify"


def outcome_word() -> str:
    """A template printing the automation's word for `.outcome`, a status a run ends with
    (any other status printed as it is)."""
    words: dict[str, list[str]] = {}
    for status in sorted(TERMINAL_RUN_STATUSES):
        words.setdefault(automation_run_status(status), []).append(str(status))
    branches = [
        f"{{{{ {'if' if i == 0 else 'else if'} eq .{OUTCOME_KEY} "
        + " ".join(go_quote(s) for s in statuses)
        + f" }}}}{word}"
        for i, (word, statuses) in enumerate(words.items())
    ]
    return "".join(branches) + f"{{{{ else }}}}{{{{ .{OUTCOME_KEY} }}}}{{{{ end }}}}"


def report_action(
    name: str, public_id: str, trigger: str, channel_refs: Sequence[str]
) -> ActionSpec:
    """The action that reports a run of automation `name` (`public_id`), started by a
    `trigger` trigger, to the channels stored under `channel_refs`; it runs whatever became of
    the automation's own actions."""
    quoted = f"{{{{ {go_quote(name)} }}}}"
    word = outcome_word()
    return ActionSpec(
        name=REPORT_ACTION,
        kind="notify",
        spec={
            "urls_ref": list(channel_refs),
            "title": f"{quoted}: {word}",
            "body": f"Automation {quoted} ({public_id}) ran on a {trigger} trigger: {word}.",
        },
        condition="always()",
        final=True,
    )
