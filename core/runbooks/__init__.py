"""Aviator runbooks: the Markdown plan format, step states and PR rules, and planner choice.

`model` holds the plan (`Runbook`, `Step`, `Section`; standard library only, so workflows
can carry it), `format` parses and validates the Markdown, `status` holds the rules the
runbook workflow and the API apply to step states, and `planners` picks where a plan comes
from. Nothing here does I/O: `activities.planning` reads files and asks the model.
"""
