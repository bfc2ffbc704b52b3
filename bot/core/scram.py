"""SCRAM-SHA-256 verifiers (RFC 5802/7677), pure Python: computed and compared without a server.

PostgreSQL stores a role's password as such a verifier; the bot compares stored passwords with
it, and ``/pgdb rotate`` records one (salted, 4096 iterations) to prove later which password it
wrote, without keeping the password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import stringprep
import unicodedata

from bot.core.secret import Secret

ITERATIONS = 4096  # PostgreSQL's default (scram_iterations)
SALT_BYTES = 16

_SCRAM = re.compile(
    r"^SCRAM-SHA-256\$(?P<iterations>\d+):(?P<salt>[A-Za-z0-9+/=]+)"
    r"\$(?P<stored>[A-Za-z0-9+/=]+):(?P<server>[A-Za-z0-9+/=]+)$"
)
_PROHIBITED = (
    stringprep.in_table_c12,
    stringprep.in_table_c21,
    stringprep.in_table_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
    stringprep.in_table_a1,
)


def saslprep(password: str) -> str:
    """The password as SCRAM hashes it: SASLprep (RFC 4013) as libpq applies it.

    Like libpq, ASCII passes unchanged, and a password SASLprep rejects is used as it is.
    """
    if password.isascii():
        return password
    # Non-ASCII spaces become spaces first: U+200B is in both tables and libpq maps it to " ".
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else "" if stringprep.in_table_b1(ch) else ch
        for ch in password
    )
    if not mapped:
        return password
    prepared = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    if any(check(ch) for ch in prepared for check in _PROHIBITED):
        return password
    if any(stringprep.in_table_d1(ch) for ch in prepared) and (
        any(stringprep.in_table_d2(ch) for ch in prepared)
        or not stringprep.in_table_d1(prepared[0])
        or not stringprep.in_table_d1(prepared[-1])
    ):
        return password
    return prepared


def _keys(password: Secret, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    """(StoredKey, ServerKey): SaltedPassword = PBKDF2(password, salt, i); StoredKey =
    H(HMAC(SaltedPassword, "Client Key")); ServerKey = HMAC(SaltedPassword, "Server Key")."""
    salted = hashlib.pbkdf2_hmac("sha256", saslprep(password.reveal()).encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    return hashlib.sha256(client_key).digest(), hmac.digest(salted, b"Server Key", "sha256")


def scram_verifier(password: Secret, *, salt: bytes | None = None) -> str:
    """A SCRAM-SHA-256 verifier of ``password`` in PostgreSQL's text form, with a random salt."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    stored, server = _keys(password, salt, ITERATIONS)

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    return f"SCRAM-SHA-256${ITERATIONS}:{b64(salt)}${b64(stored)}:{b64(server)}"


def scram_matches(verifier: str, password: Secret) -> bool | None:
    """Whether ``password`` produces the SCRAM-SHA-256 ``verifier``; None if it is not one."""
    scram = _SCRAM.match(verifier)
    if scram is None:
        return None
    try:
        salt = base64.b64decode(scram["salt"], validate=True)
        stored = base64.b64decode(scram["stored"], validate=True)
        server = base64.b64decode(scram["server"], validate=True)
    except ValueError:
        return None
    mine_stored, mine_server = _keys(password, salt, int(scram["iterations"]))
    stored_ok = hmac.compare_digest(mine_stored, stored)
    server_ok = hmac.compare_digest(mine_server, server)
    return stored_ok and server_ok
