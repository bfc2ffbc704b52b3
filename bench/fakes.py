"""The outside systems as the fakes of tests/fixtures (GitHub, Infisical, Kubernetes,
Mattermost, Slack), started without pytest and seeded with a fleet of N apps; PostgreSQL stays
the benchmark's real throwaway cluster."""

from __future__ import annotations

import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.fleet import Fleet, manifest_files
from bot.adapters.local_git import LocalGitHost, init_demo_repo
from bot.config import Settings
from handlers.context import Services
from tests.fixtures.github import FakeGitHub
from tests.fixtures.infisical import (
    CLIENT_ID,
    CLIENT_SECRET,
    FULL_ACCESS,
    FakeInfisical,
    Folder,
    StoredSecret,
)
from tests.fixtures.kubernetes import (
    FakeKubernetes,
    kubernetes_server,
    pg_cluster,
    seed_app,
    write_kubeconfig,
)
from tests.fixtures.mattermost import FakeMattermost, mattermost_server


def fake_mattermost() -> AbstractContextManager[FakeMattermost]:
    """A fresh fake Mattermost on loopback, as its pytest fixture starts it."""
    return mattermost_server(FakeMattermost())


@dataclass
class FakeWorld:
    """GitHub, Infisical and Kubernetes fakes holding the same apps."""

    github: FakeGitHub
    infisical: FakeInfisical
    kube: FakeKubernetes
    kubeconfig: Path

    def settings(self, fleet: Fleet) -> Settings:
        return Settings(
            pg_dsn=fleet.superuser_dsn,
            github_repo=self.github.full_name,
            github_api_url=self.github.url,
            github_token=self.github.token,
            infisical_url=self.infisical.url,
            infisical_client_id=CLIENT_ID,
            infisical_client_secret=CLIENT_SECRET,
            kubernetes="on",
            kubeconfig=self.kubeconfig,
            state_dir=fleet.root,
            grace="1s",
        )

    def calls(self) -> dict[str, int]:
        """HTTP requests each fake has recorded so far."""
        return {
            "github": len(self.github.calls),
            "infisical": len(self.infisical.calls),
            "kubernetes": len(self.kube.calls),
        }

    def calls_by_route(self) -> dict[str, dict[str, int]]:
        return {
            "github": dict(Counter(f"{c.method} {_shape(c.path)}" for c in self.github.calls)),
            "infisical": dict(Counter(f"{c.method} {c.path}" for c in self.infisical.calls)),
            "kubernetes": dict(Counter(f"{c.method} {_shape(c.path)}" for c in self.kube.calls)),
        }

    def clear(self) -> None:
        self.github.clear_calls()
        self.infisical.clear_calls()
        self.kube.reset_calls()


def _shape(path: str) -> str:
    """A path with its app-specific or sha-like last segments folded, to group calls."""
    return path.split("?")[0]


@contextmanager
def fake_world(
    root: Path, apps: list[str], passwords: dict[str, Any], *, gitops: Path | None = None
) -> Iterator[FakeWorld]:
    """The three fakes, each holding ``apps`` (manifests on the base branch, secrets folders,
    Database + InfisicalSecret + Secret), all healthy. ``gitops``: a repository that already
    has those manifests on main (the fleet's), cloned instead of committing them again."""
    root.mkdir(parents=True, exist_ok=True)
    work = gitops or root / "gitops"
    if gitops is None:
        init_demo_repo(work)
        _commit_manifests(work, apps)
    bare = root / "gitops.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    github = FakeGitHub(bare).start()
    infisical = FakeInfisical().start()
    project = infisical.add_project("vixens")
    infisical.add_identity(CLIENT_ID, CLIENT_SECRET, grants={"vixens": FULL_ACCESS})
    _seed_infisical(project, apps, passwords)
    kube = FakeKubernetes()
    try:
        with kubernetes_server(kube):
            kubeconfig = write_kubeconfig(root / "kubeconfig", kube.url)
            kube.put(pg_cluster())
            for app in apps:
                seed_app(kube, app, passwords[app].reveal())
            yield FakeWorld(github=github, infisical=infisical, kube=kube, kubeconfig=kubeconfig)
    finally:
        github.stop()
        infisical.stop()


def _seed_infisical(project: Any, apps: list[str], passwords: dict[str, Any]) -> None:
    """Folders /postgresql/{app} in dev with username, password, database (as the bot writes)."""
    now = "2026-01-01T00:00:00.000Z"
    env = "dev"

    def folder(path: str) -> None:
        name = path.rsplit("/", 1)[1]
        project.folders[(env, path)] = Folder(str(uuid.uuid4()), name, path, env, now)

    folder("/postgresql")
    for app in apps:
        path = f"/postgresql/{app}"
        folder(path)
        values = {"username": app, "password": passwords[app].reveal(), "database": app}
        for key, value in values.items():
            project.secrets[(env, path, key)] = StoredSecret(
                str(uuid.uuid4()), key, value, 1, env, path, now, now
            )


def _commit_manifests(repo: Path, apps: list[str]) -> None:
    git = LocalGitHost(repo)
    settings = Settings(gitops_repo=repo)
    snapshot = git.snapshot(manifests_path=settings.gitops_path)
    assert snapshot.kustomization is not None
    files = manifest_files(settings, snapshot.kustomization, apps)
    sha = git.commit(parent=snapshot.base_sha, files=files, message=f"{len(apps)} apps")
    subprocess.run(["git", "-C", str(repo), "update-ref", "refs/heads/main", sha], check=True)
    subprocess.run(["git", "-C", str(repo), "reset", "-q", "--hard", "main"], check=True)


def services_on(world: FakeWorld, fleet: Fleet) -> Services:
    from bot.wiring import build_services

    return build_services(world.settings(fleet))
