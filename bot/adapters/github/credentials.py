"""A GitHub App's credentials, and its private key checked when the bot starts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from bot.core.secret import Secret


@dataclass(frozen=True, kw_only=True)
class AppCredentials:
    """A GitHub App installation: the App's id and private key, and the installation id."""

    app_id: str
    private_key: Secret
    installation_id: int


def load_private_key(value: str) -> Secret:
    """The App's PEM private key, given inline (``\\n`` escapes allowed) or as a file path.

    Checked here so a pasted key that lost its newlines fails at start, not at the first call.
    """
    text = value.strip()
    if not text.startswith("-----BEGIN"):
        try:
            text = Path(text).expanduser().read_text()
        except (OSError, ValueError):
            raise ValueError(
                "neither a PEM private key nor the path of a readable .pem file"
            ) from None
    text = text.replace("\\n", "\n").strip() + "\n"
    try:
        serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError(
            "not an unencrypted PEM private key: give the .pem file generated on the App's"
            " settings page (its contents, or its path)"
        ) from None
    return Secret(text)
