"""Slack messages from the core's replies and alerts (Block Kit), within Slack's limits.

Every text the bot posts goes through :func:`escape`, so user words can neither mention,
broadcast nor link; a message over Slack's size is cut with a note saying what was left out
and how to see it, never silently, and one Slack refuses for its size is sent again shorter.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.adapters.slack.client import error_code
from bot.core.reply import Alert, Reply, StepState

log = logging.getLogger(__name__)

BUTTON_ACTION_PREFIX = "pgdb_command_"
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
FALLBACK_TEXT_LIMIT = 3000
MAX_BLOCKS = 50
# Slack refuses a message whose blocks hold more than about 12,000 characters of text in all
# (``msg_blocks_too_long``, slackapi/bolt-js#2509), whatever its 40,000 for ``text``: a
# reply is fitted within this budget, and a refused one is sent again within the short one.
BLOCKS_TEXT_BUDGET = 10_000
SHORT_TEXT_BUDGET = 2_500
SHORT_MAX_BLOCKS = 12
TOO_LONG_ERRORS = frozenset({"msg_too_long", "msg_blocks_too_long", "invalid_blocks"})
MORE_BLOCK_ID = "pgdb_more_"  # + how many lines it stands for
ALERT_HINT = "/pgdb diagnose"  # where an alert cut for size is shown whole
SHORT_FIELD = 40  # label + value up to this fit side by side, even on a phone

STEP_ICONS = {
    StepState.PENDING: "⏳",
    StepState.DONE: "✅",
    StepState.EXISTS: "☑️",
    StepState.PLANNED: "🔹",
    StepState.FAILED: "❌",
    StepState.SKIPPED: "⏭️",
}
SEVERITY_ICONS = {"critical": "🔴", "warning": "🟠", "info": "🔵"}

Block = dict[str, Any]


# "@here", "@channel", "@everyone" typed as plain words: a zero-width space after the "@"
# keeps them from being parsed as broadcasts (mrkdwn's automatic parsing) and reads the same.
_BROADCAST = re.compile(r"@(?=(?:here|channel|everyone)\b)", re.IGNORECASE)


def escape(text: str) -> str:
    """Slack's three control characters (so ``<!channel>``, ``<@U…>`` and ``<url|label>``
    from user text arrive as literal text), and plain-word broadcasts broken; everything else
    is shown as written. Every text the bot posts to Slack goes through here."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST.sub("@\u200b", text)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mrkdwn(text: str) -> Block:
    return {"type": "mrkdwn", "text": text}


def _section(text: str) -> Block:
    return {"type": "section", "text": _mrkdwn(_clip(text, SECTION_LIMIT))}


def _sections(entries: list[str]) -> list[Block]:
    """Entries packed into as few sections as Slack's length limit allows."""
    blocks: list[Block] = []
    current: list[str] = []
    size = 0
    for entry in entries:
        entry = _clip(entry, SECTION_LIMIT)
        if current and size + len(entry) + 1 > SECTION_LIMIT:
            blocks.append(_section("\n".join(current)))
            current, size = [], 0
        current.append(entry)
        size += len(entry) + 1
    if current and any(e.strip() for e in current):
        blocks.append(_section("\n".join(current)))
    return blocks


def _field_blocks(fields: list[tuple[str, str]]) -> list[Block]:
    """Short fields side by side (10 per section); long ones stacked, label over value."""
    if all(len(label) + len(value) <= SHORT_FIELD for label, value in fields):
        return [
            {
                "type": "section",
                "fields": [
                    _mrkdwn(_clip(f"*{escape(label)}*\n{escape(value)}", FIELD_LIMIT))
                    for label, value in fields[i : i + 10]
                ],
            }
            for i in range(0, len(fields), 10)
        ]
    return _sections([f"*{escape(label)}*\n{escape(value)}" for label, value in fields])


def _button(index: int, label: str, command: str, style: str) -> Block:
    button: Block = {
        "type": "button",
        "action_id": f"{BUTTON_ACTION_PREFIX}{index}",
        "text": {"type": "plain_text", "text": _clip(label, 75)},
        "value": command,
    }
    if style in {"primary", "danger"}:
        button["style"] = style
    if style == "danger":
        button["confirm"] = {
            "title": {"type": "plain_text", "text": "Are you sure?"},
            "text": _mrkdwn(f"This runs `{escape(command)}`."),
            "confirm": {"type": "plain_text", "text": _clip(label, 30)},
            "deny": {"type": "plain_text", "text": "Cancel"},
        }
    return button


def _text_size(value: Any) -> int:
    """Characters of text in a block (what Slack's cumulative limit counts)."""
    if isinstance(value, dict):
        return sum(
            len(v) if k in {"text", "value"} and isinstance(v, str) else _text_size(v)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return sum(_text_size(v) for v in value)
    return 0


def _line_count(block: Block) -> int:
    text = block.get("text")
    if isinstance(text, dict):
        return str(text.get("text", "")).count("\n") + 1
    return max(1, len(block.get("fields") or []))


def _code_sections(code: str) -> list[Block]:
    """A code block as as many sections as it needs (each one fenced)."""
    blocks: list[Block] = []
    current: list[str] = []
    size = 0
    for line in escape(code.rstrip("\n")).split("\n"):
        line = _clip(line, SECTION_LIMIT - 10)
        if current and size + len(line) + 1 > SECTION_LIMIT - 10:
            blocks.append(_section("```\n" + "\n".join(current) + "\n```"))
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    if current:
        blocks.append(_section("```\n" + "\n".join(current) + "\n```"))
    return blocks


def more_note(lines: int, hint: str) -> str:
    """The last line of a cut message: what was left out and how to see it."""
    where = f"`{hint}`" if hint.startswith("/") else hint
    return f"… {lines} more line(s) not shown: " + (
        where or "too long for one Slack message; ask for less (one app, a page)"
    )


def fit_blocks(
    blocks: list[Block],
    *,
    hint: str = "",
    budget: int = BLOCKS_TEXT_BUDGET,
    max_blocks: int = MAX_BLOCKS,
) -> list[Block]:
    """Blocks within Slack's limits: the title, then as many lines as fit in order, a note
    saying how many lines were left out and how to see them, then the footer and buttons.
    Never a silent cut."""
    cut_before = sum(
        int(str(b.get("block_id", "")).removeprefix(MORE_BLOCK_ID))
        for b in blocks
        if str(b.get("block_id", "")).startswith(MORE_BLOCK_ID)
    )
    blocks = [b for b in blocks if not str(b.get("block_id", "")).startswith(MORE_BLOCK_ID)]
    if not cut_before and len(blocks) <= max_blocks and _text_size(blocks) <= budget:
        return blocks
    head, rest = blocks[:1], blocks[1:]
    tail = [b for b in rest if b.get("type") in {"actions", "context"}]
    body = [b for b in rest if b.get("type") not in {"actions", "context"}]
    room = budget - _text_size(head) - _text_size(tail) - 300  # the note itself
    slots = max_blocks - len(head) - len(tail) - 1
    kept: list[Block] = []
    left = 0
    for block in body:
        size = _text_size(block)
        if left == 0 and len(kept) < slots and size <= room:
            kept.append(block)
            room -= size
            continue
        text = block.get("text")
        if left == 0 and len(kept) < slots and isinstance(text, dict) and room > 0:
            lines = str(text.get("text", "")).split("\n")
            fenced = lines[0] == "```"
            part: list[str] = []
            for line in lines[: -1 if fenced else None]:
                if len(line) + 1 > room - (4 if fenced else 0):
                    break
                part.append(line)
                room -= len(line) + 1
            shown = len(part) - (1 if fenced else 0)
            if shown > 0:
                kept.append(_section("\n".join(part) + ("\n```" if fenced else "")))
            left += len(lines) - max(shown, 0) - (2 if fenced else 0)
            room = 0
            continue
        left += _line_count(block)
    note = {
        "type": "context",
        "block_id": f"{MORE_BLOCK_ID}{left + cut_before}",
        "elements": [_mrkdwn(more_note(left + cut_before, hint))],
    }
    return [*head, *kept, note, *tail]


def sent_or_shorter(
    send: Callable[[list[Block]], Any], blocks: list[Block], *, hint: str, what: str
) -> Any:
    """``send(blocks)``; when Slack refuses the size (``msg_too_long``,
    ``msg_blocks_too_long``, ``invalid_blocks``), once more with a shorter message that says
    how to see the rest."""
    try:
        return send(blocks)
    except SlackApiError as exc:
        code = error_code(exc)
        if code not in TOO_LONG_ERRORS:
            raise
        log.warning("Slack refused %s (%s): sending a shorter one", what, code)
        return send(
            fit_blocks(blocks, hint=hint, budget=SHORT_TEXT_BUDGET, max_blocks=SHORT_MAX_BLOCKS)
        )


def render(reply: Reply, *, footer: str | None = None) -> tuple[str, list[Block]]:
    """A reply as Slack's fallback text and Block Kit blocks (sections, fields, buttons)."""
    mark = "" if reply.ok else "⚠️ "
    blocks: list[Block] = [_section(f"{mark}*{escape(reply.title)}*")]
    if reply.steps:
        blocks.extend(
            _sections(
                [
                    f"{STEP_ICONS[s.state]} *{escape(s.label)}*"
                    + ("" if s.state is StepState.PENDING else f" · _{s.state.value}_")
                    + (f"\n{escape(s.detail)}" if s.detail else "")
                    for s in reply.steps
                ]
            )
        )
    if reply.fields:
        blocks.extend(_field_blocks(reply.fields))
    if reply.lines:
        blocks.extend(_sections([escape(line) for line in reply.lines]))
    if reply.code:
        blocks.extend(_code_sections(reply.code))
    if reply.buttons:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    _button(i, b.label, b.command, b.style)
                    for i, b in enumerate(reply.buttons[:25])
                ],
            }
        )
    notes = [footer] if footer else []
    if reply.correlation_id and not reply.ok:
        notes.append(f"correlation id `{escape(reply.correlation_id)}`")
    if notes:
        blocks.append({"type": "context", "elements": [_mrkdwn(" · ".join(notes))]})
    blocks = fit_blocks(blocks, hint=reply.more_hint)
    text = reply.title
    if not reply.ok and reply.lines:
        text += f": {reply.lines[0]}"
    return _clip(escape(text), FALLBACK_TEXT_LIMIT), blocks


def render_alert(alert: Alert) -> tuple[str, list[Block]]:
    """An ops-channel alert: severity, app, what is wrong and the remedy; or a thread reply."""
    kind, _, app = alert.key.partition(":")
    if alert.resolved:
        text = f"✅ Resolved: {alert.title}"
    elif alert.thread and not alert.details:
        text = f"{SEVERITY_ICONS.get(alert.severity, '⚪')} Still open: {alert.title}"
    else:
        text = f"{SEVERITY_ICONS.get(alert.severity, '⚪')} {alert.title}"
    blocks: list[Block] = [_section(f"*{escape(text)}*")]
    if alert.text:
        blocks.extend(_sections([escape(line) for line in alert.text.splitlines()]))
    facts = [("Severity", alert.severity), ("Finding", kind)]
    if app:
        facts.append(("App", app))
    if not alert.details:  # a group's thread reply: its message above says all that
        blocks.extend(_field_blocks(facts))
    if alert.buttons:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    _button(i, b.label, b.command, b.style) for i, b in enumerate(alert.buttons)
                ],
            }
        )
    return _clip(escape(text), FALLBACK_TEXT_LIMIT), fit_blocks(blocks, hint=ALERT_HINT)
