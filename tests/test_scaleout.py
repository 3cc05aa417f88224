"""Scale-out on PostgreSQL: three worker processes and one web process share one database.

Real `python run.py --role …` subprocesses, a fake origin with a few hundred small feeds (some of
them slow), a short lease. One worker is killed with SIGKILL while it holds leases; the sources it
held are fetched again by the others once the lease has expired, every other source exactly once.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from psycopg.errors import UndefinedTable

from aggregator.runtime.owners import process_start

from .conftest import REPO
from .origin import Origin, Reply, Request
from .pg import pg_schema

pytestmark = pytest.mark.slow

SOURCES = 240
ITEMS = 2
SLOW_EVERY = 20  # every 20th source answers after SLOW seconds
SLOW = 1.5
LEASE = 5.0  # above the longest batch (SLOW plus processing ten sources), even on a busy machine


def feed(i: int) -> str:
    items = "".join(
        f'<item><guid isPermaLink="false">s{i}-{j}</guid><title>Source {i} post {j}</title>'
        f"<link>http://example.com/s{i}/{j}</link><description>Post {j} of {i}</description>"
        f"<pubDate>Sun, 01 Mar 2026 {j:02}:{i % 60:02}:00 GMT</pubDate></item>"
        for j in range(ITEMS)
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>S{i}</title>'
        f"<link>http://example.com/s{i}</link><description>d</description>{items}</channel></rss>"
    )


def slow(body: str) -> Callable[[Request], Reply]:
    def answer(request: Request) -> Reply:
        time.sleep(SLOW)  # the origin's side of a slow source, in the origin's own thread
        return Reply(body)

    return answer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp: Path, origin: Origin, store_url: str, port: int) -> Path:
    lines = [
        "[server]",
        'host = "127.0.0.1"',
        f"port = {port}",
        "[storage]",
        f'url = "{store_url}"',
        "[fetch]",
        "allow_private_networks = true",
        "per_host_delay = 0",
        "max_retries = 0",
        "concurrency = 50",
        "per_host_concurrency = 50",
        "[schedule]",
        'dispatch_every = "0.2s"',
        'interval = "1h"',
        "batch_size = 10",
        f'lease = "{LEASE}s"',
        "[publish]",
        "default_limit = 2000",
        "max_limit = 2000",
    ]
    for i in range(SOURCES):
        body = feed(i)
        url = origin.route(f"/s/{i}", slow(body) if i % SLOW_EVERY == 0 else Reply(body))
        lines += ["[[sources]]", f'id = "s{i}"', f'url = "{url}"']
    cfg = tmp / "scale.toml"
    cfg.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return cfg


class Fleet:
    """The processes of one test; all are stopped (and killed if need be) on exit."""

    def __init__(self, config: Path, logs: Path) -> None:
        self.config = config
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.owners: dict[str, str] = {}  # the lease owner id of each process
        self._files: list[IO[bytes]] = []

    def start(self, name: str, role: str) -> subprocess.Popen[bytes]:
        out = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed in close(); a file, so a chatty process never blocks
        self._files.append(out)
        proc = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "run.py"),
                "--config",
                str(self.config),
                "run",
                "--role",
                role,
            ],
            cwd=self.logs,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        self.procs[name] = proc
        self.owners[name] = f"{socket.gethostname()}:{proc.pid}:{process_start(proc.pid)}"
        return proc

    def owner(self, name: str) -> str:
        return self.owners[name]

    def output(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.logs.glob("*.log"))
        )

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for f in self._files:
            f.close()


def wait_for(what: str, fleet: Fleet, predicate: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = predicate()
        except (httpx.HTTPError, UndefinedTable):  # not serving yet; tables not made yet
            found = None
        if found:
            return found
        time.sleep(0.05)  # polling real subprocesses: no clock to fake across processes
    raise AssertionError(f"timed out waiting for {what}\n{fleet.output()}")


def query(url: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, args).fetchall()  # type: ignore[arg-type]


def test_three_workers_share_the_sources_and_survive_a_killed_one(
    tmp_path: Path, origin: Origin
) -> None:
    """Each source is fetched once in the round, by exactly one worker; a worker killed with
    SIGKILL while holding leases loses them, and its sources are fetched by the others after the
    lease expires; the web process (which fetches and writes nothing) serves every entry once."""
    with ExitStack() as stack:
        url = stack.enter_context(pg_schema())
        port = free_port()
        fleet = Fleet(write_config(tmp_path, origin, url, port), tmp_path)
        stack.callback(fleet.close)
        base = f"http://127.0.0.1:{port}"

        fleet.start("web", "web")
        for n in (1, 2, 3):
            fleet.start(f"worker{n}", "worker")
        owners = {fleet.owner(f"worker{n}"): f"worker{n}" for n in (1, 2, 3)}

        def holder_of_a_slow_source() -> str | None:
            rows = query(url, "SELECT lease_owner, id FROM sources WHERE lease_owner IS NOT NULL")
            slow_held = [o for o, sid in rows if int(sid[1:]) % SLOW_EVERY == 0 and o in owners]
            return owners[slow_held[0]] if slow_held else None

        victim = wait_for("a worker holding a slow source", fleet, holder_of_a_slow_source, 40)
        fleet.procs[victim].send_signal(signal.SIGKILL)
        fleet.procs[victim].wait(timeout=10)
        held = {
            r[0]
            for r in query(
                url, "SELECT id FROM sources WHERE lease_owner = %s", fleet.owner(victim)
            )
        }
        assert held, "the killed worker held no lease"

        def every_source_fetched() -> bool:
            rows = query(url, "SELECT count(*) FROM sources WHERE last_status = 'ok'")
            return rows == [(SOURCES,)]

        wait_for("every source fetched", fleet, every_source_fetched, 50)

        hits = {f"s{i}": len(origin.hits(f"/s/{i}")) for i in range(SOURCES)}
        assert {sid: n for sid, n in hits.items() if sid not in held and n != 1} == {}
        assert all(1 <= hits[sid] <= 2 for sid in held)
        states = query(url, "SELECT id, fetch_count, lease_owner FROM sources ORDER BY id")
        assert {(count, owner) for _, count, owner in states} == {(1, None)}

        def all_entries() -> list[dict[str, Any]] | None:
            items: list[dict[str, Any]] = httpx.get(f"{base}/feeds/all.json", timeout=10).json()[
                "items"
            ]
            return items if len(items) >= SOURCES * ITEMS else None

        items = wait_for("every entry in the web feed", fleet, all_entries, 15)
        links = [item["url"] for item in items]
        expected = {f"http://example.com/s{i}/{j}" for i in range(SOURCES) for j in range(ITEMS)}
        assert len(links) == len(set(links)) and set(links) == expected
        assert "event=fetched" not in (tmp_path / "web.log").read_text()
        alive = [
            name for name, proc in fleet.procs.items() if name != victim and proc.poll() is not None
        ]
        assert alive == [], "a process died (a worker must not bind the HTTP port)"
