"""A secret store in plain files that mirrors Infisical's layout, for local mode and tests.

``<root>/<env>/<prefix>/<app>/{username,password,database}``: one file per key holding the exact
value (no trailing newline), files 0600 and folders 0700. Each file is replaced atomically, so a
crash never leaves a half-written password that a re-run would take for the real one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

from bot.core.errors import BackendUnavailable
from bot.core.model import SECRET_KEYS, StoredCredentials
from bot.core.names import AppName
from bot.core.secret import Secret

_SYSTEM = "secret store"
_DIR_MODE = 0o700
_FILE_MODE = 0o600
_TEMP_PREFIX = "."
_READ_SIZE = 64 * 1024  # a key file is a few dozen bytes; larger ones take more reads


class FileSecretStore:
    """``SecretStore`` on a local folder: what ``pgdb-bot console`` uses instead of Infisical."""

    kind = "file"

    def __init__(self, root: Path, *, env: str, prefix: str = "/postgresql") -> None:
        parts = [p for p in prefix.split("/") if p]
        for part in [env, *parts]:
            if part in {"", ".", ".."} or "/" in part or "\0" in part:
                raise ValueError(f"unusable secret store path component {part!r}")
        self.root = Path(root).absolute()
        self.env = env
        self.prefix = "/" + "/".join(parts)
        self._base = self.root.joinpath(env, *parts)

    # --- reading ----------------------------------------------------------------------------

    def location(self, app: AppName) -> str:
        """The Infisical-style path plus where it really is, so an operator can find it."""
        path = self.prefix.rstrip("/") + "/" + app
        return f"{path} (env {self.env}, file store {self.root})"

    def read_all(self) -> dict[str, StoredCredentials]:
        """Every app folder under the prefix, in one directory walk (diagnostics need all)."""
        try:
            with os.scandir(self._base) as listing:
                entries = list(listing)
        except FileNotFoundError:
            if not self.root.is_dir():
                # A store whose root is gone is unreadable, not empty: answering "no app"
                # would make every app look as if its credentials were lost.
                raise BackendUnavailable(
                    _SYSTEM,
                    f"the secret store folder {self.root} does not exist — check "
                    "PGDB_SECRETS_DIR (or create the folder)",
                ) from None
            return {}  # the environment's folder is created by the first write
        except OSError as exc:
            raise _error(exc, self._base, action="list") from exc
        found: dict[str, StoredCredentials] = {}
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith(_TEMP_PREFIX):
                continue
            try:
                is_dir = entry.is_dir()
            except OSError as exc:
                raise _error(exc, Path(entry.path), action="list") from exc
            if is_dir:
                found[entry.name] = self._read_folder(entry.path)
        return found

    def read(self, app: AppName) -> StoredCredentials | None:
        """The app's credentials, or None when its folder does not exist."""
        folder = self._folder(app)
        try:
            if not folder.is_dir():
                if folder.exists() or folder.is_symlink():
                    raise BackendUnavailable(
                        _SYSTEM,
                        f"{folder} is a file where a folder is expected — move it away so the"
                        " app's credentials can be stored there",
                    )
                return None
        except OSError as exc:
            raise _error(exc, folder, action="read") from exc
        return self._read_folder(folder)

    def _read_folder(self, folder: str | Path) -> StoredCredentials:
        # plain strings, not Path objects: a pass reads three files of every app
        base = os.fspath(folder)
        values = {key: self._read_key(os.path.join(base, key)) for key in SECRET_KEYS}
        password = values["password"]
        return StoredCredentials(
            username=values["username"],
            password=None if password is None else Secret(password),
            database=values["database"],
        )

    @staticmethod
    def _read_key(path: str) -> str | None:
        # os.open/os.read, not open(): a pass reads 15,000 of these at 5,000 apps, and the
        # buffered file object costs more than the read itself
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _error(exc, Path(path), action="read") from exc
        try:
            chunks: list[bytes] = []
            while chunk := os.read(fd, _READ_SIZE):
                chunks.append(chunk)
        except OSError as exc:
            raise _error(exc, Path(path), action="read") from exc
        finally:
            os.close(fd)
        data = b"".join(chunks)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass  # raised below, outside this block: the decode error holds the raw bytes
        raise BackendUnavailable(
            _SYSTEM, f"{path} is not UTF-8 text — rewrite it with the key's value alone"
        )

    # --- writing ----------------------------------------------------------------------------

    def write(self, app: AppName, *, username: str, password: Secret, database: str) -> None:
        """Create the folder (0700), then replace each key's file (0600) atomically."""
        folder = self._folder(app)
        self._make_folders(folder)
        values = {"username": username, "password": password.reveal(), "database": database}
        for key in SECRET_KEYS:
            _write_atomically(folder / key, values[key])
        _fsync_dir(folder)

    def delete(self, app: AppName) -> bool:
        """Remove the three key files, then the app's folder; False when there was none.

        Only the bot's own files (the keys and leftover temp files) are removed: a folder that
        also holds anything else is refused before anything is deleted."""
        folder = self._folder(app)
        try:
            if not folder.is_dir():
                if folder.exists() or folder.is_symlink():
                    raise _not_a_folder(folder)
                return False
            entries = list(folder.iterdir())
            ours = [e for e in entries if e.name in SECRET_KEYS or e.name.startswith(_TEMP_PREFIX)]
            leftovers = sorted(e.name for e in entries if e not in ours)
            if leftovers:  # checked first: nothing is deleted from a folder that is not ours
                raise BackendUnavailable(
                    _SYSTEM,
                    f"{folder} holds files the bot did not write ({', '.join(leftovers)}), "
                    "so nothing was deleted — move them away, then run the command again",
                )
            for entry in ours:
                entry.unlink()
        except OSError as exc:
            raise _error(exc, folder, action="delete") from exc
        try:
            folder.rmdir()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _error(exc, folder, action="delete") from exc
        _fsync_dir(folder.parent)
        return True

    def _folder(self, app: AppName) -> Path:
        if app in {"", ".", ".."} or "/" in app or "\0" in app or app.startswith(_TEMP_PREFIX):
            raise ValueError("not an app folder name")
        return self._base / app

    def _make_folders(self, folder: Path) -> None:
        """Create missing folders as 0700 and take group/other access off the store's own.

        ``mkdir``'s mode is filtered by the umask, so new folders get theirs explicitly. An
        existing folder only loses access, never gains it: one made read-only stays read-only.
        """
        missing: list[Path] = []
        for path in [folder, *folder.parents]:
            try:
                if path.is_dir():
                    break
            except OSError as exc:
                raise _error(exc, path, action="open") from exc
            missing.append(path)
        for path in reversed(missing):
            try:
                path.mkdir(mode=_DIR_MODE)
            except FileExistsError:
                if not path.is_dir():
                    raise _not_a_folder(path) from None
            except NotADirectoryError:
                raise _not_a_folder(_first_file(path)) from None
            except OSError as exc:
                raise _error(exc, path, action="create") from exc
            _set_mode(path, _DIR_MODE)
        for path in [folder, *folder.parents]:
            if self.root not in path.parents:
                break
            if path not in missing:
                _make_private(path)


def _set_mode(path: Path, mode: int) -> None:
    try:
        os.chmod(path, mode)
    except OSError as exc:
        raise _error(exc, path, action="protect") from exc


def _make_private(path: Path) -> None:
    """Remove group and other access from an existing folder, keeping the owner's bits."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise _error(exc, path, action="open") from exc
    if current & 0o077:
        _set_mode(path, current & 0o700)


def _write_atomically(path: Path, value: str) -> None:
    """Temp file in the same folder, fsync, rename: readers see the old value or the new one."""
    fd = -1
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{_TEMP_PREFIX}{path.name}.", dir=path.parent)
        os.fchmod(fd, _FILE_MODE)
        data = value.encode("utf-8")
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
        tmp = ""
    except OSError as exc:
        raise _error(exc, path, action="write") from exc
    finally:
        if fd >= 0:
            os.close(fd)
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _fsync_dir(folder: Path) -> None:
    """Make the renames durable; a failure here is not worth failing the write for."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _first_file(path: Path) -> Path:
    """The ancestor of ``path`` that is a file, which is why a folder cannot be made there."""
    for parent in reversed([path, *path.parents]):
        if parent.exists() and not parent.is_dir():
            return parent
    return path


def _not_a_folder(path: Path) -> BackendUnavailable:
    return BackendUnavailable(
        _SYSTEM,
        f"{path} is a file where a folder is expected — move it away or point PGDB_SECRETS_DIR"
        " at another folder",
    )


def _error(exc: OSError, path: Path, *, action: str) -> BackendUnavailable:
    """Name the path and the remedy; the message never contains a value."""
    reason = exc.strerror or type(exc).__name__
    code = exc.errno
    if code in {errno.EACCES, errno.EPERM, errno.EROFS}:
        remedy = (
            "give the bot's user read and write access to it, or point PGDB_SECRETS_DIR at a"
            " folder it owns"
        )
    elif code in {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}:
        remedy = "free some space on that disk (or raise the quota), then run the command again"
    elif code == errno.ENOTDIR:
        return _not_a_folder(_first_file(path))
    elif code == errno.EISDIR:
        remedy = "it is a folder where a file is expected: move it away"
    else:
        remedy = "check the disk and PGDB_SECRETS_DIR, then run the command again"
    return BackendUnavailable(_SYSTEM, f"cannot {action} {path}: {reason} — {remedy}")
