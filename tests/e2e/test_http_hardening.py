"""Issue 16: `pgdb-bot run` attacked as an attacker would, on loopback only.

One `pgdb-bot run` (a subprocess) serves Slack (HTTP mode) and Mattermost (with buttons) at
once against the fakes of tests/fixtures and real PostgreSQL; requests go to its real
endpoints. Each case is bounded in count and in time, and measures what the issue asks: the
ack of another user and ``/healthz`` while a 100,000-character command is handled, the peak RSS
of the process (``/proc``) under a 200 MB chunked body, the audit row of a NUL refusal, the ack
with PostgreSQL blackholed under 45 readiness probes, and replays refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from bot.adapters.mattermost.buttons import button_context
from bot.core.model import AuditEntry
from bot.pgcluster import free_port
from tests.fixtures.bot import BotEnv, one_account
from tests.fixtures.mattermost import BOT_TOKEN, FakeMattermost
from tests.fixtures.slack import FakeSlack, slack_signature

pytestmark = one_account("superuser")  # the HTTP surface's cases: tests/fixtures/bot.py

SIGNING_SECRET = "hardening-signing-secret-1234"
COMMAND_TOKEN = "hardeningcommandtoken00001"
ACTION_SECRET = "hardening-action-secret-0123456789"
SLACK_CHANNEL, SLACK_USER, SLACK_OTHER = "C0PGDB", "U0DEV", "U0OTHER"
MM_CHANNEL = "devchannel0000000000000001"
MM_USER = "requester00000000000000001"
MM_OPERATOR = "operator000000000000000001"
LIMIT_TEXT = "the limit is 2,000"
ONE_SECOND = 1.0


@dataclass
class Bot:
    process: subprocess.Popen[str]
    url: str
    port: int
    log: Path
    slack: FakeSlack
    mattermost: FakeMattermost

    # --- Slack ----------------------------------------------------------------------------

    def slack_body(self, text: str, *, user: str = SLACK_USER, response_url: str = "") -> bytes:
        return urlencode(
            {
                "token": "deprecated-verification-token",
                "team_id": "T0FAKE",
                "channel_id": SLACK_CHANNEL,
                "user_id": user,
                "user_name": "someone",
                "command": "/pgdb",
                "text": text,
                "api_app_id": "A0PGDB",
                "response_url": response_url or self.slack.response_url(),
                "trigger_id": "1.2.3",
            }
        ).encode()

    def slack_post(
        self, body: bytes, headers: dict[str, str] | None = None, *, timeout: float = 10
    ) -> tuple[httpx.Response, float]:
        """POST a signed body (or with ``headers`` as given) to /slack/events; answer, seconds."""
        if headers is None:
            headers = signed(body)
        start = time.monotonic()
        response = httpx.post(
            f"{self.url}/slack/events",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
            timeout=timeout,
        )
        return response, time.monotonic() - start

    def slack_command(self, text: str, *, user: str = SLACK_USER) -> tuple[httpx.Response, float]:
        return self.slack_post(self.slack_body(text, user=user))

    # --- Mattermost -----------------------------------------------------------------------

    def mattermost_command(self, text: str, *, user: str = MM_USER) -> tuple[httpx.Response, float]:
        body = {
            "channel_id": MM_CHANNEL,
            "command": "/pgdb",
            "response_url": f"{self.mattermost.url}/hooks/commands/{user}",
            "team_id": "teamid00000000000000000001",
            "text": text,
            "user_id": user,
            "user_name": "alan",
        }
        start = time.monotonic()
        response = httpx.post(
            f"{self.url}/mattermost/command",
            data=body,
            headers={"Authorization": f"Token {COMMAND_TOKEN}"},
            timeout=10,
        )
        return response, time.monotonic() - start

    def mattermost_told(self, text: str, *, user: str = MM_USER) -> str:
        """What the user reads for ``text``: the inline answer or, when a loaded machine took
        longer than the bot's inline wait, the "Working on" acknowledgement and then the
        message the bot sends Mattermost after it."""
        before = len(self.mattermost.recorded())
        response, _ = self.mattermost_command(text, user=user)
        told = str(response.json()["text"])
        if not told.startswith("⏳ Working on"):
            return told

        def sent_since() -> str:
            later = self.mattermost.recorded()[before:]
            return "\n".join(c.raw for c in later if c.method in ("POST", "PUT"))

        self.mattermost.wait_for(lambda: bool(sent_since()))
        return f"{told}\n{sent_since()}"

    def click(self, context: dict[str, Any], *, user: str = MM_USER) -> httpx.Response:
        payload = {
            "user_id": user,
            "user_name": "alan",
            "channel_id": MM_CHANNEL,
            "team_id": "teamid00000000000000000001",
            "post_id": "post00000000000000000000001",
            "trigger_id": "dHJpZ2dlcg==",
            "type": "button",
            "context": context,
        }
        return httpx.post(f"{self.url}/mattermost/actions", json=payload, timeout=10)

    # --- the process ----------------------------------------------------------------------

    def status(self, field: str) -> int:
        """A ``/proc/<pid>/status`` figure in KiB (``VmHWM``: the peak RSS so far)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        raise AssertionError(f"no {field} in /proc/{self.process.pid}/status")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.log.read_text()


def signed(body: bytes, *, age: int = 0) -> dict[str, str]:
    timestamp = int(time.time()) - age
    return {
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": slack_signature(SIGNING_SECRET, body, timestamp),
    }


@contextmanager
def running(
    env: BotEnv, slack: FakeSlack, mattermost: FakeMattermost, tmp_path: Path, **extra: str
) -> Iterator[Bot]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment = env.env(
        PGDB_HTTP_PORT=str(port),
        PGDB_LOG_FORMAT="text",
        PGDB_SLACK_BOT_TOKEN="xoxb-hardening-bot-token",
        PGDB_SLACK_SIGNING_SECRET=SIGNING_SECRET,
        PGDB_SLACK_API_URL=slack.api_url,
        PGDB_SLACK_OPS_CHANNEL="C0OPS",
        PGDB_MATTERMOST_URL=mattermost.url,
        PGDB_MATTERMOST_BOT_TOKEN=BOT_TOKEN,
        PGDB_MATTERMOST_COMMAND_TOKEN=COMMAND_TOKEN,
        PGDB_MATTERMOST_OPS_CHANNEL="opschannel0000000000000001",
        PGDB_PUBLIC_URL=url,
        PGDB_ACTION_SECRET=ACTION_SECRET,
        PGDB_OPERATORS=MM_OPERATOR,
        **extra,
    )
    log = tmp_path / f"pgdb-bot-{port}.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"],
            env=environment,
            cwd=env.state_dir,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    bot = Bot(process=process, url=url, port=port, log=log, slack=slack, mattermost=mattermost)
    try:
        end = time.monotonic() + 30
        with httpx.Client(timeout=1) as client:  # one client: each new one loads the CA bundle
            while True:
                if process.poll() is not None:
                    raise AssertionError(f"pgdb-bot run exited:\n{log.read_text()}")
                try:
                    if client.get(f"{url}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < end, (
                    f"pgdb-bot run never became healthy:\n{log.read_text()}"
                )
                time.sleep(0.05)
        yield bot
    finally:
        bot.stop()


@pytest.fixture
def bot(
    bot_env: BotEnv, slack_api: FakeSlack, fake_mattermost: FakeMattermost, tmp_path: Path
) -> Iterator[Bot]:
    with running(bot_env, slack_api, fake_mattermost, tmp_path) as started:
        yield started


def audit_rows(env: BotEnv, result: str, *, count: int, timeout: float = 10) -> list[AuditEntry]:
    """The audit entries with ``result`` once there are ``count`` of them (refusals at the edge
    are written in the background)."""
    end = time.monotonic() + timeout
    while True:
        rows = [e for e in env.services().state.audit_entries() if e.result == result]
        if len(rows) >= count or time.monotonic() > end:
            return rows
        time.sleep(0.1)


@contextmanager
def polled(url: str, *, every: float = 0.05) -> Iterator[list[float]]:
    """GET ``url`` in a loop while the block runs; yields the latencies (a failure is 99 s)."""
    latencies: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        # one client: a client per call would time its own set-up (its CA bundle) as well
        with httpx.Client(timeout=5) as client:
            while not stop.is_set():
                start = time.monotonic()
                try:
                    ok = client.get(url).status_code == 200
                except httpx.TransportError:
                    ok = False
                latencies.append(time.monotonic() - start if ok else 99.0)
                stop.wait(every)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield latencies
    finally:
        stop.set()
        thread.join(timeout=10)


# --- 1. one long argument freezes nothing ---------------------------------------------------


def test_a_100000_character_command_stalls_neither_healthz_nor_another_users_ack(
    bot: Bot, bot_env: BotEnv
) -> None:
    word = "a" * 100_000
    senders: dict[str, Callable[[], tuple[httpx.Response, float]]] = {
        "slack": lambda: bot.slack_command(f"status {word}"),
        "mattermost": lambda: bot.mattermost_command(f"status {word[:60_000]}"),  # < 64 KiB
        "mattermost body": lambda: bot.mattermost_command(f"status {word}"),  # > 64 KiB: 413
    }
    answers: dict[str, list[tuple[httpx.Response, float]]] = {name: [] for name in senders}
    acks: list[float] = []
    stop = threading.Event()

    def attack(name: str) -> None:  # one long command after another, for 2 s
        while not stop.is_set():
            answers[name].append(senders[name]())

    with polled(f"{bot.url}/healthz") as health, ThreadPoolExecutor(max_workers=3) as pool:
        attackers = [pool.submit(attack, name) for name in senders]
        end = time.monotonic() + 2.0
        while time.monotonic() < end:  # another user, meanwhile
            response, elapsed = bot.slack_command("help", user=SLACK_OTHER)
            assert response.status_code == 200
            acks.append(elapsed)
            time.sleep(0.1)
        stop.set()
        for attacker in attackers:
            attacker.result()

    for response, elapsed in answers["slack"] + answers["mattermost"]:
        assert response.status_code == 200
        assert LIMIT_TEXT in response.json()["text"], response.text
        assert elapsed < ONE_SECOND
    assert {r.status_code for r, _ in answers["mattermost body"]} == {413}
    assert max(acks) < ONE_SECOND, acks
    assert len(health) > 10 and max(health) < ONE_SECOND, health
    refused = len(answers["slack"]) + len(answers["mattermost"])
    rows = audit_rows(bot_env, "too long", count=refused)
    assert len(rows) == refused
    assert {r.platform for r in rows} == {"slack", "mattermost"}
    assert all(len(r.command) < 300 and "characters)" in r.command for r in rows)
    assert audit_rows(bot_env, "too large", count=1)[0].user == "(unauthenticated)"
    print(
        f"\nlong commands: {refused} refused (+{len(answers['mattermost body'])} bodies over "
        f"64 KiB) in 2 s; another user's ack max {max(acks) * 1000:.0f} ms over {len(acks)}; "
        f"/healthz max {max(health) * 1000:.0f} ms over {len(health)} polls"
    )


# --- 2. a chunked body cannot exhaust memory ------------------------------------------------


def send_chunked(port: int, path: str, *, total: int, headers: str = "") -> tuple[bytes, int]:
    """A chunked POST of ``total`` zero bytes with no Content-Length, sent until the server
    stops reading; what the server answered (read meanwhile) and the bytes sent."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    answer = bytearray()

    def read() -> None:
        try:
            while chunk := sock.recv(65536):
                answer.extend(chunk)
        except OSError:
            pass

    reader = threading.Thread(target=read, daemon=True)
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\n{headers}\r\n".encode()
    )
    reader.start()
    frame = b"10000\r\n" + b"0" * 0x10000 + b"\r\n"
    sent = 0
    try:
        while sent < total:
            sock.sendall(frame)
            sent += 0x10000
        sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server closed the connection: what it should do
    reader.join(timeout=20)
    sock.close()
    return bytes(answer), sent


@pytest.mark.parametrize("path", ["/slack/events", "/mattermost/command", "/mattermost/actions"])
def test_a_200_mb_chunked_body_is_refused_with_bounded_memory(bot: Bot, path: str) -> None:
    clear = Path(f"/proc/{bot.process.pid}/clear_refs")
    with contextlib.suppress(OSError):
        clear.write_text("5")  # reset the peak RSS to the current RSS
    before = bot.status("VmHWM")

    start = time.monotonic()
    answer, sent = send_chunked(bot.port, path, total=200 * 1024 * 1024)
    seconds = time.monotonic() - start

    peak = bot.status("VmHWM")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"connection: close" in answer.lower()
    growth_mib = (peak - before) / 1024
    assert growth_mib < 64, f"peak RSS grew by {growth_mib:.1f} MiB"
    assert sent < 200 * 1024 * 1024  # the server stopped reading long before the end
    assert httpx.get(f"{bot.url}/healthz", timeout=1).status_code == 200
    print(
        f"\n{path}: 413 after {sent / 1024 / 1024:.1f} MiB sent in {seconds:.2f} s; peak RSS "
        f"{before / 1024:.1f} -> {peak / 1024:.1f} MiB (+{growth_mib:.1f})"
    )


# --- 3. a NUL byte is refused and audited ---------------------------------------------------


def test_a_nul_byte_is_refused_at_the_edge_and_audited(bot: Bot, bot_env: BotEnv) -> None:
    slack, slack_elapsed = bot.slack_command("rotate x\x00 --yes")  # a non-operator
    mattermost, _ = bot.mattermost_command("deny 1 reason\x00")

    assert slack.status_code == 200 and mattermost.status_code == 200
    assert "control character (\\x00 at position 9)" in slack.json()["text"]
    assert "control character (\\x00 at position 14)" in mattermost.json()["text"]
    assert slack_elapsed < ONE_SECOND
    rows = audit_rows(bot_env, "control character", count=2)
    assert sorted((r.platform, r.user, r.command) for r in rows) == [
        ("mattermost", MM_USER, "/pgdb deny 1 reason\\x00"),
        ("slack", SLACK_USER, "/pgdb rotate x\\x00 --yes"),
    ]
    time.sleep(0.3)
    assert bot.slack.posts_in(SLACK_CHANNEL) == []  # nothing ran
    log = bot.stop()
    assert "\x00" not in log


# --- 4. readiness never starves the acks ----------------------------------------------------


@contextmanager
def blackholed_postgres() -> Iterator[str]:
    """A loopback server that accepts every connection and never answers (nor closes)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"postgresql://pgdb_state_user@127.0.0.1:{listener.getsockname()[1]}/pgdb_state_db"
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in held:
            conn.close()
        listener.close()


@pytest.mark.slow
def test_with_postgresql_blackholed_45_readiness_probes_do_not_delay_an_ack(
    bot_env: BotEnv, slack_api: FakeSlack, fake_mattermost: FakeMattermost, tmp_path: Path
) -> None:
    with (
        blackholed_postgres() as dsn,
        running(
            bot_env,
            slack_api,
            fake_mattermost,
            tmp_path,
            PGDB_PG_DSN=dsn,
            PGDB_DIAGNOSE_INTERVAL="1s",
        ) as bot,
    ):
        port = dsn.rsplit(":", 1)[1].split("/")[0]

        with httpx.Client(timeout=1) as client:

            def not_answering() -> bool:
                answer = client.get(f"{bot.url}/readyz")
                return answer.status_code == 503 and "PostgreSQL" in answer.text

            wait_until(not_answering, timeout=15)

        # one client for the probes (a client per probe would time its own TLS set-up)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        probes_client = httpx.Client(timeout=30, limits=limits)

        def probe(_: int) -> tuple[int, str, float]:
            start = time.monotonic()
            answer = probes_client.get(f"{bot.url}/readyz")
            return answer.status_code, answer.text, time.monotonic() - start

        response_url = slack_api.response_url()
        with probes_client, ThreadPoolExecutor(max_workers=45) as pool:
            probes = [pool.submit(probe, i) for i in range(45)]
            time.sleep(0.05)  # the probes are in flight
            ack, elapsed = bot.slack_post(bot.slack_body("help", response_url=response_url))
            results = [p.result() for p in probes]

        assert ack.status_code == 200 and elapsed < ONE_SECOND, (ack.status_code, elapsed)
        assert all(status == 503 for status, _, _ in results)
        assert max(seconds for _, _, seconds in results) < ONE_SECOND
        for _, text, _ in results:
            assert "PostgreSQL (PGDB_PG_DSN): " in text
            for private in (port, "127.0.0.1", "pgdb_state_user", "pgdb_state_db"):
                assert private not in text
        # replay protection fails closed: PostgreSQL cannot say, so the command is not run
        refused = slack_api.wait_for(lambda: slack_api.responses_to(response_url), timeout=30)
        assert "cannot tell whether this request was already received" in json.dumps(refused)
        wait_until(lambda: "leader election could not ask" in bot.log.read_text(), timeout=30)
        log = bot.stop()
    assert "held by another replica" not in log
    assert "not ready: PostgreSQL (PGDB_PG_DSN): " in log  # the detail is for operators
    print(
        f"\nblackholed PostgreSQL: ack {elapsed * 1000:.0f} ms with 45 probes in flight "
        f"(slowest probe {max(s for _, _, s in results) * 1000:.0f} ms)"
    )


def wait_until(condition: Callable[[], bool], *, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.1)


# --- 5. replays are refused -----------------------------------------------------------------


def test_a_replayed_slack_request_is_refused(bot: Bot, bot_env: BotEnv) -> None:
    response_url = bot.slack.response_url()
    body = bot.slack_body("help", response_url=response_url)
    headers = signed(body)

    first, _ = bot.slack_post(body, headers)
    bot.slack.wait_for(lambda: bot.slack.posts_in(SLACK_CHANNEL))
    replayed, elapsed = bot.slack_post(body, headers)  # the same bytes, seconds later

    assert first.status_code == 200 and replayed.status_code == 200 and elapsed < ONE_SECOND
    [refusal] = bot.slack.wait_for(lambda: bot.slack.responses_to(response_url))
    assert refusal["response_type"] == "ephemeral"
    assert "was already received once" in json.dumps(refusal)
    assert len(bot.slack.posts_in(SLACK_CHANNEL)) == 1  # help ran once
    [replay] = audit_rows(bot_env, "replayed", count=1)
    assert (replay.user, replay.platform, replay.command) == (SLACK_USER, "slack", "/pgdb help")
    assert len(audit_rows(bot_env, "ok", count=1)) == 1


def test_a_mattermost_button_works_once_and_only_as_signed(bot: Bot, bot_env: BotEnv) -> None:
    context = button_context(command="/pgdb help", root_id="", secret=ACTION_SECRET)
    expired = button_context(
        command="/pgdb help", root_id="", secret=ACTION_SECRET, now=time.time() - 8 * 86400
    )

    first = bot.click(context)
    bot.mattermost.wait_for(lambda: bool(bot.mattermost.recorded("PUT")), timeout=20)
    replayed = bot.click(context)
    tampered = bot.click({**context, "command": "/pgdb offboard docspell --yes"})
    forged = bot.click({**context, "signature": "0" * 64})
    too_old = bot.click(expired)
    unsigned = bot.click({"command": "/pgdb help", "secret": ACTION_SECRET})

    assert first.status_code == 200 and replayed.status_code == 200
    # the refusal comes in the response, or as an ephemeral post when it took longer
    bot.mattermost.wait_for(
        lambda: "was already received once" in replayed.text + bot.mattermost.everything_sent()
    )
    assert [r.status_code for r in (tampered, forged, too_old, unsigned)] == [403] * 4
    assert "expired" in too_old.json()["error"]["message"]
    [replay] = audit_rows(bot_env, "replayed", count=1)
    assert (replay.user, replay.platform) == (MM_USER, "mattermost")
    log = bot.stop()
    assert ACTION_SECRET not in log


# --- smaller: malformed requests, ASCII digits ----------------------------------------------


def _payload(value: Any) -> bytes:
    return urlencode({"payload": value if isinstance(value, str) else json.dumps(value)}).encode()


MALFORMED = {
    "payload not JSON": _payload("{not json"),
    "payload a JSON list": _payload([1, 2]),
    "actions a string": _payload(
        {"type": "block_actions", "user": {"id": SLACK_USER}, "actions": "x"}
    ),
    "actions a list of strings": _payload(
        {"type": "block_actions", "user": {"id": SLACK_USER}, "actions": ["x"]}
    ),
    "user a number": _payload({"type": "block_actions", "user": 5, "actions": []}),
    "authorizations not objects": _payload({"type": "block_actions", "authorizations": [1]}),
    "a JSON body": json.dumps({"type": "url_verification", "challenge": "x"}).encode(),
    "neither command nor payload": b"text=help",
}


def test_malformed_signed_requests_get_4xx_without_a_traceback(bot: Bot) -> None:
    answers = {name: bot.slack_post(body)[0] for name, body in MALFORMED.items()}
    bad_unicode = bot.slack_post(b"command=%2Fpgdb&text=\xff\xfe")[0]
    usage = {
        text: bot.mattermost_told(text, user=MM_OPERATOR) for text in ("list --page ²", "approve ²")
    }

    assert {name: a.status_code for name, a in answers.items()} == dict.fromkeys(MALFORMED, 400)
    assert bad_unicode.status_code == 400
    assert "is not a request id" in usage["approve ²"]
    assert "`--page` takes a number" in usage["list --page ²"]
    assert "Traceback" not in bot.stop()


@pytest.fixture
def env_for_console(bot_env: BotEnv) -> BotEnv:
    return bot_env


def test_the_console_refuses_control_characters_too(env_for_console: BotEnv) -> None:
    done = env_for_console.console("help\x1b[2J", as_user=os.environ.get("USER") or "someone")
    assert "control character (\\x1b at position 5)" in done.stdout
