"""The alert lifecycle's tests of test_alerts.py replayed on the in-memory alert store: the
same scenarios without PostgreSQL (``make test-fast``), and, run on both, proof that the fake
answers as PostgreSQL does (one open alert per fingerprint, claims won once)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.core.ports import AlertStore
from tests.fakes.alert_store import MemoryAlertStore
from tests.handlers.test_alerts import (  # noqa: F401 (collected again here, on this store)
    test_a_finding_flapping_every_pass_is_announced_once,
    test_a_platform_down_gets_the_alert_on_a_later_pass_the_other_at_once,
    test_a_restart_sends_nothing_twice,
    test_a_slow_flap_reopens_in_the_thread_and_waits_longer_each_time,
    test_an_announced_alert_resolved_under_a_silence_stays_quiet,
    test_findings_of_a_system_not_observed_are_not_resolved,
    test_info_findings_are_never_alerted,
    test_one_alert_then_reminders_then_one_resolved_in_its_thread,
    test_silence_command_by_app_or_kind_and_lifting_it,
    test_silence_refuses_bad_arguments,
    test_silenced_findings_are_not_announced_until_the_silence_ends,
    test_two_leaders_at_once_announce_each_alert_once,
    test_without_a_chat_platform_alerts_go_to_the_log,
)


@pytest.fixture
def open_store() -> Callable[[], AlertStore]:
    """Every handle reaches the same state, as every process reaches the same database."""
    shared = MemoryAlertStore()
    return lambda: shared


@pytest.fixture
def store(open_store: Callable[[], AlertStore]) -> AlertStore:
    return open_store()
