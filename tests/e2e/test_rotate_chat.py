"""`/pgdb rotate` on Slack and Mattermost: `pgdb-bot run` in a subprocess against the fake
platforms, confirmed by clicking the Rotate button as an operator would."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_mattermost_run import OPERATOR as MM_OPERATOR
from tests.e2e.test_mattermost_run import _post_saying, _running_bot
from tests.e2e.test_slack_run import CHANNEL, OPERATOR, click, final_message, running, slack_env
from tests.fixtures.bot import BotEnv, one_account
from tests.fixtures.mattermost import FakeMattermost
from tests.fixtures.slack import FakeSlack

pytestmark = one_account()  # a chat surface's cases: tests/fixtures/bot.py

APP = "docspell"


def test_rotate_through_the_slack_button(bot_env: BotEnv, slack_api: FakeSlack) -> None:
    env = bot_env.env(**slack_env(slack_api, PGDB_OPERATORS=OPERATOR))
    with running(env, bot_env.state_dir, slack_api) as bot:
        bot.command(f"create {APP}")
        final_message(slack_api, CHANNEL, f"Onboarded `{APP}`")
        old = bot_env.stored(APP)
        assert old is not None

        bot.command(f"rotate {APP}", user=OPERATOR)
        prompt = final_message(slack_api, CHANNEL, f"Rotate `{APP}`: confirm")
        assert f"/pgdb rotate {APP} --yes" in prompt.content
        assert bot_env.stored(APP) == old  # nothing changed before the click

        accepted, _ = click(bot, prompt, user=OPERATOR)

        assert accepted.status_code == 200
        final_message(slack_api, CHANNEL, f"Rotated `{APP}`")
        logs = bot.logs()
    new = bot_env.stored(APP)
    assert new is not None and new != old
    assert bot_env.can_login(APP, new) and not bot_env.can_login(APP, old)
    assert new not in slack_api.everything_sent()
    assert new not in logs
    audit = bot_env.audit_once(
        lambda entries: any(e.command == f"/pgdb rotate {APP} --yes" for e in entries)
    )
    assert (OPERATOR, f"/pgdb rotate {APP} --yes", "ok") in [
        (e.user, e.command, e.result) for e in audit
    ]
    assert new not in repr(audit)


def test_rotate_through_the_mattermost_button(
    bot_env: BotEnv, fake_mattermost: FakeMattermost, tmp_path: Path
) -> None:
    with _running_bot(bot_env, fake_mattermost, tmp_path) as bot:
        assert bot.command(f"create {APP}").status_code == 200
        _post_saying(fake_mattermost, f"Onboarded `{APP}`")
        old = bot_env.stored(APP)
        assert old is not None

        assert bot.command(f"rotate {APP}", user=MM_OPERATOR).status_code == 200
        confirm = _post_saying(fake_mattermost, f"Rotate `{APP}`: confirm")
        [action] = confirm["props"]["attachments"][0]["actions"]
        context = action["integration"]["context"]
        assert context["command"] == f"/pgdb rotate {APP} --yes"

        clicked = bot.click(context, user=MM_OPERATOR, post_id=confirm["id"])

        assert clicked.status_code == 200
        fake_mattermost.wait_for(
            lambda: f"Rotated `{APP}`" in fake_mattermost.posts[confirm["id"]]["message"],
            timeout=60,
        )
        log = bot.stop()
    new = bot_env.stored(APP)
    assert new is not None and new != old
    assert bot_env.can_login(APP, new) and not bot_env.can_login(APP, old)
    assert new not in fake_mattermost.everything_sent()
    assert new not in log
    records = bot_env.sql("SELECT * FROM pgdb_bot.workflows", in_state_db=True)
    assert ("rotate", "done") in [(r[2], r[4]) for r in records]
    assert new not in repr(records)
