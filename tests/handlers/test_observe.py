"""One observation in flight, and one judgement of the whole fleet, are shared by the commands
that ask meanwhile, never reused after."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from bot.core.model import DatabaseState, PasswordVerdict, StoredCredentials, WorkflowStatus
from bot.core.names import AppName
from bot.core.ports import SecretStore
from bot.core.secret import Secret
from handlers.assessment import assess
from handlers.context import Services
from handlers.findings import Severity, diagnose
from handlers.observe import observe
from tests.fakes.database import MemoryDatabase
from tests.fakes.services import MemoryWorld, memory_services
from tests.fixtures.bot import BotEnv


class CountedStore:
    """A secret store that delegates to ``inner`` and counts its listings; subclasses change
    what a listing does."""

    def __init__(self, inner: SecretStore) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.listings = 0

    def location(self, app: AppName) -> str:
        return self.inner.location(app)

    def read_all(self) -> dict[str, StoredCredentials]:
        self.listings += 1
        return self.inner.read_all()

    def read(self, app: AppName) -> StoredCredentials | None:
        return self.inner.read(app)

    def write(self, app: AppName, *, username: str, password: Secret, database: str) -> None:
        self.inner.write(app, username=username, password=password, database=database)

    def delete(self, app: AppName) -> bool:
        return self.inner.delete(app)


class GatedStore(CountedStore):
    """The real file store, whose listing waits for the test's go."""

    def __init__(self, inner: SecretStore) -> None:
        super().__init__(inner)
        self.started = threading.Event()
        self.go = threading.Event()

    def read_all(self) -> dict[str, StoredCredentials]:
        self.started.set()
        assert self.go.wait(30)
        return super().read_all()


def test_concurrent_callers_share_the_observation_in_flight(bot_env: BotEnv) -> None:
    shares_the_flight(bot_env.services())


def test_concurrent_callers_share_the_observation_in_flight_in_memory() -> None:
    shares_the_flight(memory_services())


def shares_the_flight(base: Services) -> None:
    store = GatedStore(base.secrets)
    services = dataclasses.replace(base, secrets=store)

    with ThreadPoolExecutor(5) as pool:
        first = pool.submit(observe, services)
        assert store.started.wait(30)
        others = [pool.submit(observe, services) for _ in range(4)]
        time.sleep(1.0)  # the four reach the shared flight while the listing waits
        store.go.set()
        results = [first.result(), *(f.result() for f in others)]

    assert store.listings == 1
    assert all(r is results[0] for r in results)
    # once done, nothing is kept: the next command observes afresh
    again = observe(services)
    assert store.listings == 2 and again is not results[0]


class GatedPasswords:
    """The in-memory database, whose password check (a fleet judgement's first step) waits for
    the test's go and is counted."""

    def __init__(self, inner: MemoryDatabase) -> None:
        self.inner = inner
        self.checks = 0
        self.started = threading.Event()
        self.go = threading.Event()

    def check_passwords(
        self, candidates: Mapping[str, Secret], *, state: DatabaseState
    ) -> dict[str, PasswordVerdict]:
        self.checks += 1
        self.started.set()
        assert self.go.wait(30)
        return self.inner.check_passwords(candidates, state=state)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_concurrent_fleet_judgements_of_one_observation_are_shared() -> None:
    world = MemoryWorld()
    for app in ("docspell", "wiki"):
        world.secrets.put(app, f"{app}-password-0123456789abcdef")
        world.database.add_role(app, password=f"{app}-password-0123456789abcdef")
    database = GatedPasswords(world.database)
    services = dataclasses.replace(world.services(), database=database)
    obs = observe(services)

    with ThreadPoolExecutor(5) as pool:
        first = pool.submit(assess, obs, services)
        assert database.started.wait(30)
        others = [pool.submit(assess, obs, services) for _ in range(4)]
        time.sleep(1.0)  # the four reach the shared judgement while the first one waits
        database.go.set()
        results = [first.result(), *(f.result() for f in others)]

    assert database.checks == 1
    assert all(r is results[0] for r in results)
    assert sorted(results[0].apps) == ["docspell", "wiki"]
    # one app's judgement, or one after it finished, is made afresh
    assess(obs, services, only=results[0].apps["wiki"].app)
    again = assess(obs, services)
    assert database.checks == 3 and again is not results[0]


class LaggingStore(CountedStore):
    """A store whose first listing answers as it was before a create wrote ``behind`` (an
    empty store, or one without that app); later listings see what is there."""

    def __init__(self, inner: SecretStore, *, behind: str) -> None:
        super().__init__(inner)
        self.behind = behind

    def read_all(self) -> dict[str, StoredCredentials]:
        found = super().read_all()
        return found if self.listings > 1 else {a: c for a, c in found.items() if a != self.behind}


def created(world: MemoryWorld, app: str, *, others: tuple[str, ...] = ()) -> None:
    """``app`` as a create leaves it: record, credentials, role; ``others`` already live."""
    for name in (*others, app):
        password = f"{name}-password-0123456789abcdef"
        world.secrets.put(name, password)
        world.database.add_role(name, password=password)
        record = world.state.start_workflow(app=AppName(name), kind="create", requester="alan")
        world.state.update_workflow(record, step="done", status=WorkflowStatus.DONE)


@pytest.mark.parametrize("others", [(), ("wiki",)], ids=["first app", "among others"])
def test_a_store_read_before_a_create_wrote_is_read_again(others: tuple[str, ...]) -> None:
    # The reads run side by side: the store answered before the create wrote; the records
    # and PostgreSQL, read after, show it done. No lost store, no missing secret.
    world = MemoryWorld()
    created(world, "docspell", others=others)
    store = LaggingStore(world.secrets, behind="docspell")
    services = dataclasses.replace(world.services(), secrets=store)

    obs = observe(services)

    assert store.listings == 2
    assert obs.secrets.value is not None and "docspell" in obs.secrets.value
    assert [f for f in diagnose(obs, services).findings if f.severity is not Severity.INFO] == []


def test_credentials_really_missing_are_read_twice_and_reported() -> None:
    world = MemoryWorld()
    created(world, "docspell", others=("wiki",))
    world.secrets.delete(AppName("docspell"))
    store = LaggingStore(world.secrets, behind="")
    services = dataclasses.replace(world.services(), secrets=store)

    finding = next(f for f in diagnose(observe(services), services).findings if f.app)

    assert store.listings == 2
    assert (finding.kind, finding.app, finding.severity) == (
        "secret_missing",
        "docspell",
        Severity.CRITICAL,
    )


def test_a_store_that_holds_every_app_is_read_once() -> None:
    world = MemoryWorld()
    created(world, "docspell", others=("wiki",))
    store = LaggingStore(world.secrets, behind="")
    services = dataclasses.replace(world.services(), secrets=store)

    observe(services)

    assert store.listings == 1
