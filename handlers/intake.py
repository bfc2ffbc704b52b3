"""Between a chat platform's ack and the command: a request that may run only once is checked
against every replica's memory of requests already seen, and refusals decided at the
edge are told and audited like any other outcome."""

from __future__ import annotations

import logging
import uuid

from bot.core.errors import PgdbError
from bot.core.model import AuditEntry, Once, Requester
from bot.core.ports import Conversation
from bot.core.reply import Reply, error_reply
from bot.core.text import storable
from handlers.context import Services
from handlers.dispatch import dispatch

log = logging.getLogger(__name__)


def run_once(
    services: Services,
    *,
    once: Once | None,
    text: str,
    requester: Requester,
    conversation: Conversation,
) -> Reply:
    """``dispatch`` unless ``once`` was already seen, or PostgreSQL cannot say whether it was:
    both are refused (a replay must never run twice, so "unknown" is not "new")."""
    if once is not None:
        try:
            first = services.state.first_sight(
                once.key, platform=requester.platform, until=once.until
            )
        except PgdbError as exc:
            log.warning("%s refused: cannot tell whether it was already seen: %s", once.what, exc)
            return refuse(
                services,
                text=text,
                requester=requester,
                conversation=conversation,
                message="Not run: the bot cannot tell whether this request was already "
                "received, because its PostgreSQL is not answering. Run the command again in "
                "a minute.",
                outcome="replay unknown",
            )
        if not first:
            log.warning(
                "%s refused: already seen (a replay) from %s", once.what, requester.user_id[:64]
            )
            return refuse(
                services,
                text=text,
                requester=requester,
                conversation=conversation,
                message=f"Not run: this {once.what} was already received once (each works "
                f"once). To run it again, type `{storable(text)}`.",
                outcome="replayed",
            )
    return dispatch(services, text=text, requester=requester, conversation=conversation)


def refuse(
    services: Services,
    *,
    text: str,
    requester: Requester,
    conversation: Conversation,
    message: str,
    outcome: str,
) -> Reply:
    """Tell the requester (privately) and audit the refusal, the command cut and escaped."""
    correlation_id = uuid.uuid4().hex[:12]
    reply = error_reply(message, title="Refused", correlation_id=correlation_id, outcome=outcome)
    reply.final = True
    conversation.show(reply)
    services.metrics.command_handled("unparsed", result=outcome)
    entry = AuditEntry(
        user=storable(requester.user_id, limit=64),
        platform=requester.platform,
        command=storable(text),
        app=None,
        result=outcome,
        detail=storable(message),
        correlation_id=correlation_id,
    )
    try:
        services.state.record_audit(entry)
    except PgdbError as exc:
        log.warning("audit log unavailable, refusal not recorded: %s", exc)
    return reply
