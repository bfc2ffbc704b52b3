"""``pgdb-bot``: the console chat and the diagnostics CLI.

Imports stay inside the functions: ``--help`` and ``--version`` load nothing but argparse
(the configuration pulls pydantic, the adapters their clients), and each command loads only
what it runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bot.config import Settings

log = logging.getLogger("pgdb_bot")
DISTRIBUTION = "pgdb-bot"


class _Version(argparse.Action):
    """``--version``: the installed package's version, looked up only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version(DISTRIBUTION)
        except PackageNotFoundError:
            found = "unknown (not installed)"
        sys.stdout.write(f"{parser.prog} {found}\n")
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgdb-bot", description="Self-service PostgreSQL databases through chat."
    )
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", required=True)
    console = sub.add_parser("console", help="type /pgdb commands in a terminal or a pipe")
    console.add_argument("--as", dest="as_user", metavar="USER", help="act as another user")
    console.add_argument(
        "--reset",
        action="store_true",
        help="remove what local mode created (its roles, its schema, the demo repo, the secret "
        "files, the private server) and nothing else; asks first",
    )
    console.add_argument(
        "--yes", action="store_true", help="with --reset: do not ask (needed off a terminal)"
    )
    sub.add_parser("run", help="serve the configured chat platforms (long-running)")
    diagnose = sub.add_parser("diagnose", help="run the diagnostics once and exit")
    diagnose.add_argument("--json", action="store_true", help="print the findings as JSON")
    return parser


def _logging(settings: Settings | None, *, log_file: Path | None = None) -> None:
    from bot import logs

    fmt = settings.log_format if settings else "auto"
    logs.configure(
        level=settings.log_level if settings else "INFO",
        json_lines=fmt == "json" or (fmt == "auto" and not sys.stderr.isatty()),
        known_secrets=settings.secret_values() if settings else (),
        log_file=log_file,
    )


def _console(settings: Settings, as_user: str | None, *, log_file: Path | None) -> int:
    from bot import localmode
    from bot.adapters.console_chat import run_console
    from bot.wiring import build_services

    settings, notes = localmode.prepare(settings)
    services = localmode.recording(build_services(settings), settings)
    where = f" The log is in {log_file} (warnings are shown here too)." if log_file else ""

    def banner(out: TextIO) -> None:
        out.write(f"pgdb-bot console — type `/pgdb help`, or `exit`.{where}\n")

    if log_file is not None and not sys.stdin.isatty():  # no banner: say it with the notes
        notes.append(f"Log: {log_file}")
    for note in notes:
        sys.stderr.write(f"pgdb-bot: {note}\n")
    return run_console(services, user=as_user, banner=banner)


def _reset(settings: Settings, *, yes: bool) -> int:
    from bot.localreset import reset

    def ask(prompt: str) -> bool:
        try:
            return input(prompt).strip().lower() in {"y", "yes"}
        except EOFError:
            return False

    def out(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def err(line: str) -> None:
        sys.stderr.write(line + "\n")

    return reset(settings, yes=yes, ask=ask if sys.stdin.isatty() else None, out=out, err=err)


def _run(settings: Settings) -> int:
    from bot import memory
    from bot.runner import CommandRunner
    from bot.server import Readiness, Server
    from bot.wiring import build_platforms, build_services, instrumented, readiness_checks

    memory.limit_arenas(count=2)  # before any thread starts (bot/memory.py says why)
    services = instrumented(build_services(settings))
    runner = CommandRunner()
    platforms = build_platforms(settings, services, runner)
    services.announcer.attach(platforms)
    if not platforms:
        log.warning("no chat platform is configured: serving the health endpoints only")
    readiness = Readiness(readiness_checks(services))
    from bot.scheduler import build_scheduler
    from bot.wiring.kubernetes import build_leadership

    scheduler = build_scheduler(
        settings, services, platforms, leadership=build_leadership(settings)
    )
    scheduler.start()
    try:
        Server(
            platforms=platforms, runner=runner, readiness=readiness, port=settings.http_port
        ).serve()
    finally:
        scheduler.stop()
    return 0


def _diagnose(settings: Settings, as_json: bool) -> int:
    from bot.core.errors import PgdbError
    from bot.wiring import build_services
    from handlers.diagnose import report

    services = build_services(settings)
    try:  # one environment: its server; several: the bot's own state (each server is a finding)
        if services.fleet is None:
            services.database.observe()
        else:
            services.state.ping()
    except PgdbError as exc:
        sys.stderr.write(f"pgdb-bot diagnose: cannot run: {exc}\n")
        return 2
    text, code = report(services, json_output=as_json)
    sys.stdout.write(text)
    return code


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from bot.config import load_settings
    from bot.core.errors import ConfigError, PgdbError

    try:
        settings = load_settings()
    except ConfigError as exc:
        _logging(None)
        sys.stderr.write(f"pgdb-bot: {exc}\n")
        return 2
    from bot import memory

    memory.tune_collector()
    console = args.command == "console"
    if console and args.yes and not args.reset:
        sys.stderr.write("pgdb-bot: --yes confirms --reset; without --reset it does nothing\n")
        return 2
    # The console on a terminal: INFO lines to a file, so they do not interleave with replies.
    log_file: Path | None = None
    if console and not args.reset and sys.stdout.isatty():
        from bot.localmode import log_file_of

        log_file = log_file_of(settings)
    _logging(settings, log_file=log_file)
    try:
        if console and args.reset:
            return _reset(settings, yes=args.yes)
        if console:
            return _console(settings, args.as_user, log_file=log_file)
        if args.command == "run":
            return _run(settings)
        return _diagnose(settings, args.json)
    except ConfigError as exc:
        sys.stderr.write(f"pgdb-bot: {exc}\n")
        return 2
    except PgdbError as exc:
        sys.stderr.write(f"pgdb-bot: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
