"""Durations (``30s``, ``5m``, ``1h``, ``2d`` or plain seconds) and schedules (or 5-field cron)."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([smhdw]?)\s*$")  # ASCII digits
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (lowest, highest, names) of minute, hour, day of month, month, day of week
_CRON_FIELDS: tuple[tuple[int, int, tuple[str, ...]], ...] = (
    (0, 59, ()),
    (0, 23, ()),
    (1, 31, ()),
    (1, 12, _MONTHS),
    (0, 7, _DAYS),
)


def _cron_value(text: str, low: int, high: int, names: tuple[str, ...]) -> int | None:
    if text.lower() in names:
        return names.index(text.lower()) + low
    if text.isascii() and text.isdigit() and low <= int(text) <= high:
        return int(text)
    return None


def _cron_field_ok(field: str, low: int, high: int, names: tuple[str, ...]) -> bool:
    """``*``, ``a``, ``a-b``, each with an optional ``/step``, comma-separated."""
    for item in field.split(","):
        base, _, step = item.partition("/")
        if step and not (step.isascii() and step.isdigit() and int(step) > 0):
            return False
        if base == "*":
            continue
        first, _, last = base.partition("-")
        start = _cron_value(first, low, high, names)
        end = _cron_value(last, low, high, names) if last else start
        if start is None or end is None or start > end:
            return False
    return True


def is_cron(text: str) -> bool:
    fields = (text or "").split()
    return len(fields) == 5 and all(
        _cron_field_ok(f, low, high, names)
        for f, (low, high, names) in zip(fields, _CRON_FIELDS, strict=True)
    )


def parse_duration(text: str, *, zero_allowed: bool = False) -> float:
    """Seconds in ``text``; ValueError with an example when it is not a duration.
    ``zero_allowed``: ``0`` means "off" (a grace period that is turned off)."""
    match = _DURATION.fullmatch(text or "")
    if not match:
        raise ValueError(f"{text!r} is not a duration: use 30s, 5m, 1h, 2d or plain seconds")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 0 or (seconds == 0 and not zero_allowed):
        raise ValueError(f"{text!r} must be longer than zero")
    return seconds


def parse_schedule(text: str) -> float | str:
    """Seconds for a duration, or the cron expression itself when it has five fields."""
    if is_cron(text):
        return " ".join(text.split())
    try:
        return parse_duration(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (30s, 5m, 1h) nor a 5-field cron expression"
        ) from None


def format_duration(seconds: float) -> str:
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
