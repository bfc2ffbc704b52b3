"""The configuration reference, ``docs/configuration.md``, written from the settings models.

Every name, default and description comes from the models themselves, so the page cannot
drift from the code: ``tests/test_config_reference.py`` fails when the file differs from
:func:`render`. Regenerate it with::

    python -m bot.config_reference > docs/configuration.md

Each :class:`Section` documents one pydantic model; a new source of configuration (a YAML
file of environments, say) is one more entry in :data:`SECTIONS`.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from bot.config import SECRET_SETTINGS, Settings
from bot.environments import ConfigFile, EnvironmentConfig

REGENERATE = "python -m bot.config_reference > docs/configuration.md"

Naming = Callable[[type[BaseModel], str, FieldInfo], str]


def env_var(model: type[BaseModel], name: str, field: FieldInfo) -> str:
    """The environment variable a ``BaseSettings`` field is read from (prefix + NAME)."""
    if isinstance(field.validation_alias, str):
        return field.validation_alias
    prefix = str(model.model_config.get("env_prefix", ""))
    return f"{prefix}{name}".upper()


def yaml_key(model: type[BaseModel], name: str, field: FieldInfo) -> str:
    """The key a field is written under in a YAML (or JSON) file: its alias, else its name."""
    return field.alias or name


@dataclass(frozen=True, kw_only=True)
class Group:
    """A table of related fields: those named in ``fields``; a name ending in ``*`` is a
    prefix. A field matched by no group lands in the section's last table, "Other"."""

    title: str
    fields: tuple[str, ...]
    intro: str = ""

    def matches(self, name: str) -> bool:
        return any(
            name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern
            for pattern in self.fields
        )


@dataclass(frozen=True, kw_only=True)
class Section:
    """One pydantic model, documented: how its fields are written (``naming``), the column
    header for that, and optional groups."""

    title: str
    intro: str
    model: type[BaseModel]
    naming: Naming
    column: str
    groups: tuple[Group, ...] = ()
    secrets: frozenset[str] = frozenset()


SETTINGS_GROUPS = (
    Group(
        title="PostgreSQL and the bot's own state",
        fields=("pg_dsn", "state_dsn", "state_schema", "state_dir"),
        intro="The database account's SQL is in [deploying.md](deploying.md#the-database-account).",
    ),
    Group(
        title="The environment and its shared cluster",
        fields=("config", "env", "namespace", "cluster"),
    ),
    Group(
        title="GitOps repository: a local git repository or GitHub",
        fields=("gitops_*", "github_*", "pr_stale_after"),
        intro="GitHub is set up as in [deploying.md](deploying.md#github).",
    ),
    Group(
        title="Secret store (files or Infisical) and the manifests' InfisicalSecret",
        fields=("secrets_*", "infisical_*"),
        intro="Infisical is set up as in [deploying.md](deploying.md#infisical).",
    ),
    Group(
        title="Chat platforms and the HTTP server",
        fields=(
            "http_port",
            "public_url",
            "action_secret",
            "ops_channel",
            "slack_*",
            "mattermost_*",
        ),
        intro="Slack and Mattermost are set up as in [deploying.md](deploying.md#slack) and "
        "[deploying.md](deploying.md#mattermost).",
    ),
    Group(
        title="Who may do what",
        fields=(
            "requesters",
            "operators",
            "deny_names",
            "secret_namespaces",
            "bot_namespace",
            "require_approval",
            "approval_ttl",
        ),
        intro="User ids are the chat platform's (Slack `U…`, Mattermost's 26-character ids); "
        "see [security.md](security.md).",
    ),
    Group(
        title="Kubernetes",
        fields=("kubernetes", "kube*", "argocd_*", "backup_max_age", "pod_name"),
        intro="The service account's RBAC is in [deploying.md](deploying.md#kubernetes).",
    ),
    Group(
        title="Diagnostics, alerts and workflows",
        fields=(
            "diagnose_interval",
            "alert_repeat",
            "grace",
            "follow_deadline",
            "ignore_roles",
            "offboard_delete_secret",
            "rotate_sync_timeout",
            "rollout",
        ),
        intro="What each finding means and how it is fixed: [operating.md](operating.md).",
    ),
    Group(title="Logs", fields=("log_*",)),
)

SECTIONS: list[Section] = [
    Section(
        title="Environment variables",
        intro="Read from the environment, or from a `.env` file in the working directory; the "
        "environment wins. Every value is validated at start: an invalid one stops the bot with "
        "a message naming the variable. Durations are written `30s`, `10m`, `24h`, `7d`. Lists "
        "are comma-separated. A *secret* value is masked in every log line; give it through a "
        "Kubernetes Secret, not a ConfigMap.",
        model=Settings,
        naming=env_var,
        column="variable",
        groups=SETTINGS_GROUPS,
        secrets=SECRET_SETTINGS,
    ),
    Section(
        title="The environments file (PGDB_CONFIG)",
        intro="A YAML file that declares several environments served by one bot. Its top-level "
        "keys are below; each environment's keys follow. Without the file, the variables above "
        "define the single environment and nothing else changes.",
        model=ConfigFile,
        naming=yaml_key,
        column="key",
    ),
    Section(
        title="One environment's keys (under `environments.<name>`)",
        intro="Names follow the app-name rules (`dev`, `staging`, `prod`). A key left out takes "
        "the variable of the same name (`secrets_env`: `PGDB_ENV`, default the environment's "
        "name). Two environments may not share a PostgreSQL server and a secret-store "
        "environment, nor a `gitops_path`: refused at start.",
        model=EnvironmentConfig,
        naming=yaml_key,
        column="key",
    ),
]

HEADER = """\
<!-- Generated from the settings models by `{command}`.
Edit the models' descriptions, not this file: tests/test_config_reference.py fails when they
differ. -->

# Configuration reference

Every setting pgdb-bot reads. With none of them set, `pgdb-bot console` runs on its own (local
mode: a local PostgreSQL, a demo GitOps repository, a file secret store); `pgdb-bot run` and
`pgdb-bot diagnose` use exactly what is configured and name what is missing.
"""

OTHER_VARIABLES = (
    (
        "`XDG_DATA_HOME`",
        "where the local mode's state directory goes when `PGDB_STATE_DIR` is unset "
        "(`$XDG_DATA_HOME/pgdb-bot`, else `~/.local/share/pgdb-bot`)",
    ),
    (
        "`KUBECONFIG`",
        "a kubeconfig, tried after `PGDB_KUBECONFIG` and the pod's service account",
    ),
    (
        "`PGHOST`, `PGPORT`, `PGUSER`, …",
        "libpq's defaults, which the local mode tries when no server answers as `postgres` on "
        "`127.0.0.1:5432`",
    ),
    ("`MALLOC_ARENA_MAX`", "glibc's arena cap; `pgdb-bot run` sets 2 arenas by itself"),
    (
        "`PGDB_TEST_DSN`",
        "the tests only: the PostgreSQL server and superuser `make test` uses (default "
        "`postgresql://postgres@127.0.0.1:5432/postgres`)",
    ),
)


def _paragraph(text: str) -> str:
    return textwrap.fill(" ".join(text.split()), width=100, break_on_hyphens=False)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _value(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, PurePath):
        value = str(value)
    if isinstance(value, list | tuple | set | frozenset):
        return f"`{','.join(str(v) for v in value)}`" if value else "empty"
    if isinstance(value, dict):
        return "empty" if not value else f"`{value}`"
    return f"`{value}`"


def default_of(field: FieldInfo) -> str:
    """The default as a reader writes it; "required" when there is none."""
    if field.default_factory is not None:
        return _value(field.default_factory())  # type: ignore[call-arg]
    if field.default is PydanticUndefined:
        return "required"
    return _value(field.default)


def _rows(section: Section, names: Sequence[str]) -> list[str]:
    fields = section.model.model_fields
    lines = [f"| {section.column} | default | what |", "|---|---|---|"]
    for name in names:
        field = fields[name]
        what = _cell(field.description or "")
        if name in section.secrets:
            what += " *Secret.*"
        written = section.naming(section.model, name, field)
        lines.append(f"| `{written}` | {_cell(default_of(field))} | {what} |")
    return lines


def render_section(section: Section) -> str:
    names = list(section.model.model_fields)
    out = [f"## {section.title}", "", _paragraph(section.intro), ""]
    placed: set[str] = set()
    tables: list[tuple[Group, list[str]]] = []
    for group in section.groups:
        members = [n for n in names if n not in placed and group.matches(n)]
        placed.update(members)
        tables.append((group, members))
    rest = [n for n in names if n not in placed]
    if rest or not section.groups:
        tables.append((Group(title="Other", fields=()), rest))
    for group, members in tables:
        if not members:
            continue
        if section.groups:
            out += [f"### {group.title}", ""]
            if group.intro:
                out += [_paragraph(group.intro), ""]
        out += [*_rows(section, members), ""]
    return "\n".join(out)


def undocumented(sections: Sequence[Section] = SECTIONS) -> list[str]:
    """The fields that have no description, as ``Model.field``."""
    return [
        f"{s.model.__name__}.{name}"
        for s in sections
        for name, field in s.model.model_fields.items()
        if not (field.description or "").strip()
    ]


def render(sections: Sequence[Section] = SECTIONS) -> str:
    """docs/configuration.md, exactly."""
    parts = [HEADER.format(command=REGENERATE)]
    parts += [render_section(s) for s in sections]
    parts += ["## Other variables it reads", "", "| variable | what |", "|---|---|"]
    parts += [f"| {name} | {what} |" for name, what in OTHER_VARIABLES]
    parts.append("")
    return "\n".join(parts)


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
