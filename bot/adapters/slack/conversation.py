"""One Slack command's message: posted on the first update, edited in place after that (when to
write is :mod:`bot.chat_updates`' to decide), through the command's ``response_url`` where the
bot may not post; answers meant for the requester alone are ephemeral."""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from bot.adapters.slack.client import (
    FALLBACK_ERRORS,
    HTTP_TIMEOUT_SECONDS,
    error_code,
    retry_handlers,
)
from bot.adapters.slack.render import Block, escape, render, sent_or_shorter
from bot.chat_updates import ThrottledMessage, UpdateBudget
from bot.core.model import thread_link
from bot.core.reply import Reply

log = logging.getLogger(__name__)

PLATFORM = "slack"  # its name in links, the audit log and the requester


def update_budget() -> UpdateBudget:
    """``chat.update`` is Tier 3 (about 50 a minute per workspace): 40, with bursts of 20."""
    return UpdateBudget(per_minute=40, burst=20)


@dataclass(frozen=True, kw_only=True)
class Messenger:
    """The Web API client and the pacing shared by every conversation of one workspace."""

    client: WebClient
    budget: UpdateBudget = dataclasses.field(default_factory=update_budget)
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


@dataclass(frozen=True, kw_only=True)
class Shown:
    """A reply as Slack shows it, and how to see what a cut for size leaves out."""

    text: str
    blocks: list[Block]
    hint: str = ""


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
        # Written only by _write, which the updates below run one at a time:
        self._ts = message_ts  # our message in the channel (chat.update)
        self._webhook = via_response_url  # our message went through the response_url
        self._changed = False  # this command posted or edited a message
        self._updates: ThrottledMessage[Shown] = ThrottledMessage(
            deliver=self._write,
            min_interval=messenger.min_interval,
            budget=messenger.budget,
            what=f"the Slack message in {channel}",
        )
        self._lock = threading.Lock()  # guards _finished
        self._finished = False

    # Conversation port
    def show(self, reply: Reply) -> None:
        try:
            with self._lock:
                if self._finished or (reply.private and not reply.final):
                    return
                self._finished = reply.final
            if reply.private:
                self._finish_privately(reply)
                return
            text, blocks = render(reply, footer=self._footer)
            self._updates.update(
                Shown(text=text, blocks=blocks, hint=reply.more_hint),
                final=reply.final or reply.urgent,
            )
        except Exception:
            log.exception("could not show a reply in Slack channel %s", self._channel)

    @property
    def message_link(self) -> str | None:
        """``slack:<channel>:<ts>`` once the message is posted (not through a response_url)."""
        return thread_link(PLATFORM, self._channel, self._ts) if self._ts else None

    def _write(self, shown: Shown) -> bool:
        """Post the message the first time, edit it after; True when Slack has it."""
        if self._ts is None and not self._webhook:
            return self._post(shown)
        return self._update(shown)

    def _post(self, shown: Shown) -> bool:
        try:
            answer = sent_or_shorter(
                lambda b: self._slack.client.chat_postMessage(
                    channel=self._channel, text=shown.text, blocks=b, unfurl_links=False
                ),
                shown.blocks,
                hint=shown.hint,
                what="a message",
            )
            self._ts = str(answer["ts"])
            self._channel = str(answer.get("channel") or self._channel)
            self._changed = True
            return True
        except Exception as exc:
            code = error_code(exc) if isinstance(exc, SlackApiError) else type(exc).__name__
            if not self._response_url:
                log.error("Slack chat.postMessage to %s failed: %s", self._channel, code)
                return False
            # not_in_channel, channel_not_found (a private channel, a DM), or Slack failing
            level = logging.INFO if code in FALLBACK_ERRORS else logging.WARNING
            log.log(level, "cannot post in %s (%s): using the response_url", self._channel, code)
        self._webhook = self._slack.respond(
            self._response_url,
            {"response_type": "in_channel", "text": shown.text, "blocks": shown.blocks},
        )
        self._changed = self._webhook
        return self._webhook

    def _update(self, shown: Shown) -> bool:
        self._changed = True
        if self._webhook and self._response_url:
            return self._slack.respond(
                self._response_url,
                {
                    "response_type": "in_channel",
                    "replace_original": True,
                    "text": shown.text,
                    "blocks": shown.blocks,
                },
            )
        try:
            sent_or_shorter(
                lambda b: self._slack.client.chat_update(
                    channel=self._channel, ts=self._ts or "", text=shown.text, blocks=b
                ),
                shown.blocks,
                hint=shown.hint,
                what="an update",
            )
            return True
        except SlackApiError as exc:
            log.warning(
                "Slack chat.update in %s failed (%s): posting the message again",
                self._channel,
                error_code(exc),
            )
            self._ts = None
            return self._post(shown)

    def _finish_privately(self, reply: Reply) -> None:
        """An answer for the requester only: ephemeral; a channel message this command already
        showed says where the answer went (a clicked message is left as it was)."""
        if self._changed:
            note = Reply(title="Not run", lines=["The reason was sent to the requester only."])
            text, blocks = render(note, footer=self._footer)
            self._updates.update(Shown(text=text, blocks=blocks), final=True)
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
            log.error("could not tell %s privately: %s", self._user, error_code(exc))
