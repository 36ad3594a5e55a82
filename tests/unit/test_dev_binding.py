"""Dev mode serves this machine only: a non-loopback API host is refused at start."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.settings import Settings, generate_key, is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.168.1.10", False),
        ("10.0.0.1", False),
        ("example.com", False),
        ("localhost.example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    """Only loopback literals and the name `localhost` count as this machine."""
    assert is_loopback(host) is loopback


def test_dev_settings_refuse_a_wildcard_host(tmp_path: Path) -> None:
    """The settings themselves refuse dev mode on 0.0.0.0, naming the setting."""
    with pytest.raises(
        ValidationError, match=re.escape("RUNWRIGHT_API_HOST='0.0.0.0' is not a loopback")
    ):
        Settings(dev_mode=True, home=tmp_path, api_host="0.0.0.0")


def test_production_settings_may_bind_anywhere(tmp_path: Path) -> None:
    """Outside dev mode the operator chooses (compose binds 0.0.0.0 inside its network)."""
    settings = Settings(home=tmp_path, api_host="0.0.0.0", secret_key=generate_key())
    assert settings.api_host == "0.0.0.0"


@pytest.mark.timeout(60)
def test_runwright_dev_on_all_interfaces_stops_before_starting_anything(tmp_path: Path) -> None:
    """`runwright dev` with RUNWRIGHT_API_HOST=0.0.0.0 exits with a clear error at once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWRIGHT_")}
    env["RUNWRIGHT_API_HOST"] = "0.0.0.0"
    runwright = Path(sys.executable).parent / "runwright"
    result = subprocess.run(
        [str(runwright), "dev", "--home", str(tmp_path / "home")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert result.returncode != 0
    assert "RUNWRIGHT_API_HOST='0.0.0.0' is not a loopback address" in result.stderr
    # Nothing was started: no Temporal database, no SQLite database.
    assert not (tmp_path / "home" / "temporal.db").exists()
    assert not (tmp_path / "home" / "runwright.db").exists()
