"""``/pgdb status``, ``/pgdb list`` and ``/pgdb diagnose`` over the in-memory ports: one
observation of every system, judged by the assessment; a system that cannot be read is named,
never taken for "missing"; the grace period holds a fresh app's findings."""

from __future__ import annotations

from datetime import timedelta

from bot.core.reply import Reply
from handlers.diagnose import exit_code
from handlers.findings import diagnose
from handlers.observe import observe
from tests.fakes.services import MemoryWorld, run_command

APP = "docspell"
PASSWORD = "the-apps-password-0123456789abcdefgh"


def run(world: MemoryWorld, text: str) -> Reply:
    return run_command(world.services(), text, console_owner=True)


def onboarded(world: MemoryWorld, app: str = APP) -> None:
    """``app`` as the bot and the controllers leave it, every layer in place."""
    assert run(world, f"/pgdb create {app}").ok
    world.git.merge(f"pgdb/{app}")
    world.database.add_database(app, owner=app)
    world.cluster.onboard(app)


def fields(reply: Reply) -> dict[str, str]:
    return dict(reply.fields)


def test_an_onboarded_app_is_ok_in_every_layer() -> None:
    world = MemoryWorld(kubernetes=True)
    onboarded(world)

    status = run(world, f"/pgdb status {APP}")

    assert status.title == f"Status of `{APP}`: ok"
    assert all(label.startswith(("✅", "⚪")) for label, _ in status.fields), status.fields
    assert fields(status)["✅ stored password opens the role"].startswith("yes (verifier")
    assert diagnose(observe(world.services()), world.services()).findings == []


def test_an_open_proposal_is_pending_not_a_problem() -> None:
    world = MemoryWorld()
    assert run(world, f"/pgdb create {APP}").ok

    status = run(world, f"/pgdb status {APP}")

    assert status.title == f"Status of `{APP}`: pending"
    assert fields(status)["⏳ manifests"].startswith(f"open: branch pgdb/{APP}")
    assert "database" in " ".join(label for label, _ in status.fields)


def test_a_system_that_cannot_be_read_is_unknown_not_missing() -> None:
    world = MemoryWorld()
    onboarded(world)
    world.database.fail("observe")

    status = run(world, f"/pgdb status {APP}")
    diagnosis = diagnose(observe(world.services()), world.services())

    assert status.title == f"Status of `{APP}`: unknown"
    assert fields(status)["❔ role"].startswith("unknown because PostgreSQL: connection refused")
    assert [(f.kind, f.app) for f in diagnosis.findings] == [("system_unreachable", None)]
    assert "PGDB_PG_DSN" in diagnosis.findings[0].remedy
    assert exit_code(diagnosis) != 0


def test_the_grace_period_holds_a_fresh_apps_findings_then_they_show() -> None:
    world = MemoryWorld()
    assert run(world, f"/pgdb create {APP}").ok
    world.database.drop_role(APP)

    held = diagnose(observe(world.services()), world.services())
    world.clock.advance(timedelta(minutes=11))  # PGDB_GRACE is 10m
    shown = diagnose(observe(world.services()), world.services())

    assert [f.kind for f in held.findings if f.app == APP] == []
    assert "role_missing" in [f.kind for f in shown.findings if f.app == APP]


def test_a_drifted_password_is_a_critical_finding_with_the_command_that_fixes_it() -> None:
    world = MemoryWorld()
    world.secrets.put(APP, PASSWORD)
    world.database.add_role(APP, password="changed by hand, not in the store")

    reply = run(world, "/pgdb diagnose")

    assert reply.title.startswith("Diagnostics: ")
    [line] = [line for line in reply.lines if "password_drift" in line]
    assert line.startswith(f"🔴 password_drift `{APP}`") and line.endswith(f"/pgdb rotate {APP}")
    assert PASSWORD not in repr(reply)


def test_list_reads_each_system_once_whatever_the_number_of_apps() -> None:
    world = MemoryWorld()
    for i in range(40):
        world.secrets.put(f"app{i:02d}", PASSWORD)
        world.database.add_role(f"app{i:02d}", password=PASSWORD)

    listing = run(world, "/pgdb list")

    assert listing.title == "Known apps (40), page 1/1"
    assert world.secrets.calls == ["read_all"]
    assert world.database.calls == ["observe", "check_passwords"]  # one batch for 40 apps
    assert world.git.calls == ["snapshot"]
    assert world.state.calls == ["workflows", "record_audit"]


def test_an_unknown_app_is_said_to_be_unknown() -> None:
    reply = run(MemoryWorld(), "/pgdb status nobody")

    assert reply.title == "`nobody` is not a known app"
    assert "/pgdb create nobody" in reply.lines[0]
