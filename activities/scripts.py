"""The `exec` action: the author's bash script, run with values passed as data."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activities.event_log import EventLog
from activities.processes import run_process
from activities.sandbox import Sandbox, wrap
from core.events import EventLevel, EventRecord

# A result keeps this much of each stream; the whole of it goes to the /dev/stdout artifact.
RESULT_OUTPUT_CAP = 256 * 1024
ERROR_SNIPPET = 500


@dataclass(frozen=True)
class ScriptOutcome:
    """How the script ended, with its captured (redacted) output."""

    exit_code: int | None
    stdout: str
    stderr: str
    error: str | None


def param_env(params: Mapping[str, Any]) -> dict[str, str]:
    """Parameters as environment variables: `replicas` → `PARAM_REPLICAS`."""
    env: dict[str, str] = {}
    for name, value in params.items():
        key = "PARAM_" + re.sub(r"[^A-Za-z0-9]", "_", str(name)).upper()
        env[key] = "" if value is None else str(value)
    return env


def base_env() -> dict[str, str]:
    """The environment every action starts from: PATH (with this Python's bin) and locale."""
    path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "LC_ALL", "TZ", "USER")}
    env["PATH"] = f"{bin_dir}:{path}"
    return env


def run_script(
    script: str,
    *,
    workdir: Path,
    env: Mapping[str, str],
    out_dir: Path,
    index: int,
    events: EventLog,
    timeout_seconds: float | None,
    cancelled: Callable[[], bool],
    stop_requested: Callable[[], bool] = lambda: False,
    sandbox: Sandbox | None = None,
    writable: Iterable[Path] = (),
    readonly: Iterable[Path] = (),
) -> ScriptOutcome:
    """Run `script` with bash in `workdir`; output streams to events and to out_dir files.

    With a `sandbox`, bash runs inside it: `workdir`, `out_dir` and `writable` are all it can
    write, `readonly` is shown besides the system, and `env` is all it gets.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    script_path = out_dir / f"{index}.sh"
    script_path.write_text(script)
    script_path.chmod(0o600)
    stdout_path, stderr_path = out_dir / f"{index}.stdout", out_dir / f"{index}.stderr"
    with stdout_path.open("w") as out, stderr_path.open("w") as err:

        def sink(stream: str, handle: Any) -> Callable[[str], None]:
            def write(line: str) -> None:
                clean = events.redactor.redact(line)
                handle.write(clean)
                events.emit(
                    EventRecord(
                        event_type=stream, message=clean.rstrip("\n"), level=EventLevel.DEBUG
                    )
                )

            return write

        argv, launch_env = wrap(
            sandbox,
            ["bash", str(script_path)],
            env,
            workdir=workdir,
            writable=[workdir, out_dir, *writable],
            readonly=readonly,
        )
        outcome = run_process(
            argv,
            cwd=workdir,
            env=launch_env,
            on_stdout=sink("stdout", out),
            on_stderr=sink("stderr", err),
            timeout_seconds=timeout_seconds,
            cancelled=cancelled,
            stop_requested=stop_requested,
        )
    stdout = _tail(stdout_path).strip()
    stderr = _tail(stderr_path).strip()
    error = outcome.interruption(timeout_seconds)
    if error is None and outcome.exit_code != 0:
        error = (
            f"non-zero exit-code: {outcome.exit_code}. "
            f"(stdout={stdout[-ERROR_SNIPPET:]}) (stderr={stderr[-ERROR_SNIPPET:]})"
        )
    return ScriptOutcome(exit_code=outcome.exit_code, stdout=stdout, stderr=stderr, error=error)


def _tail(path: Path) -> str:
    """The last RESULT_OUTPUT_CAP bytes of a file, decoded."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        if size > RESULT_OUTPUT_CAP:
            handle.seek(size - RESULT_OUTPUT_CAP)
        return handle.read().decode("utf-8", errors="replace")
