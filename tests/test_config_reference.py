"""docs/configuration.md is what the settings models say: every setting documented, none
stale. It is generated; these tests fail when someone changes one without the other."""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.config import Settings
from bot.config_reference import (
    REGENERATE,
    SECTIONS,
    Group,
    Section,
    env_var,
    render,
    render_section,
    undocumented,
    yaml_key,
)

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "configuration.md"


def test_docs_configuration_md_is_the_generated_reference() -> None:
    expected = render()
    found = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
    if found != expected:
        diff = "".join(
            difflib.unified_diff(
                found.splitlines(keepends=True),
                expected.splitlines(keepends=True),
                "docs/configuration.md",
                "generated",
                n=1,
            )
        )
        raise AssertionError(
            f"docs/configuration.md differs from the settings models: regenerate it with\n"
            f"    {REGENERATE}\n(from the repository root), then commit it.\n{diff[:4000]}"
        )


def test_every_setting_has_a_description() -> None:
    missing = undocumented()
    assert not missing, (
        f"settings without a description: {', '.join(missing)}. Add "
        f"Field(..., description=...) in bot/config.py, then run `{REGENERATE}`"
    )


def test_every_environment_variable_is_in_the_page() -> None:
    page = PAGE.read_text(encoding="utf-8")
    for name in Settings.model_fields:
        assert f"| `PGDB_{name.upper()}` |" in page, f"PGDB_{name.upper()} is not documented"
    assert "| `PGDB_REQUESTERS` | `*` |" in page  # a default from a factory
    assert "| `PGDB_HTTP_PORT` | `8080` |" in page


def test_the_module_prints_the_page() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "bot.config_reference"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert printed.stdout == render()


class _Demo(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_")

    dsn: str | None = Field(default=None, description="where | it is")
    tags: list[str] = Field(default_factory=lambda: ["a", "b"], description="tags")
    flag: bool = Field(default=False, description="a switch")
    extra: int = 3


class _Environment(BaseModel):
    pg_dsn: str = Field(description="the DSN")
    require_approval: bool = Field(default=True, alias="requireApproval", description="x")


def test_a_section_renders_any_model_with_its_names_and_defaults() -> None:
    section = Section(
        title="Demo",
        intro="intro",
        model=_Demo,
        naming=env_var,
        column="variable",
        groups=(Group(title="Where", fields=("dsn",)),),
        secrets=frozenset({"dsn"}),
    )
    text = render_section(section)
    assert "### Where" in text
    assert "| `DEMO_DSN` | unset | where \\| it is *Secret.* |" in text
    assert "### Other" in text  # the fields no group names are not lost
    assert "| `DEMO_TAGS` | `a,b` | tags |" in text
    assert "| `DEMO_FLAG` | `false` | a switch |" in text
    assert "| `DEMO_EXTRA` | `3` |  |" in text
    assert undocumented([section]) == ["_Demo.extra"]


def test_a_yaml_model_is_one_more_section() -> None:
    section = Section(
        title="Environments file", intro="", model=_Environment, naming=yaml_key, column="key"
    )
    text = render([*SECTIONS, section])
    assert "## Environments file" in text
    assert "| key | default | what |" in text
    assert "| `pg_dsn` | required | the DSN |" in text
    assert "| `requireApproval` | `true` | x |" in text
