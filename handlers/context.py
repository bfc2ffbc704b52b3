"""What a command runs with: the ports, the settings, and who asked."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bot.core.model import Requester
from bot.core.ports import (
    UNMEASURED,
    AlertStore,
    ApprovalStore,
    BotState,
    Cluster,
    Conversation,
    GitHost,
    GroupResolver,
    ManagedDatabase,
    Metrics,
    SecretStore,
)
from handlers.announce import Announcer
from handlers.settings import CoreSettings


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class Services:
    """One adapter per outside system, chosen by the wiring from the configuration."""

    settings: CoreSettings  # the slices of the configuration the use cases read
    secrets: SecretStore
    database: ManagedDatabase
    state: BotState
    git: GitHost
    cluster: Cluster
    alerts: AlertStore | None = None  # alert lifecycle and silences (None: not available)
    groups: GroupResolver | None = None
    approvals: ApprovalStore | None = None  # pending create requests (PGDB_REQUIRE_APPROVAL)
    announcer: Announcer = field(default_factory=Announcer)  # ops channel and threads
    bot_role: str = ""  # the bot's own PostgreSQL role: never an app name
    clock: Callable[[], datetime] = utcnow
    metrics: Metrics = UNMEASURED  # commands and workflow steps, for /metrics


@dataclass(kw_only=True)
class CommandContext:
    services: Services
    requester: Requester
    conversation: Conversation
    correlation_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
