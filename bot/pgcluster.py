"""A throwaway PostgreSQL cluster of our own: for the local mode when no server is reachable,
and for tests that need a server with password authentication.

``initdb`` and ``pg_ctl`` refuse to run as root, so when we are root they run as the
``postgres`` OS user (through ``runuser``) on a directory that user owns.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal
from urllib.parse import quote

from bot.core.errors import PgdbError
from bot.core.secret import Secret

Auth = Literal["trust", "scram-sha-256"]
SettingValue = str | int | float | bool
# A unix socket path is limited to 107 bytes (sun_path); beyond it we listen on TCP only.
_SOCKET_PATH_MAX = 107
_TIMEOUT = 120
_SETTINGS_FILE = "pgdb-bot.conf"


class PrivateClusterError(PgdbError):
    """The private cluster could not be created, started or stopped; the message says why."""


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_binary(name: str) -> Path:
    """``name`` on PATH, else in the newest ``/usr/lib/postgresql/<major>/bin``."""
    found = shutil.which(name)
    if found:
        return Path(found)
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1])
    raise PrivateClusterError(
        f"`{name}` was not found on PATH nor under /usr/lib/postgresql/*/bin: "
        "install the PostgreSQL server package (e.g. `apt-get install postgresql`)"
    )


class PrivateCluster:
    """A PostgreSQL cluster in ``directory`` listening on 127.0.0.1 only.

    ``start()`` runs ``initdb`` the first time and reuses the data directory afterwards.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        port: int | None = None,
        auth: Auth = "trust",
        superuser: str = "postgres",
        password: Secret | None = None,
        settings: Mapping[str, SettingValue] | None = None,
        os_user: str = "postgres",
    ) -> None:
        if auth == "scram-sha-256" and not password:
            raise ValueError("scram-sha-256 authentication needs a superuser password")
        self.directory = Path(directory).absolute()
        self.data_dir = self.directory / "data"
        self.log_path = self.directory / "postgresql.log"
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self.auth: Auth = auth
        self.superuser = superuser
        self._password = password
        self._settings = dict(settings or {})
        self._as_root = os.geteuid() == 0
        self._os_user = os_user
        self._initdb = find_binary("initdb")
        self._pg_ctl = find_binary("pg_ctl")

    def __repr__(self) -> str:
        return f"PrivateCluster({str(self.directory)!r}, port={self.port}, auth={self.auth!r})"

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Create the cluster if needed and start it; waits until it accepts connections."""
        if self.is_running():
            return
        self._prepare_directory()
        if not (self.data_dir / "PG_VERSION").exists():
            self._init()
        self._write_settings()
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            result = self._pg_ctl_run(
                "start",
                "-w",
                "-t",
                str(_TIMEOUT),
                "-l",
                str(self.log_path),
                "-o",
                f"-p {self.port}",
            )
            if result.returncode == 0:
                return
            if attempt + 1 < attempts:
                self.port = free_port()  # someone took the port in between: try another
        raise PrivateClusterError(
            f"PostgreSQL in {self.data_dir} did not start on 127.0.0.1:{self.port}: "
            f"{_tail(result.stderr)} {self._log_tail()}".strip()
        )

    def stop(self) -> None:
        """Stop the server (fast shutdown: sessions are disconnected). Nothing if not running."""
        if not self.is_running():
            return
        result = self._pg_ctl_run("stop", "-m", "fast", "-w", "-t", str(_TIMEOUT))
        if result.returncode != 0 and self.is_running():
            raise PrivateClusterError(
                f"PostgreSQL in {self.data_dir} did not stop: {_tail(result.stderr)}"
            )

    def is_running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        return self._pg_ctl_run("status").returncode == 0

    def __enter__(self) -> PrivateCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- connecting -----------------------------------------------------------------------

    def dsn(
        self,
        *,
        user: str | None = None,
        password: Secret | str | None = None,
        dbname: str = "postgres",
    ) -> str:
        """A ``postgresql://`` URL for this cluster. Default user: the superuser, with its
        password. The URL contains the password: keep it out of logs."""
        if user is None:
            user = self.superuser
            if password is None:
                password = self._password
        revealed = password.reveal() if isinstance(password, Secret) else password
        auth = quote(user, safe="")
        if revealed:
            auth += ":" + quote(revealed, safe="")
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{quote(dbname, safe='')}"

    # -- internals ------------------------------------------------------------------------

    def _command(self, binary: Path, *args: str) -> list[str]:
        if self._as_root:
            return ["runuser", "-u", self._os_user, "--", str(binary), *args]
        return [str(binary), *args]

    def _execute(self, command: Sequence[str]) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=_TIMEOUT + 30,
                check=False,
                cwd=self.directory,
                env={**os.environ, "LC_ALL": "C"},
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PrivateClusterError(f"`{' '.join(command[:6])}` failed: {exc}") from None

    def _pg_ctl_run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self._execute(
            self._command(self._pg_ctl, args[0], "-D", str(self.data_dir), *args[1:])
        )

    def _prepare_directory(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self._as_root:
            return
        if shutil.which("runuser") is None:
            raise PrivateClusterError(
                "running as root needs `runuser` (util-linux) to start PostgreSQL"
            )
        try:
            account = pwd.getpwnam(self._os_user)
        except KeyError:
            raise PrivateClusterError(
                f"PostgreSQL refuses to run as root and there is no `{self._os_user}` OS user "
                "to run it as: create one (the postgresql package does)"
            ) from None
        for path in [self.directory, *self.directory.rglob("*")]:
            os.chown(path, account.pw_uid, account.pw_gid, follow_symlinks=False)
        reachable = self._execute(
            ["runuser", "-u", self._os_user, "--", "test", "-w", str(self.directory)]
        )
        if reachable.returncode != 0:
            raise PrivateClusterError(
                f"the `{self._os_user}` OS user cannot reach {self.directory} (a parent "
                "directory is not traversable by others): choose a directory such as /tmp/…"
            )

    def _init(self) -> None:
        args = [
            "-D",
            str(self.data_dir),
            "-U",
            self.superuser,
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
            "--auth-local=trust",
            f"--auth-host={self.auth}",
        ]
        pwfile = self.directory / ".pwfile"
        if self._password:
            pwfile.write_text(self._password.reveal() + "\n")
            pwfile.chmod(0o600)
            if self._as_root:
                account = pwd.getpwnam(self._os_user)
                os.chown(pwfile, account.pw_uid, account.pw_gid)
            args.append(f"--pwfile={pwfile}")
        try:
            result = self._execute(self._command(self._initdb, *args))
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise PrivateClusterError(
                f"initdb failed in {self.data_dir}: {_tail(result.stderr or result.stdout)}"
            )
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\n# pgdb-bot's PrivateCluster rewrites this file at each start\n"
                f"include_if_exists = '{_SETTINGS_FILE}'\n"
            )

    def _write_settings(self) -> None:
        """Our settings in their own file, so a reused data directory gets the current ones."""
        settings: dict[str, SettingValue] = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": self._socket_dir(),
            "password_encryption": "scram-sha-256",
            "fsync": False,
            "synchronous_commit": False,
            "full_page_writes": False,
            "shared_buffers": "32MB",
            "max_connections": 50,
            **self._settings,
        }
        path = self.data_dir / _SETTINGS_FILE
        path.write_text("".join(f"{k} = {_conf_value(v)}\n" for k, v in settings.items()))
        if self._as_root:
            account = pwd.getpwnam(self._os_user)
            os.chown(path, account.pw_uid, account.pw_gid)

    def _socket_dir(self) -> str:
        longest = f"{self.data_dir}/.s.PGSQL.65535"
        return str(self.data_dir) if len(longest.encode()) <= _SOCKET_PATH_MAX else ""

    def _log_tail(self) -> str:
        try:
            return "log: " + _tail(self.log_path.read_text(errors="replace"))
        except OSError:
            return ""


def _conf_value(value: SettingValue) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return str(value)
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])
