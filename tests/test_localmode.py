"""Which PostgreSQL local mode tries, in the order the README gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from bot.localmode import USUAL_SUPERUSER, candidate_dsns, choose_server


def test_the_usual_local_superuser_is_tried_before_libpqs_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PGHOST", raising=False)
    monkeypatch.delenv("PGPORT", raising=False)

    tried = candidate_dsns()

    assert [c.dsn for c in tried] == [
        "postgresql://postgres@127.0.0.1:5432/postgres",
        "dbname=postgres",
    ]
    assert [c.label for c in tried] == ["postgres@127.0.0.1:5432", "libpq's defaults"]


@pytest.mark.parametrize("variable", ["PGHOST", "PGPORT"])
def test_pghost_or_pgport_says_where_the_server_is(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "5433" if variable == "PGPORT" else "db.local")

    assert [c.label for c in candidate_dsns()] == ["libpq's defaults"]


@pytest.mark.server
def test_the_note_names_the_server_picked_and_how(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pg_superuser_dsn: str
) -> None:
    """Read-only: finding a server connects and asks whether it may create roles, nothing more."""
    if conninfo_to_dict(pg_superuser_dsn) != conninfo_to_dict(USUAL_SUPERUSER):
        pytest.skip("the test server is not where local mode looks first (PGDB_TEST_DSN)")
    monkeypatch.delenv("PGHOST", raising=False)
    monkeypatch.delenv("PGPORT", raising=False)
    notes: list[str] = []

    dsn = choose_server(tmp_path, notes, ledger=None)

    assert dsn == USUAL_SUPERUSER
    assert notes == ["PostgreSQL: postgres@127.0.0.1:5432 (the first server local mode tries)"]
