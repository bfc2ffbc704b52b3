"""The composition root: the settings slices the use cases read match the configuration."""

from __future__ import annotations

import os

import pytest

from bot.config import Settings
from bot.wiring import core_settings
from handlers.settings import CoreSettings, Duration


def defaults() -> Settings:
    return Settings(_env_file=None)


def test_the_slices_defaults_are_the_configurations_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [n for n in os.environ if n.startswith("PGDB_")]:
        monkeypatch.delenv(name)
    assert core_settings(defaults()) == CoreSettings()


def test_each_slice_carries_what_the_operator_configured() -> None:
    settings = Settings(
        _env_file=None,
        namespace="db",
        cluster="pg-main",
        gitops_path="clusters/pg/base",
        operators=["U1", "@ops"],
        require_approval="all",
        grace="0",
        backup_max_age="off",
        rotate_sync_timeout="90s",
        rollout="on",
        offboard_delete_secret=True,
    )

    core = core_settings(settings)

    assert (core.layout.namespace, core.layout.cluster, core.layout.gitops_path) == (
        "db",
        "pg-main",
        "clusters/pg/base",
    )
    assert core.access.operators == ("U1", "@ops")
    assert core.access.require_approval == "all"
    assert core.timing.grace == Duration("0", 0.0)
    assert core.timing.backup_max_age is None
    assert str(core.timing.rotate_sync_timeout) == "90s"
    assert core.timing.rotate_sync_timeout.seconds == 90.0
    assert core.options.rollout and core.options.offboard_delete_secret
