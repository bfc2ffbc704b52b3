"""Guardrails end to end, through the console chat only, on the scram cluster (passwords really
checked): create gives the role and the manifest a connection limit of 20; an extension is
refused until PGDB_ALLOWED_EXTENSIONS lists it, then lands in the manifest; the app's own
connections show in ``/pgdb usage`` and ``/pgdb status`` as PostgreSQL counts them."""

from __future__ import annotations

import json
from contextlib import ExitStack

import psycopg
import pytest
import yaml
from psycopg import sql

from tests.fixtures.bot import BotEnv
from tests.fixtures.postgres import with_params

BASE = "apps/04-databases/postgresql-shared/base"
pytestmark = pytest.mark.timeout(180)


def manifest_spec(env: BotEnv, app: str) -> dict[str, object]:
    text = env.git("show", f"pgdb/{app}:{BASE}/databases/{app}.yaml")
    return dict(yaml.safe_load(text)["spec"])


def test_limits_extensions_and_usage_through_the_console(bot_env: BotEnv) -> None:
    first = bot_env.console(
        "/pgdb create docspell", "/pgdb create photos --extension vector --schema media"
    )

    assert first.returncode == 0, first.stderr
    assert bot_env.sql("SELECT rolconnlimit FROM pg_roles WHERE rolname = 'docspell'") == [(20,)]
    assert manifest_spec(bot_env, "docspell")["connectionLimit"] == 20
    assert "extension(s) `vector` not allowed" in first.stdout
    assert "PGDB_ALLOWED_EXTENSIONS allows none" in first.stdout
    assert bot_env.stored("photos") is None  # refused: nothing written anywhere
    assert bot_env.sql("SELECT 1 FROM pg_roles WHERE rolname = 'photos'") == []
    assert "pgdb/photos" not in bot_env.git("branch", "--list")

    second = bot_env.console(
        "/pgdb create photos --extension vector --schema media",
        PGDB_ALLOWED_EXTENSIONS="vector,pg_trgm",
    )

    assert second.returncode == 0, second.stderr
    spec = manifest_spec(bot_env, "photos")
    assert spec["extensions"] == [{"name": "vector", "ensure": "present"}]
    assert spec["schemas"] == [{"name": "media", "owner": "photos", "ensure": "present"}]
    assert spec["connectionLimit"] == 20

    password = bot_env.stored("docspell")
    assert password is not None
    with ExitStack() as sessions:
        with psycopg.connect(bot_env.superuser_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL('CREATE DATABASE "docspell" OWNER "docspell"'))
        dsn = with_params(
            bot_env.superuser_dsn, user="docspell", password=password, dbname="docspell"
        )
        for _ in range(17):
            sessions.enter_context(psycopg.connect(dsn, autocommit=True, connect_timeout=5))

        out = bot_env.console("/pgdb usage", "/pgdb status docspell", "/pgdb diagnose")
        report = bot_env.diagnose("--json")

    assert report.returncode == 1, report.stderr  # a warning finding
    found = {(f["kind"], f["app"]): f for f in json.loads(report.stdout)["findings"]}
    near = found[("connections_near_limit", "docspell")]
    assert near["severity"] == "warning" and "17 of its 20 connections" in near["message"]

    assert out.returncode == 0, out.stderr
    assert "Usage: 2 app(s)" in out.stdout
    assert "docspell: 17/20 connections" in out.stdout
    assert "photos: 0/20 connections · no database" in out.stdout
    assert "17 of 20 open (85 %)" in out.stdout  # status docspell
    assert "connections_near_limit" in out.stdout  # diagnose


def test_update_and_limits_propose_the_database_manifest_alone(bot_env: BotEnv) -> None:
    allowed = {"PGDB_ALLOWED_EXTENSIONS": "vector,pg_trgm"}
    created = bot_env.console("/pgdb create photos --extension vector", **allowed)
    assert created.returncode == 0, created.stderr
    bot_env.git("merge", "-q", "--ff-only", "pgdb/photos")  # the onboarding PR, merged

    refused = bot_env.console("/pgdb update photos --extension postgis", **allowed)
    assert "`postgis` not allowed" in refused.stdout, refused.stdout
    assert "pgdb-update/photos" not in bot_env.git("branch", "--list")

    updated = bot_env.console(
        "/pgdb update photos --extension pg_trgm",
        "/pgdb limits photos --connections 30 --statement-timeout 30s --yes",
        **allowed,
    )

    assert updated.returncode == 0, updated.stderr
    changed = bot_env.git("diff", "--name-only", "main...pgdb-update/photos").split()
    assert changed == [f"{BASE}/databases/photos.yaml"], updated.stdout
    text = bot_env.git("show", f"pgdb-update/photos:{BASE}/databases/photos.yaml")
    spec = yaml.safe_load(text)["spec"]
    assert [e["name"] for e in spec["extensions"]] == ["vector", "pg_trgm"]
    assert spec["connectionLimit"] == 30  # the limits change joined the open update branch
    assert bot_env.sql("SELECT rolconnlimit FROM pg_roles WHERE rolname = 'photos'") == [(30,)]
    settings = bot_env.sql(
        "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole"
        " WHERE r.rolname = 'photos' AND s.setdatabase = 0"
    )
    assert settings and "statement_timeout=30000" in str(settings[0][0])  # in ms
