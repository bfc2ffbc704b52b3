"""Sizes as people and Kubernetes write them (``5GiB``, ``20Gi``, ``500M``, plain bytes), and
back into a short human form for chat."""

from __future__ import annotations

import re

_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgGtTpPeE]?)(i?)([bB]?)\s*$")
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}


def parse_size(text: str) -> int:
    """Bytes in ``text``: ``5GiB``/``5Gi`` are powers of 1024, ``5GB``/``5G`` of 1000 (as
    Kubernetes quantities are read), a plain number is bytes. ValueError says what is valid."""
    match = _SIZE.fullmatch(text or "")
    if not match:
        raise ValueError(f"{text!r} is not a size: use e.g. 5GiB, 500MiB, 20Gi or plain bytes")
    number, prefix, binary, _ = match.groups()
    base = 1024 if binary else 1000
    value = float(number) * base ** _POWERS[prefix.lower()]
    if value <= 0:
        raise ValueError(f"{text!r} must be larger than zero")
    return int(value)


def format_size(size: int | None) -> str:
    """``5.0 GiB``, ``812 MiB``, ``7.6 kB``-style figures for chat; ``?`` when unknown."""
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" or value >= 100 else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop returns at TiB


def format_timeout(milliseconds: int) -> str:
    """A statement timeout for humans: ``none`` for 0, else ``30s``, ``1500ms``, ``5min``."""
    if milliseconds <= 0:
        return "none"
    for unit, size in (("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if milliseconds % size == 0:
            return f"{milliseconds // size}{unit}"
    return f"{milliseconds}ms"
