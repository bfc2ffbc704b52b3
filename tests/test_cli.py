"""The ``pgdb-bot`` command's own options, through the real command."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

pytestmark = pytest.mark.server  # the bot as a subprocess


def pgdb_bot(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PGDB_", "PG"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env={**clean, **env},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


def test_version_prints_the_installed_version(tmp_path: Path) -> None:
    out = pgdb_bot("--version", cwd=tmp_path)

    assert out.returncode == 0, out.stderr
    assert out.stdout == f"pgdb-bot {version('pgdb-bot')}\n"


def test_reset_refuses_a_configuration_it_could_not_undo(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    (state_dir / "gitops").mkdir(parents=True)

    out = pgdb_bot(
        "console",
        "--reset",
        "--yes",
        cwd=tmp_path,
        PGDB_STATE_DIR=str(state_dir),
        PGDB_PG_DSN="postgresql://nobody@127.0.0.1:1/postgres",
        PGDB_GITHUB_REPO="acme/gitops",
        PGDB_GITHUB_TOKEN="ghp_not_used_here_000000000000",
    )

    assert out.returncode == 2
    assert "GitHub or Infisical" in out.stderr and "/pgdb offboard" in out.stderr
    assert (state_dir / "gitops").exists()


def test_yes_without_reset_is_refused(tmp_path: Path) -> None:
    out = pgdb_bot("console", "--yes", cwd=tmp_path, PGDB_STATE_DIR=str(tmp_path / "state"))

    assert out.returncode == 2
    assert "--yes confirms --reset" in out.stderr


def test_an_unreadable_ledger_is_reported_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "local-mode.json").write_text('{"servers": []}')

    out = pgdb_bot("console", "--reset", "--yes", cwd=tmp_path, PGDB_STATE_DIR=str(tmp_path))

    assert out.returncode == 2
    assert "local-mode.json (local mode's record of what it created)" in out.stderr
    assert "Traceback" not in out.stderr
