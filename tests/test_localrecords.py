"""Local mode's ledger of what it created: what ``console --reset`` goes by."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.localrecords import Ledger, LedgerError, ServerRecord, describe_server

SERVER = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


def test_records_accumulate_per_server_and_a_reset_keeps_only_what_is_left(
    tmp_path: Path,
) -> None:
    ledger = Ledger(tmp_path / "state")
    ledger.record_schema(SERVER, name="pgdb_bot", oid=100)
    ledger.record_role(SERVER, name="docspell", oid=200)
    ledger.record_role(SERVER, name="paperless", oid=201)
    ledger.mark_private("host=127.0.0.1 port=54329 user=postgres dbname=postgres")

    shared, private = sorted(ledger.servers(), key=lambda r: r.private)

    assert shared == ServerRecord(
        server=SERVER,
        schema="pgdb_bot",
        schema_oid=100,
        roles={"docspell": 200, "paperless": 201},
    )
    assert private.private and private.empty
    assert (ledger.path.stat().st_mode & 0o777) == 0o600

    ledger.replace([ServerRecord(server=SERVER, roles={"paperless": 201})])
    assert ledger.servers() == [ServerRecord(server=SERVER, roles={"paperless": 201})]
    ledger.replace([])
    assert not ledger.path.exists()


def test_an_unreadable_ledger_says_which_file_and_what_to_do(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.path.write_text("{not json")

    with pytest.raises(LedgerError, match=r"local-mode\.json .* restore it, or delete it"):
        ledger.servers()


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        (
            "postgresql://postgres:s3cret@127.0.0.1:5432/postgres",
            "postgres@127.0.0.1:5432/postgres",
        ),
        (
            "dbname=pgdb user=bot password=s3cret host=/run/postgresql",
            "bot@/run/postgresql:5432/pgdb",
        ),
    ],
)
def test_a_server_is_described_without_its_password(dsn: str, shown: str) -> None:
    assert describe_server(dsn) == shown
