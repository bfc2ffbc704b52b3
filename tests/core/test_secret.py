"""Passwords never show up where people read, and generated ones are strong."""

from __future__ import annotations

import logging
import re
import traceback
import urllib.parse

import pytest

from bot.core.model import StoredCredentials
from bot.core.secret import PASSWORD_LENGTH, Secret, generate_password

VALUE = "hunter2-correct-horse-battery-staple-42"


@pytest.fixture
def secret() -> Secret:
    return Secret(VALUE)


def test_reveal_gives_the_value_on_purpose(secret: Secret) -> None:
    assert secret.reveal() == VALUE


@pytest.mark.parametrize(
    "render",
    [
        str,
        repr,
        format,
        lambda s: f"{s}",
        lambda s: f"{s!r}",
        lambda s: f"{s!s}",
        lambda s: f"{s:>60}",
        lambda s: "%s" % s,  # noqa: UP031
        lambda s: "%r" % s,  # noqa: UP031
        lambda s: "{}".format(s),  # noqa: UP032
        lambda s: str([s]),
        lambda s: str({"password": s}),
        lambda s: repr(StoredCredentials(username="app", password=s, database="app")),
    ],
)
def test_no_rendering_shows_the_value(secret: Secret, render: object) -> None:
    shown = render(secret)  # type: ignore[operator]
    assert VALUE not in shown
    assert "****" in shown


def test_logging_never_shows_the_value(secret: Secret, caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("tests.secret")
    with caplog.at_level(logging.DEBUG, logger="tests.secret"):
        log.info("stored password %s", secret)
        log.info("stored password %r", secret)
        log.info("credentials: %s", {"password": secret})
        log.info(f"f-string {secret}")
    assert len(caplog.records) == 4
    assert VALUE not in caplog.text


def test_exceptions_never_show_the_value(secret: Secret) -> None:
    try:
        raise ValueError(f"could not set password {secret}", secret)
    except ValueError as exc:
        text = str(exc) + repr(exc) + "".join(traceback.format_exception(exc))
    assert VALUE not in text


def test_equality_compares_the_values() -> None:
    assert Secret(VALUE) == Secret(VALUE)
    assert Secret(VALUE) != Secret(VALUE + "x")
    assert hash(Secret(VALUE)) == hash(Secret(VALUE))
    assert len({Secret(VALUE), Secret(VALUE)}) == 1


def test_a_secret_never_equals_its_plain_text() -> None:
    assert Secret(VALUE) != VALUE
    assert VALUE != Secret(VALUE)  # noqa: SIM300 (the str side of the comparison)


def test_empty_secret_is_falsy() -> None:
    assert not Secret("")
    assert Secret("x")


def test_only_text_can_be_wrapped() -> None:
    with pytest.raises(TypeError):
        Secret(b"bytes")  # type: ignore[arg-type]


def test_no_attribute_dump_reveals_it(secret: Secret) -> None:
    assert not hasattr(secret, "__dict__")


# --- generated passwords ------------------------------------------------------------------


def test_generated_password_is_forty_characters() -> None:
    assert PASSWORD_LENGTH == 40
    assert len(generate_password().reveal()) == 40


def test_generated_password_is_url_safe() -> None:
    for _ in range(50):
        value = generate_password().reveal()
        assert re.fullmatch(r"[A-Za-z0-9_-]+", value)
        # fits in a connection URI without quoting
        assert urllib.parse.quote(value, safe="") == value


def test_generated_passwords_are_unique() -> None:
    assert len({generate_password().reveal() for _ in range(200)}) == 200


def test_generated_password_uses_the_whole_alphabet() -> None:
    seen = set("".join(generate_password().reveal() for _ in range(100)))
    assert {"-", "_"} <= seen
    assert any(c.isupper() for c in seen) and any(c.isdigit() for c in seen)


@pytest.mark.parametrize("length", [32, 64])
def test_longer_passwords_on_request(length: int) -> None:
    assert len(generate_password(length).reveal()) == length


@pytest.mark.parametrize("length", [0, 16, 31])
def test_short_passwords_are_refused(length: int) -> None:
    with pytest.raises(ValueError, match="at least 32"):
        generate_password(length)


def test_generated_password_is_a_secret() -> None:
    password = generate_password()
    assert isinstance(password, Secret)
    assert password.reveal() not in str(password)
