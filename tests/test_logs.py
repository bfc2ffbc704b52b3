"""Passwords and tokens are redacted at the logger, whatever the handler or format."""

from __future__ import annotations

import io
import json
import logging

import pytest

from bot.core.secret import generate_password
from bot.logs import JsonFormatter, RedactingFilter, redact


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("connecting to postgresql://bot:s3cr3t-pass@db:5432/postgres", "s3cr3t-pass"),
        ("user=bot password=s3cr3t-pass dbname=postgres", "s3cr3t-pass"),
        ('{"password": "s3cr3t-pass"}', "s3cr3t-pass"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9"),
        ("token xoxb-1234567890-abcdefghijkl", "xoxb-1234567890-abcdefghijkl"),
        ("using ghp_abcdefghijklmnopqrstuvwxyz0123", "ghp_abcdefghijklmnopqrstuvwxyz0123"),
        ("clientSecret=abcdef0123456789", "abcdef0123456789"),
    ],
)
def test_credentials_are_masked(text: str, secret: str) -> None:
    assert secret not in redact(text)
    assert "********" in redact(text)


def test_known_values_are_masked_anywhere() -> None:
    assert redact("the signing secret is 8f14e45fceea167a", known=["8f14e45fceea167a"]) == (
        "the signing secret is ********"
    )


def _logger(known: list[str]) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(known=known))
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"test-{id(stream)}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger, stream


def test_messages_arguments_extras_and_tracebacks_are_redacted() -> None:
    password = generate_password().reveal()
    logger, stream = _logger(known=["tok-configured-123456"])
    logger.info(
        "dsn %s", f"postgresql://app:{password}@h/db", extra={"dsn": f"password={password}"}
    )
    logger.info("header Authorization: Bearer tok-configured-123456")
    try:
        raise RuntimeError(f"login failed with password={password}")
    except RuntimeError:
        logger.exception("it failed")
    out = stream.getvalue()
    assert password not in out
    assert "tok-configured-123456" not in out
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["message"] for e in events][2] == "it failed"
    assert "RuntimeError" in events[2]["exception"]
    assert events[0]["dsn"] == "password=********"
