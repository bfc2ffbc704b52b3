"""One observation in flight is shared by the commands that ask meanwhile, never reused after."""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bot.core.model import StoredCredentials
from bot.core.names import AppName
from bot.core.ports import SecretStore
from bot.core.secret import Secret
from handlers.context import Services
from handlers.observe import observe
from tests.fakes.services import memory_services
from tests.fixtures.bot import BotEnv


class GatedStore:
    """The real file store, whose listing waits for the test's go and is counted."""

    def __init__(self, inner: SecretStore) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.listings = 0
        self.started = threading.Event()
        self.go = threading.Event()

    def location(self, app: AppName) -> str:
        return self.inner.location(app)

    def read_all(self) -> dict[str, StoredCredentials]:
        self.listings += 1
        self.started.set()
        assert self.go.wait(30)
        return self.inner.read_all()

    def read(self, app: AppName) -> StoredCredentials | None:
        return self.inner.read(app)

    def write(self, app: AppName, *, username: str, password: Secret, database: str) -> None:
        self.inner.write(app, username=username, password=password, database=database)

    def delete(self, app: AppName) -> bool:
        return self.inner.delete(app)


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
