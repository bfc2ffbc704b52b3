"""What a failed Infisical call becomes: a ``BackendUnavailable`` that says what failed and what
to fix (which variable, which permission, which server setting). The server's own message is
quoted masked (:func:`mask`), so no secret value, client secret or token reaches an error."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.adapters.infisical.place import Place
from bot.core.errors import BackendUnavailable

SYSTEM = "Infisical"
_HIDDEN = "********"


def token_refused(status: int, body: Any) -> bool:
    """401, or 403 ``TokenError`` (how Infisical says a token expired or is malformed)."""
    return status == 401 or (
        status == 403 and isinstance(body, dict) and body.get("error") == "TokenError"
    )


def mask(body: Mapping[str, Any], hidden: Iterable[str]) -> str:
    """The server's message, short and with every ``hidden`` value masked."""
    message = body.get("message")
    if message is None:
        return ""
    text = message if isinstance(message, str) else json.dumps(message)
    for value in hidden:
        if value:
            text = text.replace(value, _HIDDEN)
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:197] + "..."


@dataclass(frozen=True)
class ErrorTranslator:
    """The errors of one store, naming its server, project, environment and prefix, and its
    total time per operation."""

    place: Place
    total: float

    def http_error(
        self, action: str, status: int, body: Any, said: str, *, login: bool, attempts: int
    ) -> BackendUnavailable:
        """An HTTP error answer to ``action``; ``said`` is the server's message, masked."""
        body = body if isinstance(body, dict) else {}
        kind = str(body.get("error") or "")
        if login and status in {400, 401, 403, 404, 422}:
            return BackendUnavailable(
                SYSTEM,
                f"the machine identity could not log in ({said or f'HTTP {status}'}) — check"
                " PGDB_INFISICAL_CLIENT_ID and PGDB_INFISICAL_CLIENT_SECRET: a Universal Auth"
                " client secret of the identity, not expired, not revoked, under its usage limit,"
                " and allowed from the bot's address (trusted IPs)",
            )
        if token_refused(status, body):
            return BackendUnavailable(
                SYSTEM,
                f"Infisical refused a fresh access token to {action} ({said}) — check the machine"
                " identity's access token settings (trusted IPs, TTL, usage limit)",
            )
        if status == 403:
            return BackendUnavailable(
                SYSTEM,
                f"the machine identity may not {action} ({said or kind or 'HTTP 403'}) — give it"
                f" a role in project `{self.place.project}` that can read, create and edit"
                f" secrets and create folders under {self.place.prefix} in environment"
                f" `{self.place.env}`",
            )
        if status == 404:
            lowered = said.lower()
            if "environment" in lowered:
                return BackendUnavailable(
                    SYSTEM,
                    f"environment `{self.place.env}` was not found in project"
                    f" `{self.place.project}` ({said}) — set PGDB_ENV to an environment slug of"
                    " the project",
                )
            if "project" in lowered or "workspace" in lowered or action.startswith("look up"):
                return BackendUnavailable(
                    SYSTEM,
                    f"project `{self.place.project}` was not found ({said or 'HTTP 404'}) — set"
                    " PGDB_INFISICAL_PROJECT to the project's slug (Project Settings) and add the"
                    " machine identity to that project",
                )
        if status == 429:
            return BackendUnavailable(
                SYSTEM,
                f"Infisical kept rate-limiting the bot ({attempts} tries to {action}) — run the"
                " command again later, or raise the rate limits of the Infisical instance",
            )
        if status >= 500:
            return BackendUnavailable(
                SYSTEM,
                f"the server answered HTTP {status} to {action}, {attempts} tries ({said}) —"
                " the server is failing: check its health and logs, then run the command again",
            )
        return BackendUnavailable(
            SYSTEM,
            f"the server refused to {action}: HTTP {status} ({said or kind}) — check the"
            f" server's logs for this request; PGDB_INFISICAL_URL ({self.place.url}) must be the"
            " Infisical API",
        )

    def no_answer(self, action: str, reason: str, *, attempts: int) -> BackendUnavailable:
        return BackendUnavailable(
            SYSTEM,
            f"no answer from {self.place.url} to {action} after {attempts} tries ({reason}) — check"
            " PGDB_INFISICAL_URL and that the Infisical server is up and reachable from the bot",
        )

    def out_of_time(self, action: str, *, asked: float | None = None) -> BackendUnavailable:
        why = f"; it asked to retry after {asked:.0f} s" if asked is not None else ""
        return BackendUnavailable(
            SYSTEM,
            f"no complete answer from {self.place.url} to {action} within {self.total:.0f} s{why} —"
            " check that the Infisical server is up and not overloaded, then run the command"
            " again",
        )

    def not_json(self, action: str) -> BackendUnavailable:
        return BackendUnavailable(
            SYSTEM,
            f"the answer to {action} is not JSON — check that PGDB_INFISICAL_URL"
            f" ({self.place.url}) is the Infisical API and not a proxy or login page",
        )

    def odd_answer(self, action: str, *, approval: bool, writes: str | None) -> BackendUnavailable:
        """An answer the SDK could not read; ``approval`` when it is an approval request
        instead of the written secret (a 2xx without ``secret``)."""
        if approval:
            return BackendUnavailable(
                SYSTEM,
                f"a secret approval policy covers {writes} (env {self.place.env}): Infisical"
                " answered with an approval request instead of writing it — exempt the bot's"
                " machine identity from the policy (or move the policy off"
                f" {self.place.prefix}), reject the pending request in Infisical, then run the"
                " command again",
            )
        return BackendUnavailable(
            SYSTEM,
            f"the answer to {action} is not what the Infisical API returns — check that"
            f" PGDB_INFISICAL_URL ({self.place.url}) is the Infisical API and that its version is"
            " supported",
        )
