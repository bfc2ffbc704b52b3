"""``GitHost`` in memory: commits (whole trees), branches, and each ``pgdb/<app>`` branch read
as its proposal, as ``LocalGitHost`` reads a local repository. A test plays the humans:
``push`` to the base branch, ``merge`` a proposal, ``close`` one.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from bot.core.errors import BackendUnavailable, ConflictError
from bot.core.model import CheckResult, GitSnapshot, Proposal, ProposalState
from bot.core.names import OFFBOARD_BRANCH_PREFIX, UPDATE_BRANCH_PREFIX
from tests.fakes.faults import FakeClock, Faults

MANIFESTS = "apps/04-databases/postgresql-shared/base"  # PGDB_GITOPS_PATH's default
BRANCH_PREFIX = "pgdb/"


def demo_files(
    manifests_path: str = MANIFESTS,
    *,
    namespace: str = "databases",
    cluster: str = "postgresql-shared",
) -> dict[str, str]:
    """The repository local mode starts from: the cluster and a kustomization listing it."""
    return {
        f"{manifests_path}/kustomization.yaml": (
            "apiVersion: kustomize.config.k8s.io/v1beta1\n"
            "kind: Kustomization\n"
            f"namespace: {namespace}\n"
            "# pgdb-bot adds databases/<app>.yaml and credentials/<app>-secret.yaml below.\n"
            "resources:\n"
            "  - cluster.yaml\n"
        ),
        f"{manifests_path}/cluster.yaml": (
            "apiVersion: postgresql.cnpg.io/v1\n"
            "kind: Cluster\n"
            "metadata:\n"
            f"  name: {cluster}\n"
            f"  namespace: {namespace}\n"
            "spec:\n"
            "  instances: 1\n"
        ),
    }


@dataclass(frozen=True, kw_only=True)
class Commit:
    sha: str
    parents: tuple[str, ...]
    tree: Mapping[str, str]  # repo-relative path -> text
    message: str
    at: datetime


class MemoryGitHost(Faults):
    """``branches`` maps names to commit shas; ``commits`` holds every commit; ``checks`` the
    status checks published per commit."""

    kind = "memory"
    system = "git"

    def __init__(
        self,
        *,
        base_branch: str = "main",
        files: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__()
        self.base_branch = base_branch
        self.clock = clock or FakeClock()
        self.commits: dict[str, Commit] = {}
        self.branches: dict[str, str] = {}
        self.checks: dict[str, dict[str, CheckResult]] = {}
        self.closed: set[str] = set()  # branches whose proposal was closed without merging
        root = self._make(
            parents=(), tree=demo_files() if files is None else files, message="Initial commit"
        )
        self.branches[base_branch] = root.sha

    # --- what the humans do ------------------------------------------------------------------

    @property
    def base_sha(self) -> str:
        with self._lock:
            return self.branches[self.base_branch]

    def push(self, files: Mapping[str, str | None], *, message: str = "A human's change") -> str:
        """A commit on the base branch (None deletes a path): someone pushed or merged."""
        with self._lock:
            tree = dict(self.commits[self.base_sha].tree)
            for path, text in files.items():
                if text is None:
                    tree.pop(path, None)
                else:
                    tree[path] = text
            made = self._make(parents=(self.base_sha,), tree=tree, message=message)
            self.branches[self.base_branch] = made.sha
            return made.sha

    def merge(self, branch: str) -> str:
        """Merge ``branch``'s proposal into the base branch (a merge commit: the branch's
        changes since it left the base, on top of the base)."""
        with self._lock:
            head = self.branches[branch]
            base = self.base_sha
            fork = self._fork_point(head, base)
            before = self.commits[fork].tree if fork else {}
            after = self.commits[head].tree
            tree = dict(self.commits[base].tree)
            for path in set(before) | set(after):
                if before.get(path) == after.get(path):
                    continue
                if path in after:
                    tree[path] = after[path]
                else:
                    tree.pop(path, None)
            made = self._make(parents=(base, head), tree=tree, message=f"Merge {branch}")
            self.branches[self.base_branch] = made.sha
            return made.sha

    def close(self, branch: str) -> None:
        """Close ``branch``'s proposal without merging it."""
        with self._lock:
            self.closed.add(branch)

    def text(self, path: str, *, ref: str | None = None) -> str | None:
        """A file's text on ``ref`` (default: the base branch), for assertions."""
        with self._lock:
            sha = self._resolve(ref or self.base_branch)
            return self.commits[sha].tree.get(path)

    # --- the port ------------------------------------------------------------------------------

    def snapshot(self, *, manifests_path: str) -> GitSnapshot:
        self._enter("snapshot")
        folder = manifests_path.strip("/")
        prefix = f"{folder}/" if folder else ""
        with self._lock:
            base = self.base_sha
            tree = self.commits[base].tree
            files = frozenset(p[len(prefix) :] for p in tree if p.startswith(prefix))
            proposals = {
                app: self._proposal(branch)
                for app, branch in sorted(self._apps_of(BRANCH_PREFIX).items())
            }
            offboardings = {
                app: self._proposal(branch)
                for app, branch in sorted(self._apps_of(OFFBOARD_BRANCH_PREFIX).items())
                if not self._contains(base, self.branches[branch])
            }
            updates = {
                app: self._proposal(branch)
                for app, branch in sorted(self._apps_of(UPDATE_BRANCH_PREFIX).items())
                if not self._contains(base, self.branches[branch])
            }
            return GitSnapshot(
                base_branch=self.base_branch,
                base_sha=base,
                files=files,
                kustomization=tree.get(f"{prefix}kustomization.yaml"),
                proposals=proposals,
                offboardings=offboardings,
                updates=updates,
            )

    def read_file(self, *, ref: str, path: str) -> str | None:
        self._enter("read_file")
        with self._lock:
            return self.commits[self._resolve(ref)].tree.get(posixpath.normpath(path))

    def commit(self, *, parent: str, files: Mapping[str, str | None], message: str) -> str:
        self._enter("commit")
        with self._lock:
            parent_sha = self._resolve(parent)
            tree = dict(self.commits[parent_sha].tree)
            for path, text in files.items():
                if text is None:
                    if path not in tree:
                        raise ConflictError(
                            f"{path} is not a file in commit {parent_sha[:12]}, so it cannot be"
                            " deleted — the branch changed meanwhile: run the command again"
                        )
                    del tree[path]
                    continue
                if any(p.startswith(f"{path}/") for p in tree):
                    raise ValueError(
                        f"{path} is a folder in {parent_sha}: a commit cannot replace it"
                    )
                tree[path] = text
            return self._make(parents=(parent_sha,), tree=tree, message=message).sha

    def set_branch(self, *, branch: str, sha: str) -> None:
        self._enter("set_branch")
        if branch == self.base_branch:
            raise ValueError(f"the bot never moves the base branch {branch}")
        with self._lock:
            self.branches[branch] = self._resolve(sha)
            self.closed.discard(branch)

    def proposal(self, *, branch: str) -> Proposal | None:
        self._enter("proposal")
        with self._lock:
            return self._proposal(branch) if branch in self.branches else None

    def open_proposal(self, *, branch: str, title: str, body: str) -> Proposal:
        self._enter("open_proposal")
        with self._lock:
            if branch not in self.branches:
                raise ConflictError(
                    f"branch {branch} does not exist, so there is nothing to propose — run the"
                    " command again to recreate it"
                )
            return self._proposal(branch)

    def publish_checks(self, *, proposal: Proposal, checks: list[CheckResult]) -> None:
        self._enter("publish_checks")
        with self._lock:
            if proposal.head_sha not in self.commits:
                raise ConflictError(
                    f"commit {proposal.head_sha} of {proposal.branch} is not in the repository"
                    " — run the command again"
                )
            mine = self.checks.setdefault(proposal.head_sha, {})
            mine.update({c.context: c for c in checks})

    # --- helpers (called under the lock) -----------------------------------------------------

    def _make(self, *, parents: tuple[str, ...], tree: Mapping[str, str], message: str) -> Commit:
        digest = hashlib.sha1(usedforsecurity=False)
        for part in (*parents, message, str(len(self.commits)), *sorted(tree.items())):
            digest.update(repr(part).encode())
        made = Commit(
            sha=digest.hexdigest(),
            parents=parents,
            tree=dict(tree),
            message=message,
            at=self.clock(),
        )
        self.commits[made.sha] = made
        return made

    def _resolve(self, ref: str) -> str:
        if ref in self.branches:
            return self.branches[ref]
        if ref in self.commits:
            return ref
        raise BackendUnavailable(
            self.system,
            f"{ref} is neither a branch nor a commit of the repository — check the branch name"
            " (PGDB_GITOPS_BASE_BRANCH) or fetch the missing commits",
        )

    def _ancestors(self, sha: str) -> set[str]:
        seen: set[str] = set()
        todo = [sha]
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(self.commits[current].parents)
        return seen

    def _contains(self, base: str, head: str) -> bool:
        """Whether ``head`` is merged: the base branch's history includes it."""
        return head in self._ancestors(base)

    def _fork_point(self, head: str, base: str) -> str | None:
        """The newest commit of ``head``'s first-parent line that the base contains."""
        ancestors = self._ancestors(base)
        current: str | None = head
        while current is not None and current not in ancestors:
            parents = self.commits[current].parents
            current = parents[0] if parents else None
        return current

    def _apps_of(self, prefix: str) -> dict[str, str]:
        return {
            name.removeprefix(prefix): name
            for name in self.branches
            if name.startswith(prefix)
            and name.removeprefix(prefix)
            and "/" not in name[len(prefix) :]
        }

    def _proposal(self, branch: str) -> Proposal:
        head = self.commits[self.branches[branch]]
        if self._contains(self.base_sha, head.sha):
            state = ProposalState.MERGED
        elif branch in self.closed:
            state = ProposalState.CLOSED
        else:
            state = ProposalState.OPEN
        return Proposal(
            branch=branch,
            head_sha=head.sha,
            url=f"branch {branch} (in memory)",
            state=state,
            base_sha=head.parents[0] if head.parents else None,
            created_at=head.at,
            checks=tuple(self.checks.get(head.sha, {}).values()),
        )


if TYPE_CHECKING:
    from bot.core.ports import GitHost

    _conforms: GitHost = MemoryGitHost()
