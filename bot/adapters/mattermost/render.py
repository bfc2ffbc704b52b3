"""Mattermost posts from the core's replies and alerts: markdown text and attachments.

User words (deny reasons, names echoed back, error details, the command typed) reach posts
inside the bot's own markdown, so every text goes through :func:`md` (no mention, link, image
or HTML can come out of it) and every post is cut to Mattermost's size with a line saying
what was left out, never silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bot.adapters.mattermost.buttons import ButtonConfig, button_context
from bot.core.reply import Alert, Button, Reply, StepState

MAX_MESSAGE_CHARS = 16_000  # Mattermost accepts 16,383 runes per post (400 beyond)
SHORT_MESSAGE_CHARS = 3_000  # what is sent again when Mattermost refuses a post's size
ALERT_HINT = "/pgdb diagnose"  # where an alert cut for size is shown whole

STATE_ICONS = {
    StepState.PENDING: "⏳",
    StepState.DONE: "✅",
    StepState.EXISTS: "☑️",
    StepState.PLANNED: "📝",
    StepState.FAILED: "❌",
    StepState.SKIPPED: "⏭️",
}
SEVERITY_COLOURS = {"critical": "#d24b4e", "warning": "#ffbc1f", "info": "#2389d7"}
RESOLVED_COLOUR = "#3db887"
SEVERITY_ICONS = {"critical": "🔴", "warning": "🟠", "info": "🔵"}
_BUTTON_STYLES = {"primary": "primary", "danger": "danger"}

# User words (deny reasons, names echoed back, error details, the command typed) reach posts
# inside the bot's own markdown. Mattermost notifies on "@channel", "@all", "@here" and
# "@name" wherever the server's word splitter finds them (any character that is not a letter,
# digit or one of ``:.-_@`` separates words, a backslash included), so a zero-width space after
# the "@" is what breaks a mention for the server and the clients alike; links, images and
# autolinks are markdown, so a backslash escape of ``[ ] < \`` keeps them literal.
ZERO_WIDTH_SPACE = "\u200b"
_MENTION = re.compile(r"(?<![^\W_])@(?=[\w.\-])")
_MARKDOWN_SPECIAL = re.compile(r"([\\\[\]<])")
_BACKTICKS = re.compile(r"`+")
_FENCE_LINE = re.compile(r"^(\s*)(`{3,}|~{3,})", re.MULTILINE)
_TILDE_FENCE_LINE = re.compile(r"^(\s*)(~{3,})", re.MULTILINE)


def no_mentions(text: str) -> str:
    """Every "@word" a notification could start from, broken by a zero-width space."""
    return _MENTION.sub("@" + ZERO_WIDTH_SPACE, text)


def _code_spans(line: str) -> list[tuple[int, int]]:
    """CommonMark code spans of one line (a backtick run closed by the next run of the same
    length), as (start, end) including the backticks."""
    runs = [(m.start(), m.end()) for m in _BACKTICKS.finditer(line)]
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(runs):
        start, end = runs[i]
        closer = next(
            (k for k in range(i + 1, len(runs)) if runs[k][1] - runs[k][0] == end - start), None
        )
        if closer is None:
            i += 1
            continue
        spans.append((start, runs[closer][1]))
        i = closer + 1
    return spans


def _escape_line(line: str) -> str:
    spans = _code_spans(line)
    out: list[str] = []
    at = 0
    for start, end in [*spans, (len(line), len(line))]:
        plain = _MARKDOWN_SPECIAL.sub(r"\\\1", line[at:start]).replace("`", "\\`")
        out.append(no_mentions(plain))
        out.append(line[start:end])  # code: shown literally, backslashes would show too
        at = end
    return "".join(out)


def md(text: str) -> str:
    """Text from anywhere (the bot's words around a user's) made safe for a Mattermost post:
    no mention, link, image, autolink or HTML can come out of it, and the bot's own
    formatting (inline code, bold) still works. Code spans are kept within a line and a
    backtick without a partner is escaped, so text can never open code that swallows the
    bot's markdown; a line that would open a code fence is escaped too (a backtick fence has
    no partner on its line, so it is escaped already)."""
    escaped = "\n".join(_escape_line(line) for line in text.split("\n"))
    # mentions are broken outside code only: the server finds none in code, and a connection
    # string in code must copy as it is
    return _TILDE_FENCE_LINE.sub(lambda m: m.group(1) + "\\" + m.group(2), escaped)


def code(text: str) -> str:
    """``text`` as inline code whatever backticks it holds (a fence longer than any run)."""
    flat = " ".join(text.split())
    longest = max((len(m.group()) for m in _BACKTICKS.finditer(flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return no_mentions(f"{fence}{pad}{flat}{pad}{fence}")


def _code_block(text: str) -> list[str]:
    """A fenced block no line of ``text`` can close early (such a line starts with a zero-width
    space, which neither CommonMark nor the server's mention scanner takes for a fence)."""
    body = _FENCE_LINE.sub(lambda m: ZERO_WIDTH_SPACE + m.group(0), text.rstrip("\n"))
    return ["```", body, "```"]


@dataclass(frozen=True, kw_only=True)
class Message:
    """A post as Mattermost takes it: markdown text and Slack-style attachments."""

    text: str
    attachments: list[dict[str, Any]] = field(default_factory=list)
    short: str | None = None  # sent instead when Mattermost refuses ``text`` (400): fits


def render_reply(
    reply: Reply,
    *,
    buttons: ButtonConfig | None,
    root_id: str | None = None,
    footer: str = "",
) -> Message:
    """Markdown: bold title, one line per step with an emoji state, fields, lines, a code
    block; buttons as attachment actions (or, when buttons are off, the commands to type)."""
    out = [f"{'⚠️ ' if not reply.ok else ''}**{md(reply.title)}**"]
    for step in reply.steps:
        icon = STATE_ICONS.get(step.state, "•")
        detail = f": {md(step.detail)}" if step.detail else ""
        out.append(f"{icon} {md(step.label)} — {step.state.value}{detail}")
    if reply.fields:
        out.append("")
        out.extend(f"**{md(label)}:** {md(value)}" for label, value in reply.fields)
    if reply.lines:
        out.append("")
        out.extend(md(line) for line in reply.lines)
    if reply.code:
        out.extend(["", *_code_block(reply.code)])
    if reply.buttons and buttons is None:
        out.append("")
        out.extend(f"➡️ {md(b.label)}: type {code(b.command)}" for b in reply.buttons)
    if reply.correlation_id and not reply.ok:
        out.append(f"_(correlation id {md(reply.correlation_id)})_")
    if footer:
        out.extend(["", footer])
    attachments: list[dict[str, Any]] = []
    if reply.buttons and buttons is not None:
        attachments.append(
            {
                "fallback": no_mentions(
                    "; ".join(f"{b.label}: {b.command}" for b in reply.buttons)
                ),
                "actions": [
                    _action(index, b, buttons=buttons, root_id=root_id)
                    for index, b in enumerate(reply.buttons)
                ],
            }
        )
    whole = "\n".join(out)
    tail = 2 if footer else 0  # the footer stays under a cut
    return Message(
        text=_truncate(whole, hint=reply.more_hint, keep_tail=tail),
        attachments=attachments,
        short=_truncate(whole, hint=reply.more_hint, keep_tail=tail, limit=SHORT_MESSAGE_CHARS)
        if len(whole) > SHORT_MESSAGE_CHARS
        else None,
    )


def _action(
    index: int, button: Button, *, buttons: ButtonConfig, root_id: str | None
) -> dict[str, Any]:
    # Mattermost routes clicks by action id, which must be alphanumeric.
    return {
        "id": f"pgdb{index}",
        "name": button.label,
        "type": "button",
        "style": _BUTTON_STYLES.get(button.style, "default"),
        "integration": {
            "url": buttons.url,
            "context": button_context(
                command=button.command, root_id=root_id or "", secret=buttons.secret
            ),
        },
    }


def render_alert(
    alert: Alert, *, buttons: ButtonConfig | None = None, limit: int = MAX_MESSAGE_CHARS
) -> Message:
    """One line of text (what notifications show) and a coloured attachment with the detail
    (and the alert's decision buttons, when buttons are configured)."""
    if alert.resolved:
        text, colour = f"✅ Resolved: {md(alert.title)}", RESOLVED_COLOUR
    else:
        icon = SEVERITY_ICONS.get(alert.severity, "⚪")
        text = f"{icon} {alert.severity.upper()}: {md(alert.title)}"
        colour = SEVERITY_COLOURS.get(alert.severity, SEVERITY_COLOURS["info"])
    attachment: dict[str, Any] = {
        "fallback": no_mentions(f"{alert.title} — {alert.text}"),
        "color": colour,
        "text": _truncate(md(alert.text), hint=ALERT_HINT, limit=limit),
        "footer": f"pgdb-bot · {alert.key}",
    }
    if alert.buttons and buttons is not None:
        attachment["actions"] = [
            _action(index, b, buttons=buttons, root_id=None)
            for index, b in enumerate(alert.buttons)
        ]
    return Message(text=text, attachments=[attachment])


_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")


def _truncate(
    text: str, *, hint: str = "", limit: int = MAX_MESSAGE_CHARS, keep_tail: int = 0
) -> str:
    """``text`` within ``limit`` characters: whole lines in order, then a line saying how many
    were left out and how to see them (a code block cut is closed), then the last
    ``keep_tail`` lines. Never a silent cut."""
    if len(text) <= limit:
        return text
    lines = text.split("\n")
    tail = lines[len(lines) - keep_tail :] if keep_tail else []
    body = lines[: len(lines) - keep_tail] if keep_tail else lines
    room = limit - sum(len(line) + 1 for line in tail) - 300  # the note and a closing fence
    kept: list[str] = []
    fence: str | None = None
    for line in body:
        if len(line) + 1 > room:
            break
        kept.append(line)
        room -= len(line) + 1
        opened = _FENCE.match(line)
        if opened:
            fence = None if fence is not None else opened.group(1)
    if fence is not None:
        kept.append(fence)
    left = len(body) - len(kept) + (1 if fence is not None else 0)
    where = f"`{hint}`" if hint.startswith("/") else hint
    note = f"… {left} more line(s) not shown: " + (
        where or "too long for one Mattermost post; ask for less (one app, a page)"
    )
    return "\n".join([*kept, note, *tail])
