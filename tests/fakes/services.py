"""``Services`` over the in-memory fakes: ``memory_services`` is the one place it is built for
them (when ``Services`` changes, this changes, not every test), ``MemoryWorld`` one of each
fake sharing one clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from bot.adapters.no_cluster import NoCluster
from bot.config import Settings
from bot.core.model import Requester
from bot.core.ports import (
    AlertStore,
    ApprovalStore,
    BotState,
    Cluster,
    Conversation,
    GitHost,
    GroupResolver,
    ManagedDatabase,
    SecretStore,
)
from bot.core.reply import Reply
from bot.wiring import core_settings
from handlers.announce import Announcer
from handlers.context import CommandContext, Services
from handlers.dispatch import dispatch
from tests.fakes.alert_store import MemoryAlertStore
from tests.fakes.approval_store import MemoryApprovalStore
from tests.fakes.bot_state import MemoryBotState
from tests.fakes.chat import RecordingConversation, RecordingPlatform, StaticGroups
from tests.fakes.cluster import MemoryCluster
from tests.fakes.database import BOT_ROLE, MemoryDatabase
from tests.fakes.faults import FakeClock
from tests.fakes.git_host import MemoryGitHost
from tests.fakes.secret_store import MemorySecretStore


class _ExplicitSettings(Settings):
    """Settings from the values given and the defaults only: a test's result never depends on
    the PGDB_* variables or the ``.env`` of whoever runs it."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def memory_settings(**values: Any) -> Settings:
    """``Settings`` from ``values`` (field names, e.g. ``operators="olga"``) and the defaults."""
    return _ExplicitSettings(**values)


class MemoryWorld:
    """One fake per outside system, sharing ``clock``: seed them, run a use case on
    ``services()``, then look at what each one holds. ``chat`` is the ops channel every
    announcement reaches. Kubernetes is configured when ``kubernetes`` is True (its fake, the
    Infisical operator included, reads the world's secret store)."""

    def __init__(
        self,
        *,
        kubernetes: bool = False,
        bot_role: str = BOT_ROLE,
        bot_is_superuser: bool = True,
        clock: FakeClock | None = None,
    ) -> None:
        self.clock = clock or FakeClock()
        self.kubernetes = kubernetes
        self.secrets = MemorySecretStore()
        self.database = MemoryDatabase(bot_role=bot_role, bot_is_superuser=bot_is_superuser)
        self.state = MemoryBotState(clock=self.clock)
        self.git = MemoryGitHost(clock=self.clock)
        self.cluster = MemoryCluster(operator=self.secrets, clock=self.clock)
        self.alerts = MemoryAlertStore()
        self.approvals = MemoryApprovalStore(clock=self.clock)
        self.groups = StaticGroups()
        self.chat = RecordingPlatform()
        self.announcer = Announcer()
        self.announcer.attach([self.chat])

    def services(self, **settings: Any) -> Services:
        """``Services`` over this world's fakes, with ``settings`` (field names) over the
        defaults."""
        return memory_services(self, settings=memory_settings(**settings))


def memory_services(
    world: MemoryWorld | None = None,
    *,
    settings: Settings | None = None,
    secrets: SecretStore | None = None,
    database: ManagedDatabase | None = None,
    state: BotState | None = None,
    git: GitHost | None = None,
    cluster: Cluster | None = None,
    alerts: AlertStore | None = None,
    approvals: ApprovalStore | None = None,
    groups: GroupResolver | None = None,
    announcer: Announcer | None = None,
    bot_role: str | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Services:
    """``Services`` with each port given, else ``world``'s fake (a fresh world when none):
    a test replaces one system (a real adapter, a failing double) and keeps the others.
    ``settings`` is the whole configuration; the use cases get its slices, as in production."""
    world = world or MemoryWorld()
    if cluster is None:
        cluster = world.cluster if world.kubernetes else NoCluster()
    return Services(
        settings=core_settings(memory_settings() if settings is None else settings),
        secrets=world.secrets if secrets is None else secrets,
        database=world.database if database is None else database,
        state=world.state if state is None else state,
        git=world.git if git is None else git,
        cluster=cluster,
        alerts=world.alerts if alerts is None else alerts,
        groups=world.groups if groups is None else groups,
        approvals=world.approvals if approvals is None else approvals,
        announcer=world.announcer if announcer is None else announcer,
        bot_role=world.database.bot_role if bot_role is None else bot_role,
        clock=world.clock if clock is None else clock,
    )


def command_context(
    services: Services,
    *,
    user: str = "olga",
    platform: str = "console",
    console_owner: bool = False,
    conversation: Conversation | None = None,
) -> CommandContext:
    """What a handler runs with: ``services``, who asked, and where replies go (a
    ``RecordingConversation`` unless given)."""
    return CommandContext(
        services=services,
        requester=Requester(user_id=user, platform=platform, is_console_owner=console_owner),
        conversation=conversation or RecordingConversation(),
    )


def run_command(
    services: Services,
    text: str,
    *,
    user: str = "olga",
    platform: str = "console",
    console_owner: bool = False,
    conversation: Conversation | None = None,
) -> Reply:
    """``text`` typed by ``user``, through the one entry point every chat platform calls."""
    return dispatch(
        services,
        text=text,
        requester=Requester(user_id=user, platform=platform, is_console_owner=console_owner),
        conversation=conversation or RecordingConversation(),
    )
