"""Durations (`PGDB_GRACE`, `PGDB_ALERT_REPEAT`, `/pgdb silence`) and schedules."""

from __future__ import annotations

import pytest

from bot.core.durations import format_duration, parse_duration, parse_schedule


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("2d", 172800),
        ("1w", 604800),
        ("300", 300),
        ("1.5h", 5400),
        (" 10m ", 600),
        ("5 m", 300),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "ten", "5 minutes", "5M", "1h30m", "-5m", "m", "5x", "1e3", "P1D"]
)
def test_non_durations_are_refused_with_examples(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration: use 30s, 5m, 1h"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["0", "0s", "0.0h"])
def test_zero_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="longer than zero"):
        parse_duration(text)


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600)])
def test_schedule_as_duration_is_seconds(text: str, seconds: float) -> None:
    assert parse_schedule(text) == seconds


def test_schedule_in_plain_seconds() -> None:
    assert parse_schedule("300") == 300


@pytest.mark.parametrize(
    ("text", "cron"),
    [
        ("*/5 * * * *", "*/5 * * * *"),
        ("0 3 * * mon-fri", "0 3 * * mon-fri"),
        ("0,30  8-18 * * *", "0,30 8-18 * * *"),  # extra spaces are collapsed
    ],
)
def test_schedule_as_cron_is_the_expression(text: str, cron: str) -> None:
    assert parse_schedule(text) == cron


@pytest.mark.parametrize("text", ["every day", "* * * *", "* * * * * *", "", "5 minutes"])
def test_schedule_refusal_names_both_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"neither a duration .* nor a 5-field cron expression"):
        parse_schedule(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (30, "30s"),
        (90, "90s"),
        (300, "5m"),
        (3600, "1h"),
        (5400, "90m"),
        (86400, "1d"),
        (86400 * 3, "3d"),
        (0, "0s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["30s", "5m", "1h", "2d", "90m"])
def test_format_round_trips(text: str) -> None:
    assert format_duration(parse_duration(text)) == text
