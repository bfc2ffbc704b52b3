"""Mattermost: a custom slash command in, a bot account's posts out (SPEC §7).

Inbound, two endpoints on the shared HTTP server: ``/mattermost/command`` (the custom slash
command, token checked in constant time) and ``/mattermost/actions`` (button clicks, whose
context carries a one-time nonce and an expiry signed with ``PGDB_ACTION_SECRET``). Bodies are
bounded by the bytes read, command text at the edge. Every command and every click goes through
``handlers.dispatch`` as the Mattermost user who typed or clicked, so authorization is always
re-checked by the core.

Outbound, plain httpx against REST API v4 (no client library: five calls do not justify one
that follows server versions): create a post, patch it, post an ephemeral message, and list a
group's members; plus the command's ``response_url`` as a last resort for private answers.
Every call has a timeout and bounded retries with backoff, honouring ``Retry-After``; a failed
call is logged and never raised into the workflow.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.config import ConfigError, Settings
from bot.core.errors import BackendUnavailable
from bot.core.reply import Alert, Button, Reply, StepState
from bot.core.text import refuse_at_edge, storable
from bot.http_edge import UNAUTHENTICATED, EdgeAudit, read_limited, too_large
from bot.runner import CommandRunner, ShuttingDown
from handlers.context import Requester, Services
from handlers.intake import Once, run_once

log = logging.getLogger(__name__)

COMMAND_PATH = "/mattermost/command"
ACTIONS_PATH = "/mattermost/actions"
API = "/api/v4"

# How long the command response waits for the first reply: a reply that is private and final
# by then (usage error, refusal) is answered in the response itself, with no REST call at all.
# Short, because the wait also covers the command queueing behind busy workers: the ack must
# stay fast when the backends are slow (bench: p99 at 50 concurrent commands).
INLINE_WAIT_SECONDS = 0.1
# Updates of one post closer together than this are coalesced into one patch.
MIN_PATCH_INTERVAL_SECONDS = 1.0
MAX_BODY_BYTES = 64 * 1024
# A button works once, within this long after it was drawn (a post redrawn gets new ones).
BUTTON_VALIDITY_SECONDS = 7 * 86400
MAX_MESSAGE_CHARS = 16_000  # Mattermost accepts 16,383 runes per post (400 beyond)
SHORT_MESSAGE_CHARS = 3_000  # what is sent again when Mattermost refuses a post's size
ALERT_HINT = "/pgdb diagnose"  # where an alert cut for size is shown whole
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_SECONDS = 30.0
GROUPS_TTL_SECONDS = 300.0
MAX_PAGES = 100  # of groups or of a group's members: 20,000 at 200 a page
_MATTERMOST_ID = re.compile(r"^[a-z0-9]{26}$")

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
Post = dict[str, Any]  # a post as the REST API returns it


class MattermostError(Exception):
    """A REST call failed for good (after the retries); already logged."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# --- REST client ------------------------------------------------------------------------------


class MattermostApi:
    """The few REST v4 calls the bot makes, as its bot account (``Authorization: Bearer``)."""

    def __init__(
        self,
        *,
        base_url: str,
        bot_token: str,
        timeout: float = 10.0,
        attempts: int = 4,
        backoff: float = 0.5,
    ) -> None:
        self._token = bot_token
        self._attempts = max(1, attempts)
        self._backoff = backoff
        # The bot token is added per request, never as a client default: the response_url of
        # a command is another address and must not receive it.
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            headers={"Accept": "application/json", "User-Agent": "pgdb-bot"},
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def create_post(
        self,
        *,
        channel_id: str,
        message: str,
        root_id: str | None = None,
        attachments: list[dict[str, Any]] | None = None,
    ) -> Post:
        """``POST /api/v4/posts``. The ``pending_post_id`` makes retries idempotent: the server
        returns the post it already created for that id instead of a duplicate."""
        body: dict[str, Any] = {
            "channel_id": channel_id,
            "message": message,
            "root_id": root_id or "",
            "pending_post_id": uuid.uuid4().hex,
        }
        if attachments:
            body["props"] = {"attachments": attachments}
        return self._post("POST", f"{API}/posts", body=body, what="create a post")

    def patch_post(
        self,
        *,
        post_id: str,
        message: str,
        attachments: list[dict[str, Any]] | None = None,
    ) -> Post:
        """``PUT /api/v4/posts/{id}/patch``: only what is sent changes; ``attachments`` None
        keeps the post's props (and its buttons), a list replaces them."""
        body: dict[str, Any] = {"message": message}
        if attachments is not None:
            body["props"] = {"attachments": attachments}
        return self._post("PUT", f"{API}/posts/{post_id}/patch", body=body, what="update a post")

    def ephemeral_post(
        self,
        *,
        user_id: str,
        channel_id: str,
        message: str,
        root_id: str | None = None,
        attachments: list[dict[str, Any]] | None = None,
    ) -> Post:
        """``POST /api/v4/posts/ephemeral`` (needs ``create_post_ephemeral``)."""
        post: dict[str, Any] = {"channel_id": channel_id, "message": message}
        if root_id:
            post["root_id"] = root_id
        if attachments:
            post["props"] = {"attachments": attachments}
        return self._post(
            "POST",
            f"{API}/posts/ephemeral",
            body={"user_id": user_id, "post": post},
            what="post an ephemeral message",
        )

    def respond(self, *, response_url: str, body: Mapping[str, Any]) -> None:
        """POST to a command's ``response_url`` (no bot token: it is not the REST API)."""
        self._send("POST", response_url, body=dict(body), what="answer through response_url")

    def groups(self, *, query: str, page: int = 0, per_page: int = 200) -> list[dict[str, Any]]:
        """One page of ``GET /api/v4/groups?q=`` (the server pages every list: 200 at most)."""
        found = self._json(
            "GET",
            f"{API}/groups",
            params={"q": query, "page": str(page), "per_page": str(per_page)},
            what="list groups",
        )
        return found if isinstance(found, list) else []

    def group_members(self, *, group_id: str, page: int, per_page: int) -> list[dict[str, Any]]:
        found = self._json(
            "GET",
            f"{API}/groups/{group_id}/members",
            params={"page": str(page), "per_page": str(per_page)},
            what="list a group's members",
        )
        members = found.get("members") if isinstance(found, dict) else None
        return members if isinstance(members, list) else []

    # -- transport --

    def _json(
        self,
        method: str,
        path: str,
        *,
        what: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        response = self._send(
            method,
            path,
            body=body,
            params=params,
            what=what,
            headers={"Authorization": f"Bearer {self._token}"},
        )
        try:
            return response.json()
        except ValueError:
            log.error("Mattermost: could not %s: the answer is not JSON", what)
            raise MattermostError(f"{what}: answer is not JSON", status=None) from None

    def _post(self, method: str, path: str, *, what: str, body: Mapping[str, Any]) -> Post:
        """A call answered by one post object."""
        found = self._json(method, path, what=what, body=body)
        if not isinstance(found, dict) or not found.get("id"):
            log.error("Mattermost: could not %s: the answer is not a post", what)
            raise MattermostError(f"{what}: the answer is not a post")
        return found

    def _send(
        self,
        method: str,
        url: str,
        *,
        what: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One call with bounded retries: transport errors, timeouts, 408/429/5xx are retried
        with exponential backoff (``Retry-After`` when the server gives one)."""
        problem = ""
        status: int | None = None
        for attempt in range(1, self._attempts + 1):
            delay = self._backoff * 2 ** (attempt - 1)
            try:
                response = self._http.request(
                    method, url, json=body, params=params, headers=headers
                )
            except httpx.TransportError as exc:
                problem, status = f"{type(exc).__name__}", None
            else:
                status = response.status_code
                if status < 400:
                    return response
                problem = f"HTTP {status}{_error_detail(response)}"
                if status not in RETRYABLE_STATUSES:
                    break
                wait = _retry_after(response)
                if wait is not None:
                    if wait > MAX_RETRY_AFTER_SECONDS:
                        problem += f" (asked to wait {wait:.0f}s: giving up)"
                        break
                    delay = wait
            if attempt < self._attempts:
                log.warning(
                    "Mattermost: %s failed (%s), attempt %d of %d; retrying in %.1fs",
                    what,
                    problem,
                    attempt,
                    self._attempts,
                    delay,
                )
                time.sleep(delay)
        log.error("Mattermost: could not %s: %s", what, problem)
        raise MattermostError(f"could not {what}: {problem}", status=status)


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from ``Retry-After`` (delta or HTTP date), else Mattermost's rate-limit reset."""
    value = response.headers.get("Retry-After") or (
        response.headers.get("X-Ratelimit-Reset") if response.status_code == 429 else None
    )
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_detail(response: httpx.Response) -> str:
    """Mattermost's error id and message (``{"id", "message", ...}``), when it sent one."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict) and body.get("id"):
        return f" {body.get('id')}: {str(body.get('message', ''))[:200]}"
    return ""


# --- rendering ----------------------------------------------------------------------------------

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
class ButtonConfig:
    """Where clicks come back (``PGDB_PUBLIC_URL`` + ``/mattermost/actions``) and the secret
    that signs their context (``PGDB_ACTION_SECRET``)."""

    url: str
    secret: str


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


def button_context(
    *, command: str, root_id: str, secret: str, now: float | None = None
) -> dict[str, Any]:
    """What a button carries: its command, a one-time nonce and an expiry, signed with
    ``PGDB_ACTION_SECRET`` (the secret itself never leaves the bot). The command token is
    static, so the nonce is what makes a replayed click recognisable (SPEC §8)."""
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


# --- one command's conversation -----------------------------------------------------------------


class InlineSlot:
    """The pending HTTP response of a command or click, answered at most once from a worker
    thread: with a private final reply (shown inline) or with None ("working on it")."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._future: asyncio.Future[Message | None] = loop.create_future()
        self._lock = threading.Lock()
        self._open = True

    def offer(self, message: Message | None) -> bool:
        """True if the HTTP response takes ``message``; False once it has been answered."""
        with self._lock:
            if not self._open:
                return False
            self._open = False
        try:
            self._loop.call_soon_threadsafe(self._settle, message)
        except RuntimeError:  # the server's loop is gone (shutting down)
            return False
        return True

    def _settle(self, message: Message | None) -> None:
        if not self._future.done():
            self._future.set_result(message)

    async def wait(self, *, timeout: float) -> Message | None:
        try:
            return await asyncio.wait_for(asyncio.shield(self._future), timeout)
        except TimeoutError:
            with self._lock:
                if self._open:
                    self._open = False
                    return None
            return await self._future  # an offer won the race and is on its way


class PostStream:
    """One bot post for one command: created on the first update, then patched in place.

    Updates closer together than ``min_interval`` are coalesced (a timer sends the newest state
    later), an unchanged state is never sent, and the final state is always attempted, even
    after earlier failures; a post that is gone (404) is posted again.
    """

    def __init__(
        self,
        *,
        api: MattermostApi,
        channel_id: str,
        root_id: str | None,
        post_id: str | None = None,
        min_interval: float = MIN_PATCH_INTERVAL_SECONDS,
    ) -> None:
        self._api = api
        self._channel_id = channel_id
        self._root_id = root_id
        self._post_id = post_id
        self._min_interval = min_interval
        self._lock = threading.Lock()  # guards the fields below
        self._send_lock = threading.Lock()  # one request at a time, newest state each time
        self._latest: Message | None = None
        self._sent: Message | None = None  # None for a clicked post: its props are unknown
        self._last_send = 0.0
        self._timer: threading.Timer | None = None

    @property
    def latest(self) -> Message | None:
        with self._lock:
            return self._latest

    @property
    def post_id(self) -> str | None:
        return self._post_id

    def update(self, message: Message, *, final: bool) -> None:
        with self._lock:
            self._latest = message
            if final and self._timer is not None:
                self._timer.cancel()
                self._timer = None
            due = self._last_send + self._min_interval - time.monotonic()
            if not final and self._post_id is not None and due > 0:
                if self._timer is None:
                    self._timer = threading.Timer(due, self._on_timer)
                    self._timer.daemon = True
                    self._timer.start()
                return
        self._flush()

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
        try:
            self._flush()
        except Exception:  # a timer thread has no caller to tell
            log.exception("Mattermost: a deferred update failed")

    def _flush(self) -> None:
        with self._send_lock:
            with self._lock:
                target = self._latest
            if target is None or target == self._sent:
                return
            try:
                self._deliver(target)
            except MattermostError:
                return  # logged by the client; the next update (or the final one) tries again
            finally:
                with self._lock:
                    self._last_send = time.monotonic()
            self._sent = target

    def _deliver(self, target: Message) -> None:
        try:
            self._deliver_once(target)
        except MattermostError as exc:
            if exc.status != 400 or target.short is None:
                raise
            log.warning("Mattermost refused the post (%s): sending a shorter one", exc)
            self._deliver_once(Message(text=target.short, attachments=target.attachments))

    def _deliver_once(self, target: Message) -> None:
        if self._post_id is not None:
            same_props = self._sent is not None and self._sent.attachments == target.attachments
            try:
                self._api.patch_post(
                    post_id=self._post_id,
                    message=target.text,
                    attachments=None if same_props else target.attachments,
                )
                return
            except MattermostError as exc:
                if exc.status not in {403, 404}:
                    raise
                log.warning("Mattermost: post %s cannot be updated: posting anew", self._post_id)
                self._post_id = None
        post = self._api.create_post(
            channel_id=self._channel_id,
            message=target.text,
            root_id=self._root_id,
            attachments=target.attachments,
        )
        self._post_id = str(post.get("id") or "") or None


LINK_PREFIX = "mattermost:"


class MattermostConversation:
    """Where one command's (or click's) replies go: the HTTP response while it is pending,
    then one bot post updated in place; private replies go to the requester only."""

    def __init__(
        self,
        *,
        api: MattermostApi,
        user_id: str,
        channel_id: str,
        root_id: str | None,
        buttons: ButtonConfig | None,
        slot: InlineSlot | None = None,
        post_id: str | None = None,
        response_url: str | None = None,
        footer: str = "",
        min_interval: float = MIN_PATCH_INTERVAL_SECONDS,
    ) -> None:
        self._api = api
        self._user_id = user_id
        self._channel_id = channel_id
        self._root_id = root_id
        self._buttons = buttons
        self._slot = slot
        self._response_url = response_url
        self._footer = footer
        self.stream = PostStream(
            api=api,
            channel_id=channel_id,
            root_id=root_id,
            post_id=post_id,
            min_interval=min_interval,
        )

    @property
    def message_link(self) -> str | None:
        """``mattermost:<channel_id>:<thread root>`` once the progress post exists."""
        root = self._root_id or self.stream.post_id
        return f"{LINK_PREFIX}{self._channel_id}:{root}" if root else None

    def show(self, reply: Reply) -> None:
        """Never raises: a chat failure must not stop the workflow or its audit record."""
        try:
            self._show(reply)
        except Exception:
            log.exception("Mattermost: showing a reply failed [%s]", reply.correlation_id)

    def _show(self, reply: Reply) -> None:
        # Who asked is shown to the channel; the requester alone needs no reminder.
        footer = "" if reply.private else self._footer
        message = render_reply(reply, buttons=self._buttons, root_id=self._root_id, footer=footer)
        if not reply.private:
            self._release()
            self.stream.update(message, final=reply.final)
            return
        if not reply.final:
            self._release()  # the requester gets "working on it"; the private text comes last
            return
        if self._slot is not None and self._slot.offer(message):
            return
        self._send_private(message)
        shown = self.stream.latest
        if shown is not None:
            ended = "_Ended: the answer was shown to the requester only._"
            self.stream.update(Message(text=f"{shown.text}\n\n{ended}"), final=True)

    def _release(self) -> None:
        if self._slot is not None:
            self._slot.offer(None)

    def _send_private(self, message: Message) -> None:
        try:
            self._api.ephemeral_post(
                user_id=self._user_id,
                channel_id=self._channel_id,
                root_id=self._root_id,
                message=message.text,
                attachments=message.attachments,
            )
            return
        except MattermostError:
            if not self._response_url:
                return
        body: dict[str, Any] = {"response_type": "ephemeral", "text": message.text}
        if message.attachments:
            body["attachments"] = message.attachments
        with contextlib.suppress(MattermostError):  # logged by the client
            self._api.respond(response_url=self._response_url, body=body)


# --- groups -------------------------------------------------------------------------------------


class MattermostGroups:
    """``group:<name>`` → the ids of the Mattermost group's members (custom or LDAP groups,
    by their @-mention name). Cached for a few minutes; on an error the last known members are
    used, and with none the lookup raises BackendUnavailable: the authorization filter counts
    the user as not a member of that group alone (fails closed) and says why."""

    def __init__(
        self, *, api: MattermostApi, ttl: float = GROUPS_TTL_SECONDS, per_page: int = 200
    ) -> None:
        self._api = api
        self._ttl = ttl
        self._per_page = per_page
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    def members(self, handle: str) -> Iterator[str]:
        name = handle.strip().lower()
        with self._lock:
            cached = self._cache.get(name)
        if cached is not None and cached[0] > time.monotonic():
            return iter(cached[1])
        try:
            found = self._fetch(name)
        except MattermostError as exc:
            if cached is None:
                raise BackendUnavailable(
                    "Mattermost", f"cannot resolve `group:{name}` ({exc}); try again shortly"
                ) from None
            log.warning("Mattermost: members of group %s unknown: using the last known", name)
            return iter(cached[1])
        with self._lock:
            self._cache[name] = (time.monotonic() + self._ttl, found)
        return iter(found)

    def _group_id(self, name: str) -> str | None:
        """The id of the group named exactly ``name``: the search matches substrings of names
        and display names, so every page is read until it is found (``ops`` among 200+
        ``ops-…`` groups is not on the first page)."""
        for page in range(MAX_PAGES):
            batch = self._api.groups(query=name, page=page, per_page=self._per_page)
            for group in batch:
                if isinstance(group, dict) and str(group.get("name", "")) == name:
                    return str(group["id"])
            if len(batch) < self._per_page:
                return None
        log.warning("Mattermost: group %s not found in %d pages of groups", name, MAX_PAGES)
        return None

    def _fetch(self, name: str) -> frozenset[str]:
        group_id = self._group_id(name)
        if group_id is None:
            log.warning("Mattermost: no group named %s (PGDB_REQUESTERS/PGDB_OPERATORS)", name)
            return frozenset()
        ids: set[str] = set()
        for page in range(MAX_PAGES):
            batch = self._api.group_members(group_id=group_id, page=page, per_page=self._per_page)
            ids.update(str(u["id"]) for u in batch if isinstance(u, dict) and u.get("id"))
            if len(batch) < self._per_page:
                break
        return frozenset(ids)


# --- the platform ---------------------------------------------------------------------------


def _ephemeral(text: str, *, status_code: int = 200) -> JSONResponse:
    return JSONResponse({"response_type": "ephemeral", "text": text}, status_code=status_code)


def _usable_response_url(url: str | None) -> str | None:
    """Only a Mattermost command hook (``…/hooks/commands/<id>``) over http(s)."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return None
    return url if parts.path.rstrip("/").rsplit("/", 1)[0].endswith("/hooks/commands") else None


class MattermostPlatform:
    """The ``ChatPlatform`` for Mattermost: two routes, alerts to the ops channel."""

    name = "mattermost"
    # between two alert posts: well within Mattermost's default 10 requests per second
    alert_interval = 0.2

    def __init__(
        self,
        *,
        services: Services,
        runner: CommandRunner,
        api: MattermostApi,
        command_token: str,
        ops_channel: str | None,
        buttons: ButtonConfig | None,
        inline_wait: float = INLINE_WAIT_SECONDS,
        min_interval: float = MIN_PATCH_INTERVAL_SECONDS,
        groups_ttl: float = GROUPS_TTL_SECONDS,
    ) -> None:
        self.api = api
        # Groups are per platform: `group:<name>` means a Mattermost group here.
        self._services = dataclasses.replace(
            services, groups=MattermostGroups(api=api, ttl=groups_ttl)
        )
        self._runner = runner
        self._command_token = command_token.encode()
        self._ops_channel = ops_channel
        self._buttons = buttons
        self._inline_wait = inline_wait
        self._min_interval = min_interval
        self._edge_audit = EdgeAudit(services.state)

    def routes(self) -> list[BaseRoute]:
        return [
            Route(COMMAND_PATH, self.command_endpoint, methods=["GET", "POST"]),
            Route(ACTIONS_PATH, self.action_endpoint, methods=["POST"]),
        ]

    def start(self) -> None:
        log.info("Mattermost: slash command at %s, button clicks at %s", COMMAND_PATH, ACTIONS_PATH)
        if self._buttons is None:
            log.warning(
                "Mattermost buttons are off: set PGDB_PUBLIC_URL and PGDB_ACTION_SECRET to get "
                "them; until then decisions are typed as commands"
            )
        if not self._ops_channel:
            log.warning(
                "Mattermost: no ops channel (PGDB_MATTERMOST_OPS_CHANNEL or PGDB_OPS_CHANNEL): "
                "alerts go to the log"
            )
        elif not _MATTERMOST_ID.fullmatch(self._ops_channel):
            log.warning(
                "Mattermost: the ops channel %r does not look like a Mattermost channel id "
                "(26 lowercase letters and digits); set PGDB_MATTERMOST_OPS_CHANNEL",
                self._ops_channel,
            )

    def stop(self) -> None:
        """Nothing to close first: running commands still post their last state while the
        runner drains (the server stops platforms before the runner)."""

    def send_alert(self, alert: Alert) -> str | None:
        message = render_alert(alert, buttons=self._buttons)
        if not self._ops_channel:
            log.warning("alert (no Mattermost ops channel): %s", message.text)
            return None
        try:
            try:
                post = self.api.create_post(
                    channel_id=self._ops_channel,
                    message=message.text,
                    root_id=alert.thread,
                    attachments=message.attachments,
                )
            except MattermostError as exc:
                if exc.status != 400:
                    raise
                log.warning("Mattermost refused alert %s (%s): a shorter one", alert.key, exc)
                message = render_alert(alert, buttons=self._buttons, limit=SHORT_MESSAGE_CHARS)
                post = self.api.create_post(
                    channel_id=self._ops_channel,
                    message=message.text,
                    root_id=alert.thread,
                    attachments=message.attachments,
                )
        except MattermostError as exc:
            # Raised, so the alert lifecycle keeps the alert unsent and retries it next pass.
            raise BackendUnavailable(
                "Mattermost", f"the alert {alert.key} was not posted to the ops channel: {exc}"
            ) from None
        return str(post.get("id") or "") or None

    def reply_in_thread(self, link: str, text: str) -> bool:
        if not link.startswith(LINK_PREFIX):
            return False
        channel_id, _, root_id = link.removeprefix(LINK_PREFIX).partition(":")
        if not channel_id or not root_id:
            return False
        try:
            self.api.create_post(channel_id=channel_id, message=md(text), root_id=root_id)
        except MattermostError as exc:
            raise BackendUnavailable(
                "Mattermost", f"could not reply in thread {root_id}: {exc}"
            ) from None
        return True

    # -- inbound --

    async def command_endpoint(self, request: Request) -> Response:
        """A custom slash command: authenticate, hand the work to the runner, answer now."""
        if request.method == "GET":
            raw = request.url.query  # bounded by the server's request-line limit
        else:
            body = await read_limited(request, limit=MAX_BODY_BYTES)
            if body is None:
                self._refused_body(COMMAND_PATH)
                return too_large(
                    limit=MAX_BODY_BYTES,
                    body={"response_type": "ephemeral", "text": "request too large"},
                )
            raw = body.decode("utf-8", errors="replace")
        form = dict(parse_qsl(raw, keep_blank_values=True))
        if not self._token_ok(request.headers.get("authorization"), form.get("token")):
            log.warning(
                "Mattermost command refused: wrong or missing token (user_id=%s, channel_id=%s, "
                "from %s)",
                storable(form.get("user_id", "?"), limit=64),
                storable(form.get("channel_id", "?"), limit=64),
                request.client.host if request.client else "?",
            )
            return JSONResponse({"error": "invalid command token"}, status_code=401)
        user_id, channel_id = form.get("user_id", "").strip(), form.get("channel_id", "").strip()
        if not user_id or not channel_id:
            return _ephemeral("pgdb-bot: the request has no user_id or channel_id", status_code=400)
        refusal = refuse_at_edge(form.get("text", ""))
        if refusal is not None:
            # before anything parses or logs the text: the requester is told the limit now
            self._edge_audit.refused(
                user=user_id,
                platform=self.name,
                command=f"/pgdb {form.get('text', '')}",
                result=refusal.outcome,
                detail=refusal.message,
            )
            return _ephemeral(refusal.message)
        text = " ".join(form.get("text", "").split())
        command = f"/pgdb {text}".strip()
        user_name = form.get("user_name", "").strip()
        slot = InlineSlot(asyncio.get_running_loop())
        conversation = MattermostConversation(
            api=self.api,
            user_id=user_id,
            channel_id=channel_id,
            root_id=form.get("root_id") or None,
            buttons=self._buttons,
            slot=slot,
            response_url=_usable_response_url(form.get("response_url")),
            footer=_footer(command, user_name),
            min_interval=self._min_interval,
        )
        try:
            self._submit(command, user_id, conversation, once=None)
        except ShuttingDown as exc:
            return _ephemeral(str(exc))
        # A command queued behind busy workers cannot answer inline: acknowledge at once.
        wait = self._inline_wait if not self._runner.queued else 0.0
        answer = await slot.wait(timeout=wait)
        if answer is None:
            return _ephemeral(f"⏳ Working on {code(command)}…")
        body_json: dict[str, Any] = {"response_type": "ephemeral", "text": answer.text}
        if answer.attachments:
            body_json["attachments"] = answer.attachments
        return JSONResponse(body_json)

    async def action_endpoint(self, request: Request) -> Response:
        """A button click: the context's signature and expiry are checked here, its one-time
        nonce after the answer (before any work), then the button's command runs as the user
        who clicked (dispatch re-checks their authorization)."""
        if self._buttons is None:
            return JSONResponse({"error": {"message": "buttons are off"}}, status_code=404)
        body = await read_limited(request, limit=MAX_BODY_BYTES)
        if body is None:
            self._refused_body(ACTIONS_PATH)
            return too_large(limit=MAX_BODY_BYTES, body={"error": {"message": "too large"}})
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return JSONResponse({"error": {"message": "not a JSON object"}}, status_code=400)
        context = payload.get("context")
        context = context if isinstance(context, dict) else {}
        user_id = _string(payload.get("user_id")).strip()
        problem = check_button(context, secret=self._buttons.secret, now=time.time())
        if problem is not None:
            log.warning(
                "Mattermost button refused: %s (user_id=%s, post_id=%s)",
                problem,
                storable(user_id, limit=64) or "?",
                storable(_string(payload.get("post_id")), limit=64) or "?",
            )
            message = (
                "This button has expired: run the command again."
                if problem == "expired"
                else "This button is not valid."
            )
            return JSONResponse({"error": {"message": message}}, status_code=403)
        command = context["command"]
        channel_id = _string(payload.get("channel_id")).strip()
        if not command.startswith("/pgdb ") or refuse_at_edge(command) is not None:
            return JSONResponse({"error": {"message": "incomplete click"}}, status_code=400)
        if not user_id or not channel_id:
            return JSONResponse({"error": {"message": "incomplete click"}}, status_code=400)
        once = Once(
            key="mattermost:" + hashlib.sha256(context["nonce"].encode()).hexdigest(),
            until=datetime.fromtimestamp(context["expires"], UTC),
            what="Mattermost button",
        )
        slot = InlineSlot(asyncio.get_running_loop())
        root_id = context.get("root_id")
        conversation = MattermostConversation(
            api=self.api,
            user_id=user_id,
            channel_id=channel_id,
            root_id=root_id if isinstance(root_id, str) and root_id else None,
            buttons=self._buttons,
            slot=slot,
            post_id=_string(payload.get("post_id")) or None,
            footer=_footer(command, _string(payload.get("user_name"))),
            min_interval=self._min_interval,
        )
        try:
            self._submit(command, user_id, conversation, once=once)
        except ShuttingDown as exc:
            return JSONResponse({"ephemeral_text": str(exc)})
        answer = await slot.wait(timeout=self._inline_wait)
        if answer is None:
            return JSONResponse({})  # the clicked post is updated in place as the work goes
        return JSONResponse({"ephemeral_text": answer.text})

    def _refused_body(self, path: str) -> None:
        self._edge_audit.refused(
            user=UNAUTHENTICATED,
            platform=self.name,
            command=f"(a request body over {MAX_BODY_BYTES:,} bytes to {path})",
            result="too large",
            detail="refused before reading it whole",
        )

    def _token_ok(self, header: str | None, field_token: str | None) -> bool:
        """The ``Authorization: Token …`` header or the ``token`` field, in constant time."""
        candidates = []
        if header and header[:6].lower() == "token ":
            candidates.append(header[6:].strip())
        if field_token:
            candidates.append(field_token.strip())
        ok = False
        for candidate in candidates:
            ok |= hmac.compare_digest(candidate.encode(), self._command_token)
        return ok

    def _submit(
        self,
        command: str,
        user_id: str,
        conversation: MattermostConversation,
        *,
        once: Once | None,
    ) -> None:
        requester = Requester(user_id=user_id, platform="mattermost")
        services = self._services

        def work() -> None:
            # a button's nonce is checked here, after the answer and before any work
            run_once(
                services, once=once, text=command, requester=requester, conversation=conversation
            )

        self._runner.submit(work, what=f"mattermost {command}")


def _string(value: object) -> str:
    """A payload field that should be a string, or "" (never ``str()`` of a list or a dict)."""
    return value if isinstance(value, str) else ""


def _footer(command: str, user_name: str) -> str:
    """Who asked, for the people reading the channel (never used to authorize)."""
    who = f" · @{user_name}" if re.fullmatch(r"[a-z0-9._-]{1,64}", user_name) else ""
    return f"_{code(command)}{who}_"


def build_mattermost(
    settings: Settings, services: Services, runner: CommandRunner
) -> MattermostPlatform | None:
    """The platform when its URL, bot token and command token are set; None when none is;
    a ConfigError naming the missing ones when only some are."""
    required = {
        "PGDB_MATTERMOST_URL": settings.mattermost_url,
        "PGDB_MATTERMOST_BOT_TOKEN": settings.mattermost_bot_token,
        "PGDB_MATTERMOST_COMMAND_TOKEN": settings.mattermost_command_token,
    }
    if not any(required.values()):
        return None
    missing = [name for name, value in required.items() if not value]
    if missing:
        raise ConfigError(
            f"Mattermost is partly configured: set {', '.join(missing)} too "
            "(Mattermost needs PGDB_MATTERMOST_URL, PGDB_MATTERMOST_BOT_TOKEN and "
            "PGDB_MATTERMOST_COMMAND_TOKEN)"
        )
    url, bot_token, command_token = (
        settings.mattermost_url,
        settings.mattermost_bot_token,
        settings.mattermost_command_token,
    )
    assert url is not None and bot_token is not None and command_token is not None
    buttons: ButtonConfig | None = None
    if settings.public_url and settings.action_secret:
        public = settings.public_url.strip().rstrip("/")
        parts = urlsplit(public)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ConfigError(
                f"PGDB_PUBLIC_URL: {settings.public_url!r} must be the bot's address as "
                "Mattermost reaches it, such as https://pgdb-bot.example.com"
            )
        if len(settings.action_secret) < 16:
            raise ConfigError(
                "PGDB_ACTION_SECRET: at least 16 characters (e.g. `openssl rand -hex 32`)"
            )
        buttons = ButtonConfig(url=public + ACTIONS_PATH, secret=settings.action_secret)
    return MattermostPlatform(
        services=services,
        runner=runner,
        api=MattermostApi(base_url=url, bot_token=bot_token),
        command_token=command_token,
        ops_channel=settings.mattermost_ops_channel or settings.ops_channel,
        buttons=buttons,
    )
