"""The names the bot hands to GitHub — a repository, a path in it, a branch, a commit —
checked before any request, so a bad one is a ``ValueError`` and never reaches the API."""

from __future__ import annotations

import re

SHA = re.compile(r"^[0-9a-f]{40}$")
REPO = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
_REF_PART = re.compile(r"^[A-Za-z0-9._/-]+$")


def clean_path(path: str) -> str:
    """``path`` without its outer slashes; refused when it could leave the repository."""
    clean = path.strip("/")
    parts = clean.split("/")
    if not clean or any(p in ("", ".", "..") for p in parts) or "\0" in clean:
        raise ValueError(f"{path!r} is not a relative path inside the repository")
    return clean


def check_ref(ref: str) -> None:
    """A branch name or a commit: nothing that could be read as an option or a range."""
    if not ref or not _REF_PART.fullmatch(ref) or ".." in ref or ref.startswith(("-", "/")):
        raise ValueError(f"{ref!r} is not a branch name or a commit")


def check_branch(branch: str) -> None:
    """A ref, and a name git accepts for a branch."""
    check_ref(branch)
    if branch.endswith(("/", ".lock")) or "//" in branch:
        raise ValueError(f"{branch!r} is not a branch name")
