"""``pgdb-bot console --reset``: remove what local mode created, and only that.

On each server in the ledger (``bot/localrecords.py``): the roles local mode created and the
bot's schema if local mode created it, each only while it is still the very object it made (same
object id). Then its private server (stopped, its directory deleted), and in the state directory
the demo GitOps repository, the secret files, the log and the ledger. Whatever stays is said,
with why: a role that existed before, one that now owns something local mode did not make, a
server that cannot be reached (its records are kept, so a later reset finishes the work).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bot.config import Settings
from bot.core.errors import ConfigError, PgdbError
from bot.localmode import LOG_FILE, is_local, private_cluster_dir, servers_of
from bot.localrecords import (
    LEDGER_FILE,
    Ledger,
    ServerRecord,
    role_oid,
    schema_oid,
    with_password_of,
)
from bot.pgcluster import PrivateCluster, PrivateClusterError

Ask = Callable[[str], bool]
SECRET_FILES = "the secret files"  # noqa: S105 (what the plan calls them)


@dataclass(kw_only=True)
class Report:
    """What a reset removed, and what it left with the reason."""

    removed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    failed: bool = False  # something local mode created could not be removed

    def leave(self, what: str, *, failed: bool = False) -> None:
        self.left.append(what)
        self.failed = self.failed or failed


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What a reset would remove, and the roles it would leave, read before asking."""

    state_dir: Path
    servers: list[ServerRecord]
    private_dir: Path | None
    paths: list[tuple[Path, str]]  # (path, what it is)
    not_created: list[str]  # roles in the bot's records that local mode did not create
    dsns: list[str]  # the configured connections: their passwords, for the servers recorded

    @property
    def empty(self) -> bool:
        return not (self.servers or self.private_dir or self.paths)

    def lines(self) -> list[str]:
        out = []
        for record in self.servers:
            if record.private:
                continue
            where = record.describe()
            out += [f"role `{name}` on {where}" for name in sorted(record.roles)]
            if record.schema:
                out.append(f"schema `{record.schema}` (the bot's records) in {where}")
        if self.private_dir is not None:
            out.append(
                f"the private PostgreSQL server in {self.private_dir}, with every role and "
                "database in it (stopped, then deleted)"
            )
        out += [f"{what}: {path}" for path, what in self.paths]
        return out


def plan_reset(settings: Settings) -> Plan:
    state_dir = settings.default_state_dir()
    servers = Ledger(state_dir).servers()
    private = private_cluster_dir(state_dir)
    paths: list[tuple[Path, str]] = []
    own = [
        (settings.gitops_repo, state_dir / "gitops", "the demo GitOps repository"),
        (settings.secrets_dir, state_dir / "secrets", SECRET_FILES),
    ]
    for configured, default, what in own:
        # Only local mode's own folder: one the configuration names is the user's.
        if (configured is None or Path(configured).absolute() == default.absolute()) and (
            default.exists()
        ):
            paths.append((default, what))
    for log in sorted(state_dir.glob(f"{LOG_FILE}*")):
        paths.append((log, "the log"))
    dsns = _configured_dsns(settings)
    created = {name for record in servers for name in record.roles}
    not_created = []
    for record in servers:
        if not record.private:
            schema = record.schema or settings.state_schema
            for app in _apps_with_roles(record, schema=schema, dsns=dsns):
                if app not in created:
                    not_created.append(
                        f"role `{app}` on {record.describe()}: local mode did not create it "
                        "(it existed before, or was made outside the console)"
                    )
    return Plan(
        state_dir=state_dir,
        servers=servers,
        private_dir=private if private.exists() else None,
        paths=paths,
        not_created=not_created,
        dsns=dsns,
    )


def _configured_dsns(settings: Settings) -> list[str]:
    """Every connection the configuration names (a password may be needed to reconnect)."""
    dsns = [d for d in (settings.pg_dsn, settings.state_dsn) if d]
    try:
        state, admin = servers_of(settings)
    except (ConfigError, PgdbError):
        return dsns  # an environments file that does not resolve: the variables' only
    return dsns + [d for d in (state, *admin.values()) if d]


def reset(
    settings: Settings,
    *,
    yes: bool,
    ask: Ask | None,
    out: Callable[[str], None],
    err: Callable[[str], None],
) -> int:
    """Show the plan, confirm it (``yes``, else ``ask``; no way to ask: refuse), carry it out,
    say what happened. 0 when everything local mode created is gone, 1 when something of it
    is left or the answer was no, 2 when refused."""
    if not is_local(settings):
        err(
            "pgdb-bot: --reset undoes local mode, and this configuration uses GitHub or "
            "Infisical, whose records a reset cannot remove: offboard apps with "
            "`/pgdb offboard <app>` instead (unset the PGDB_GITHUB_* and PGDB_INFISICAL_* "
            "variables to reset local mode)"
        )
        return 2
    plan = plan_reset(settings)
    if plan.empty:
        out(f"Nothing to remove: local mode has created nothing recorded in {plan.state_dir}.")
        return 0
    out(f"Local mode's state in {plan.state_dir}. The reset removes:")
    for line in plan.lines():
        out(f"  - {line}")
    if plan.not_created:
        secrets = any(what == SECRET_FILES for _, what in plan.paths)
        note = " (their stored passwords go with the secret files: keep a copy)" if secrets else ""
        out(f"It leaves{note}:")
        for line in plan.not_created:
            out(f"  - {line}")
    if not yes:
        if ask is None:
            err(
                "pgdb-bot: nothing removed: the reset asks before removing anything, and stdin "
                "is not a terminal. Add --yes to confirm: `pgdb-bot console --reset --yes`"
            )
            return 2
        if not ask("Remove all of this? [y/N] "):
            out("Nothing removed.")
            return 1
    report = carry_out(plan, dsns=plan.dsns)
    out("Removed:" if report.removed else "Removed nothing.")
    for line in report.removed:
        out(f"  - {line}")
    if report.left:
        out("Left:")
        for line in report.left:
            out(f"  - {line}")
    return 1 if report.failed else 0


def carry_out(plan: Plan, *, dsns: Sequence[str]) -> Report:
    report = Report(left=list(plan.not_created))
    kept: list[ServerRecord] = []
    for record in plan.servers:
        if record.private:
            continue  # everything on it goes with the server
        remaining = _reset_server(record, dsns=dsns, report=report)
        if remaining is not None:
            kept.append(remaining)
    private_kept = False
    if plan.private_dir is not None:
        private_kept = not _remove_private_server(plan.private_dir, report=report)
    if private_kept:
        kept += [r for r in plan.servers if r.private]
    for path, what in plan.paths:
        _remove_path(path, what=what, report=report)
    Ledger(plan.state_dir).replace(kept)
    if kept:
        report.leave(
            f"the records of what is left, in {plan.state_dir / LEDGER_FILE}: run "
            "`pgdb-bot console --reset` again once the above is dealt with"
        )
    elif _remove_if_empty(plan.state_dir):
        report.removed.append(f"the state directory {plan.state_dir} (now empty)")
    else:
        others = sorted(p.name for p in plan.state_dir.iterdir()) if plan.state_dir.exists() else []
        if others:
            report.leave(
                f"in {plan.state_dir}: {', '.join(others)} (not local mode's, or not recorded)"
            )
    return report


def _reset_server(
    record: ServerRecord, *, dsns: Sequence[str], report: Report
) -> ServerRecord | None:
    """Drop the recorded roles and schema on one server; the record of what is left."""
    where = record.describe()
    try:
        conn = psycopg.connect(
            with_password_of(record.server, dsns), connect_timeout=5, autocommit=True
        )
    except psycopg.Error as exc:
        report.leave(
            f"on {where}: roles {sorted(record.roles) or 'none'} and schema "
            f"{record.schema or 'none'}: cannot connect ({_first_line(exc)}); start the "
            "server (or set PGPASSWORD if it asks for a password) and run the reset again",
            failed=True,
        )
        return record
    with conn:
        roles_left: dict[str, int] = {}
        for name, oid in sorted(record.roles.items()):
            if _drop_role(conn, name, oid, where=where, report=report):
                continue
            if role_oid(conn, name) == oid:
                roles_left[name] = oid
        schema_left = record.schema is not None and not _drop_schema(
            conn, record, where=where, report=report
        )
    if not roles_left and not schema_left:
        return None
    return ServerRecord(
        server=record.server,
        schema=record.schema if schema_left else None,
        schema_oid=record.schema_oid if schema_left else None,
        roles=roles_left,
    )


def _apps_with_roles(record: ServerRecord, *, schema: str, dsns: Sequence[str]) -> list[str]:
    """The apps in the bot's records (``schema``) on that server that have a role."""
    try:
        with psycopg.connect(with_password_of(record.server, dsns), connect_timeout=5) as conn:
            if schema_oid(conn, schema) is None:
                return []
            apps = conn.execute(
                sql.SQL("SELECT DISTINCT app FROM {} ORDER BY 1").format(
                    sql.Identifier(schema, "workflows")
                )
            ).fetchall()
            return [str(app) for (app,) in apps if role_oid(conn, str(app)) is not None]
    except psycopg.Error:
        return []  # unreachable: the reset says so when it gets there


def _drop_role(
    conn: psycopg.Connection[Any], name: str, oid: int, *, where: str, report: Report
) -> bool:
    """True when the role local mode created is gone (dropped now, or already)."""
    found = role_oid(conn, name)
    if found is None:
        report.removed.append(f"role `{name}` on {where} (it was already gone)")
        return True
    if found != oid:
        report.leave(
            f"role `{name}` on {where}: not the role local mode created (that one was dropped "
            "and someone made this one since)"
        )
        return True  # nothing of local mode's is left to remove
    try:
        # RESTRICT: a role that owns or may use something local mode did not make stays.
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        owned = _first_line(exc, detail=True)
        report.leave(
            f"role `{name}` on {where}: {owned}; local mode did not create that: remove it "
            "(or reassign it), then run the reset again",
            failed=True,
        )
        return False
    report.removed.append(f"role `{name}` on {where}")
    return True


def _drop_schema(
    conn: psycopg.Connection[Any], record: ServerRecord, *, where: str, report: Report
) -> bool:
    """True when the schema local mode created is gone. Its tables are dropped together,
    then the schema, both RESTRICT: whatever depends on them from outside keeps them."""
    assert record.schema is not None
    name = record.schema
    found = schema_oid(conn, name)
    if found is None:
        report.removed.append(f"schema `{name}` in {where} (it was already gone)")
        return True
    if found != record.schema_oid:
        report.leave(f"schema `{name}` in {where}: not the one local mode created")
        return True
    tables = [
        str(t)
        for (t,) in conn.execute(
            "SELECT c.relname FROM pg_class c WHERE c.relnamespace = %s AND c.relkind IN ('r', 'p')"
            " ORDER BY 1",
            (found,),
        )
    ]
    try:
        with conn.transaction():
            if tables:
                conn.execute(
                    sql.SQL("DROP TABLE {} RESTRICT").format(
                        sql.SQL(", ").join(sql.Identifier(name, t) for t in tables)
                    )
                )
            conn.execute(sql.SQL("DROP SCHEMA {} RESTRICT").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        report.leave(
            f"schema `{name}` in {where}: {_first_line(exc, detail=True)}; remove what local "
            "mode did not make, then run the reset again",
            failed=True,
        )
        return False
    report.removed.append(f"schema `{name}` (the bot's records) in {where}")
    return True


def _remove_private_server(directory: Path, *, report: Report) -> bool:
    try:
        cluster = PrivateCluster(directory, port=0)
        cluster.stop()
    except PrivateClusterError as exc:
        report.leave(f"the private PostgreSQL server in {directory}: {exc}", failed=True)
        return False
    shutil.rmtree(directory, ignore_errors=True)
    if directory.exists():
        report.leave(f"the private PostgreSQL server's directory {directory}", failed=True)
        return False
    report.removed.append(f"the private PostgreSQL server in {directory} (stopped, deleted)")
    return True


def _remove_path(path: Path, *, what: str, report: Report) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    except OSError as exc:
        report.leave(f"{what}: {path} ({exc.strerror})", failed=True)
        return
    report.removed.append(f"{what}: {path}")


def _remove_if_empty(directory: Path) -> bool:
    try:
        directory.rmdir()
    except OSError:
        return False
    return True


def _first_line(exc: psycopg.Error, *, detail: bool = False) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    diag = getattr(exc, "diag", None)
    extra = diag.message_detail if detail and diag is not None else None
    return f"{text} ({extra.strip()})" if extra else text
