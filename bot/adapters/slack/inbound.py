"""What arrives from Slack over HTTP, checked before anything trusts it: the request signature
(the only check of it: Bolt's own is turned off, see :mod:`~bot.adapters.slack.platform`), the
shape of a signed body, and the command text as the user typed it."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from urllib.parse import parse_qsl

SIGNATURE_WINDOW_SECONDS = 300  # Slack's replay window


def signature_ok(
    *, secret: str, body: bytes, timestamp: str | None, signature: str | None, now: float
) -> bool:
    """Slack's v0 request signature: HMAC-SHA256 over ``v0:<timestamp>:<raw body>`` with the
    signing secret, compared in constant time; refused outside the 5-minute replay window."""
    if not timestamp or not signature or not timestamp.isascii() or not timestamp.isdigit():
        return False
    if abs(now - int(timestamp)) > SIGNATURE_WINDOW_SECONDS:
        return False
    basestring = b"v0:" + timestamp.encode("ascii") + b":" + body
    digest = hmac.new(secret.encode("utf-8"), basestring, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"v0={digest}".encode(), signature.encode("utf-8", "replace"))


def normalize_command_text(text: str) -> str:
    """What the user typed, undoing Slack's escaping and the clients' typographic "smart"
    replacements (an em dash for ``--``, curly quotes)."""
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    text = re.sub(r"(^|\s)[\u2014\u2013](?=\w)", r"\1--", text)
    for curly, straight in (("\u201c", '"'), ("\u201d", '"'), ("\u2018", "'"), ("\u2019", "'")):
        text = text.replace(curly, straight)
    return text.strip()


def malformed(text: str, *, content_type: str) -> str | None:
    """What is wrong with a signed body that is not what Slack sends (a form; or a form whose
    ``payload`` is a JSON object), None when it is well formed. Bolt reads such a body by
    indexing into it: anything else would be a 500 with a traceback instead of a 400."""
    if content_type.split(";")[0].strip().lower() == "application/json" or text.startswith("{"):
        return "JSON bodies are not served here: Slack sends forms"
    form = dict(parse_qsl(text, keep_blank_values=True))
    if "payload" not in form:
        return None if "command" in form else "neither a slash command nor a payload"
    try:
        payload = json.loads(form["payload"])
    except ValueError:
        return "payload is not JSON"
    if not isinstance(payload, dict):
        return "payload is not a JSON object"
    for name, kinds in _PAYLOAD_SHAPE.items():
        if name in payload and payload[name] is not None and not isinstance(payload[name], kinds):
            return f"payload field {name} has the wrong type"
    if payload.get("type") == "block_actions":
        actions = payload.get("actions")
        if not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
            return "payload field actions is not a list of objects"
    authorizations = payload.get("authorizations")
    if isinstance(authorizations, list) and not all(isinstance(a, dict) for a in authorizations):
        return "payload field authorizations is not a list of objects"
    return None


# The payload fields Bolt or our listeners read, and the JSON types Slack sends them as.
_PAYLOAD_SHAPE: dict[str, type | tuple[type, ...]] = {
    "type": str,
    "user": (dict, str),
    "team": (dict, str),
    "enterprise": (dict, str),
    "channel": (dict, str),
    "container": dict,
    "actions": list,
    "authorizations": list,
    "event": dict,
    "view": dict,
    "message": dict,
    "response_url": str,
    "is_enterprise_install": (bool, str),
}
