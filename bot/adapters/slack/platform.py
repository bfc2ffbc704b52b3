"""Slack as a chat platform of `pgdb-bot run`: every ``/pgdb`` command through slack-bolt, in
Socket Mode or HTTP mode.

The ack never waits for work. Bolt runs our listeners inline (``process_before_response``),
and a listener only hands the command to the :class:`~bot.runner.CommandRunner`, which hands
it to the core (:class:`~bot.core.ports.CommandIntake`) on a worker, so Bolt's answer (the HTTP 200
or the Socket Mode ack) leaves in milliseconds whatever PostgreSQL, Git or the secret store
are doing, and Bolt's own listener pool is never involved. In HTTP mode our route reads the
body within its size limit and checks the signature and the replay key
(:mod:`~bot.adapters.slack.inbound`) before Bolt sees a byte; Bolt's own signature check is
off. This module only translates; every rule is the core's.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from slack_bolt import Ack, App, BoltContext, BoltRequest
from slack_bolt.adapter.socket_mode.builtin import SocketModeHandler
from slack_bolt.adapter.starlette.handler import to_starlette_response
from slack_bolt.error import BoltError
from slack_sdk.errors import SlackApiError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.adapters.slack.client import FALLBACK_ERRORS, error_code
from bot.adapters.slack.conversation import PLATFORM, Messenger, SlackConversation
from bot.adapters.slack.inbound import (
    SIGNATURE_WINDOW_SECONDS,
    malformed,
    normalize_command_text,
    signature_ok,
)
from bot.adapters.slack.render import (
    ALERT_HINT,
    BUTTON_ACTION_PREFIX,
    escape,
    render_alert,
    sent_or_shorter,
)
from bot.core.errors import BackendUnavailable
from bot.core.model import Once, Requester, thread_of
from bot.core.ports import CommandIntake
from bot.core.reply import Alert
from bot.core.text import refuse_at_edge, storable
from bot.http_edge import EdgeAudit, read_limited, too_large
from bot.runner import CommandRunner, ShuttingDown

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
MAX_BODY_BYTES = 1 << 20  # a click's payload carries the clicked message (up to 50 blocks)
ONCE_CONTEXT_KEY = "pgdb_once"  # the request's replay key, from our route to the listeners


class SlackTokenRefused(Exception):
    """Slack did not accept the bot token (Bolt's ``auth.test`` when the platform is built)."""


class SlackPlatform:
    """``/pgdb`` on Slack. Socket Mode when an app token is configured, else ``POST
    /slack/events`` on the shared HTTP server."""

    name = PLATFORM
    # chat.postMessage: about one message per second per channel (Slack's rate limits)
    alert_interval = 1.0

    def __init__(
        self,
        *,
        messenger: Messenger,
        intake: CommandIntake,
        runner: CommandRunner,
        edge_audit: EdgeAudit,
        signing_secret: str | None,
        app_token: str | None,
        ops_channel: str | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Raises SlackTokenRefused when Slack does not accept the messenger's token."""
        if app_token is None and not signing_secret:
            raise ValueError("HTTP mode (no app token) needs the signing secret")
        self._slack = messenger
        self._intake = intake
        self._runner = runner
        self._edge_audit = edge_audit
        self._signing_secret = signing_secret or ""
        self._app_token = app_token
        self._ops_channel = ops_channel
        self._clock = clock
        try:
            self.app = App(
                client=messenger.client,
                # HTTP mode: our route checks the signature, once, where the size limit and
                # the replay key live , so Bolt's check is off and Bolt is
                # not even given the secret; Socket Mode is not signed at all.
                signing_secret="",
                request_verification_enabled=False,
                process_before_response=True,  # listeners only enqueue: run them inline
                logger=logging.getLogger("slack_bolt"),
            )
        except BoltError as exc:
            raise SlackTokenRefused(str(exc)) from None
        self.app.command(re.compile(r"^/pgdb"))(self._on_command)
        self.app.action(re.compile(f"^{BUTTON_ACTION_PREFIX}"))(self._on_button)
        self._socket: SocketModeHandler | None = None
        self._stopping = threading.Event()

    # ChatPlatform
    def routes(self) -> list[BaseRoute]:
        if self._app_token is not None:  # Socket Mode
            return []
        return [Route(EVENTS_PATH, self._http_events, methods=["POST"])]

    def start(self) -> None:
        if self._app_token is None:
            log.info("Slack: HTTP mode at %s", EVENTS_PATH)
            return
        self._socket = SocketModeHandler(
            self.app, app_token=self._app_token, web_client=self._slack.client
        )
        threading.Thread(target=self._connect, name="slack-socket-mode", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        if self._socket is not None:
            self._socket.client.close()

    def send_alert(self, alert: Alert) -> str | None:
        channel = self._ops_channel
        if channel is None:
            log.warning(
                "alert %s not posted: set PGDB_OPS_CHANNEL or PGDB_SLACK_OPS_CHANNEL: %s",
                alert.key,
                alert.title,
            )
            return None
        text, blocks = render_alert(alert)
        try:
            answer = sent_or_shorter(
                lambda b: self._slack.client.chat_postMessage(
                    channel=channel, text=text, blocks=b, thread_ts=alert.thread, unfurl_links=False
                ),
                blocks,
                hint=ALERT_HINT,
                what=f"alert {alert.key}",
            )
        except SlackApiError as exc:
            code = error_code(exc)
            hint = (
                " (invite the bot to the channel: /invite @pgdb)" if code in FALLBACK_ERRORS else ""
            )
            # Raised, so the alert lifecycle keeps the alert unsent and retries it next pass.
            raise BackendUnavailable(
                "Slack", f"could not post alert {alert.key} to {channel}: {code}{hint}"
            ) from None
        return alert.thread or str(answer["ts"])

    def reply_in_thread(self, link: str, text: str) -> bool:
        thread = thread_of(link, platform=PLATFORM)
        if thread is None:
            return False
        channel, ts = thread
        try:
            # The text carries user words (a deny reason, a requester's id): escaped like
            # every other message, so it can neither mention nor link.
            self._slack.client.chat_postMessage(
                channel=channel, text=escape(text), thread_ts=ts, unfurl_links=False
            )
        except SlackApiError as exc:
            raise BackendUnavailable(
                "Slack", f"could not reply in thread {ts} of {channel}: {error_code(exc)}"
            ) from None
        return True

    # HTTP mode
    async def _http_events(self, request: Request) -> Response:
        """Size (bytes read), signature, shape; then Bolt, whose listeners only hand over.
        Nothing here logs or parses a byte of a body before it is known to be small."""
        body = await read_limited(request, limit=MAX_BODY_BYTES)
        if body is None:
            self._edge_audit.refused_body(
                platform=self.name, path=EVENTS_PATH, limit=MAX_BODY_BYTES
            )
            return too_large(limit=MAX_BODY_BYTES, body={"error": "request too large"})
        timestamp = request.headers.get("x-slack-request-timestamp")
        signature = request.headers.get("x-slack-signature")
        if not signature_ok(
            secret=self._signing_secret,
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
                cause = error_code(exc) if isinstance(exc, SlackApiError) else str(exc)
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
            self._edge_audit.refused_command(refusal, user=user, platform=self.name, text=raw)
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
        requester = Requester(user_id=user, platform=PLATFORM)
        intake = self._intake

        def work() -> None:
            # the replay check runs there, after the ack and before any work
            intake(text=text, requester=requester, conversation=conversation, once=once)

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
