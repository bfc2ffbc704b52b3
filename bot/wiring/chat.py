"""The chat platforms, built from the configuration: which ones are configured (a partial set of
variables is an error naming what is missing), and each with what it needs: its own client,
the edge's audit, and the core to hand commands to, bound to the services with that
platform's group resolver (``group:<name>`` means a group of the platform the command came
from). The adapters take plain values and never see ``Settings``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from urllib.parse import urlsplit

from bot.adapters.mattermost.api import MattermostApi
from bot.adapters.mattermost.buttons import ButtonConfig
from bot.adapters.mattermost.groups import MattermostGroups
from bot.adapters.mattermost.platform import ACTIONS_PATH, MattermostPlatform
from bot.adapters.slack.client import web_client
from bot.adapters.slack.conversation import Messenger
from bot.adapters.slack.groups import SlackGroups
from bot.adapters.slack.platform import SlackPlatform, SlackTokenRefused
from bot.config import Settings
from bot.core.errors import ConfigError
from bot.core.model import Once, Requester
from bot.core.ports import CommandIntake, Conversation
from bot.http_edge import EdgeAudit
from bot.runner import CommandRunner
from handlers.context import Services
from handlers.intake import run_once


def command_intake(services: Services) -> CommandIntake:
    """The core as a platform sees it: ``run_once`` with these services."""

    def intake(
        *, text: str, requester: Requester, conversation: Conversation, once: Once | None
    ) -> None:
        run_once(services, once=once, text=text, requester=requester, conversation=conversation)

    return intake


# --- Mattermost -------------------------------------------------------------------------------


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
    buttons = mattermost_buttons(settings)
    api = MattermostApi(base_url=url, bot_token=bot_token)
    return MattermostPlatform(
        api=api,
        intake=command_intake(dataclasses.replace(services, groups=MattermostGroups(api=api))),
        runner=runner,
        edge_audit=EdgeAudit(services.state),
        command_token=command_token,
        ops_channel=settings.mattermost_ops_channel or settings.ops_channel,
        buttons=buttons,
    )


def mattermost_buttons(settings: Settings) -> ButtonConfig | None:
    """Buttons when PGDB_PUBLIC_URL (where Mattermost sends clicks) and PGDB_ACTION_SECRET
    (what signs them) are both set; None (decisions typed as commands) otherwise."""
    if not (settings.public_url and settings.action_secret):
        return None
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
    return ButtonConfig(url=public + ACTIONS_PATH, secret=settings.action_secret)


# --- Slack ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SlackConfig:
    """The ``PGDB_SLACK_*`` variables, checked together (each error names its variable)."""

    bot_token: str
    signing_secret: str | None
    app_token: str | None
    api_url: str
    ops_channel: str | None

    @property
    def socket_mode(self) -> bool:
        return self.app_token is not None


def slack_config(settings: Settings) -> SlackConfig | None:
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
    return SlackConfig(
        bot_token=settings.slack_bot_token,
        signing_secret=settings.slack_signing_secret,
        app_token=settings.slack_app_token,
        api_url=settings.slack_api_url,
        ops_channel=settings.slack_ops_channel or settings.ops_channel,
    )


def build_slack(
    settings: Settings, services: Services, runner: CommandRunner
) -> SlackPlatform | None:
    """The Slack platform when its variables are set (the bot token is checked now)."""
    config = slack_config(settings)
    if config is None:
        return None
    return slack_platform(config, services=services, runner=runner)


def slack_platform(
    config: SlackConfig, *, services: Services, runner: CommandRunner
) -> SlackPlatform:
    """The platform for a checked configuration; ConfigError when Slack refuses the token."""
    client = web_client(token=config.bot_token, api_url=config.api_url)
    try:
        return SlackPlatform(
            messenger=Messenger(client=client),
            intake=command_intake(dataclasses.replace(services, groups=SlackGroups(client=client))),
            runner=runner,
            edge_audit=EdgeAudit(services.state),
            signing_secret=config.signing_secret,
            app_token=config.app_token,
            ops_channel=config.ops_channel,
        )
    except SlackTokenRefused as exc:
        raise ConfigError(
            f"PGDB_SLACK_BOT_TOKEN: Slack did not accept the bot token at "
            f"{config.api_url} (PGDB_SLACK_API_URL): {exc}"
        ) from None
