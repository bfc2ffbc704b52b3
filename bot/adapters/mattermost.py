"""Mattermost: a custom slash command in, a bot account's posts out (SPEC §7).

Inbound, two endpoints on the shared HTTP server: ``/mattermost/command`` (the custom slash
command, token checked in constant time) and ``/mattermost/actions`` (button clicks, whose
context carries ``PGDB_ACTION_SECRET``). Every command and every click goes through
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
import hmac
import json
import logging
import re
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
from bot.runner import CommandRunner, ShuttingDown
from handlers.context import Requester, Services
from handlers.dispatch import dispatch

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
MAX_MESSAGE_CHARS = 15000  # Mattermost accepts 16383 runes per post
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_SECONDS = 30.0
GROUPS_TTL_SECONDS = 300.0
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

    def groups(self, *, query: str) -> list[dict[str, Any]]:
        found = self._json(
            "GET", f"{API}/groups", params={"q": query, "per_page": "200"}, what="list groups"
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


@dataclass(frozen=True, kw_only=True)
class ButtonConfig:
    """Where clicks come back (``PGDB_PUBLIC_URL`` + ``/mattermost/actions``) and the secret
    their context carries (``PGDB_ACTION_SECRET``)."""

    url: str
    secret: str


@dataclass(frozen=True, kw_only=True)
class Message:
    """A post as Mattermost takes it: markdown text and Slack-style attachments."""

    text: str
    attachments: list[dict[str, Any]] = field(default_factory=list)


def render_reply(
    reply: Reply,
    *,
    buttons: ButtonConfig | None,
    root_id: str | None = None,
    footer: str = "",
) -> Message:
    """Markdown: bold title, one line per step with an emoji state, fields, lines, a code
    block; buttons as attachment actions (or, when buttons are off, the commands to type)."""
    out = [f"{'⚠️ ' if not reply.ok else ''}**{reply.title}**"]
    for step in reply.steps:
        icon = STATE_ICONS.get(step.state, "•")
        detail = f": {step.detail}" if step.detail else ""
        out.append(f"{icon} {step.label} — {step.state.value}{detail}")
    if reply.fields:
        out.append("")
        out.extend(f"**{label}:** {value}" for label, value in reply.fields)
    if reply.lines:
        out.append("")
        out.extend(reply.lines)
    if reply.code:
        out.extend(["", "```", reply.code.rstrip("\n"), "```"])
    if reply.buttons and buttons is None:
        out.append("")
        out.extend(f"➡️ {b.label}: type `{b.command}`" for b in reply.buttons)
    if reply.correlation_id and not reply.ok:
        out.append(f"_(correlation id {reply.correlation_id})_")
    if footer:
        out.extend(["", footer])
    attachments: list[dict[str, Any]] = []
    if reply.buttons and buttons is not None:
        attachments.append(
            {
                "fallback": "; ".join(f"{b.label}: {b.command}" for b in reply.buttons),
                "actions": [
                    _action(index, b, buttons=buttons, root_id=root_id)
                    for index, b in enumerate(reply.buttons)
                ],
            }
        )
    return Message(text=_truncate("\n".join(out)), attachments=attachments)


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
            "context": {
                "command": button.command,
                "secret": buttons.secret,
                "root_id": root_id or "",
            },
        },
    }


def render_alert(alert: Alert, *, buttons: ButtonConfig | None = None) -> Message:
    """One line of text (what notifications show) and a coloured attachment with the detail
    (and the alert's decision buttons, when buttons are configured)."""
    if alert.resolved:
        text, colour = f"✅ Resolved: {alert.title}", RESOLVED_COLOUR
    else:
        icon = SEVERITY_ICONS.get(alert.severity, "⚪")
        text = f"{icon} {alert.severity.upper()}: {alert.title}"
        colour = SEVERITY_COLOURS.get(alert.severity, SEVERITY_COLOURS["info"])
    attachment: dict[str, Any] = {
        "fallback": f"{text} — {alert.text}",
        "color": colour,
        "text": _truncate(alert.text),
        "footer": f"pgdb-bot · {alert.key}",
    }
    if alert.buttons and buttons is not None:
        attachment["actions"] = [
            _action(index, b, buttons=buttons, root_id=None)
            for index, b in enumerate(alert.buttons)
        ]
    return Message(text=text, attachments=[attachment])


def _truncate(text: str) -> str:
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    return text[: MAX_MESSAGE_CHARS - 20] + "\n… (truncated)"


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
    used, and with none the group has no members (authorization fails closed)."""

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
        except MattermostError:
            log.warning("Mattermost: members of group %s unknown: using the last known", name)
            return iter(cached[1] if cached else frozenset())
        with self._lock:
            self._cache[name] = (time.monotonic() + self._ttl, found)
        return iter(found)

    def _fetch(self, name: str) -> frozenset[str]:
        groups = [g for g in self._api.groups(query=name) if str(g.get("name", "")) == name]
        if not groups:
            log.warning("Mattermost: no group named %s (PGDB_REQUESTERS/PGDB_OPERATORS)", name)
            return frozenset()
        group_id = str(groups[0]["id"])
        ids: set[str] = set()
        for page in range(100):
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
            self.api.create_post(channel_id=channel_id, message=text, root_id=root_id)
        except MattermostError as exc:
            raise BackendUnavailable(
                "Mattermost", f"could not reply in thread {root_id}: {exc}"
            ) from None
        return True

    # -- inbound --

    async def command_endpoint(self, request: Request) -> Response:
        """A custom slash command: authenticate, hand the work to the runner, answer now."""
        if request.method == "GET":
            raw = request.url.query
        else:
            body = await request.body()
            if len(body) > MAX_BODY_BYTES:
                return _ephemeral("request too large", status_code=413)
            raw = body.decode("utf-8", errors="replace")
        form = dict(parse_qsl(raw, keep_blank_values=True))
        if not self._token_ok(request.headers.get("authorization"), form.get("token")):
            log.warning(
                "Mattermost command refused: wrong or missing token (user_id=%s, channel_id=%s, "
                "from %s)",
                form.get("user_id", "?")[:64],
                form.get("channel_id", "?")[:64],
                request.client.host if request.client else "?",
            )
            return JSONResponse({"error": "invalid command token"}, status_code=401)
        user_id, channel_id = form.get("user_id", "").strip(), form.get("channel_id", "").strip()
        if not user_id or not channel_id:
            return _ephemeral("pgdb-bot: the request has no user_id or channel_id", status_code=400)
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
            self._submit(command, user_id, conversation)
        except ShuttingDown as exc:
            return _ephemeral(str(exc))
        # A command queued behind busy workers cannot answer inline: acknowledge at once.
        wait = self._inline_wait if not self._runner.queued else 0.0
        answer = await slot.wait(timeout=wait)
        if answer is None:
            return _ephemeral(f"⏳ Working on `{command}`…")
        body_json: dict[str, Any] = {"response_type": "ephemeral", "text": answer.text}
        if answer.attachments:
            body_json["attachments"] = answer.attachments
        return JSONResponse(body_json)

    async def action_endpoint(self, request: Request) -> Response:
        """A button click: the context's secret is checked, then the button's command runs as
        the user who clicked (dispatch re-checks their authorization)."""
        if self._buttons is None:
            return JSONResponse({"error": {"message": "buttons are off"}}, status_code=404)
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return JSONResponse({"error": {"message": "too large"}}, status_code=413)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return JSONResponse({"error": {"message": "not a JSON object"}}, status_code=400)
        context = payload.get("context")
        context = context if isinstance(context, dict) else {}
        secret = context.get("secret")
        user_id = str(payload.get("user_id") or "").strip()
        if not isinstance(secret, str) or not hmac.compare_digest(
            secret.encode(), self._buttons.secret.encode()
        ):
            log.warning(
                "Mattermost button refused: wrong or missing action secret (user_id=%s, "
                "post_id=%s)",
                user_id[:64] or "?",
                str(payload.get("post_id") or "?")[:64],
            )
            return JSONResponse(
                {"error": {"message": "This button is not valid."}}, status_code=403
            )
        command = context.get("command")
        channel_id = str(payload.get("channel_id") or "").strip()
        if not isinstance(command, str) or not command.startswith("/pgdb ") or not user_id:
            return JSONResponse({"error": {"message": "incomplete click"}}, status_code=400)
        if not channel_id:
            return JSONResponse({"error": {"message": "incomplete click"}}, status_code=400)
        slot = InlineSlot(asyncio.get_running_loop())
        root_id = context.get("root_id")
        conversation = MattermostConversation(
            api=self.api,
            user_id=user_id,
            channel_id=channel_id,
            root_id=root_id if isinstance(root_id, str) and root_id else None,
            buttons=self._buttons,
            slot=slot,
            post_id=str(payload.get("post_id") or "") or None,
            footer=_footer(command, str(payload.get("user_name") or "")),
            min_interval=self._min_interval,
        )
        try:
            self._submit(command, user_id, conversation)
        except ShuttingDown as exc:
            return JSONResponse({"ephemeral_text": str(exc)})
        answer = await slot.wait(timeout=self._inline_wait)
        if answer is None:
            return JSONResponse({})  # the clicked post is updated in place as the work goes
        return JSONResponse({"ephemeral_text": answer.text})

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

    def _submit(self, command: str, user_id: str, conversation: MattermostConversation) -> None:
        requester = Requester(user_id=user_id, platform="mattermost")
        services = self._services

        def work() -> None:
            dispatch(services, text=command, requester=requester, conversation=conversation)

        self._runner.submit(work, what=f"mattermost {command}")


def _footer(command: str, user_name: str) -> str:
    """Who asked, for the people reading the channel (never used to authorize)."""
    who = f" · @{user_name}" if re.fullmatch(r"[a-z0-9._-]{1,64}", user_name) else ""
    return f"_`{command}`{who}_"


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
