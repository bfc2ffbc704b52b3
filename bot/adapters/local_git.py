"""A local git repository as the GitOps host: each ``pgdb/<app>`` branch is the "pull request".

Everything goes through git plumbing (``cat-file``, ``ls-tree``, ``hash-object``, a private
index file, ``commit-tree``, ``update-ref``, ``notes``), so the repository's working tree, index
and HEAD are never touched: the bot can share a clone someone is working in, or a bare repo.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bot.core.errors import BackendUnavailable, ConflictError
from bot.core.model import CheckResult, CheckState, GitSnapshot, Proposal, ProposalState
from bot.core.names import OFFBOARD_BRANCH_PREFIX, UPDATE_BRANCH_PREFIX

BOT_NAME = "pgdb-bot"
BOT_EMAIL = "pgdb-bot@localhost"
BRANCH_PREFIX = "pgdb/"
_NOTES_THREAD_LOCK = threading.Lock()
NOTES_REF = "refs/notes/pgdb-checks"
DEFAULT_MANIFESTS_PATH = "apps/04-databases/postgresql-shared/base"

_SYSTEM = "git"
_TIMEOUT = 60.0
_REPO_HINT = (
    "set PGDB_GITOPS_REPO to the path of the GitOps repository (a clone or a bare repository)"
)
_REF_FORMAT = "%(refname)%00%(objectname)%00%(parent)%00%(committerdate:iso-strict)"
_LOCKED = re.compile(r"Unable to create '([^']+\.lock)': File exists")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class _Ref:
    """One ref as ``for-each-ref`` prints it."""

    name: str
    sha: str
    parents: tuple[str, ...]
    committed: datetime | None


@dataclass(frozen=True)
class _Result:
    code: int
    out: bytes
    err: str


class _Git:
    """Runs git with a fixed identity, the caller's GIT_* variables removed, and a timeout.

    Every outside call goes through here, so a user never sees a raw subprocess error.
    """

    def __init__(self, *, cwd: Path, where: Path, env: Mapping[str, str]) -> None:
        self.cwd = cwd
        self.where = where
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        self.env.update(
            {
                "GIT_AUTHOR_NAME": BOT_NAME,
                "GIT_AUTHOR_EMAIL": BOT_EMAIL,
                "GIT_COMMITTER_NAME": BOT_NAME,
                "GIT_COMMITTER_EMAIL": BOT_EMAIL,
                "GIT_LITERAL_PATHSPECS": "1",
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_NO_REPLACE_OBJECTS": "1",
                "LC_ALL": "C",
                "LANGUAGE": "",
            }
        )
        self.env.update(env)

    def __call__(
        self,
        *args: str,
        stdin: bytes = b"",
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> _Result:
        try:
            done = subprocess.run(
                ["git", *args],
                cwd=self.cwd,
                input=stdin,
                capture_output=True,
                env={**self.env, **(env or {})},
                timeout=_TIMEOUT,
                check=False,
            )
        except FileNotFoundError:
            raise BackendUnavailable(
                _SYSTEM,
                "the `git` command is not installed or not on PATH — install git 2.28 or newer"
                " on the bot's host",
            ) from None
        except subprocess.TimeoutExpired:
            raise BackendUnavailable(
                _SYSTEM,
                f"`git {args[0]}` did not finish within {_TIMEOUT:.0f}s in {self.where} — check"
                " the disk and whether another process holds the repository",
            ) from None
        result = _Result(done.returncode, done.stdout, done.stderr.decode("utf-8", "replace"))
        if check and result.code != 0:
            raise self.failure(args, result)
        return result

    def failure(self, args: Sequence[str], result: _Result) -> BackendUnavailable:
        lines = [line.strip() for line in result.err.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {result.code}"
        lock = _LOCKED.search(result.err)
        if lock:
            return BackendUnavailable(
                _SYSTEM,
                f"{self.where} is locked by another git process ({lock.group(1)} exists) — wait"
                " for it to finish, or delete that file if no git process is running, then run"
                " the command again",
            )
        if "dubious ownership" in result.err:
            return BackendUnavailable(
                _SYSTEM,
                f"git refuses to use {self.where}, which another user owns — run `git config"
                f" --global --add safe.directory {self.where}` as the bot's user",
            )
        return BackendUnavailable(
            _SYSTEM,
            f"`git {args[0]}` failed in {self.where}: {reason} — check that the repository is"
            " healthy and writable by the bot's user",
        )


class LocalGitHost:
    """``GitHost`` on a local (possibly bare) repository; the ``pgdb/<app>`` branch is the PR."""

    kind = "local"

    def __init__(self, repo: Path, *, base_branch: str = "main") -> None:
        self.repo = Path(repo).absolute()
        self.base_branch = base_branch
        self._runner: _Git | None = None

    # --- reading ----------------------------------------------------------------------------

    def snapshot(self, *, manifests_path: str) -> GitSnapshot:
        """Base branch files and every ``pgdb/*`` branch with a fixed, small number of git calls.

        It runs on every status and diagnostics pass, over possibly thousands of apps.
        """
        folder = _clean_path(manifests_path, allow_root=True)
        base_ref = f"refs/heads/{self.base_branch}"
        offboard_prefix = "refs/heads/" + OFFBOARD_BRANCH_PREFIX
        update_prefix = "refs/heads/" + UPDATE_BRANCH_PREFIX
        refs = self._refs(
            [base_ref, "refs/heads/" + BRANCH_PREFIX, offboard_prefix, update_prefix, NOTES_REF]
        )
        base = self._base(refs)
        branches = _apps_of(refs, "refs/heads/" + BRANCH_PREFIX)
        offboard_branches = _apps_of(refs, offboard_prefix)
        update_branches = _apps_of(refs, update_prefix)
        merged = (
            self._merged(base.sha) if branches or offboard_branches or update_branches else set()
        )
        listing = self._list_folder(base.sha, folder)
        notes = (
            self._note_blobs({ref.sha for ref in branches.values()})
            if branches and NOTES_REF in refs
            else {}
        )
        kustomization_blob = listing.get("kustomization.yaml")
        wanted = [*notes.values(), *([kustomization_blob] if kustomization_blob else [])]
        blobs = self._cat_blobs(wanted) if wanted else {}
        kustomization = None
        if kustomization_blob is not None and kustomization_blob in blobs:
            kustomization = blobs[kustomization_blob].decode("utf-8", "replace")
        proposals = {
            app: self._proposal(
                ref,
                merged=ref.name in merged,
                checks=_parse_checks(blobs.get(notes.get(ref.sha, ""), b"")),
            )
            for app, ref in sorted(branches.items())
        }
        offboardings = {
            app: self._proposal(ref, merged=False, checks=())
            for app, ref in sorted(offboard_branches.items())
            if ref.name not in merged
        }
        updates = {
            app: self._proposal(ref, merged=False, checks=())
            for app, ref in sorted(update_branches.items())
            if ref.name not in merged
        }
        return GitSnapshot(
            base_branch=self.base_branch,
            base_sha=base.sha,
            files=frozenset(listing),
            kustomization=kustomization,
            proposals=proposals,
            offboardings=offboardings,
            updates=updates,
        )

    def read_file(self, *, ref: str, path: str) -> str | None:
        """A file's text at a commit or branch, or None when the file is absent there."""
        _check_ref(ref)
        clean = _clean_path(path)
        git = self._git()
        out = git("cat-file", "--batch", stdin=f"{ref}:{clean}\n".encode()).out
        header, _, rest = out.partition(b"\n")
        if header.endswith((b" missing", b" ambiguous")):
            self._resolve_commit(ref)  # raises when the ref itself is unknown
            return None
        _, kind, size = header.rsplit(b" ", 2)
        if kind != b"blob":
            return None  # a folder (or a submodule) at that path
        return rest[: int(size)].decode("utf-8", "replace")

    # --- changing ---------------------------------------------------------------------------

    def commit(self, *, parent: str, files: Mapping[str, str | None], message: str) -> str:
        """A commit whose tree is ``parent``'s with ``files`` added or replaced (None: the file
        is removed, and must be one in ``parent``, as GitHub requires); its sha.

        Built in a private index file, so the repository's own index is never read or written.
        """
        parent_sha = self._resolve_commit(parent)
        cleaned = {_clean_path(path): text for path, text in files.items()}
        changes = {path: text for path, text in cleaned.items() if text is not None}
        removed = [path for path, text in cleaned.items() if text is None]
        self._refuse_file_folder_clashes(parent_sha, changes)
        self._require_files(parent_sha, removed)
        git = self._git()
        with tempfile.TemporaryDirectory(prefix="pgdb-git-") as tmp:
            index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            git("-c", "core.splitIndex=false", "read-tree", parent_sha, env=index)
            if removed:
                # mode 0 removes the entry; unlike --remove it needs no work tree (bare repos)
                gone = "".join(f"0 {'0' * 40}\t{path}\0" for path in removed)
                git(
                    "-c",
                    "core.splitIndex=false",
                    "update-index",
                    "-z",
                    "--index-info",
                    stdin=gone.encode("utf-8"),
                    env=index,
                )
            if changes:
                blob_paths = []
                for number, text in enumerate(changes.values()):
                    blob_path = Path(tmp) / f"blob-{number}"
                    blob_path.write_bytes(text.encode("utf-8"))
                    blob_paths.append(str(blob_path))
                hashed = git(
                    "hash-object",
                    "-w",
                    "--no-filters",
                    "--stdin-paths",
                    stdin="".join(f"{p}\n" for p in blob_paths).encode(),
                )
                shas = hashed.out.decode().split()
                info = "".join(
                    f"100644 {sha}\t{path}\0" for sha, path in zip(shas, changes, strict=True)
                )
                git(
                    "-c",
                    "core.splitIndex=false",
                    "update-index",
                    "-z",
                    "--index-info",
                    stdin=info.encode("utf-8"),
                    env=index,
                )
            tree = git("-c", "core.splitIndex=false", "write-tree", env=index).out.decode().strip()
        made = git("commit-tree", "--no-gpg-sign", tree, "-p", parent_sha, stdin=message.encode())
        return made.out.decode().strip()

    def _require_files(self, parent: str, paths: Sequence[str]) -> None:
        """A path to delete must be a file in ``parent``: deleting nothing means the caller
        worked from an outdated view of the branch."""
        if not paths:
            return
        stdin = "".join(f"{parent}:{path}\n" for path in paths).encode("utf-8")
        out = self._git()("cat-file", "--batch-check", stdin=stdin).out.decode("utf-8", "replace")
        for path, line in zip(paths, out.splitlines(), strict=True):
            if line.endswith(" missing") or line.split(" ")[1] != "blob":
                raise ConflictError(
                    f"{path} is not a file in commit {parent[:12]}, so it cannot be deleted —"
                    " the branch changed meanwhile: run the command again"
                )

    def _refuse_file_folder_clashes(self, parent: str, paths: Iterable[str]) -> None:
        """A file may not replace a folder, nor a folder a file: the index would silently drop
        the other side (a whole manifests folder, say), so such a change is refused."""
        files = set(paths)
        checks: dict[str, str] = {}  # path to look up -> the object type it must not be
        for path in files:
            checks[path] = "tree"
            parts = path.split("/")
            for end in range(1, len(parts)):
                folder = "/".join(parts[:end])
                if folder in files:
                    raise ValueError(f"{folder} cannot be both a file and a folder")
                checks.setdefault(folder, "blob")
        if not checks:
            return
        stdin = "".join(f"{parent}:{path}\n" for path in checks).encode("utf-8")
        out = self._git()("cat-file", "--batch-check", stdin=stdin).out.decode("utf-8", "replace")
        for (path, forbidden), line in zip(checks.items(), out.splitlines(), strict=True):
            if line.endswith(" missing"):
                continue
            if line.split(" ")[1] == forbidden:
                kind = "a folder" if forbidden == "tree" else "a file"
                raise ValueError(f"{path} is {kind} in {parent}: a commit cannot replace it")

    def set_branch(self, *, branch: str, sha: str) -> None:
        """Create or move ``refs/heads/<branch>``, refusing if it moved meanwhile.

        The base branch is refused (only humans merge), and so is a branch checked out in a
        working tree: moving it would change that checkout's HEAD under its owner.
        """
        _check_ref(branch)
        _check_ref(sha)
        if branch == self.base_branch:
            raise ValueError(f"the bot never moves the base branch {branch}")
        git = self._git()
        ref = f"refs/heads/{branch}"
        worktrees = git("worktree", "list", "--porcelain").out.decode("utf-8", "replace")
        if f"branch {ref}" in worktrees.splitlines():
            raise ConflictError(
                f"branch {branch} is checked out in a working tree of {self.repo} — switch that"
                " checkout to another branch, then run the command again"
            )
        current = git("rev-parse", "--verify", "-q", ref, check=False)
        old = current.out.decode().strip() if current.code == 0 else ""
        moved = git("update-ref", "-m", f"pgdb-bot: {branch}", ref, sha, old, check=False)
        if moved.code != 0:
            if "but expected" in moved.err or "reference already exists" in moved.err:
                raise ConflictError(
                    f"branch {branch} changed in {self.repo} while the bot was updating it — run"
                    " the command again"
                )
            raise git.failure(["update-ref"], moved)

    def proposal(self, *, branch: str) -> Proposal | None:
        """The branch, read as a proposal (merged when the base contains it); None if absent."""
        _check_ref(branch)
        ref_name = f"refs/heads/{branch}"
        refs = self._refs([ref_name, f"refs/heads/{self.base_branch}"])
        base = self._base(refs)
        head = refs.get(ref_name)
        if head is None:
            return None
        git = self._git()
        ancestor = git("merge-base", "--is-ancestor", head.sha, base.sha, check=False)
        if ancestor.code not in (0, 1):
            raise git.failure(["merge-base"], ancestor)
        return self._proposal(head, merged=ancestor.code == 0, checks=self._checks(head.sha))

    def open_proposal(self, *, branch: str, title: str, body: str) -> Proposal:
        """The branch itself is the proposal, so this only reads it back.

        Title and body have no home in a plain repository; the chat reply carries them.
        """
        found = self.proposal(branch=branch)
        if found is None:
            raise ConflictError(
                f"branch {branch} does not exist in {self.repo}, so there is nothing to propose"
                " — run the command again to recreate it"
            )
        return found

    def publish_checks(self, *, proposal: Proposal, checks: list[CheckResult]) -> None:
        """Store the checks as a git note (JSON) on the head commit, where ``snapshot`` finds them.

        Like a commit status, a check replaces the earlier one with the same context; the others
        stay. ``git notes`` writes objects and its own ref only, never the working tree.
        """
        _check_ref(proposal.head_sha)
        # `git notes add` moves the notes ref without checking what it pointed at: two writers
        # at once (parallel onboardings) would each drop the other's note. One at a time.
        with self._notes_lock():
            self._write_checks(proposal, checks)

    @contextlib.contextmanager
    def _notes_lock(self) -> Iterator[None]:
        """Held across read-merge-write of the notes, by threads and by other processes."""
        with _NOTES_THREAD_LOCK, open(self._git().cwd / "pgdb-notes.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _write_checks(self, proposal: Proposal, checks: list[CheckResult]) -> None:
        merged = {check.context: check for check in self._checks(proposal.head_sha)}
        merged.update({check.context: check for check in checks})
        payload = {
            "checks": [
                {"context": c.context, "state": str(c.state), "description": c.description}
                for c in merged.values()
            ]
        }
        text = json.dumps(payload, indent=2, sort_keys=True) + "\n"
        git = self._git()
        added = git(
            "notes",
            f"--ref={NOTES_REF}",
            "add",
            "-f",
            "-F",
            "-",
            proposal.head_sha,
            stdin=text.encode(),
            check=False,
        )
        if added.code != 0:
            if "failed to resolve" in added.err:
                raise ConflictError(
                    f"commit {proposal.head_sha} of {proposal.branch} is not in {self.repo} — run"
                    " the command again"
                )
            raise git.failure(["notes"], added)

    # --- helpers ----------------------------------------------------------------------------

    def _git(self) -> _Git:
        """The runner, bound to the repository's git directory (found once, on first use)."""
        if self._runner is None:
            git_dir = _find_git_dir(self.repo)
            self._runner = _Git(cwd=git_dir, where=self.repo, env={"GIT_DIR": str(git_dir)})
        return self._runner

    def _refs(self, patterns: Iterable[str]) -> dict[str, _Ref]:
        out = self._git()("for-each-ref", f"--format={_REF_FORMAT}", *patterns).out
        refs: dict[str, _Ref] = {}
        for line in out.decode("utf-8", "replace").splitlines():
            name, sha, parents, date = [*line.split("\0"), "", "", ""][:4]
            refs[name] = _Ref(
                name=name,
                sha=sha,
                parents=tuple(parents.split()),
                committed=datetime.fromisoformat(date) if date else None,
            )
        return refs

    def _base(self, refs: Mapping[str, _Ref]) -> _Ref:
        base = refs.get(f"refs/heads/{self.base_branch}")
        if base is None:
            raise BackendUnavailable(
                _SYSTEM,
                f"branch {self.base_branch} does not exist in {self.repo} — create branch"
                f" {self.base_branch} there, or set PGDB_GITOPS_BASE_BRANCH to the repository's"
                " base branch",
            )
        return base

    def _merged(self, base_sha: str) -> set[str]:
        """``pgdb/*`` and ``pgdb-offboard/*`` branches whose head the base branch already
        contains, in one call."""
        out = self._git()(
            "for-each-ref",
            f"--merged={base_sha}",
            "--format=%(refname)",
            "refs/heads/" + BRANCH_PREFIX,
            "refs/heads/" + OFFBOARD_BRANCH_PREFIX,
            "refs/heads/" + UPDATE_BRANCH_PREFIX,
        ).out
        return set(out.decode("utf-8", "replace").split())

    def _list_folder(self, commit: str, folder: str) -> dict[str, str]:
        """Files under ``folder`` at ``commit``: path relative to the folder -> blob sha."""
        args = ["ls-tree", "-r", "-z", "--full-tree", commit]
        if folder:
            args += ["--", folder]
        out = self._git()(*args).out
        prefix = f"{folder}/" if folder else ""
        listing: dict[str, str] = {}
        for entry in out.decode("utf-8", "replace").split("\0"):
            meta, _, path = entry.partition("\t")
            fields = meta.split()
            if len(fields) == 3 and fields[1] == "blob" and path.startswith(prefix):
                listing[path[len(prefix) :]] = fields[2]
        return listing

    def _note_blobs(self, heads: set[str]) -> dict[str, str]:
        """Commit sha -> note blob sha for ``heads``, from one listing of the notes ref."""
        out = self._git()("notes", f"--ref={NOTES_REF}", "list").out
        notes: dict[str, str] = {}
        for line in out.decode().splitlines():
            fields = line.split()
            if len(fields) == 2 and fields[1] in heads:
                notes[fields[1]] = fields[0]
        return notes

    def _cat_blobs(self, shas: Sequence[str]) -> dict[str, bytes]:
        """Several objects' contents from one ``cat-file --batch``."""
        out = self._git()("cat-file", "--batch", stdin="".join(f"{s}\n" for s in shas).encode()).out
        found: dict[str, bytes] = {}
        pos = 0
        while pos < len(out):
            end = out.index(b"\n", pos)
            fields = out[pos:end].split()
            pos = end + 1
            if len(fields) != 3:
                continue  # "<name> missing"
            size = int(fields[2])
            found[fields[0].decode()] = out[pos : pos + size]
            pos += size + 1
        return found

    def _checks(self, sha: str) -> tuple[CheckResult, ...]:
        shown = self._git()("notes", f"--ref={NOTES_REF}", "show", sha, check=False)
        return _parse_checks(shown.out) if shown.code == 0 else ()

    def _resolve_commit(self, ref: str) -> str:
        _check_ref(ref)
        found = self._git()("rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False)
        if found.code != 0:
            raise BackendUnavailable(
                _SYSTEM,
                f"{ref} is neither a branch nor a commit of {self.repo} — check the branch name"
                " (PGDB_GITOPS_BASE_BRANCH) or fetch the missing commits",
            )
        return found.out.decode().strip()

    def _proposal(self, ref: _Ref, *, merged: bool, checks: tuple[CheckResult, ...]) -> Proposal:
        branch = ref.name.removeprefix("refs/heads/")
        return Proposal(
            branch=branch,
            head_sha=ref.sha,
            url=f"branch {branch} in {self.repo}",
            state=ProposalState.MERGED if merged else ProposalState.OPEN,
            base_sha=ref.parents[0] if ref.parents else None,
            created_at=ref.committed,
            checks=checks,
        )


def _apps_of(refs: Mapping[str, _Ref], prefix: str) -> dict[str, _Ref]:
    """App -> branch, for the branches named ``<prefix><app>``."""
    found = {
        ref.name.removeprefix(prefix): ref for ref in refs.values() if ref.name.startswith(prefix)
    }
    return {app: ref for app, ref in found.items() if app and "/" not in app}


# --- the demo repository --------------------------------------------------------------------


def init_demo_repo(
    path: Path,
    *,
    manifests_path: str = DEFAULT_MANIFESTS_PATH,
    base_branch: str = "main",
    namespace: str = "databases",
    cluster: str = "postgresql-shared",
) -> None:
    """Create a repository shaped like the team's GitOps repo, so local mode has one to use.

    An existing repository is left alone; an existing non-empty folder that is not one is
    refused rather than filled.
    """
    for label, value in (("namespace", namespace), ("cluster", cluster)):
        if not _DNS_LABEL.fullmatch(value):
            raise ValueError(f"{label} {value!r} is not a Kubernetes name")
    folder = _clean_path(manifests_path)
    path = Path(path).absolute()
    if path.exists():
        if not path.is_dir():
            raise BackendUnavailable(
                _SYSTEM, f"{path} is a file, not a git repository — {_REPO_HINT}"
            )
        try:
            _find_git_dir(path)
        except BackendUnavailable:
            if any(path.iterdir()):
                raise BackendUnavailable(
                    _SYSTEM,
                    f"{path} is not empty and is not a git repository — choose an empty or"
                    " missing folder for the demo repository, or " + _REPO_HINT,
                ) from None
        else:
            return
    path.mkdir(parents=True, exist_ok=True)
    _Git(cwd=path, where=path, env={})("init", "-q", f"--initial-branch={base_branch}", ".")
    files = {
        "README.md": (
            "# GitOps repository (pgdb-bot demo)\n\n"
            f"Argo CD syncs `{folder}/`: the shared PostgreSQL cluster `{cluster}` and one\n"
            "`databases/<app>.yaml` plus `credentials/<app>-secret.yaml` per app, proposed by\n"
            "pgdb-bot on branches `pgdb/<app>`.\n"
        ),
        f"{folder}/kustomization.yaml": (
            "apiVersion: kustomize.config.k8s.io/v1beta1\n"
            "kind: Kustomization\n"
            f"namespace: {namespace}\n"
            "# pgdb-bot adds databases/<app>.yaml and credentials/<app>-secret.yaml below.\n"
            "resources:\n"
            "  - cluster.yaml\n"
        ),
        f"{folder}/cluster.yaml": (
            "apiVersion: postgresql.cnpg.io/v1\n"
            "kind: Cluster\n"
            "metadata:\n"
            f"  name: {cluster}\n"
            f"  namespace: {namespace}\n"
            "spec:\n"
            "  instances: 1\n"
            "  imageName: ghcr.io/cloudnative-pg/postgresql:17.6\n"
            "  storage:\n"
            "    size: 20Gi\n"
            "  resources:\n"
            "    requests:\n"
            "      cpu: 100m\n"
            "      memory: 256Mi\n"
            "    limits:\n"
            "      cpu: 500m\n"
            "      memory: 512Mi\n"
        ),
    }
    for name, text in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    git = _Git(
        cwd=path,
        where=path,
        env={"GIT_DIR": str(path / ".git"), "GIT_WORK_TREE": str(path)},
    )
    git("-c", "core.autocrlf=false", "add", "--", *files)
    tree = git("write-tree").out.decode().strip()
    sha = git("commit-tree", "--no-gpg-sign", tree, stdin=b"Shared PostgreSQL cluster\n")
    git("update-ref", f"refs/heads/{base_branch}", sha.out.decode().strip(), "")


# --- validation and parsing -----------------------------------------------------------------


def _find_git_dir(repo: Path) -> Path:
    """The git directory of the repository *at* ``repo`` (never one of its parent folders)."""
    if not repo.is_dir():
        what = "does not exist" if not repo.exists() else "is a file"
        raise BackendUnavailable(_SYSTEM, f"{repo} {what} — {_REPO_HINT}")
    real = repo.resolve()
    git = _Git(cwd=real, where=repo, env={"GIT_CEILING_DIRECTORIES": str(real.parent)})
    found = git("rev-parse", "--absolute-git-dir", check=False)
    if found.code != 0:
        if "not a git repository" in found.err:
            raise BackendUnavailable(_SYSTEM, f"{repo} is not a git repository — {_REPO_HINT}")
        raise git.failure(["rev-parse"], found)
    return Path(found.out.decode().strip())


def _clean_path(path: str, *, allow_root: bool = False) -> str:
    """A repo-relative path with no way out of the repository and nothing git would refuse."""
    parts = [p for p in path.strip().strip("/").split("/") if p not in {"", "."}]
    if not parts and allow_root:
        return ""
    if (
        not parts
        or path.startswith("/")
        or any(p == ".." or p.lower() == ".git" for p in parts)
        or any(ch in path for ch in "\0\n\r")
    ):
        raise ValueError(f"{path!r} is not a usable repository path")
    return "/".join(parts)


def _check_ref(ref: str) -> None:
    """Reject what could be read as an option or break a ``cat-file --batch`` line."""
    if not ref or ref.startswith("-") or any(ch in ref for ch in "\0\n\r "):
        raise ValueError(f"{ref!r} is not a usable branch or commit name")


def _parse_checks(raw: bytes) -> tuple[CheckResult, ...]:
    """Checks from a note; a note in an unexpected shape yields no checks rather than a failure."""
    try:
        data = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        return ()
    items = data.get("checks", []) if isinstance(data, dict) else []
    checks: list[CheckResult] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        try:
            checks.append(
                CheckResult(
                    context=str(item["context"]),
                    state=CheckState(item["state"]),
                    description=str(item.get("description", "")),
                )
            )
        except (KeyError, ValueError):
            continue
    return tuple(checks)
