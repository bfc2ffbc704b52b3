"""A wrapper that keeps a password out of reprs, f-strings, logs and exceptions."""

from __future__ import annotations

import secrets
import string

PASSWORD_LENGTH = 40
_URL_SAFE = string.ascii_letters + string.digits + "-_"


class Secret:
    """A secret value. ``str()``/``repr()`` never show it; call :meth:`reveal` on purpose."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret wraps a str")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return "********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and secrets.compare_digest(
            self._value.encode(), other._value.encode()
        )

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)


def generate_password(length: int = PASSWORD_LENGTH) -> Secret:
    """A new password from ``secrets``: URL-safe alphabet, so it needs no quoting in a DSN."""
    if length < 32:
        raise ValueError("passwords are at least 32 characters")
    return Secret("".join(secrets.choice(_URL_SAFE) for _ in range(length)))
