"""The image is built from the lock: the Dockerfile installs with constraints.txt, which pins
every runtime dependency of pyproject.toml and what they pull in; the wheel it builds installs
into a clean venv, carries the CRD schemas, and starts (the image itself cannot be built on
these machines: no Docker engine)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = "constraints.txt"


def pins() -> dict[str, str]:
    """constraints.txt: canonical name -> the exact version (a line that is not ``==`` fails)."""
    found: dict[str, str] = {}
    for line in (ROOT / LOCK).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep and re.fullmatch(r"[\w.+!-]+", version), f"{LOCK}: {line!r} is not pinned"
        found[canonicalize_name(name)] = version
    return found


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in project["dependencies"]]


def closure(requirements: list[Requirement]) -> dict[str, set[str]]:
    """Every distribution the runtime requirements pull in on this platform (canonical name ->
    the extras asked of it), from the installed packages' metadata."""
    found: dict[str, set[str]] = {}
    todo = [(r, "") for r in requirements]
    while todo:
        requirement, parent_extra = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate(
            {"extra": parent_extra}
        ):
            continue
        name = canonicalize_name(requirement.name)
        extras = found.get(name)
        if extras is not None and requirement.extras <= extras:
            continue
        found[name] = (extras or set()) | requirement.extras
        try:
            requires = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            pytest.fail(f"{requirement.name} is not installed: run `make` (it installs the lock)")
        for text in requires:
            for extra in ["", *sorted(found[name])]:
                todo.append((Requirement(text), extra))
    return found


def test_the_lock_pins_every_runtime_dependency_and_what_it_pulls_in() -> None:
    pinned = pins()
    needed = closure(runtime_requirements())
    missing = sorted(set(needed) - set(pinned))
    assert not missing, f"not pinned in {LOCK} (run `make constraints`): {missing}"
    for requirement in runtime_requirements():
        version = pinned[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{LOCK} pins {requirement.name}=={version}, outside pyproject.toml's {requirement}"
        )
    # what `make` installed from the lock is what the tests ran against
    for name in needed:
        assert metadata.version(name) == pinned[name], name


def docker_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def pip_commands() -> list[list[str]]:
    commands = []
    for instruction, args in docker_instructions():
        if instruction != "RUN":
            continue
        for command in re.split(r"&&|;", args):
            words = shlex.split(command)
            if words[:1] == ["pip"] or words[:3] == ["python", "-m", "pip"]:
                commands.append(words[words.index("pip") + 1 :])
    return commands


def test_the_image_installs_exactly_the_lock() -> None:
    installs = [c for c in pip_commands() if c[:1] in (["install"], ["wheel"])]
    assert installs, "the Dockerfile installs nothing with pip"
    copied = " ".join(a for i, a in docker_instructions() if i == "COPY")
    for command in installs:
        offline = "--no-index" in command
        constraints = [command[i + 1] for i, w in enumerate(command) if w in ("-c", "--constraint")]
        # from the network only with the lock; offline only the wheels stage one built with it
        assert offline or constraints == [LOCK], f"pip {' '.join(command)} is not pinned by {LOCK}"
        if not offline:
            assert LOCK in copied.split()
            named = [w for w in command[1:] if not w.startswith("-") and w not in (LOCK, "/wheels")]
            assert named == ["."], f"pip {' '.join(command)} names packages besides the project"


@pytest.mark.server  # builds a wheel, a venv, and starts the bot
@pytest.mark.slow
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
    # no pip of its own (ensurepip costs 3 s of CPU): this interpreter's pip installs into it
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, env=env)
    pinned = str(ROOT / "constraints.txt")  # the versions the Dockerfile installs
    subprocess.run(
        # not byte-compiled: that only costs time here
        [
            *(sys.executable, "-m", "pip", "--python", str(venv / "bin/python")),
            *("install", "-q", "--no-compile", "-c", pinned, str(wheel)),
        ],
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
