"""What a command runs with: the ports, the settings, and who asked."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
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
    # Every environment the bot serves, when a configuration file declares them;
    # None: one environment, these services.
    fleet: Fleet | None = None

    @property
    def env(self) -> str:
        """This environment's name."""
        return self.settings.layout.environment

    def environments(self) -> Fleet:
        """The environments to act on: the declared ones, else this one alone."""
        if self.fleet is not None:
            return self.fleet
        return Fleet(environments={self.env: self}, default=(self.env,))


@dataclass(frozen=True, kw_only=True)
class Fleet:
    """The environments, by name, in the configured order; ``declared`` when a configuration
    file declares them (then commands take ``--env``, replies have a section per environment
    and branches name their environment)."""

    environments: Mapping[str, Services]
    default: tuple[str, ...]
    declared: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.environments)

    def __getitem__(self, name: str) -> Services:
        return self.environments[name]


@dataclass(kw_only=True)
class CommandContext:
    services: Services
    requester: Requester
    conversation: Conversation
    correlation_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
