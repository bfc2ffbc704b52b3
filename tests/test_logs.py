"""Passwords and tokens are redacted at the logger, whatever the handler or format."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.core.secret import generate_password
from bot.logs import JsonFormatter, RedactingFilter, configure, redact


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


ADVERSARIAL = {
    "one long word": "status " + "a" * 100_000,
    "schemes without end": "a://b:c" * 15_000,
    "long user and password": ("a://" + "b" * 200 + ":" + "c" * 300) * 200,
    "key then spaces": "password" + " " * 100_000,
    "keys": "password " * 12_000,
    "colons": ":" * 100_000,
    "tokens": "Token " * 17_000,
    "slack prefixes": "xoxb-" * 20_000,
}


@pytest.mark.parametrize("text", list(ADVERSARIAL.values()), ids=list(ADVERSARIAL))
def test_redaction_takes_linear_time_whatever_the_input(text: str) -> None:
    """Issue 16: the URI pattern backtracked quadratically (100 KB took seconds, holding the
    GIL); now eight times the text takes about eight times as long, and 100 KB a few ms."""
    import time

    def seconds(sample: str) -> float:
        """CPU seconds of this thread, the best of three: time spent waiting for a core on a
        busy machine (parallel tests) is not the code's."""
        best = float("inf")
        for _ in range(3):
            start = time.thread_time()
            redact(sample)
            best = min(best, time.thread_time() - start)
        return best

    # Eight times the text: linear is about 8 times as long, quadratic 64 times; 24 leaves room
    # for a machine busy with the parallel suite.
    once, eight = seconds(text), seconds(text * 8)
    assert once < 0.25, f"{once:.3f}s"
    assert eight < max(0.1, once * 24), f"{once:.4f}s then {eight:.4f}s for eight times the text"


def test_only_secret_settings_are_masked() -> None:
    from bot.config import SECRET_SETTINGS, Settings

    settings = Settings(
        secrets_dir="/var/lib/pgdb/secrets",
        secrets_prefix="/postgresql",
        action_secret="an-action-secret-0123456789",
        slack_signing_secret="a-slack-signing-secret",
        mattermost_command_token="mmcommandtoken000000000001",
    )
    values = settings.secret_values()
    assert "/postgresql" not in values and "/var/lib/pgdb/secrets" not in values
    assert {"an-action-secret-0123456789", "a-slack-signing-secret"} <= set(values)
    line = redact("secrets in /var/lib/pgdb/secrets under /postgresql", known=values)
    assert line == "secrets in /var/lib/pgdb/secrets under /postgresql"
    # every setting that holds a credential is named (a new one must be added on purpose)
    credential_like = {
        name
        for name in Settings.model_fields
        if any(w in name for w in ("token", "secret", "password", "private_key"))
    }
    not_credentials = {
        "secrets_dir",
        "secrets_prefix",
        "infisical_auth_secret",  # a Kubernetes Secret's name
        "secret_namespaces",
        "offboard_delete_secret",
    }
    assert credential_like - not_credentials == SECRET_SETTINGS, (
        "a setting named like a credential: add it to SECRET_SETTINGS (bot/config.py) if it "
        "is one, else to not_credentials here"
    )


@pytest.fixture
def root_logging() -> Iterator[logging.Logger]:
    """The root logger, given back as it was (``configure`` replaces its handlers)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if handler not in handlers:
            handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_with_a_log_file_info_goes_there_and_warnings_to_stderr_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], root_logging: logging.Logger
) -> None:
    log_file = tmp_path / "state" / "pgdb-bot.log"
    configure(level="INFO", json_lines=False, known_secrets=["s3cr3t-value"], log_file=log_file)

    logging.getLogger("pgdb.test").info("onboarding step done")
    logging.getLogger("pgdb.test").warning("audit log unavailable, password=s3cr3t-value")

    shown = capsys.readouterr().err
    assert "audit log unavailable" in shown and "onboarding step done" not in shown
    written = log_file.read_text()
    assert "INFO pgdb.test: onboarding step done" in written
    assert "WARNING pgdb.test: audit log unavailable" in written
    assert "s3cr3t-value" not in shown + written
    assert (log_file.stat().st_mode & 0o777) == 0o600
    assert (log_file.parent.stat().st_mode & 0o777) == 0o700


def test_without_a_log_file_everything_goes_to_stderr_as_json(
    capsys: pytest.CaptureFixture[str], root_logging: logging.Logger
) -> None:
    configure(level="INFO", json_lines=True)

    logging.getLogger("pgdb.test").info("onboarding step done")

    [event] = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert event["level"] == "info" and event["message"] == "onboarding step done"
