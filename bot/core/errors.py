"""Errors the adapters raise. Each message names what is wrong and what to do about it."""

from __future__ import annotations


class PgdbError(Exception):
    """Base for errors shown to users: ``str(err)`` is a complete, actionable sentence."""


class BackendUnavailable(PgdbError):
    """An outside system could not be reached or answered with an error."""

    def __init__(self, system: str, message: str) -> None:
        super().__init__(f"{system}: {message}")
        self.system = system


class PermissionProblem(PgdbError):
    """The bot's own account lacks a privilege; the message names the grant to add."""


class ConflictError(PgdbError):
    """The outside state changed under us (e.g. a branch moved); a re-run resolves it."""


class ConfigError(Exception):
    """Invalid configuration; the message lists each offending variable and what to set."""
