"""`pgdb-bot run` in HTTP mode as Slack and Mattermost reach it: how fast slash commands are
acknowledged while the backends are slow, and its memory after many commands."""

from __future__ import annotations

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
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from bench.fakes import fake_mattermost
from bench.footprint import rss_mib
from bench.measure import median, percentile
from bot.pgcluster import free_port
from tests.fixtures.mattermost import BOT_TOKEN, FakeMattermost
from tests.fixtures.slack import FakeSlack, slack_signature

SIGNING_SECRET = "bench-signing-secret-1234"
COMMAND_TOKEN = "benchcommandtoken000000001"
MM_CHANNEL = "benchchannel00000000000001"
MM_USER = "benchuser00000000000000001"
SLOW_SECONDS = 1.0


@contextmanager
def slow_postgres(delay: float = SLOW_SECONDS) -> Iterator[str]:
    """A DSN whose server accepts TCP connections, says nothing for ``delay`` seconds, then
    closes: every PostgreSQL call the bot makes costs ``delay`` and then fails."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    listener.settimeout(0.2)
    stop = threading.Event()

    def hold(conn: socket.socket) -> None:
        stop.wait(delay)
        conn.close()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=hold, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"postgresql://pgdb_bot@127.0.0.1:{listener.getsockname()[1]}/postgres"
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()


@contextmanager
def running_bot(
    env_extra: dict[str, str], root: Path, *, kill: bool = False
) -> Iterator[tuple[str, int]]:
    """`pgdb-bot run` (a subprocess) until healthy; yields its base URL and pid. ``kill``
    skips the graceful stop (which would drain work queued behind a slow backend)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGDB_")}
    env.update(
        PGDB_HTTP_PORT=str(port),
        PGDB_LOG_LEVEL="WARNING",
        PGDB_LOG_FORMAT="text",
        PGDB_STATE_DIR=str(root),
        **env_extra,
    )
    log = (root / f"bot-{port}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        env=env,
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"pgdb-bot run exited; see {log.name}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > end:
                raise RuntimeError("pgdb-bot run did not become healthy")
            time.sleep(0.02)
        yield url, process.pid
    finally:
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def mattermost_env(url: str, public_url: str) -> dict[str, str]:
    return {
        "PGDB_MATTERMOST_URL": url,
        "PGDB_MATTERMOST_BOT_TOKEN": BOT_TOKEN,
        "PGDB_MATTERMOST_COMMAND_TOKEN": COMMAND_TOKEN,
        "PGDB_MATTERMOST_OPS_CHANNEL": "opschannel0000000000000001",
        "PGDB_PUBLIC_URL": public_url,
        "PGDB_ACTION_SECRET": "bench-action-secret-0123456789",
    }


def slack_env(slack: FakeSlack) -> dict[str, str]:
    return {
        "PGDB_SLACK_BOT_TOKEN": "xoxb-bench-bot-token",
        "PGDB_SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "PGDB_SLACK_API_URL": slack.api_url,
        "PGDB_OPS_CHANNEL": "C0OPS",
    }


class RawAnswer:
    """The status of an answer read by :class:`RawClient` (what the senders look at)."""

    def __init__(self, status: int) -> None:
        self.status_code = status

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise RuntimeError(f"HTTP {self.status_code}")


class RawClient:
    """The load generator for bursts: HTTP/1.1 keep-alive over plain sockets, one connection
    per sending thread. Its cost per request is a send and a few receives, so at 200 at once
    the figure is the bot's answer time, not the generator's own (httpx spends about a
    millisecond of the generator's CPU per request, and 200 threads wait for each other's GIL:
    measured, the generator used 4 to 5 times the CPU of the bot it measured)."""

    def __init__(self, *, timeout: float = 30) -> None:
        self._timeout = timeout
        self._local = threading.local()

    def post(
        self,
        url: str,
        *,
        content: bytes | None = None,
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> RawAnswer:
        parts = urlsplit(url)
        body = content if content is not None else urlencode(data or {}).encode()
        head = {"Host": parts.netloc, "Content-Length": str(len(body))}
        if data is not None:
            head["Content-Type"] = "application/x-www-form-urlencoded"
        head.update(headers or {})
        request = f"POST {parts.path} HTTP/1.1\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in head.items()
        )
        sock = self._connection(parts.hostname or "127.0.0.1", parts.port or 80)
        try:
            sock.sendall(request.encode() + b"\r\n" + body)
            return RawAnswer(self._read(sock))
        except OSError:
            self._local.sock = None
            sock.close()
            raise

    def close(self) -> None:
        """Connections close with their threads; nothing is shared."""

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _connection(self, host: str, port: int) -> socket.socket:
        sock: socket.socket | None = getattr(self._local, "sock", None)
        if sock is None:
            sock = socket.create_connection((host, port), timeout=self._timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._local.sock = sock
        return sock

    def _read(self, sock: socket.socket) -> int:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(
            (
                int(v)
                for k, _, v in (h.partition(":") for h in lines[1:])
                if k.lower() == "content-length"
            ),
            0,
        )
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            rest += chunk
        if any(h.lower() == "connection: close" for h in lines[1:]):
            self._local.sock = None
            sock.close()
        return status


def mattermost_command(http: httpx.Client | RawClient, url: str, hooks: str, text: str) -> float:
    body = {
        "channel_id": MM_CHANNEL,
        "channel_name": "dev",
        "command": "/pgdb",
        "response_url": f"{hooks}/hooks/commands/{MM_USER}",
        "root_id": "",
        "team_domain": "platform",
        "team_id": "teamid00000000000000000001",
        "text": text,
        "trigger_id": "dHJpZ2dlcg==",
        "user_id": MM_USER,
        "user_name": "bench",
        "token": COMMAND_TOKEN,
    }
    start = time.perf_counter()
    response = http.post(
        f"{url}/mattermost/command",
        data=body,
        headers={"Authorization": f"Token {COMMAND_TOKEN}", "Accept": "application/json"},
    )
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    return elapsed


def slack_command(http: httpx.Client | RawClient, url: str, slack: FakeSlack, text: str) -> float:
    body = urlencode(
        {
            "token": "deprecated-verification-token",
            "team_id": "T0FAKE",
            "team_domain": "fake",
            "channel_id": "C0PGDB",
            "channel_name": "platform",
            "user_id": "U0DEV",
            "user_name": "bench",
            "command": "/pgdb",
            "text": text,
            "api_app_id": "A0PGDB",
            "response_url": slack.response_url(),
            "trigger_id": "1.2.3",
        }
    ).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": slack_signature(SIGNING_SECRET, body, timestamp),
    }
    start = time.perf_counter()
    response = http.post(f"{url}/slack/events", content=body, headers=headers)
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    return elapsed


def ack_latency(
    root: Path, fleet_env: dict[str, str], *, rounds: dict[int, int], help_rows: bool = True
) -> dict[str, Any]:
    """p50/p99 of the HTTP answer to `/pgdb create <app>` at each concurrency (``rounds``:
    concurrency -> how many bursts), each platform's figures from a `pgdb-bot run` of its own
    (a figure never pays for the work another platform's burst left queued), with a
    PostgreSQL that answers nothing for 1 s per connection, then closes."""
    results: dict[str, Any] = {
        "slow_backend": f"PostgreSQL DSN on a loopback TCP server that accepts, stays silent "
        f"{SLOW_SECONDS:.0f} s, then closes (every call costs 1 s and fails); secret store and "
        "git local; one fresh `pgdb-bot run` per row group",
        "command": "/pgdb create <new app> (mattermost_help: /pgdb help)",
    }
    names = ["slack", "mattermost", *(["mattermost_help"] if help_rows else [])]
    for name in names:
        slack = FakeSlack()
        try:
            with slow_postgres() as dsn, fake_mattermost() as mattermost, RawClient() as http:
                env = {**fleet_env, "PGDB_PG_DSN": dsn, **slack_env(slack)}
                env |= mattermost_env(mattermost.url, "http://x")
                with running_bot(env, root, kill=True) as (url, pid):
                    send = _sender(name, http=http, url=url, slack=slack, hooks=mattermost.url)
                    send("help")  # warm-up: first request, connections
                    results[name] = _bursts(send, name, pid, rounds)
        finally:
            slack.close()
    return results


def _sender(
    name: str, *, http: RawClient, url: str, slack: FakeSlack, hooks: str
) -> Callable[[str], float]:
    """How one row group sends its commands; ``mattermost_help`` is a command answered inline
    (no backend): the ack without the inline wait."""
    if name == "slack":
        return lambda text: slack_command(http, url, slack, text)
    if name == "mattermost":
        return lambda text: mattermost_command(http, url, hooks, text)
    return lambda _: mattermost_command(http, url, hooks, "help")


def _bursts(
    send: Callable[[str], float], name: str, pid: int, rounds: dict[int, int]
) -> dict[str, Any]:
    per: dict[str, Any] = {}
    for concurrency, bursts in rounds.items():
        samples: list[float] = []
        cpu_before = cpu_seconds(pid)
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            for b in range(bursts):
                texts = [f"create ack-{name[0]}{concurrency}-{b}-{i}" for i in range(concurrency)]
                samples += list(pool.map(send, texts))
        bot_cpu = cpu_seconds(pid) - cpu_before
        per[str(concurrency)] = {
            "samples": len(samples),
            "p50_ms": round(median(samples) * 1000, 1),
            "p99_ms": round(percentile(samples, 99) * 1000, 1),
            "max_ms": round(max(samples) * 1000, 1),
            # what the bot spent (answering, and the work behind the answers done
            # meanwhile): the rest of each latency is the load generator
            "bot_cpu_ms_per_command": round(bot_cpu / len(samples) * 1000, 2),
        }
    return per


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def after_commands(
    root: Path, fleet_env: dict[str, str], *, commands: int, concurrency: int = 10
) -> dict[str, Any]:
    """RSS of `pgdb-bot run` (Mattermost, real PostgreSQL) idle, then after ``commands``
    `/pgdb help` and `/pgdb status` slash commands, once the work behind them is done."""
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    with fake_mattermost() as mattermost, httpx.Client(timeout=30, limits=limits) as http:
        env = fleet_env | mattermost_env(mattermost.url, "http://x")
        with running_bot(env, root) as (url, pid):
            time.sleep(0.5)
            idle = rss_mib(pid)
            texts = ["status" if i % 10 == 0 else "help" for i in range(commands)]
            start = time.perf_counter()
            with ThreadPoolExecutor(max_workers=concurrency) as pool:
                list(pool.map(lambda t: mattermost_command(http, url, mattermost.url, t), texts))
            acked = time.perf_counter() - start
            # the work behind each ack: wait until the bot has answered them all (help is
            # answered inline; each status posts its "pgdb status: N app(s)" reply), then
            # until Mattermost hears no more
            statuses, end = texts.count("status"), time.monotonic() + 600
            while time.monotonic() < end and _status_replies(mattermost) < statuses:
                time.sleep(0.5)
            seen, quiet_since = -1, time.monotonic()
            while time.monotonic() < end and time.monotonic() - quiet_since < 0.5:
                if len(mattermost.calls) != seen:
                    seen, quiet_since = len(mattermost.calls), time.monotonic()
                time.sleep(0.05)
            done = time.perf_counter() - start - 0.5
            time.sleep(0.5)
            after = rss_mib(pid)
            answered = len(mattermost.calls)
    return {
        "commands": commands,
        "mix": "9 of 10 `/pgdb help`, 1 of 10 `/pgdb status` (Mattermost)",
        "idle_rss_mib": round(idle, 1),
        "rss_after_mib": round(after, 1),
        "acked_seconds": round(acked, 2),
        "all_answered_seconds": round(done, 2),
        "mattermost_requests": answered,
    }


def _status_replies(mattermost: FakeMattermost) -> int:
    """Status replies posted so far (a reply too long for one post starts with its title)."""
    return sum("pgdb status: " in json.dumps(answer) for answer in mattermost.answers())


IMPORT_STEPS = [
    ("python", ""),
    ("bot.cli", "import bot.cli"),
    (
        "+ bot.server, wiring, postgres",
        "import bot.server, bot.wiring, bot.adapters.postgres.roles",
    ),
    ("+ slack_bolt", "import slack_bolt, slack_sdk"),
    ("+ mattermost adapter", "import bot.adapters.mattermost.platform"),
    ("+ kubernetes", "import kubernetes"),
    ("+ infisical_sdk", "import infisical_sdk"),
    ("+ github adapter", "import bot.adapters.github.host"),
]


def import_rss() -> list[dict[str, Any]]:
    """RSS of a fresh interpreter after each cumulative import step."""
    code = ["import sys, os", "def rss():", "    for l in open('/proc/self/status'):"]
    code += ["        if l.startswith('VmRSS:'): return int(l.split()[1]) / 1024"]
    for i, (_, statement) in enumerate(IMPORT_STEPS):
        if statement:
            code.append(statement)
        code.append(f"print({i}, round(rss(), 1))")
    out = subprocess.run(
        [sys.executable, "-c", "\n".join(code)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout
    values = [float(line.split()[1]) for line in out.splitlines()]
    rows = []
    for (label, _), value, previous in zip(IMPORT_STEPS, values, [0.0, *values], strict=False):
        rows.append({"step": label, "rss_mib": value, "delta_mib": round(value - previous, 1)})
    return rows


def configured_footprint(fleet: Any) -> dict[str, Any]:
    """`pgdb-bot run` with every platform and system configured (Slack HTTP mode, Mattermost,
    GitHub, Infisical, Kubernetes; all fakes holding the fleet): RSS just after start, and
    after its first diagnostics pass over the fleet, which is what a running bot holds."""
    from bench.fakes import fake_world  # (only this row needs the three fakes)
    from tests.fixtures.infisical import CLIENT_ID, CLIENT_SECRET

    root = fleet.root / "fakes-configured"
    slack = FakeSlack()
    try:
        with (
            fake_world(root, fleet.apps, fleet.passwords, gitops=fleet.root / "gitops") as world,
            fake_mattermost() as mattermost,
            httpx.Client(timeout=10) as http,
        ):
            env = {
                "PGDB_PG_DSN": fleet.superuser_dsn,
                "PGDB_GITHUB_REPO": world.github.full_name,
                "PGDB_GITHUB_API_URL": world.github.url,
                "PGDB_GITHUB_TOKEN": world.github.token,
                "PGDB_INFISICAL_URL": world.infisical.url,
                "PGDB_INFISICAL_CLIENT_ID": CLIENT_ID,
                "PGDB_INFISICAL_CLIENT_SECRET": CLIENT_SECRET,
                "PGDB_KUBERNETES": "on",
                "PGDB_KUBECONFIG": str(world.kubeconfig),
                "PGDB_DIAGNOSE_INTERVAL": "1h",  # the first pass runs a few seconds after start
                **slack_env(slack),
                **mattermost_env(mattermost.url, "http://x"),
                "PGDB_SLACK_OPS_CHANNEL": "C0OPS",
                "PGDB_MATTERMOST_OPS_CHANNEL": "opschannel0000000000000001",
            }
            with running_bot(env, root) as (url, pid):
                started = rss_mib(pid)
                end = time.monotonic() + 300
                while time.monotonic() < end and not _passed(http, url):
                    time.sleep(0.2)
                time.sleep(1)
                after_pass = rss_mib(pid)
    finally:
        slack.close()
    return {
        "apps": len(fleet.apps),
        "configured": "Slack (HTTP), Mattermost, GitHub, Infisical, Kubernetes (fakes)",
        "rss_after_start_mib": round(started, 1),
        "idle_rss_after_first_pass_mib": round(after_pass, 1),
    }


def _passed(http: httpx.Client, url: str) -> bool:
    """Whether the bot's /metrics counts a completed diagnostics pass."""
    text = http.get(f"{url}/metrics").text
    return any(
        line.startswith("pgdb_diagnostics_passes_total{") and not line.endswith(" 0.0")
        for line in text.splitlines()
    )
