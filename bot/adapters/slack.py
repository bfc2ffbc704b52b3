"""Slack: every ``/pgdb`` command through slack-bolt, in Socket Mode or HTTP mode (SPEC §7).

The ack never waits for work. Bolt runs our listeners inline (``process_before_response``),
and a listener only hands the command to the :class:`~bot.runner.CommandRunner`, so Bolt's
answer (the HTTP 200 or the Socket Mode ack) leaves in milliseconds whatever PostgreSQL, Git or
the secret store are doing, and Bolt's own listener pool is never involved.

A command's progress is one channel message, posted at once (``chat.postMessage``) and edited in
place (``chat.update``), updates coalesced to stay within Slack's rate limits. Where the bot may
not post (``not_in_channel``), the command's ``response_url`` carries the same message. Replies
meant for the requester only are ephemeral. Every Web API call honours 429 ``Retry-After`` and
retries server and connection errors, a bounded number of times.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from slack_bolt import Ack, App, BoltContext, BoltRequest
from slack_bolt.adapter.socket_mode.builtin import SocketModeHandler
from slack_bolt.adapter.starlette.handler import to_starlette_response
from slack_bolt.error import BoltError
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    RetryHandler,
    RetryState,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.config import ConfigError, Settings
from bot.core.errors import BackendUnavailable, PgdbError
from bot.core.reply import Alert, Reply, StepState
from bot.core.text import refuse_at_edge, storable
from bot.http_edge import UNAUTHENTICATED, EdgeAudit, read_limited, too_large
from bot.runner import CommandRunner, ShuttingDown
from handlers.context import Requester, Services
from handlers.intake import Once, run_once

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
SIGNATURE_WINDOW_SECONDS = 300  # Slack's replay window
MAX_BODY_BYTES = 1 << 20  # a click's payload carries the clicked message (up to 50 blocks)
ONCE_CONTEXT_KEY = "pgdb_once"  # the request's replay key, from our route to the listeners
HTTP_TIMEOUT_SECONDS = 10
BUTTON_ACTION_PREFIX = "pgdb_command_"
# chat.postMessage errors that mean "not here" (expected; any failure falls back to response_url)
FALLBACK_ERRORS = frozenset(
    {"not_in_channel", "channel_not_found", "is_archived", "restricted_action"}
)


# --- configuration -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SlackSettings:
    """What the Slack adapter needs, checked together (each error names its variable)."""

    bot_token: str
    signing_secret: str | None
    app_token: str | None
    api_url: str
    ops_channel: str | None

    @property
    def socket_mode(self) -> bool:
        return self.app_token is not None


def slack_settings(settings: Settings) -> SlackSettings | None:
    """None when no ``PGDB_SLACK_*`` credential is set; ConfigError when the set is unusable."""
    if not any((settings.slack_bot_token, settings.slack_signing_secret, settings.slack_app_token)):
        return None
    if settings.slack_bot_token is None:
        raise ConfigError(
            "PGDB_SLACK_BOT_TOKEN: missing: Slack needs the app's bot token (xoxb-…) as soon "
            "as PGDB_SLACK_SIGNING_SECRET or PGDB_SLACK_APP_TOKEN is set"
        )
    if settings.slack_app_token is None and settings.slack_signing_secret is None:
        raise ConfigError(
            "PGDB_SLACK_SIGNING_SECRET: missing: in HTTP mode (no PGDB_SLACK_APP_TOKEN) every "
            "request to /slack/events is verified with the app's signing secret"
        )
    return SlackSettings(
        bot_token=settings.slack_bot_token,
        signing_secret=settings.slack_signing_secret,
        app_token=settings.slack_app_token,
        api_url=settings.slack_api_url,
        ops_channel=settings.slack_ops_channel or settings.ops_channel,
    )


# --- Web API client ------------------------------------------------------------------------


class ServerErrorsRetryHandler(RetryHandler):
    """Retries any 5xx answer (slack_sdk's own handler only retries 500 and 503)."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and 500 <= response.status_code < 600


def retry_handlers() -> list[RetryHandler]:
    """Bounded retries: 429 after its Retry-After, 5xx and broken connections with backoff."""
    return [
        ConnectionErrorRetryHandler(max_retry_count=2),
        RateLimitErrorRetryHandler(max_retry_count=5),
        ServerErrorsRetryHandler(max_retry_count=2),
    ]


def web_client(*, token: str, api_url: str) -> WebClient:
    return WebClient(
        token=token,
        base_url=api_url,
        timeout=HTTP_TIMEOUT_SECONDS,
        retry_handlers=retry_handlers(),
    )


def _error_code(exc: SlackApiError) -> str:
    try:
        return str(exc.response.get("error") or exc.response.status_code)
    except Exception:
        return "unknown error"


# --- request signatures --------------------------------------------------------------------


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


# --- rendering (Block Kit) -----------------------------------------------------------------

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


def _sent_or_shorter(
    send: Callable[[list[Block]], Any], blocks: list[Block], *, hint: str, what: str
) -> Any:
    """``send(blocks)``; when Slack refuses the size (``msg_too_long``,
    ``msg_blocks_too_long``, ``invalid_blocks``), once more with a shorter message that says
    how to see the rest."""
    try:
        return send(blocks)
    except SlackApiError as exc:
        code = _error_code(exc)
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


# --- user groups ---------------------------------------------------------------------------


class SlackGroups:
    """``group:<handle>`` → the Slack user ids in that user group (``usergroups.list`` and
    ``usergroups.users.list``), cached briefly; a stale answer is used while Slack fails."""

    def __init__(
        self,
        *,
        client: WebClient,
        ttl_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._ids: tuple[float, dict[str, str]] | None = None
        self._members: dict[str, tuple[float, frozenset[str]]] = {}

    def members(self, handle: str) -> Iterator[str]:
        return iter(self._lookup(handle.strip().lstrip("@")))

    def _lookup(self, handle: str) -> frozenset[str]:
        with self._lock:
            now = self._clock()
            cached = self._members.get(handle)
            if cached is not None and cached[0] > now:
                return cached[1]
            try:
                group_id = self._group_ids(now).get(handle)
                if group_id is None:
                    log.warning(
                        "no Slack user group with handle @%s (PGDB_*: group:%s)", handle, handle
                    )
                    users: frozenset[str] = frozenset()
                else:
                    answer = self._client.usergroups_users_list(usergroup=group_id)
                    users = frozenset(str(u) for u in answer.get("users") or [])
            except Exception as exc:
                cause = _error_code(exc) if isinstance(exc, SlackApiError) else type(exc).__name__
                if cached is not None:
                    log.warning(
                        "Slack user group @%s: using the cached members (%s)", handle, cause
                    )
                    return cached[1]
                raise PgdbError(
                    f"cannot resolve `group:{handle}` through Slack ({cause}); try again shortly"
                ) from None
            self._members[handle] = (now + self._ttl, users)
            return users

    def _group_ids(self, now: float) -> dict[str, str]:
        if self._ids is None or self._ids[0] <= now:
            answer = self._client.usergroups_list()
            ids = {str(g["handle"]): str(g["id"]) for g in answer.get("usergroups") or []}
            self._ids = (now + self._ttl, ids)
        return self._ids[1]


# --- progress in place ---------------------------------------------------------------------


class UpdateBudget:
    """A token bucket for ``chat.update`` (Tier 3, about 50 a minute per workspace): progress
    updates wait for a token, final ones never do."""

    def __init__(
        self,
        *,
        per_minute: float = 40,
        burst: float = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = per_minute / 60.0
        self._burst = burst
        self._tokens = burst
        self._clock = clock
        self._at = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now

    def try_take(self) -> bool:
        with self._lock:
            self._refill()
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False

    def take_if_any(self) -> None:
        with self._lock:
            self._refill()
            self._tokens = max(0.0, self._tokens - 1)

    def wait_seconds(self) -> float:
        with self._lock:
            self._refill()
            return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self._rate


@dataclass(frozen=True, kw_only=True)
class Messenger:
    """The Web API client and the pacing shared by every conversation of one workspace."""

    client: WebClient
    budget: UpdateBudget = dataclasses.field(default_factory=UpdateBudget)
    min_interval: float = 1.0  # between two updates of one message

    def respond(self, url: str, body: dict[str, Any]) -> bool:
        """POST to a ``response_url``; True when Slack took it."""
        try:
            answer = WebhookClient(
                url=url, timeout=HTTP_TIMEOUT_SECONDS, retry_handlers=retry_handlers()
            ).send_dict(body)
        except Exception as exc:
            log.warning("Slack response_url failed: %s", type(exc).__name__)
            return False
        if answer.status_code != 200:
            log.warning("Slack response_url answered %d: %s", answer.status_code, answer.body)
            return False
        return True


LINK_PREFIX = "slack:"


class SlackConversation:
    """One command's message: posted on the first update, edited in place after that.

    ``show`` never raises: a Slack problem is logged and must not stop the workflow.
    """

    def __init__(
        self,
        *,
        messenger: Messenger,
        channel: str,
        user: str,
        command: str,
        response_url: str | None,
        message_ts: str | None = None,
        via_response_url: bool = False,
    ) -> None:
        self._slack = messenger
        self._channel = channel
        self._user = user
        self._response_url = response_url
        self._footer = f"<@{user}> · `{escape(command)}`"
        self._ts = message_ts  # our message in the channel (chat.update)
        self._webhook = via_response_url  # our message went through the response_url
        self._changed = False  # this command posted or edited a message
        self._last_sent = 0.0
        self._pending: tuple[str, list[Block]] | None = None
        self._timer: threading.Timer | None = None
        self._finished = False
        self._lock = threading.RLock()
        self._hint = ""  # how to see what a reply cut for size left out

    # Conversation port
    def show(self, reply: Reply) -> None:
        try:
            with self._lock:
                if self._finished:
                    return
                if reply.private:
                    if reply.final:
                        self._finish_privately(reply)
                    return
                text, blocks = render(reply, footer=self._footer)
                self._hint = reply.more_hint
                if not self._posted:
                    self._post(text, blocks)
                    self._finished = reply.final
                    return
                if reply.final:
                    self._finished = True
                    self._cancel_timer()
                    self._pending = None
                    time.sleep(
                        max(0.0, self._last_sent + self._slack.min_interval - time.monotonic())
                    )
                    self._slack.budget.take_if_any()
                    self._update(text, blocks)
                    return
                self._pending = (text, blocks)
                self._flush_or_wait()
        except Exception:
            log.exception("could not show a reply in Slack channel %s", self._channel)

    @property
    def message_link(self) -> str | None:
        """``slack:<channel>:<ts>`` once the message is posted (not through a response_url)."""
        return f"{LINK_PREFIX}{self._channel}:{self._ts}" if self._ts else None

    @property
    def _posted(self) -> bool:
        return self._ts is not None or self._webhook

    def _flush_or_wait(self) -> None:
        if self._pending is None or self._timer is not None:
            return
        due = self._last_sent + self._slack.min_interval - time.monotonic()
        if due <= 0 and self._slack.budget.try_take():
            text, blocks = self._pending
            self._pending = None
            self._update(text, blocks)
            return
        delay = max(due, self._slack.budget.wait_seconds(), 0.05)
        self._timer = threading.Timer(delay, self._on_timer)
        self._timer.daemon = True
        self._timer.start()

    def _on_timer(self) -> None:
        try:
            with self._lock:
                self._timer = None
                if not self._finished:
                    self._flush_or_wait()
        except Exception:
            log.exception("could not update the Slack message in %s", self._channel)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _post(self, text: str, blocks: list[Block]) -> None:
        self._last_sent = time.monotonic()
        try:
            answer = _sent_or_shorter(
                lambda b: self._slack.client.chat_postMessage(
                    channel=self._channel, text=text, blocks=b, unfurl_links=False
                ),
                blocks,
                hint=self._hint,
                what="a message",
            )
            self._ts = str(answer["ts"])
            self._channel = str(answer.get("channel") or self._channel)
            self._changed = True
            return
        except Exception as exc:
            code = _error_code(exc) if isinstance(exc, SlackApiError) else type(exc).__name__
            if not self._response_url:
                log.error("Slack chat.postMessage to %s failed: %s", self._channel, code)
                return
            # not_in_channel, channel_not_found (a private channel, a DM), or Slack failing
            level = logging.INFO if code in FALLBACK_ERRORS else logging.WARNING
            log.log(level, "cannot post in %s (%s): using the response_url", self._channel, code)
        self._webhook = self._slack.respond(
            self._response_url,
            {"response_type": "in_channel", "text": text, "blocks": blocks},
        )
        self._changed = self._webhook

    def _update(self, text: str, blocks: list[Block]) -> None:
        self._last_sent = time.monotonic()
        self._changed = True
        if self._webhook and self._response_url:
            self._slack.respond(
                self._response_url,
                {
                    "response_type": "in_channel",
                    "replace_original": True,
                    "text": text,
                    "blocks": blocks,
                },
            )
            return
        try:
            _sent_or_shorter(
                lambda b: self._slack.client.chat_update(
                    channel=self._channel, ts=self._ts or "", text=text, blocks=b
                ),
                blocks,
                hint=self._hint,
                what="an update",
            )
        except SlackApiError as exc:
            log.warning(
                "Slack chat.update in %s failed (%s): posting the message again",
                self._channel,
                _error_code(exc),
            )
            self._ts = None
            self._post(text, blocks)

    def _finish_privately(self, reply: Reply) -> None:
        """An answer for the requester only: ephemeral; a channel message this command already
        showed says where the answer went (a clicked message is left as it was)."""
        self._finished = True
        self._cancel_timer()
        if self._changed:
            note = Reply(title="Not run", lines=["The reason was sent to the requester only."])
            self._update(*render(note, footer=self._footer))
        text, blocks = render(reply)
        body = {"response_type": "ephemeral", "replace_original": False}
        if self._response_url and self._slack.respond(
            self._response_url, {**body, "text": text, "blocks": blocks}
        ):
            return
        try:
            self._slack.client.chat_postEphemeral(
                channel=self._channel, user=self._user, text=text, blocks=blocks
            )
        except SlackApiError as exc:
            log.error("could not tell %s privately: %s", self._user, _error_code(exc))


# --- the platform --------------------------------------------------------------------------


def normalize_command_text(text: str) -> str:
    """What the user typed, undoing Slack's escaping and the clients' typographic "smart"
    replacements (an em dash for ``--``, curly quotes)."""
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    text = re.sub(r"(^|\s)[\u2014\u2013](?=\w)", r"\1--", text)
    for curly, straight in (("\u201c", '"'), ("\u201d", '"'), ("\u2018", "'"), ("\u2019", "'")):
        text = text.replace(curly, straight)
    return text.strip()


class SlackPlatform:
    """``/pgdb`` on Slack. Socket Mode when an app token is configured, else ``POST
    /slack/events`` on the shared HTTP server."""

    name = "slack"
    # chat.postMessage: about one message per second per channel (Slack's rate limits)
    alert_interval = 1.0

    def __init__(
        self,
        *,
        config: SlackSettings,
        services: Services,
        runner: CommandRunner,
        messenger: Messenger | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._runner = runner
        self._clock = clock
        client = (
            messenger.client
            if messenger
            else web_client(token=config.bot_token, api_url=config.api_url)
        )
        self._slack = messenger or Messenger(client=client)
        self._services = dataclasses.replace(services, groups=SlackGroups(client=client))
        try:
            self.app = App(
                client=client,
                signing_secret=config.signing_secret or "",
                # HTTP mode: our route checks the signature once, where the size limit and
                # the replay key live (SPEC §8 rev. 2); Socket Mode is not signed at all.
                request_verification_enabled=False,
                process_before_response=True,  # listeners only enqueue: run them inline
                logger=logging.getLogger("slack_bolt"),
            )
        except BoltError as exc:
            raise ConfigError(
                f"PGDB_SLACK_BOT_TOKEN: Slack did not accept the bot token at "
                f"{config.api_url} (PGDB_SLACK_API_URL): {exc}"
            ) from None
        self.app.command(re.compile(r"^/pgdb"))(self._on_command)
        self.app.action(re.compile(f"^{BUTTON_ACTION_PREFIX}"))(self._on_button)
        self._socket: SocketModeHandler | None = None
        self._stopping = threading.Event()
        self._edge_audit = EdgeAudit(services.state)

    # ChatPlatform
    def routes(self) -> list[BaseRoute]:
        if self._config.socket_mode:
            return []
        return [Route(EVENTS_PATH, self._http_events, methods=["POST"])]

    def start(self) -> None:
        if not self._config.socket_mode:
            log.info("Slack: HTTP mode at %s", EVENTS_PATH)
            return
        assert self._config.app_token is not None
        self._socket = SocketModeHandler(
            self.app, app_token=self._config.app_token, web_client=self._slack.client
        )
        threading.Thread(target=self._connect, name="slack-socket-mode", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        if self._socket is not None:
            self._socket.client.close()

    def send_alert(self, alert: Alert) -> str | None:
        channel = self._config.ops_channel
        if channel is None:
            log.warning(
                "alert %s not posted: set PGDB_OPS_CHANNEL or PGDB_SLACK_OPS_CHANNEL: %s",
                alert.key,
                alert.title,
            )
            return None
        text, blocks = render_alert(alert)
        try:
            answer = _sent_or_shorter(
                lambda b: self._slack.client.chat_postMessage(
                    channel=channel, text=text, blocks=b, thread_ts=alert.thread, unfurl_links=False
                ),
                blocks,
                hint=ALERT_HINT,
                what=f"alert {alert.key}",
            )
        except SlackApiError as exc:
            code = _error_code(exc)
            hint = (
                " (invite the bot to the channel: /invite @pgdb)" if code in FALLBACK_ERRORS else ""
            )
            # Raised, so the alert lifecycle keeps the alert unsent and retries it next pass.
            raise BackendUnavailable(
                "Slack", f"could not post alert {alert.key} to {channel}: {code}{hint}"
            ) from None
        return alert.thread or str(answer["ts"])

    def reply_in_thread(self, link: str, text: str) -> bool:
        if not link.startswith(LINK_PREFIX):
            return False
        channel, _, ts = link.removeprefix(LINK_PREFIX).partition(":")
        if not channel or not ts:
            return False
        try:
            # The text carries user words (a deny reason, a requester's id): escaped like
            # every other message, so it can neither mention nor link.
            self._slack.client.chat_postMessage(
                channel=channel, text=escape(text), thread_ts=ts, unfurl_links=False
            )
        except SlackApiError as exc:
            raise BackendUnavailable(
                "Slack", f"could not reply in thread {ts} of {channel}: {_error_code(exc)}"
            ) from None
        return True

    # HTTP mode
    async def _http_events(self, request: Request) -> Response:
        """Size (bytes read), signature, shape; then Bolt, whose listeners only hand over.
        Nothing here logs or parses a byte of a body before it is known to be small."""
        body = await read_limited(request, limit=MAX_BODY_BYTES)
        if body is None:
            self._edge_audit.refused(
                user=UNAUTHENTICATED,
                platform=self.name,
                command=f"(a request body over {MAX_BODY_BYTES:,} bytes to {EVENTS_PATH})",
                result="too large",
                detail="refused before reading it whole",
            )
            return too_large(limit=MAX_BODY_BYTES, body={"error": "request too large"})
        assert self._config.signing_secret is not None
        timestamp = request.headers.get("x-slack-request-timestamp")
        signature = request.headers.get("x-slack-signature")
        if not signature_ok(
            secret=self._config.signing_secret,
            body=body,
            timestamp=timestamp,
            signature=signature,
            now=self._clock(),
        ):
            log.warning("refused a request to %s: missing, wrong or stale signature", EVENTS_PATH)
            return JSONResponse({"error": "invalid request"}, status_code=401)
        assert timestamp is not None and signature is not None  # signature_ok checked them
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return JSONResponse({"error": "not UTF-8"}, status_code=400)
        problem = malformed(text, content_type=request.headers.get("content-type", ""))
        if problem is not None:
            log.warning("refused a signed request to %s: %s", EVENTS_PATH, problem)
            return JSONResponse({"error": problem}, status_code=400)
        once = Once(
            # the signature covers the timestamp and the body: the same request, the same key
            key="slack:" + hashlib.sha256(signature.encode("utf-8", "replace")).hexdigest(),
            until=datetime.fromtimestamp(int(timestamp) + SIGNATURE_WINDOW_SECONDS, UTC),
            what="signed Slack request",
        )
        bolt_request = BoltRequest(
            body=text,
            query=request.url.query,
            headers={k: [v] for k, v in request.headers.items()},
            context={ONCE_CONTEXT_KEY: once},
        )
        return to_starlette_response(await run_in_threadpool(self.app.dispatch, bolt_request))

    # Socket Mode
    def _connect(self) -> None:
        delay = 1.0
        while not self._stopping.is_set() and self._socket is not None:
            try:
                self._socket.client.connect()
                log.info("Slack: Socket Mode connected")
                return
            except Exception as exc:
                cause = _error_code(exc) if isinstance(exc, SlackApiError) else str(exc)
                log.warning(
                    "Slack Socket Mode: cannot connect (%s; check PGDB_SLACK_APP_TOKEN): "
                    "retrying in %.0fs",
                    cause,
                    delay,
                )
                self._stopping.wait(delay)
                delay = min(delay * 2, 60.0)

    # listeners: they only hand the work over, so Bolt's answer is the ack
    def _on_command(self, ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
        user, channel = _text(body.get("user_id")), _text(body.get("channel_id"))
        raw = _text(body.get("text"))
        refusal = refuse_at_edge(raw)
        if refusal is not None:
            # before anything parses or logs the text: the requester is told the limit now
            self._edge_audit.refused(
                user=user or UNAUTHENTICATED,
                platform=self.name,
                command=f"/pgdb {raw}",
                result=refusal.outcome,
                detail=refusal.message,
            )
            ack(response_type="ephemeral", text=escape(refusal.message))
            return
        text = f"/pgdb {normalize_command_text(raw)}".strip()
        response_url = body.get("response_url")
        conversation = SlackConversation(
            messenger=self._slack,
            channel=channel,
            user=user,
            command=text,
            response_url=response_url if isinstance(response_url, str) else None,
        )
        self._hand_over(
            ack, text=text, user=user, conversation=conversation, note=True, once=_once(context)
        )

    def _on_button(self, ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
        actions = body.get("actions")
        action = actions[0] if isinstance(actions, list) and actions else None
        command = _text(action.get("value")) if isinstance(action, dict) else ""
        user = _text(_field(body, "user", "id"))
        container = body.get("container")
        container = container if isinstance(container, dict) else {}
        channel = _text(_field(body, "channel", "id") or container.get("channel_id"))
        if not command.startswith("/pgdb ") or refuse_at_edge(command) is not None:
            ack()
            log.warning("ignored a Slack button without a /pgdb command")
            return
        ephemeral = container.get("is_ephemeral") is True
        response_url = body.get("response_url")
        message_ts = container.get("message_ts")
        conversation = SlackConversation(
            messenger=self._slack,
            channel=channel,
            user=user,
            command=command,
            response_url=response_url if isinstance(response_url, str) else None,
            message_ts=None if ephemeral or not isinstance(message_ts, str) else message_ts,
            via_response_url=ephemeral,
        )
        self._hand_over(
            ack, text=command, user=user, conversation=conversation, note=False, once=_once(context)
        )

    def _hand_over(
        self,
        ack: Ack,
        *,
        text: str,
        user: str,
        conversation: SlackConversation,
        note: bool,
        once: Once | None,
    ) -> None:
        if not user:
            ack()
            return
        requester = Requester(user_id=user, platform="slack")
        services = self._services

        def work() -> None:
            # the replay check runs here, after the ack and before any work (SPEC §8)
            run_once(services, once=once, text=text, requester=requester, conversation=conversation)

        try:
            self._runner.submit(work, what=f"slack command by {storable(user, limit=64)}")
        except ShuttingDown as exc:
            ack(response_type="ephemeral", text=str(exc))
            return
        if not note:  # a click: Slack wants an empty 200
            ack()
            return
        # Bolt sends this once the listener returns: the ack, with a note for the requester
        ack(response_type="ephemeral", text=f"Working on `{escape(text)}`…")


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


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _field(body: dict[str, Any], name: str, key: str) -> object:
    """``body[name][key]`` when ``body[name]`` is an object (Slack may send a plain id)."""
    value = body.get(name)
    if isinstance(value, dict):
        return value.get(key)
    return value if isinstance(value, str) else None


def _once(context: BoltContext) -> Once | None:
    """The replay key our route attached (None in Socket Mode: its requests are unsigned and
    come over the connection the bot opened)."""
    once = context.get(ONCE_CONTEXT_KEY)
    return once if isinstance(once, Once) else None


def slack_platform(
    *, settings: Settings, services: Services, runner: CommandRunner
) -> SlackPlatform | None:
    """The Slack platform when its variables are set (the bot token is checked now)."""
    config = slack_settings(settings)
    if config is None:
        return None
    return SlackPlatform(config=config, services=services, runner=runner)
