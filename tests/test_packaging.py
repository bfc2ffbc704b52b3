"""The wheel the Dockerfile builds installs into a clean venv, carries the CRD schemas, and
starts (the image itself cannot be built on these machines: no Docker engine)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.server  # builds a wheel, a venv, and starts the bot


def test_the_wheel_installs_into_a_clean_venv_and_starts(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("pgdb_bot-*.whl"))
    venv = tmp_path / "venv"
    # Clean: no PYTHONPATH, through which the source tree (and the egg-info the wheel build
    # leaves there) would pass for an installed pgdb-bot.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGDB_") and k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env)
    pinned = str(ROOT / "constraints.txt")  # the versions the Dockerfile installs
    subprocess.run(
        # not byte-compiled: that only costs time here
        [str(venv / "bin/pip"), "install", "-q", "--no-compile", "-c", pinned, str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
        env=env,
    )
    schemas = subprocess.run(
        [
            str(venv / "bin/python"),
            "-c",
            "from bot.core.manifests.validate import load_schema;"
            "print(sorted(load_schema('postgresql.cnpg.io_v1_database.json')['properties']))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=env,
    )
    assert "spec" in schemas.stdout
    started = subprocess.run(
        [str(venv / "bin/pgdb-bot"), "run"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
        check=False,
    )
    # It starts, validates its configuration and names what is missing.
    assert started.returncode == 2
    assert "PGDB_PG_DSN" in started.stderr
