"""The script library: named bash scripts an operator may run without writing a command.

A `script` automation names one of these and passes its `args` as positional parameters
("$1", "$2", …): never substituted into the text, so an argument is data, not code. Each
checks that the tool it needs is installed and says so when it is not. Custom commands
(`command`) are for admins only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LibraryScript:
    """A script of the library, and what its arguments mean."""

    description: str
    usage: str
    text: str


_NEEDS = 'need() { command -v "$1" >/dev/null || { echo "$1 is not installed" >&2; exit 127; }; }\n'

SCRIPTS: dict[str, LibraryScript] = {
    "nas-backup": LibraryScript(
        "Mirror a directory to the NAS with rsync (over SSH with host:path).",
        "SOURCE DEST [RSYNC_OPTION...]",
        _NEEDS + 'need rsync\nsrc="$1"; dest="$2"; shift 2\n'
        'exec rsync -a --delete --human-readable --stats "$@" -- "$src" "$dest"\n',
    ),
    "cloud-sync": LibraryScript(
        "Sync a directory to a cloud remote with rclone.",
        "SOURCE REMOTE:PATH [RCLONE_OPTION...]",
        _NEEDS + 'need rclone\nsrc="$1"; dest="$2"; shift 2\n'
        'exec rclone sync --stats-one-line -v "$@" -- "$src" "$dest"\n',
    ),
    "disk-cleanup": LibraryScript(
        "Delete files under a directory older than N days, then vacuum the journal.",
        "DIRECTORY [DAYS] [JOURNAL_MAX_SIZE]",
        'dir="${1:-/tmp}"; days="${2:-7}"; size="${3:-500M}"\n'
        'case "$days" in (*[!0-9]*|"") echo "DAYS must be a number" >&2; exit 2;; esac\n'
        'echo "deleting files under $dir older than $days days"\n'
        'find "$dir" -xdev -type f -mtime +"$days" -print -delete\n'
        "if command -v journalctl >/dev/null; then\n"
        '  journalctl --vacuum-size="$size" || echo "journal not vacuumed" >&2\n'
        "fi\n"
        'df -h -- "$dir"\n',
    ),
    "update-check": LibraryScript(
        "List the packages that have updates (apt, dnf or apk).",
        "",
        "if command -v apt >/dev/null; then apt list --upgradable 2>/dev/null\n"
        "elif command -v dnf >/dev/null; then dnf -q check-update; [ $? -eq 100 ] && exit 0\n"
        "elif command -v apk >/dev/null; then apk version -l '<'\n"
        'else echo "no known package manager" >&2; exit 127; fi\n',
    ),
    "cert-renew": LibraryScript(
        "Renew the certificates certbot manages that are due.",
        "[CERTBOT_OPTION...]",
        _NEEDS + 'need certbot\nexec certbot renew --non-interactive "$@"\n',
    ),
    "docker-prune": LibraryScript(
        "Remove stopped containers, unused images, networks and volumes.",
        "[UNTIL (e.g. 168h)]",
        _NEEDS + 'need docker\nuntil="${1:-168h}"\n'
        'docker container prune -f --filter "until=$until"\n'
        'docker image prune -a -f --filter "until=$until"\n'
        "docker network prune -f\n"
        "docker volume prune -f\n",
    ),
}
