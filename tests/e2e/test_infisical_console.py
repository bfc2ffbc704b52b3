"""End to end with Infisical as the secret store: the console chat, a real PostgreSQL, and the
fake Infisical on loopback (the real SDK talks to it over HTTP)."""

from __future__ import annotations

from tests.fixtures.bot import BotEnv, one_account
from tests.fixtures.infisical import (
    CLIENT_ID,
    CLIENT_SECRET,
    FULL_ACCESS,
    FakeInfisical,
    closed_url,
)

pytestmark = one_account()  # Infisical's cases: tests/fixtures/bot.py

PATH = "/postgresql/docspell"


def infisical_env(fake_url: str, *, project: str = "vixens", env: str = "dev") -> dict[str, str]:
    return {
        "PGDB_INFISICAL_URL": fake_url,
        "PGDB_INFISICAL_CLIENT_ID": CLIENT_ID,
        "PGDB_INFISICAL_CLIENT_SECRET": CLIENT_SECRET,
        "PGDB_INFISICAL_PROJECT": project,
        "PGDB_ENV": env,
    }


def test_create_stores_the_credentials_in_infisical_and_a_rerun_keeps_them(
    bot_env: BotEnv, infisical: FakeInfisical
) -> None:
    env = infisical_env(infisical.url)

    first = bot_env.console("/pgdb create docspell", **env)

    assert first.returncode == 0, first.stderr
    assert "Onboarded `docspell`" in first.stdout, first.stdout
    assert f"{PATH} (env dev, Infisical project vixens)" in first.stdout
    assert infisical.value("vixens", "dev", PATH, "username") == "docspell"
    assert infisical.value("vixens", "dev", PATH, "database") == "docspell"
    password = infisical.value("vixens", "dev", PATH, "password")
    assert password is not None and len(password) >= 32
    assert bot_env.can_login("docspell", password)
    assert not any(bot_env.secrets_dir.iterdir())  # the file store is not used
    writes_before = len([c for c in infisical.calls if c.method != "GET"])

    second = bot_env.console("/pgdb create docspell", "/pgdb status docspell", **env)

    assert second.returncode == 0, second.stderr
    assert "reused the password" in second.stdout
    assert infisical.value("vixens", "dev", PATH, "password") == password
    assert infisical.version("vixens", "dev", PATH, "password") == 1
    writes = [f"{c.method} {c.path}" for c in infisical.calls if c.method != "GET"]
    assert writes[writes_before:] == ["POST /api/v1/auth/universal-auth/login"]
    assert "✅ credentials stored" in second.stdout and "Infisical secret store" in second.stdout
    assert not any(bot_env.secrets_dir.iterdir())
    for out in (first, second):  # the bot logs at DEBUG here, urllib3 included
        assert password not in out.stdout + out.stderr
        assert CLIENT_SECRET not in out.stdout + out.stderr


def test_the_configured_project_and_environment_are_used(
    bot_env: BotEnv, infisical: FakeInfisical
) -> None:
    infisical.add_project("platform", environments=("staging", "prod"))
    infisical.set_grants(CLIENT_ID, "platform", FULL_ACCESS)

    out = bot_env.console(
        "/pgdb create docspell", **infisical_env(infisical.url, project="platform", env="staging")
    )

    assert "Onboarded `docspell`" in out.stdout, out.stdout
    password = infisical.value("platform", "staging", PATH, "password")
    assert password is not None and bot_env.can_login("docspell", password)
    assert infisical.value("vixens", "dev", PATH, "password") is None


def test_infisical_down_stops_before_anything_else_and_says_why(bot_env: BotEnv) -> None:
    out = bot_env.console("/pgdb create docspell", **infisical_env(closed_url()))

    assert out.returncode == 0
    assert "Credentials in the secret store" in out.stdout
    assert "connection refused" in out.stdout and "PGDB_INFISICAL_URL" in out.stdout
    assert bot_env.sql("SELECT 1 FROM pg_roles WHERE rolname = 'docspell'") == []
    assert bot_env.git("for-each-ref", "refs/heads/pgdb/") == ""
    assert CLIENT_SECRET not in out.stdout + out.stderr
