"""One observation in flight is shared by the commands that ask meanwhile, never reused after."""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bot.core.model import StoredCredentials
from bot.core.names import AppName
from bot.core.ports import SecretStore
from handlers.observe import observe
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

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_concurrent_callers_share_the_observation_in_flight(bot_env: BotEnv) -> None:
    base = bot_env.services()
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
