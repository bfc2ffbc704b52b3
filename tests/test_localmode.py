"""Which PostgreSQL local mode tries, in the order the README gives."""

from __future__ import annotations

import pytest

from bot.localmode import candidate_dsns


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
