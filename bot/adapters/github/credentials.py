"""A GitHub App's credentials: its private key checked when the bot starts, and the JSON web
token (RS256) that asks GitHub for an installation token.

``cryptography`` signs; it is imported only here and only when the bot is a GitHub App (a
token-configured bot never loads it).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bot.core.secret import Secret

if TYPE_CHECKING:  # cryptography is imported when a key is used, never with this module
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

JWT_BACKDATE = 60  # seconds: GitHub's own advice against clock drift between the bot and GitHub
JWT_LIFETIME = 540  # seconds after issue; GitHub refuses an expiry more than 10 minutes ahead


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
    _rsa_key(text)
    return Secret(text)


def app_jwt(app: AppCredentials, *, now: float | None = None) -> Secret:
    """The App's JSON web token (RS256, ``iss`` the App id), valid for a few minutes: what
    ``POST /app/installations/{id}/access_tokens`` takes as its bearer."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    issued = int(time.time() if now is None else now)
    header = {"alg": "RS256", "typ": "JWT"}
    claims = {"iat": issued - JWT_BACKDATE, "exp": issued + JWT_LIFETIME, "iss": app.app_id}
    signing_input = f"{_b64_json(header)}.{_b64_json(claims)}"
    key = _rsa_key(app.private_key.reveal())
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return Secret(f"{signing_input}.{_b64(signature)}")


def _rsa_key(pem: str) -> RSAPrivateKey:
    """The RSA private key in ``pem``; ValueError (without the key) when it is none."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError(
            "not an unencrypted PEM private key: give the .pem file generated on the App's"
            " settings page (its contents, or its path)"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(
            "not an RSA private key: GitHub Apps sign with RSA keys — give the .pem file"
            " generated on the App's settings page"
        )
    return key


def _b64_json(value: Mapping[str, object]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
