"""The sandbox's command line, environment and HOME: pure functions, row by row."""

from __future__ import annotations

import pytest

from activities.ansible import runner_env
from activities.sandbox import (
    FALLBACK_HOME,
    Mount,
    Sandbox,
    bwrap_argv,
    confined_env,
    home_for,
    outermost,
)

SANDBOX = Sandbox(
    bwrap="/usr/bin/bwrap",
    env_program="/usr/bin/env",
    system=(Mount("/usr"), Mount("/etc"), Mount("/bin", "usr/bin")),
    readonly=("/opt/venv",),
    home="/home/worker",
    hidden=("/etc/runwright", "/srv/runwright"),
)


def pairs(argv: list[str], option: str) -> list[str]:
    """The first argument after each occurrence of `option`."""
    return [argv[i + 1] for i, a in enumerate(argv) if a == option]


def test_command_line_from_start_to_end() -> None:
    """env with TERM ignored starts bwrap; the command runs under env with TERM restored."""
    argv = bwrap_argv(SANDBOX, ["bash", "x.sh"], workdir="/w/run/work", writable=["/w/run"])
    assert argv[:3] == ["/usr/bin/env", "--ignore-signal=TERM", "/usr/bin/bwrap"]
    assert argv[-5:] == ["--", "/usr/bin/env", "--default-signal=TERM", "bash", "x.sh"]
    assert argv[argv.index("--") - 2 : argv.index("--")] == ["--chdir", "/w/run/work"]
    for flag in ("--die-with-parent", "--unshare-pid"):
        assert flag in argv
    assert pairs(argv, "--cap-drop") == ["ALL"]
    assert pairs(argv, "--proc") == ["/proc"] and pairs(argv, "--dev") == ["/dev"]
    assert "--unshare-net" not in argv and "--share-net" not in argv  # the network stays


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("--ro-bind", ["/usr", "/etc", "/opt/venv", "/x/plugins"]),
        ("--symlink", ["usr/bin"]),
        ("--tmpfs", ["/tmp", "/home/worker", "/etc/runwright"]),  # /srv is not bound: absent
        ("--bind", ["/w/run"]),
    ],
)
def test_mounts(option: str, expected: list[str]) -> None:
    """What is bound where: system and Python read-only, hidden paths emptied where a bind
    would show them, the run's directory writable, nothing else."""
    argv = bwrap_argv(
        SANDBOX,
        ["true"],
        workdir="/w/run",
        writable=["/w/run", "/w/run/checkout-0"],
        readonly=["/x/plugins"],
    )
    assert pairs(argv, option) == expected


def test_mount_order_puts_the_run_over_emptied_directories() -> None:
    """Later mounts win: system, empty /tmp and HOME, read-only binds, hidden, writable."""
    argv = bwrap_argv(SANDBOX, ["true"], workdir="/w", writable=["/home/worker/run"])
    order = [argv.index(x) for x in ("/usr", "/home/worker", "/opt/venv", "/etc/runwright")]
    assert order == sorted(order)
    assert argv.index("--bind") > max(order)


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        (["/a/b", "/a", "/a/b/c"], ["/a"]),
        (["/a/", "/a"], ["/a"]),
        (["/ab", "/a"], ["/a", "/ab"]),  # a name prefix is not a parent
        ([], []),
    ],
)
def test_outermost(paths: list[str], expected: list[str]) -> None:
    assert outermost(paths) == expected


@pytest.mark.parametrize(
    ("user_home", "readonly", "expected"),
    [
        ("/root", (), "/root"),
        ("/home/runwright", ("/opt/venv",), "/home/runwright"),
        ("/root", ("/root/.pyenv/versions/3.11",), "/root"),  # Python shows over the tmpfs
        ("/", (), FALLBACK_HOME),
        ("", (), FALLBACK_HOME),
        ("relative", (), FALLBACK_HOME),
        ("/usr/local/home", (), FALLBACK_HOME),  # inside a system directory
        ("/opt/venv/home", ("/opt/venv",), FALLBACK_HOME),  # inside a read-only bind
    ],
)
def test_home_for(user_home: str, readonly: tuple[str, ...], expected: str) -> None:
    assert home_for(user_home, readonly) == expected


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ({}, {"HOME": "/h", "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}),
        (
            {"PATH": "/v/bin:/usr/bin", "LANG": "de_DE.UTF-8", "HOME": "/root", "X": "1"},
            {"HOME": "/h", "PATH": "/v/bin:/usr/bin", "LANG": "de_DE.UTF-8", "X": "1"},
        ),
    ],
)
def test_confined_env(declared: dict[str, str], expected: dict[str, str]) -> None:
    """Only what was declared, HOME always the sandbox's, PATH and LANG when missing."""
    assert confined_env(declared, home="/h") == expected


@pytest.mark.parametrize(
    ("env", "declared", "inherited", "expected"),
    [
        # what ansible-runner copied from the worker goes...
        ({"SECRET": "s", "A": "1"}, {"A": "1"}, {"SECRET": "s"}, {"A": "1"}),
        # ...what it added or changed stays...
        ({"CB": "w:runner", "AWX": "/a"}, {}, {"CB": "w"}, {"CB": "w:runner", "AWX": "/a"}),
        # ...and so does a declared value equal to the worker's.
        (
            {"PATH": "/v/bin:/bin"},
            {"PATH": "/v/bin:/bin"},
            {"PATH": "/v/bin:/bin"},
            {"PATH": "/v/bin:/bin"},
        ),
    ],
)
def test_runner_env(
    env: dict[str, str],
    declared: dict[str, str],
    inherited: dict[str, str],
    expected: dict[str, str],
) -> None:
    assert runner_env(env, declared=declared, inherited=inherited) == expected
