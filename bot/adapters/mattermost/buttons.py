"""Mattermost buttons: what a button carries back when it is clicked, and the check of it.

Mattermost posts a click's ``context`` to the URL the button names, with nothing to prove it
came from a post of the bot's: the bot signs the context (its command, thread, a one-time
nonce and an expiry) with ``PGDB_ACTION_SECRET`` and checks that signature on every click.
The nonce is what makes a replayed click recognisable (the command token is static).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# A button works once, within this long after it was drawn (a post redrawn gets new ones).
BUTTON_VALIDITY_SECONDS = 7 * 86400


@dataclass(frozen=True, kw_only=True)
class ButtonConfig:
    """Where clicks come back (``PGDB_PUBLIC_URL`` + ``/mattermost/actions``) and the secret
    that signs their context (``PGDB_ACTION_SECRET``)."""

    url: str
    secret: str


def button_context(
    *, command: str, root_id: str, secret: str, now: float | None = None
) -> dict[str, Any]:
    """What a button carries: its command, a one-time nonce and an expiry, signed with
    ``PGDB_ACTION_SECRET`` (the secret itself never leaves the bot). The command token is
    static, so the nonce is what makes a replayed click recognisable."""
    expires = int((time.time() if now is None else now) + BUTTON_VALIDITY_SECONDS)
    nonce = secrets.token_hex(16)
    return {
        "command": command,
        "root_id": root_id,
        "nonce": nonce,
        "expires": expires,
        "signature": _button_signature(
            secret, command=command, root_id=root_id, nonce=nonce, expires=expires
        ),
    }


def check_button(context: Mapping[str, Any], *, secret: str, now: float) -> str | None:
    """None when the context is one the bot signed and it has not expired; else what is
    wrong (for the log: never the secret)."""
    command, root_id = context.get("command"), context.get("root_id", "")
    nonce, expires, signature = (
        context.get("nonce"),
        context.get("expires"),
        context.get("signature"),
    )
    if not (
        isinstance(command, str)
        and isinstance(root_id, str)
        and isinstance(nonce, str)
        and type(expires) is int
        and isinstance(signature, str)
    ):
        return "no signed nonce"
    expected = _button_signature(
        secret, command=command, root_id=root_id, nonce=nonce, expires=expires
    )
    if not hmac.compare_digest(signature.encode("utf-8", "replace"), expected.encode()):
        return "wrong signature"
    if expires < now:
        return "expired"
    return None


def _button_signature(secret: str, *, command: str, root_id: str, nonce: str, expires: int) -> str:
    signed = json.dumps([command, root_id, nonce, expires], separators=(",", ":"))
    return hmac.new(secret.encode(), signed.encode(), hashlib.sha256).hexdigest()
