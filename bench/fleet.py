"""A fleet of N apps held by real backends: a throwaway PostgreSQL cluster (scram-sha-256,
fsync off), a file secret store and a local GitOps repository with every app on its base."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from bot.adapters.file_secrets import FileSecretStore
from bot.adapters.local_git import LocalGitHost, init_demo_repo
from bot.adapters.no_cluster import NoCluster
from bot.adapters.postgres.migrations import BotSchema
from bot.adapters.postgres.roles import PostgresDatabase
from bot.adapters.postgres.state import PostgresBotState
from bot.config import Settings
from bot.core.manifests.kustomization import add_resources
from bot.core.manifests.onboarding import build_manifest_set
from bot.core.names import AppName
from bot.core.secret import Secret, generate_password
from bot.pgcluster import PrivateCluster
from bot.wiring import core_settings
from handlers.context import Services

CREATOR = "pgdb_bench_creator"
CREATOR_PASSWORD = "bench-creator-password-0123456789"


@dataclass
class Fleet:
    cluster: PrivateCluster
    root: Path
    superuser_dsn: str
    creator_dsn: str
    apps: list[str]
    passwords: dict[str, Secret]

    def settings(self, dsn: str) -> Settings:
        return Settings(
            pg_dsn=dsn,
            gitops_repo=self.root / "gitops",
            secrets_dir=self.root / "secrets",
            state_dir=self.root,
            grace="1s",
        )

    def services(self, *, as_superuser: bool = True) -> Services:
        dsn = self.superuser_dsn if as_superuser else self.creator_dsn
        settings = self.settings(dsn)
        return Services(
            settings=core_settings(settings),
            secrets=FileSecretStore(self.root / "secrets", env="dev"),
            database=PostgresDatabase(dsn, login_concurrency=4),
            state=PostgresBotState(BotSchema(self.superuser_dsn)),
            git=LocalGitHost(self.root / "gitops"),
            cluster=NoCluster(),
            bot_role="postgres" if as_superuser else CREATOR,
        )


@contextmanager
def private_cluster() -> Iterator[tuple[PrivateCluster, Path]]:
    root = Path(tempfile.mkdtemp(prefix="pgdb-bench-"))
    root.chmod(0o755)  # the cluster runs as the postgres OS user when we are root
    cluster = PrivateCluster(
        root / "pg",
        auth="scram-sha-256",
        password=generate_password(),
        settings={"max_connections": 200, "shared_buffers": "128MB", "fsync": "off"},
    )
    cluster.start()
    try:
        yield cluster, root
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


class FleetBuilder:
    """Grows one fleet step by step (10, then 100, … apps) on the same cluster and repository."""

    def __init__(self, cluster: PrivateCluster, root: Path) -> None:
        self.cluster = cluster
        self.root = root
        self.passwords: dict[str, Secret] = {}
        self.databases = 0
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN CREATEROLE PASSWORD {}").format(
                    sql.Identifier(CREATOR), sql.Literal(CREATOR_PASSWORD)
                )
            )
        init_demo_repo(root / "gitops")

    def grow(self, *, apps: int, databases: int) -> Fleet:
        """Add apps (roles, stored passwords, manifests on the base) up to ``apps`` in all, and
        databases up to ``databases``."""
        started = time.perf_counter()
        new = [f"app{i:05d}" for i in range(len(self.passwords), apps)]
        passwords = {n: generate_password() for n in new}
        with psycopg.connect(self.cluster.dsn(), autocommit=True) as conn:
            with conn.transaction():
                for name in new:
                    verifier = conn.pgconn.encrypt_password(
                        passwords[name].reveal().encode(), name.encode(), b"scram-sha-256"
                    )
                    conn.execute(
                        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                            sql.Identifier(name), sql.Literal(verifier.decode())
                        )
                    )
                    conn.execute(
                        sql.SQL("GRANT {} TO {} WITH ADMIN OPTION").format(
                            sql.Identifier(name), sql.Identifier(CREATOR)
                        )
                    )
            self.passwords.update(passwords)
            names = list(self.passwords)
            for name in names[self.databases : databases]:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {} STRATEGY FILE_COPY").format(
                        sql.Identifier(name), sql.Identifier(name)
                    )
                )
            self.databases = max(self.databases, min(databases, len(names)))
        store = FileSecretStore(self.root / "secrets", env="dev")
        for name in new:
            store.write(AppName(name), username=name, password=passwords[name], database=name)
        self._commit_manifests(new)
        self._record_history(new)
        print(
            f"  fleet grown to {len(names)} apps ({self.databases} databases) "
            f"in {time.perf_counter() - started:.1f} s"
        )
        return Fleet(
            cluster=self.cluster,
            root=self.root,
            superuser_dsn=self.cluster.dsn(),
            creator_dsn=self.cluster.dsn(user=CREATOR, password=CREATOR_PASSWORD),
            apps=names,
            passwords=dict(self.passwords),
        )

    def _record_history(self, new: list[str]) -> None:
        """One finished ``create`` record per app, as any fleet the bot onboarded has: fleet-wide
        commands must stay linear in apps and records."""
        BotSchema(self.cluster.dsn()).migrate()
        with psycopg.connect(self.cluster.dsn(), autocommit=True) as conn:
            conn.execute(
                "INSERT INTO pgdb_bot.workflows (app, kind, requester, status, step, started_at,"
                " updated_at) SELECT unnest(%s::text[]), 'create', 'bench', 'done', 'done',"
                " now() - interval '1 day', now() - interval '1 day'",
                (new,),
            )

    def _commit_manifests(self, new: list[str]) -> None:
        repo = self.root / "gitops"
        git = LocalGitHost(repo)
        settings = Settings(gitops_repo=repo)
        snapshot = git.snapshot(manifests_path=settings.gitops_path)
        assert snapshot.kustomization is not None
        files = manifest_files(settings, snapshot.kustomization, new)
        sha = git.commit(parent=snapshot.base_sha, files=files, message=f"{len(new)} apps")
        _fast_forward(repo, sha)


TEMPLATE_APP = "benchtemplateapp"


def manifest_files(settings: Settings, kustomization: str, apps: list[str]) -> dict[str, str]:
    """Every app's manifests and the kustomization listing them all. Built by the bot once for
    a template app and renamed per app (checked against the bot's own output for the first
    apps): building each app (~13 ms) and adding its resources one by one (re-parsing a growing
    file) would take minutes at 5,000 apps."""
    template = build_manifest_set(
        AppName(TEMPLATE_APP), settings=settings.manifest_settings, base_kustomization=kustomization
    ).files
    prefix = f"{settings.gitops_path}/"
    files: dict[str, str] = {}
    resources: list[str] = []
    for i, name in enumerate(apps):
        renamed = {
            path.replace(TEMPLATE_APP, name): text.replace(TEMPLATE_APP, name)
            for path, text in template.items()
            if not path.endswith("kustomization.yaml")
        }
        if i < 3:
            real = build_manifest_set(
                AppName(name), settings=settings.manifest_settings, base_kustomization=kustomization
            ).files
            assert {p: t for p, t in real.items() if not p.endswith("kustomization.yaml")} == (
                renamed
            ), "the template no longer renames to the bot's manifests"
        files.update(renamed)
        resources += [path.removeprefix(prefix) for path in renamed]
    lines = kustomization.rstrip("\n").splitlines()
    if lines and lines[-1].startswith("  - "):  # resources is the last block: append to it
        files[f"{prefix}kustomization.yaml"] = (
            "\n".join(lines + [f"  - {path}" for path in resources]) + "\n"
        )
    else:
        files[f"{prefix}kustomization.yaml"] = add_resources(kustomization, resources)
    return files


def _fast_forward(repo: Path, sha: str) -> None:
    import subprocess

    subprocess.run(["git", "-C", str(repo), "update-ref", "refs/heads/main", sha], check=True)
    subprocess.run(["git", "-C", str(repo), "reset", "-q", "--hard", "main"], check=True)
