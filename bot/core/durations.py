"""Durations (``30s``, ``5m``, ``1h``, ``2d`` or plain seconds) and schedules (or 5-field cron)."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_CRON_FIELD = re.compile(r"^[\d*/,\-A-Za-z]+$")


def parse_duration(text: str) -> float:
    """Seconds in ``text``; ValueError with an example when it is not a duration."""
    match = _DURATION.fullmatch(text or "")
    if not match:
        raise ValueError(f"{text!r} is not a duration: use 30s, 5m, 1h, 2d or plain seconds")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    return seconds


def parse_schedule(text: str) -> float | str:
    """Seconds for a duration, or the cron expression itself when it has five fields."""
    fields = (text or "").split()
    if len(fields) == 5 and all(_CRON_FIELD.fullmatch(f) for f in fields):
        return " ".join(fields)
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
