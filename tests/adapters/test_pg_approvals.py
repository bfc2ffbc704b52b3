"""The approval store on real PostgreSQL: one pending request per app, one decision wins."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from bot.adapters.postgres.approvals import PostgresApprovalStore
from bot.adapters.postgres.migrations import BotSchema
from bot.core.errors import ConflictError
from bot.core.model import ApprovalStatus
from bot.core.names import AppName

APP = AppName("docspell")
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _ask(store: PostgresApprovalStore, app: AppName = APP, *, namespace: str | None = None) -> int:
    return store.request(
        app=app,
        namespace=namespace,
        requester="alice",
        platform="slack",
        expires_at=NOW + timedelta(hours=24),
        message_link="slack:C1:123.4",
    ).id


def test_a_request_is_stored_and_read_back_with_its_thread(state_dsn: str) -> None:
    store = PostgresApprovalStore(BotSchema(state_dsn))
    request_id = _ask(store, namespace="docspell")
    store.set_threads(request_id, {"slack": "99.1"})
    store.set_threads(request_id, {"mattermost": "post1"})

    request = store.get(request_id)

    assert request is not None
    assert (request.app, request.namespace, request.requester, request.status) == (
        "docspell",
        "docspell",
        "alice",
        ApprovalStatus.PENDING,
    )
    assert request.command == "/pgdb create docspell --namespace docspell"
    assert request.threads == {"slack": "99.1", "mattermost": "post1"}
    assert store.latest_for(APP) == request
    assert store.pending() == [request]
    assert store.get(request_id + 1000) is None


def test_one_pending_request_per_app(state_dsn: str) -> None:
    store = PostgresApprovalStore(BotSchema(state_dsn))
    first = _ask(store)

    with pytest.raises(ConflictError, match="already waiting for approval"):
        _ask(store)

    store.decide(first, status=ApprovalStatus.DENIED, by="bob", reason="no", at=NOW)
    second = _ask(store)  # decided: a new one may be asked
    assert second != first
    assert [r.id for r in store.pending()] == [second]


def test_two_operators_deciding_at_once_one_wins(state_dsn: str) -> None:
    store = PostgresApprovalStore(BotSchema(state_dsn))
    request_id = _ask(store)
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def decide(who: str, status: ApprovalStatus) -> None:
        mine = PostgresApprovalStore(BotSchema(state_dsn))
        barrier.wait()
        results[who] = mine.decide(request_id, status=status, by=who, at=NOW)

    threads = [
        threading.Thread(target=decide, args=("bob", ApprovalStatus.APPROVED)),
        threading.Thread(target=decide, args=("carol", ApprovalStatus.DENIED)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    winners = [who for who, result in results.items() if result is not None]
    assert len(winners) == 1
    final = store.get(request_id)
    assert final is not None and final.decided_by == winners[0]
    assert final.status is (
        ApprovalStatus.APPROVED if winners[0] == "bob" else ApprovalStatus.DENIED
    )
