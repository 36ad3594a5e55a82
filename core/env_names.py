"""Environment variable names a caller may not set for a runbook's program.

Two families are refused, whoever names them (a request's `env_vars`, a template's `asenv`):

* variables that make programs load or run code of the caller's choosing (``PATH``,
  ``LD_PRELOAD``, ``BASH_ENV``, ``PYTHONSTARTUP``, ``GIT_SSH_COMMAND``, ``HOME`` which
  points clients at their rc files, ...);
* database client variables (``PG*``, ``MYSQL*``, ...): they decide where a client connects
  and with which credentials, so only the connection sets them. ``PGHOSTADDR`` from a caller
  would send the connection's ``PGPASSWORD`` to a server of the caller's choosing.

Names are compared without regard to case, as some platforms and programs do.
"""

from __future__ import annotations

import re

VALID_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

RUNS_CODE = "would let the caller change how programs run"
CLIENT_OWNED = "belongs to the database client: only the connection sets it"

_CODE_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "IFS",
        "ENV",
        "BASH_ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "PROMPT_COMMAND",
        "CDPATH",
        "GLOBIGNORE",
        "ZDOTDIR",
        "PERL5OPT",
        "PERL5LIB",
        "PERLLIB",
        "RUBYOPT",
        "RUBYLIB",
        "NODE_OPTIONS",
        "NODE_PATH",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        "GCONV_PATH",
        "PAGER",
        "EDITOR",
        "VISUAL",
        "SSH_ASKPASS",
        "TMPDIR",
        "XDG_CONFIG_HOME",
    }
)
_CODE_PREFIXES = ("LD_", "DYLD_", "BASH_FUNC_", "GIT_", "PYTHON")
# Prefixes of the variables database clients read (libpq and psql; MySQL and MariaDB
# clients; sqlite3; sqlcmd; the mongo shell).
CLIENT_PREFIXES = ("PG", "PSQL", "MYSQL", "LIBMYSQL", "MARIADB", "SQLITE", "SQLCMD", "MONGO")


def is_client_variable(name: str) -> bool:
    """Whether `name` is read by a database client (``PGHOST``, ``MYSQL_PWD``, ...)."""
    return name.upper().startswith(CLIENT_PREFIXES)


def refused_env_name(name: str) -> str | None:
    """Why a caller may not set the variable `name`, or None when it may."""
    upper = name.upper()
    if upper in _CODE_NAMES or upper.startswith(_CODE_PREFIXES):
        return RUNS_CODE
    if is_client_variable(upper):
        return CLIENT_OWNED
    return None
