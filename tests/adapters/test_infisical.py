"""The Infisical secret store, against the fake Infisical on loopback (a real HTTP server that
the real SDK talks to): the wire format, create and re-run, tokens, every error a person must
act on, bounded time, and no secret value in a log or an exception."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from infisical_sdk import InfisicalSDKClient
from infisical_sdk.infisical_requests import APIError

from bot.adapters.file_secrets import FileSecretStore
from bot.adapters.infisical.session import ATTEMPTS
from bot.adapters.infisical.store import InfisicalSecretStore
from bot.config import Settings
from bot.core.errors import BackendUnavailable, ConfigError
from bot.core.model import StoredCredentials
from bot.core.names import parse_app_name
from bot.core.ports import SecretStore
from bot.core.secret import Secret
from bot.localmode import prepare
from bot.wiring import build_secret_store
from tests.fixtures.infisical import (
    CLIENT_ID,
    CLIENT_SECRET,
    FULL_ACCESS,
    READ_ONLY,
    FakeInfisical,
    Fault,
    Grant,
    closed_url,
)

PASSWORD = "s3cr3t-Pa55word-that-must-never-leak-0123"
DOCSPELL = parse_app_name("docspell")
PATH = "/postgresql/docspell"


def make_store(
    fake: FakeInfisical | None,
    *,
    url: str | None = None,
    client_id: str = CLIENT_ID,
    client_secret: str = CLIENT_SECRET,
    project: str = "vixens",
    env: str = "dev",
    timeout: float = 2.0,
    total: float = 8.0,
) -> InfisicalSecretStore:
    return InfisicalSecretStore(
        url=url or (fake.url if fake else closed_url()),
        client_id=client_id,
        client_secret=Secret(client_secret),
        project=project,
        env=env,
        timeout=timeout,
        total=total,
    )


def write(store: SecretStore, password: str = PASSWORD) -> None:
    store.write(DOCSPELL, username="docspell", password=Secret(password), database="docspell")


def assert_never_shows(exc: BaseException, *values: str) -> None:
    """Neither the error nor anything it chains to may show any of ``values``."""
    seen: BaseException | None = exc
    while seen is not None:
        for value in values:
            assert value not in str(seen)
            assert value not in repr(seen)
            assert all(value not in repr(arg) for arg in seen.args)
        seen = seen.__cause__ or seen.__context__


def failure(store: InfisicalSecretStore, password: str = PASSWORD) -> BackendUnavailable:
    """The error of a write, checked for what every error must be."""
    with pytest.raises(BackendUnavailable) as caught:
        write(store, password)
    error = caught.value
    assert error.system == "Infisical"
    assert " — " in str(error)  # the problem, then what to fix
    assert error.__cause__ is None and error.__context__ is None
    assert_never_shows(error, password, CLIENT_SECRET)
    return error


# --- the fake speaks what the SDK speaks ----------------------------------------------------


@pytest.mark.server
def test_the_recorded_wire_sequence_replays_through_the_real_sdk() -> None:
    """shared/reference/integrations.md §1.6, call for call, through infisicalsdk unpatched."""
    fake = FakeInfisical().start()
    try:
        fake.add_project("vixens", project_id="proj-id")
        fake.add_identity("cid", "csec", grants={"vixens": FULL_ACCESS})
        sdk = InfisicalSDKClient(host=fake.url, cache_ttl=None)
        where = {"environment_slug": "dev", "secret_path": PATH, "project_slug": "vixens"}

        sdk.auth.universal_auth.login(client_id="cid", client_secret="csec")
        with pytest.raises(APIError) as no_folder:
            sdk.secrets.create_secret_by_name(
                secret_name="username", secret_value="docspell", **where
            )
        sdk.folders.create_folder(
            name="docspell", environment_slug="dev", project_id="proj-id", path="/postgresql"
        )
        for key, value in (("username", "docspell"), ("password", "pw"), ("database", "docspell")):
            sdk.secrets.create_secret_by_name(secret_name=key, secret_value=value, **where)
        with pytest.raises(APIError) as duplicate:
            sdk.secrets.create_secret_by_name(secret_name="username", secret_value="x", **where)
        listed = sdk.secrets.list_secrets(
            environment_slug="dev", secret_path=PATH, project_slug="vixens"
        )
        one = sdk.secrets.get_secret_by_name(secret_name="password", **where)
        sdk.secrets.update_secret_by_name(
            current_secret_name="password", secret_value="n3w", **where
        )
        sdk.secrets.delete_secret_by_name(secret_name="database", **where)
    finally:
        fake.stop()

    assert no_folder.value.status_code == 404
    assert duplicate.value.status_code == 400
    assert duplicate.value.response["message"] == "Secret already exists"
    assert {s.secretKey: s.secretValue for s in listed.secrets} == {
        "username": "docspell",
        "password": "pw",
        "database": "docspell",
    }
    assert one.secretValue == "pw"
    assert fake.value("vixens", "dev", PATH, "password") == "n3w"
    assert fake.value("vixens", "dev", PATH, "database") is None

    def write_body(value: str | None = None) -> dict[str, object]:
        body: dict[str, object] = {
            "projectSlug": "vixens",
            "environment": "dev",
            "secretPath": PATH,
            "type": "shared",
        }
        if value is not None:
            body.update(secretValue=value, skipMultilineEncoding=False)
        return body

    expected = [
        (
            "POST",
            "/api/v1/auth/universal-auth/login",
            [],
            {"clientId": "cid", "clientSecret": "csec"},
            False,
            200,
        ),
        ("POST", "/api/v3/secrets/raw/username", [], write_body("docspell"), True, 404),
        (
            "POST",
            "/api/v2/folders",
            [],
            {
                "projectId": "proj-id",
                "environment": "dev",
                "name": "docspell",
                "path": "/postgresql",
            },
            True,
            200,
        ),
        ("POST", "/api/v3/secrets/raw/username", [], write_body("docspell"), True, 200),
        ("POST", "/api/v3/secrets/raw/password", [], write_body("pw"), True, 200),
        ("POST", "/api/v3/secrets/raw/database", [], write_body("docspell"), True, 200),
        ("POST", "/api/v3/secrets/raw/username", [], write_body("x"), True, 400),
        (
            "GET",
            "/api/v3/secrets/raw",
            [
                ("environment", "dev"),
                ("secretPath", PATH),
                ("viewSecretValue", "true"),
                ("expandSecretReferences", "true"),
                ("recursive", "false"),
                ("include_imports", "true"),
                ("workspaceSlug", "vixens"),
            ],
            None,
            True,
            200,
        ),
        (
            "GET",
            "/api/v3/secrets/raw/password",
            [
                ("workspaceSlug", "vixens"),
                ("viewSecretValue", "true"),
                ("environment", "dev"),
                ("secretPath", PATH),
                ("expandSecretReferences", "true"),
                ("include_imports", "true"),
            ],
            None,
            True,
            200,
        ),
        ("PATCH", "/api/v3/secrets/raw/password", [], write_body("n3w"), True, 200),
        ("DELETE", "/api/v3/secrets/raw/database", [], write_body(), True, 200),
    ]
    seen = [
        (c.method, c.path, list(c.query.items()), c.body, c.authorization is not None, c.status)
        for c in fake.calls
    ]
    assert seen == expected


# --- create, re-run, read ---------------------------------------------------------------------


def test_create_makes_the_folder_first_then_the_three_keys(infisical: FakeInfisical) -> None:
    store: SecretStore = make_store(infisical)

    assert store.read(DOCSPELL) is None
    write(store)

    assert store.kind == "Infisical"
    assert store.location(DOCSPELL) == f"{PATH} (env dev, Infisical project vixens)"
    for key, value in (("username", "docspell"), ("password", PASSWORD), ("database", "docspell")):
        assert infisical.value("vixens", "dev", PATH, key) == value
        assert infisical.value("vixens", "staging", PATH, key) is None
    writes = [f"{c.method} {c.path}" for c in infisical.calls if c.method != "GET"]
    assert writes == [
        "POST /api/v1/auth/universal-auth/login",
        "POST /api/v2/folders",
        "POST /api/v3/secrets/raw/username",
        "POST /api/v3/secrets/raw/password",
        "POST /api/v3/secrets/raw/database",
    ]
    assert infisical.requests("GET /api/v1/projects/slug/vixens")  # the id, looked up once
    assert store.read(DOCSPELL) == StoredCredentials(
        username="docspell", password=Secret(PASSWORD), database="docspell"
    )
    assert len(infisical.requests("GET /api/v1/projects/slug/")) == 1
    assert len(infisical.requests("POST /api/v1/auth/")) == 1


def test_a_rerun_finds_the_password_and_a_write_updates_what_exists(
    infisical: FakeInfisical,
) -> None:
    write(make_store(infisical))
    infisical.project("vixens").secrets.pop(("dev", PATH, "database"))  # half-written before

    again = make_store(infisical)  # a new process: logs in, looks the project up again
    stored = again.read(DOCSPELL)
    assert stored is not None and stored.password == Secret(PASSWORD)
    assert stored.missing_keys == ("database",)
    write(again, stored.password.reveal())

    assert infisical.value("vixens", "dev", PATH, "password") == PASSWORD
    assert infisical.version("vixens", "dev", PATH, "password") == 2  # rewritten, same value
    assert infisical.version("vixens", "dev", PATH, "database") == 1  # created
    assert [c.status for c in infisical.requests("POST /api/v3/secrets/raw/password")] == [
        200,
        400,
    ]


def test_read_tells_a_missing_folder_from_an_empty_one(infisical: FakeInfisical) -> None:
    store = make_store(infisical)
    infisical.project("vixens").folders.clear()
    sdk = InfisicalSDKClient(host=infisical.url, cache_ttl=None)
    sdk.auth.universal_auth.login(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    sdk.folders.create_folder(
        name="docspell",
        environment_slug="dev",
        project_id=infisical.project("vixens").id,
        path="/postgresql",
    )

    assert store.read(DOCSPELL) == StoredCredentials()
    assert store.read(parse_app_name("other")) is None


def test_read_all_is_two_calls_whatever_the_number_of_apps(infisical: FakeInfisical) -> None:
    store = make_store(infisical)
    for i in range(12):
        store.write(
            parse_app_name(f"app{i:02d}"),
            username=f"app{i:02d}",
            password=Secret(f"{PASSWORD}{i}"),
            database=f"app{i:02d}",
        )
    sdk = InfisicalSDKClient(host=infisical.url, cache_ttl=None)
    sdk.auth.universal_auth.login(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    project_id = infisical.project("vixens").id
    sdk.folders.create_folder(
        name="empty", environment_slug="dev", project_id=project_id, path="/postgresql"
    )
    sdk.folders.create_folder(
        name="deeper", environment_slug="dev", project_id=project_id, path="/postgresql/app00"
    )
    for key, path in (
        ("password", "/postgresql/app00/deeper"),
        ("password", "/postgresql"),
        ("note", "/postgresql/app01"),
    ):
        sdk.secrets.create_secret_by_name(
            secret_name=key,
            secret_path=path,
            environment_slug="dev",
            project_id=project_id,
            secret_value="stray",
        )
    sdk.folders.create_folder(
        name="staging-only", environment_slug="staging", project_id=project_id, path="/postgresql"
    )
    before = len(infisical.calls)

    found = store.read_all()

    assert [f"{c.method} {c.path}" for c in infisical.calls[before:]] == [
        "GET /api/v2/folders",
        "GET /api/v3/secrets/raw",
    ]
    assert infisical.calls[-1].query["recursive"] == "true"
    assert sorted(found) == [*(f"app{i:02d}" for i in range(12)), "empty"]
    assert found["empty"] == StoredCredentials()
    assert found["app00"] == StoredCredentials(
        username="app00", password=Secret(f"{PASSWORD}0"), database="app00"
    )
    assert found["app11"].password == Secret(f"{PASSWORD}11")


def test_a_permission_limited_to_the_prefix_is_enough(infisical: FakeInfisical) -> None:
    infisical.set_grants(
        CLIENT_ID,
        "vixens",
        (Grant(frozenset({"read", "create", "edit"}), environment="dev", path="/postgresql/**"),),
    )
    store = make_store(infisical)

    write(store)

    assert store.read_all()["docspell"].password == Secret(PASSWORD)


# --- tokens --------------------------------------------------------------------------------


def test_a_token_that_expires_mid_write_is_renewed_and_the_write_finishes(
    infisical: FakeInfisical,
) -> None:
    infisical.inject(Fault("expire-token", match="POST /api/v3/secrets/raw/password"))
    store = make_store(infisical)

    write(store)

    assert infisical.value("vixens", "dev", PATH, "password") == PASSWORD
    trail = [(f"{c.method} {c.path}", c.status) for c in infisical.calls if c.method == "POST"]
    assert trail == [
        ("POST /api/v1/auth/universal-auth/login", 200),
        ("POST /api/v2/folders", 200),
        ("POST /api/v3/secrets/raw/username", 200),
        ("POST /api/v3/secrets/raw/password", 403),
        ("POST /api/v1/auth/universal-auth/login", 200),
        ("POST /api/v3/secrets/raw/password", 200),
        ("POST /api/v3/secrets/raw/database", 200),
    ]


@pytest.mark.server
def test_a_token_about_to_expire_is_renewed_before_it_is_refused() -> None:
    fake = FakeInfisical(token_ttl=1).start()
    try:
        fake.add_project("vixens")
        fake.add_identity(CLIENT_ID, CLIENT_SECRET, grants={"vixens": FULL_ACCESS})
        store = make_store(fake)
        write(store)
        time.sleep(1.0)  # the token lives 1 s; the store renews it 0.1 s before

        assert store.read(DOCSPELL) is not None
    finally:
        fake.stop()
    assert len(fake.requests("POST /api/v1/auth/")) == 2
    assert all(c.status == 200 for c in fake.calls)


def test_a_fresh_token_refused_again_is_an_error_not_a_loop(infisical: FakeInfisical) -> None:
    infisical.inject(Fault("expire-token", match="POST /api/v2/folders", times=10))

    error = failure(make_store(infisical))

    assert "refused a fresh access token" in str(error)
    assert len(infisical.requests("POST /api/v2/folders")) == 2
    assert len(infisical.requests("POST /api/v1/auth/")) == 2


# --- errors a person acts on --------------------------------------------------------------------


def test_wrong_client_secret(infisical: FakeInfisical) -> None:
    error = failure(make_store(infisical, client_secret="not-the-secret"))

    assert "could not log in (Invalid credentials)" in str(error)
    assert "PGDB_INFISICAL_CLIENT_ID and PGDB_INFISICAL_CLIENT_SECRET" in str(error)
    assert "not-the-secret" not in str(error)
    assert len(infisical.requests("POST /api/v1/auth/")) == 1  # a 401 is not retried


def test_unknown_client_id(infisical: FakeInfisical) -> None:
    error = failure(make_store(infisical, client_id="nobody"))

    assert "could not log in" in str(error) and "PGDB_INFISICAL_CLIENT_ID" in str(error)


def test_unknown_project(infisical: FakeInfisical) -> None:
    error = failure(make_store(infisical, project="vixen"))

    assert "project `vixen` was not found" in str(error)
    assert "PGDB_INFISICAL_PROJECT" in str(error)


def test_identity_not_in_the_project(infisical: FakeInfisical) -> None:
    infisical.set_grants(CLIENT_ID, "vixens", None)

    error = failure(make_store(infisical))

    assert "may not look up project `vixens`" in str(error)
    assert "give it a role in project `vixens`" in str(error)


def test_unknown_environment(infisical: FakeInfisical) -> None:
    error = failure(make_store(infisical, env="qa"))

    assert (
        "environment `qa` does not exist in project `vixens` (it has: dev, staging, prod)"
        in str(error)
    )
    assert "PGDB_ENV" in str(error)
    assert not infisical.requests("POST /api/v2/folders")


def test_read_only_identity(infisical: FakeInfisical) -> None:
    infisical.set_grants(CLIENT_ID, "vixens", READ_ONLY)

    error = failure(make_store(infisical))

    assert "may not create the folder /postgresql/docspell" in str(error)
    assert "can read, create and edit secrets and create folders under /postgresql" in str(error)
    assert make_store(infisical).read_all() == {}  # reading is allowed


def test_folders_allowed_but_not_secrets(infisical: FakeInfisical) -> None:
    infisical.set_grants(
        CLIENT_ID,
        "vixens",
        (Grant(frozenset({"read", "create"}), subjects=frozenset({"secret-folders"})),),
    )

    error = failure(make_store(infisical))

    assert "may not create `username` at /postgresql/docspell" in str(error)
    assert "You are not allowed to create on secrets" in str(error)


def test_an_approval_policy_on_the_path(infisical: FakeInfisical) -> None:
    infisical.add_approval_policy(
        infisical.project("vixens"), environment="dev", path="/postgresql/**"
    )

    error = failure(make_store(infisical))

    assert "a secret approval policy covers `username` at /postgresql/docspell (env dev)" in str(
        error
    )
    assert "exempt the bot's machine identity from the policy" in str(error)
    assert infisical.value("vixens", "dev", PATH, "password") is None


def test_server_down_fails_fast_after_our_tries_only() -> None:
    started = time.monotonic()
    error = failure(make_store(None, url=closed_url()))
    elapsed = time.monotonic() - started

    assert "connection refused" in str(error) and f"after {ATTEMPTS} tries" in str(error)
    assert "PGDB_INFISICAL_URL" in str(error)
    assert elapsed < 3.0  # backoff 0.5 s + 1 s; the SDK alone would take ~15 s


def test_dropped_connections_are_tried_three_times_not_fifteen(infisical: FakeInfisical) -> None:
    infisical.inject(Fault("drop", times=100))

    error = failure(make_store(infisical))

    assert "connection dropped before an answer" in str(error)
    assert len(infisical.calls) == ATTEMPTS  # the SDK's own 4 retries per try never ran


def test_a_failing_server_is_retried_then_named(infisical: FakeInfisical) -> None:
    infisical.inject(Fault("status", status=503, times=100, match="POST /api/v2/folders"))

    error = failure(make_store(infisical))

    assert f"HTTP 503 to create the folder /postgresql/docspell, {ATTEMPTS} tries" in str(error)
    assert "the server is failing" in str(error)
    assert len(infisical.requests("POST /api/v2/folders")) == ATTEMPTS


def test_transient_faults_are_retried_and_the_write_completes(infisical: FakeInfisical) -> None:
    infisical.inject(Fault("status", status=502, match="POST /api/v3/secrets/raw/username"))
    infisical.inject(Fault("drop", match="POST /api/v3/secrets/raw/password"))
    infisical.inject(Fault("delay", seconds=0.3, match="POST /api/v3/secrets/raw/database"))

    write(make_store(infisical))

    for key, value in (("username", "docspell"), ("password", PASSWORD), ("database", "docspell")):
        assert infisical.value("vixens", "dev", PATH, key) == value


def test_retry_after_is_honoured(infisical: FakeInfisical) -> None:
    infisical.inject(Fault("status", status=429, retry_after="1", match="POST /api/v2/folders"))

    write(make_store(infisical))

    first, second = infisical.requests("POST /api/v2/folders")
    assert first.status == 429 and second.status == 200
    assert second.at - first.at >= 1.0


def test_retry_after_beyond_the_time_left_fails_at_once(infisical: FakeInfisical) -> None:
    infisical.inject(Fault("status", status=503, retry_after="120", match="POST /api/v2/folders"))
    started = time.monotonic()

    error = failure(make_store(infisical, total=5.0))

    assert time.monotonic() - started < 1.0
    assert "it asked to retry after 120 s" in str(error)


@pytest.mark.parametrize(("timeout", "total"), [(0.5, 2.0), (1.0, 3.0)])
def test_a_hanging_server_fails_within_the_total_time(
    infisical: FakeInfisical, timeout: float, total: float
) -> None:
    infisical.inject(Fault("hang", times=100, seconds=30))
    store = make_store(infisical, timeout=timeout, total=total)

    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as caught:
        store.read_all()
    elapsed = time.monotonic() - started

    assert total - 0.8 <= elapsed <= total + 0.3, elapsed
    assert "no answer" in str(caught.value) or "no complete answer" in str(caught.value)


def test_a_slow_answer_within_the_timeout_is_fine(infisical: FakeInfisical) -> None:
    infisical.inject(Fault("delay", seconds=0.4, times=100))

    write(make_store(infisical, timeout=1.0, total=10.0))

    assert infisical.value("vixens", "dev", PATH, "password") == PASSWORD


# --- secrets stay secret --------------------------------------------------------------------


def test_no_password_reaches_a_log_or_an_error(
    infisical: FakeInfisical, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "requests", "bot", "infisical_sdk"):
        caplog.set_level(logging.DEBUG, logger=name)
    store = make_store(infisical)
    infisical.inject(Fault("expire-token", match="POST /api/v3/secrets/raw/password"))
    infisical.inject(Fault("drop", match="POST /api/v3/secrets/raw/database"))
    write(store)
    store.read(DOCSPELL)
    store.read_all()
    # a server that echoes the value in its error message, and an approval policy
    infisical.inject(
        Fault(
            "status",
            status=422,
            message=f"bad value {PASSWORD}",
            match="POST /api/v3/secrets/raw/password",
        )
    )
    echoed = failure(store)
    infisical.add_approval_policy(infisical.project("vixens"), environment="dev", path="/**")
    failure(store)
    failure(make_store(infisical, client_secret=CLIENT_SECRET + "x"))

    assert "********" in str(echoed)
    assert caplog.records, "the store logs its calls at DEBUG"
    assert "api/v3/secrets/raw/password" in caplog.text  # urllib3 did log the requests
    tokens = {c.authorization for c in infisical.calls if c.authorization}
    for value in (PASSWORD, CLIENT_SECRET, *tokens, *(t.removeprefix("Bearer ") for t in tokens)):
        assert value not in caplog.text


# --- configuration and wiring ------------------------------------------------------------------


def infisical_settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(
        _env_file=None,
        pg_dsn="postgresql://bot@127.0.0.1/postgres",
        gitops_repo=tmp_path / "gitops",
        state_dir=tmp_path / "state",
        **values,
    )


def test_infisical_is_selected_when_all_three_are_set(tmp_path: Path) -> None:
    settings = infisical_settings(
        tmp_path,
        infisical_url="https://infisical.example/",
        infisical_client_id="id",
        infisical_client_secret=CLIENT_SECRET,
        secrets_dir=tmp_path / "secrets",
    )

    store = build_secret_store(settings)

    assert isinstance(store, InfisicalSecretStore)
    assert store.url == "https://infisical.example"
    assert (store.project, store.env, store.prefix) == ("vixens", "dev", "/postgresql")
    assert isinstance(
        build_secret_store(infisical_settings(tmp_path, secrets_dir=tmp_path)), FileSecretStore
    )


def test_half_an_infisical_configuration_is_refused(tmp_path: Path) -> None:
    settings = infisical_settings(tmp_path, infisical_url="https://infisical.example")

    with pytest.raises(ConfigError) as caught:
        build_secret_store(settings)

    assert "PGDB_INFISICAL_CLIENT_ID, PGDB_INFISICAL_CLIENT_SECRET" in str(caught.value)


@pytest.mark.parametrize(
    "url", ["infisical.example", "ftp://infisical.example", "https://u:p@infisical.example"]
)
def test_a_bad_infisical_url_is_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(ValueError, match="infisical_url"):
        infisical_settings(tmp_path, infisical_url=url)


def test_local_mode_makes_no_file_store_when_infisical_is_set(tmp_path: Path) -> None:
    settings = infisical_settings(
        tmp_path,
        infisical_url="https://infisical.example",
        infisical_client_id="id",
        infisical_client_secret=CLIENT_SECRET,
    )
    (tmp_path / "gitops").mkdir()

    prepared, notes = prepare(settings)

    assert prepared.secrets_dir is None
    assert not (tmp_path / "state" / "secrets").exists()
    assert any("Infisical project vixens, env dev" in note for note in notes)
