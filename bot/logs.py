"""Logging: one JSON object per line (or plain text on a terminal), secrets redacted at the
logger, so no handler anywhere can write a password or a token."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

MASK = "********"
# Every pattern runs in time linear in the text, whatever it holds: a search tries each start
# position, so each one may only scan a bounded distance, or a distance no other start position
# scans again (a run matched possessively from its own start). Nothing backtracks.
_PATTERNS = (
    # URI credentials: scheme://user:password@host (the scheme is a whole run of scheme
    # characters, scanned once from its first character; user and password up to 256 each)
    re.compile(
        r"(?P<keep>(?<![a-z0-9+.-])[a-z0-9+.-]++://[^:/\s@]{1,256}+:)[^@\s]{1,256}+(?=@)",
        re.IGNORECASE,
    ),
    # key=value / key: value / "key": "value" for password-like keys
    re.compile(
        r"(?P<keep>\b(?:password|passwd|pwd|secret|token|client_secret|clientSecret|"
        r"access_token|accessToken)\b[\"']?\s{0,16}+[=:]\s{0,16}+[\"']?)[^\s\"',;&}]++",
        re.IGNORECASE,
    ),
    # Authorization headers
    re.compile(r"(?P<keep>\b(?:Bearer|Token)\s{1,16}+)[A-Za-z0-9._~+/=-]{8,}+"),
    # Slack tokens, GitHub tokens
    re.compile(r"(?P<keep>)\b(?:xox[abposr]|xapp)-[A-Za-z0-9-]{10,}+"),
    re.compile(r"(?P<keep>)\b(?:ghp|gho|ghs|ghu|github_pat)_[A-Za-z0-9_]{20,}+"),
)
# Fields of a LogRecord that are not "extra" context.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def redact(text: str, *, known: Iterable[str] = ()) -> str:
    """``text`` without anything that looks like a credential, nor any of the ``known`` values."""
    for value in known:
        if value and len(value) >= 6:
            text = text.replace(value, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group("keep") + MASK, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and exception text) before any handler sees it."""

    def __init__(self, *, known: Iterable[str] = ()) -> None:
        super().__init__()
        self.known = tuple(sorted({k for k in known if k}, key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        message = redact(record.getMessage(), known=self.known)
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(text, known=self.known)
            record.exc_info = None
        record.msg, record.args = message, None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, redact(value, known=self.known))
        return True


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...extra fields}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                event[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_text:
            event["exception"] = record.exc_text
        return json.dumps(event, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The console's log file on a terminal: rotated, so a long session cannot fill the disk.
LOG_FILE_BYTES = 5_000_000
LOG_FILE_BACKUPS = 2


def configure(
    *,
    level: str,
    json_lines: bool,
    known_secrets: Iterable[str] = (),
    log_file: Path | None = None,
) -> None:
    """Route every logger to stderr through the redacting filter. With ``log_file`` (the
    console on a terminal) records go to that file instead, and only warnings and errors to
    stderr too, so INFO lines do not interleave with the replies."""
    redacting = RedactingFilter(known=known_secrets)
    formatter: logging.Formatter = JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT)
    stderr = logging.StreamHandler(sys.stderr)
    handlers: list[logging.Handler] = [stderr]
    if log_file is not None:
        stderr.setLevel(logging.WARNING)
        handlers.append(_file_handler(log_file))
    for handler in handlers:
        handler.addFilter(redacting)
        handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(getattr(logging, level, logging.INFO))


def _file_handler(path: Path) -> logging.Handler:
    """Appends to ``path``, readable by its owner only (its folder too)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    os.chmod(path, 0o600)
    return RotatingFileHandler(
        path, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8"
    )
