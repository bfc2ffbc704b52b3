"""The file secret store: Infisical's layout on disk, private modes, atomic writes, safe errors."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.adapters.file_secrets import FileSecretStore
from bot.core.errors import BackendUnavailable
from bot.core.model import StoredCredentials
from bot.core.names import AppName, parse_app_name
from bot.core.ports import SecretStore
from bot.core.secret import Secret
from tests.fixtures.gitrepo import run_python

PASSWORD = "s3cr3t-Pa55word-that-must-never-leak-0123"
DOCSPELL = parse_app_name("docspell")


def make_store(root: Path) -> FileSecretStore:
    return FileSecretStore(root, env="dev")


def write(store: FileSecretStore, app: AppName, password: str = PASSWORD) -> None:
    store.write(app, username=str(app), password=Secret(password), database=str(app))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_never_shows(exc: BaseException, value: str) -> None:
    """Neither the error nor anything it chains to may show ``value``."""
    seen: BaseException | None = exc
    while seen is not None:
        assert value not in str(seen)
        assert value not in repr(seen)
        assert all(value not in repr(arg) for arg in seen.args)
        seen = seen.__cause__ or seen.__context__


@pytest.fixture
def umask() -> Iterator[None]:
    """Restore the process umask after a test that sets its own."""
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


def test_round_trip_and_location(secrets_dir: Path) -> None:
    store: SecretStore = make_store(secrets_dir)
    write(make_store(secrets_dir), DOCSPELL)

    assert store.kind == "file"
    assert store.read(DOCSPELL) == StoredCredentials(
        username="docspell", password=Secret(PASSWORD), database="docspell"
    )
    assert store.location(DOCSPELL) == f"/postgresql/docspell (env dev, file store {secrets_dir})"
    assert PASSWORD not in repr(store.read(DOCSPELL))


def test_layout_is_one_file_per_key_with_the_exact_value(secrets_dir: Path) -> None:
    store = FileSecretStore(secrets_dir, env="staging", prefix="/postgresql/")
    store.write(DOCSPELL, username="docspell", password=Secret(PASSWORD), database="docs_db")

    folder = secrets_dir / "staging" / "postgresql" / "docspell"
    assert sorted(p.name for p in folder.iterdir()) == ["database", "password", "username"]
    assert (folder / "password").read_bytes() == PASSWORD.encode()
    assert (folder / "username").read_bytes() == b"docspell"
    assert (folder / "database").read_bytes() == b"docs_db"


def test_overwrite_replaces_values_and_leaves_no_temp_files(secrets_dir: Path) -> None:
    store = make_store(secrets_dir)
    for number in range(5):
        write(store, DOCSPELL, password=f"{PASSWORD}-{number}")

    folder = secrets_dir / "dev" / "postgresql" / "docspell"
    assert sorted(p.name for p in folder.iterdir()) == ["database", "password", "username"]
    creds = store.read(DOCSPELL)
    assert creds is not None
    assert creds.password == Secret(f"{PASSWORD}-4")


@pytest.mark.parametrize("mask", [0o022, 0o000, 0o077])
@pytest.mark.usefixtures("umask")
def test_files_are_0600_and_folders_0700_whatever_the_umask(secrets_dir: Path, mask: int) -> None:
    os.umask(mask)
    write(make_store(secrets_dir), DOCSPELL)

    folder = secrets_dir / "dev" / "postgresql" / "docspell"
    for path in (secrets_dir, secrets_dir / "dev", folder.parent, folder):
        assert mode(path) == 0o700, path
    for key in ("username", "password", "database"):
        assert mode(folder / key) == 0o600, key


def test_an_existing_app_folder_open_to_others_is_made_private(secrets_dir: Path) -> None:
    folder = secrets_dir / "dev" / "postgresql" / "docspell"
    folder.mkdir(parents=True)
    for path in (secrets_dir / "dev", folder.parent, folder):
        path.chmod(0o755)
    (folder / "password").write_text("old")
    (folder / "password").chmod(0o644)

    write(make_store(secrets_dir), DOCSPELL)

    assert mode(folder) == 0o700
    assert mode(folder.parent) == 0o700
    assert mode(folder / "password") == 0o600


def test_a_missing_store_folder_is_unreadable_not_empty(secrets_dir: Path) -> None:
    with pytest.raises(BackendUnavailable, match=r"does not exist.*PGDB_SECRETS_DIR"):
        make_store(secrets_dir / "nowhere").read_all()


def test_read_of_an_unknown_app_is_none_and_a_missing_key_is_none(secrets_dir: Path) -> None:
    secrets_dir.mkdir(exist_ok=True)
    store = make_store(secrets_dir)
    assert store.read(DOCSPELL) is None
    assert store.read_all() == {}  # the environment's folder is made by the first write

    folder = secrets_dir / "dev" / "postgresql" / "docspell"
    folder.mkdir(parents=True)
    (folder / "username").write_text("docspell")

    creds = store.read(DOCSPELL)
    assert creds == StoredCredentials(username="docspell")
    assert creds.missing_keys == ("password", "database")


def test_read_all_lists_every_app_and_ignores_temp_files(secrets_dir: Path) -> None:
    store = make_store(secrets_dir)
    apps = [parse_app_name(f"app-{n:03d}") for n in range(150)]
    for app in apps:
        write(store, app, password=f"{PASSWORD}-{app}")
    base = secrets_dir / "dev" / "postgresql"
    (base / "app-000" / "database").unlink()
    (base / "app-001" / ".password.tmp1234").write_text("half-written")
    (base / ".docspell.tmp").mkdir()
    (base / "README").write_text("not an app")
    # Another environment's apps are not this bot's.
    FileSecretStore(secrets_dir, env="prod").write(
        DOCSPELL, username="docspell", password=Secret(PASSWORD), database="docspell"
    )

    found = store.read_all()

    assert sorted(found) == [str(app) for app in apps]
    assert found["app-000"].missing_keys == ("database",)
    assert found["app-001"].password == Secret(f"{PASSWORD}-app-001")
    assert all(found[str(app)].complete for app in apps[1:])


def test_a_file_where_a_folder_should_be_is_named(secrets_dir: Path) -> None:
    secrets_dir.mkdir()
    (secrets_dir / "dev").write_text("oops")
    store = make_store(secrets_dir)

    with pytest.raises(BackendUnavailable) as write_err:
        write(store, DOCSPELL)
    with pytest.raises(BackendUnavailable) as list_err:
        store.read_all()

    for err in (write_err.value, list_err.value):
        assert err.system == "secret store"
        assert str(secrets_dir / "dev") in str(err)
        assert_never_shows(err, PASSWORD)
    assert "file where a folder is expected" in str(write_err.value)


def test_a_file_in_place_of_the_app_folder_is_named_by_read(secrets_dir: Path) -> None:
    base = secrets_dir / "dev" / "postgresql"
    base.mkdir(parents=True)
    (base / "docspell").write_text(PASSWORD)

    with pytest.raises(BackendUnavailable) as err:
        make_store(secrets_dir).read(DOCSPELL)

    assert str(base / "docspell") in str(err.value)
    assert_never_shows(err.value, PASSWORD)


def test_a_value_that_is_not_text_is_reported_without_its_bytes(secrets_dir: Path) -> None:
    store = make_store(secrets_dir)
    write(store, DOCSPELL)
    secret_bytes = b"\xff\xfe" + PASSWORD.encode()
    (secrets_dir / "dev" / "postgresql" / "docspell" / "password").write_bytes(secret_bytes)

    with pytest.raises(BackendUnavailable) as err:
        store.read_all()

    assert "password" in str(err.value)
    assert_never_shows(err.value, PASSWORD)


def test_a_write_that_fails_midway_keeps_the_old_password(secrets_dir: Path) -> None:
    """A disk that fills up (here: a file size limit) fails the write, not the old value."""
    write(make_store(secrets_dir), DOCSPELL)
    new_password = "N" * 64
    child = run_python(
        f"""
import resource, signal
from pathlib import Path
from bot.adapters.file_secrets import FileSecretStore
from bot.core.errors import BackendUnavailable
from bot.core.names import parse_app_name
from bot.core.secret import Secret
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (16, 16))
store = FileSecretStore(Path({str(secrets_dir)!r}), env="dev")
try:
    store.write(parse_app_name("docspell"), username="docspell",
                password=Secret({new_password!r}), database="docspell")
except BackendUnavailable as exc:
    print(str(exc)); print(repr(exc)); print(repr(exc.__cause__))
    raise SystemExit(3)
"""
    )

    assert child.returncode == 3, child.stderr
    assert str(secrets_dir / "dev" / "postgresql" / "docspell" / "password") in child.stdout
    assert "free some space" in child.stdout
    assert new_password not in child.stdout + child.stderr
    folder = secrets_dir / "dev" / "postgresql" / "docspell"
    assert (folder / "password").read_text() == PASSWORD
    assert sorted(p.name for p in folder.iterdir()) == ["database", "password", "username"]


def test_a_read_only_folder_fails_the_write_and_keeps_the_old_value(secrets_dir: Path) -> None:
    """Permission denied, even for root (its override powers are dropped), names the fix."""
    write(make_store(secrets_dir), DOCSPELL)
    folder = secrets_dir / "dev" / "postgresql" / "docspell"
    folder.chmod(0o500)
    new_password = "N" * 40
    try:
        child = run_python(
            f"""
from pathlib import Path
from bot.adapters.file_secrets import FileSecretStore
from bot.core.errors import BackendUnavailable
from bot.core.names import parse_app_name
from bot.core.secret import Secret
store = FileSecretStore(Path({str(secrets_dir)!r}), env="dev")
try:
    store.write(parse_app_name("docspell"), username="docspell",
                password=Secret({new_password!r}), database="docspell")
except BackendUnavailable as exc:
    print(str(exc)); print(repr(exc)); print(repr(exc.__cause__))
    raise SystemExit(3)
""",
            without_root_powers=True,
        )
    finally:
        folder.chmod(0o700)

    assert child.returncode == 3, child.stderr
    assert "Permission denied" in child.stdout
    assert "PGDB_SECRETS_DIR" in child.stdout
    assert str(secrets_dir) in child.stdout
    assert new_password not in child.stdout + child.stderr
    assert (folder / "password").read_text() == PASSWORD
    assert sorted(p.name for p in folder.iterdir()) == ["database", "password", "username"]


@pytest.mark.parametrize("bad", ["../etc", "", "a/b"])
def test_unusable_environment_names_are_refused(secrets_dir: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="unusable"):
        FileSecretStore(secrets_dir, env=bad)
