"""Text typed by people, as the edge accepts it: plain ASCII numbers, no control characters,
a bounded length; and any text cut and escaped so that PostgreSQL can store it (text columns
cannot hold NUL) and a log line stays one line."""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_COMMAND_CHARS = 2000
# C0 and C1 control characters (tab, newline and carriage return are whitespace), and the
# bidirectional overrides that make a command read differently from what runs.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def is_number(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts ``²`` and ``٣``, which ``int`` refuses or
    reads differently from what the user saw."""
    return text.isascii() and text.isdigit()


@dataclass(frozen=True, kw_only=True)
class Refusal:
    """Why a command was refused before it was read: the message for the requester (it names
    the limit), and the audit result."""

    message: str
    outcome: str


def refuse_at_edge(text: str, *, limit: int = MAX_COMMAND_CHARS) -> Refusal | None:
    """None when ``text`` may go on to the parser; otherwise what to tell the requester.

    Checked before anything parses or logs the text, in time linear in its length."""
    if len(text) > limit:
        return Refusal(
            message=f"The command is {len(text):,} characters long; the limit is {limit:,}. "
            "Shorten it (an app name is at most 40 characters).",
            outcome="too long",
        )
    found = _CONTROL.search(text)
    if found is not None:
        return Refusal(
            message=f"The command contains a control character ({_escape(found.group())} at "
            f"position {found.start() + 1}); retype it without it.",
            outcome="control character",
        )
    return None


def storable(text: str, *, limit: int = 200) -> str:
    """``text`` cut to about ``limit`` characters, control characters written as ``\\xNN``:
    safe for a PostgreSQL text column, a log line and a chat message."""
    cut = text[:limit]
    cleaned = _UNSTORABLE.sub(lambda m: _escape(m.group()), cut)
    return cleaned + (f"… ({len(text):,} characters)" if len(text) > limit else "")


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
