"""Mattermost as a chat platform of `pgdb-bot run`: a custom slash command in, a bot account's
posts out.

Two endpoints on the shared HTTP server: ``/mattermost/command`` (the custom slash command,
token checked in constant time) and ``/mattermost/actions`` (button clicks, whose signed
context is checked by :mod:`~bot.adapters.mattermost.buttons`). Bodies are bounded by the bytes
read, command text at the edge. Each command and each click is handed to the runner and, on a
worker, to the core (:class:`~bot.core.ports.CommandIntake`) as the Mattermost user who typed or
clicked, so authorization is always re-checked there; this module only translates.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.adapters.mattermost.api import MattermostApi, MattermostError, Post
from bot.adapters.mattermost.buttons import ButtonConfig, check_button
from bot.adapters.mattermost.conversation import (
    MIN_PATCH_INTERVAL_SECONDS,
    PLATFORM,
    InlineSlot,
    MattermostConversation,
)
from bot.adapters.mattermost.render import (
    SHORT_MESSAGE_CHARS,
    Message,
    code,
    md,
    render_alert,
)
from bot.core.errors import BackendUnavailable
from bot.core.model import Once, Requester, thread_of
from bot.core.ports import CommandIntake
from bot.core.reply import Alert
from bot.core.text import refuse_at_edge, storable
from bot.http_edge import EdgeAudit, read_limited, too_large
from bot.runner import CommandRunner, ShuttingDown

log = logging.getLogger(__name__)

COMMAND_PATH = "/mattermost/command"
ACTIONS_PATH = "/mattermost/actions"
# How long the command response waits for the first reply: a reply that is private and final
# by then (usage error, refusal) is answered in the response itself, with no REST call at all.
# Short, because the wait also covers the command queueing behind busy workers: the ack must
# stay fast when the backends are slow (bench: p99 at 50 concurrent commands).
INLINE_WAIT_SECONDS = 0.1
MAX_BODY_BYTES = 64 * 1024
MATTERMOST_ID = re.compile(r"^[a-z0-9]{26}$")


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

    name = PLATFORM
    # between two alert posts: well within Mattermost's default 10 requests per second
    alert_interval = 0.2

    def __init__(
        self,
        *,
        api: MattermostApi,
        intake: CommandIntake,
        runner: CommandRunner,
        edge_audit: EdgeAudit,
        command_token: str,
        ops_channel: str | None,
        buttons: ButtonConfig | None,
        inline_wait: float = INLINE_WAIT_SECONDS,
        min_interval: float = MIN_PATCH_INTERVAL_SECONDS,
    ) -> None:
        self.api = api
        self._intake = intake
        self._runner = runner
        self._edge_audit = edge_audit
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
        elif not MATTERMOST_ID.fullmatch(self._ops_channel):
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
                post = self._post_alert(self._ops_channel, alert, message)
            except MattermostError as exc:
                if exc.status != 400:
                    raise
                log.warning("Mattermost refused alert %s (%s): a shorter one", alert.key, exc)
                short = render_alert(alert, buttons=self._buttons, limit=SHORT_MESSAGE_CHARS)
                post = self._post_alert(self._ops_channel, alert, short)
        except MattermostError as exc:
            # Raised, so the alert lifecycle keeps the alert unsent and retries it next pass.
            raise BackendUnavailable(
                "Mattermost", f"the alert {alert.key} was not posted to the ops channel: {exc}"
            ) from None
        return str(post.get("id") or "") or None

    def _post_alert(self, channel_id: str, alert: Alert, message: Message) -> Post:
        return self.api.create_post(
            channel_id=channel_id,
            message=message.text,
            root_id=alert.thread,
            attachments=message.attachments,
        )

    def reply_in_thread(self, link: str, text: str) -> bool:
        thread = thread_of(link, platform=PLATFORM)
        if thread is None:
            return False
        channel_id, root_id = thread
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
                self._edge_audit.refused_body(
                    platform=self.name, path=COMMAND_PATH, limit=MAX_BODY_BYTES
                )
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
            self._edge_audit.refused_command(
                refusal, user=user_id, platform=self.name, text=form.get("text", "")
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
            self._edge_audit.refused_body(
                platform=self.name, path=ACTIONS_PATH, limit=MAX_BODY_BYTES
            )
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
        requester = Requester(user_id=user_id, platform=PLATFORM)
        intake = self._intake

        def work() -> None:
            # a button's nonce is checked there, after the answer and before any work
            intake(text=command, requester=requester, conversation=conversation, once=once)

        self._runner.submit(work, what=f"mattermost {command}")


def _string(value: object) -> str:
    """A payload field that should be a string, or "" (never ``str()`` of a list or a dict)."""
    return value if isinstance(value, str) else ""


def _footer(command: str, user_name: str) -> str:
    """Who asked, for the people reading the channel (never used to authorize)."""
    who = f" · @{user_name}" if re.fullmatch(r"[a-z0-9._-]{1,64}", user_name) else ""
    return f"_{code(command)}{who}_"
