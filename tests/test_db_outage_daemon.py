"""The whole daemon through a database cut and a database hang: a real `run.py run` process on
PostgreSQL behind the test proxy (tests/dbproxy.py), a fake origin whose feeds grow meanwhile."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import REPO
from .dbproxy import DbProxy
from .origin import Origin, Reply
from .pg import pg_schema

pytestmark = pytest.mark.slow

OUTAGE = 1.0  # seconds the database stays cut or hung


def rss(source: int, items: int) -> str:
    body = "".join(
        f'<item><guid isPermaLink="false">s{source}-{j}</guid><title>S{source} post {j}</title>'
        f"<link>http://example.com/s{source}/{j}</link>"
        f"<pubDate>Sun, 01 Mar 2026 0{j % 10}:0{source}:00 GMT</pubDate></item>"
        for j in range(items)
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>S{source}</title>{body}</channel></rss>'


@pytest.fixture
def proxy() -> Iterator[DbProxy]:
    started = DbProxy().start()
    yield started
    started.stop()


def poll(what: str, predicate: Callable[[], Any], timeout: float, log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = predicate()
        except httpx.HTTPError:  # not serving yet
            found = None
        if found:
            return found
        time.sleep(0.05)  # a real subprocess: no clock to fake
    raise AssertionError(f"timed out waiting for {what}\n{log.read_text(errors='replace')[-3000:]}")


def test_the_daemon_serves_cached_feeds_through_a_cut_and_a_hang(
    tmp_path: Path, origin: Origin, proxy: DbProxy
) -> None:
    """Cut, then hung: /healthz answers, /readyz is 503, all.json is served unchanged, a feed
    never rendered is 503; each time the database is back the daemon fetches what the origin
    published meanwhile and the feed shows it, with a few log lines per outage."""
    items = {i: 2 for i in range(3)}
    for i in list(items):  # the routes read ``items`` at each request: it grows in the test
        origin.route(f"/s/{i}", lambda request, i=i: Reply(rss(i, items[i])))
    with pg_schema() as url:
        cfg = tmp_path / "outage.toml"
        cfg.write_text(
            "\n".join(
                [
                    "[server]",
                    'host = "127.0.0.1"',
                    f"port = {free_port()}",
                    "[storage]",
                    f'url = "{proxy.url(url)}"',
                    'connect_timeout = "1s"',
                    'statement_timeout = "2s"',
                    'pool_timeout = "1s"',
                    'request_timeout = "0.5s"',
                    "[fetch]",
                    "allow_private_networks = true",
                    "per_host_delay = 0",
                    "max_retries = 0",
                    "[schedule]",
                    'dispatch_every = "0.2s"',
                    'interval = "1s"',
                    'min_interval = "1s"',
                    "jitter = 0",
                    *[f'[[sources]]\nid = "s{i}"\nurl = "{origin.url(f"/s/{i}")}"' for i in items],
                ]
            )
            + "\n",
            encoding="utf-8",
        )
        log = tmp_path / "daemon.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, str(REPO / "run.py"), "--config", str(cfg), "run"],
                cwd=tmp_path,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            try:
                run_outages(proc, proxy, items, log)
            finally:
                proc.terminate()
                proc.wait(15)


def run_outages(
    proc: subprocess.Popen[bytes], proxy: DbProxy, items: dict[int, int], log: Path
) -> None:
    port = poll("the port", lambda: _port(log), 15, log)
    http = httpx.Client(base_url=f"http://{port}", timeout=3)

    def count() -> int:
        return len(http.get("/feeds/all.json?limit=100").json()["items"])

    poll("the first fetches", lambda: count() == 6, 15, log)
    for outage in ("cut", "hang"):
        before = http.get("/feeds/all.json")
        lines = len(log.read_text().splitlines())
        getattr(proxy, outage)()
        items[0] += 1  # published during the outage
        until = time.monotonic() + OUTAGE
        while time.monotonic() < until:
            assert http.get("/healthz", timeout=0.5).status_code == 200
            again = http.get("/feeds/all.json", timeout=1.5)
            assert again.status_code == 200 and again.headers["etag"] == before.headers["etag"]
            time.sleep(0.05)
        assert http.get("/readyz", timeout=1.5).status_code == 503
        assert http.get("/feeds/source/s2.atom", timeout=1.5).status_code == 503
        proxy.restore()
        poll("the item published during the outage", lambda: count() == 6 + items[0] - 2, 10, log)
        assert http.get("/readyz").status_code == 200
        during = log.read_text().splitlines()[lines:]
        records = [line for line in during if line.startswith("time=")]
        assert len(records) <= 30, "\n".join(records)  # ticks every 0.2 s here: one line each
        assert len(during) - len(records) <= 150  # at most one traceback
    assert proc.poll() is None


def _port(log: Path) -> str | None:
    """host:port from the daemon's ``event=started`` line, once it has logged it."""
    for line in log.read_text(errors="replace").splitlines():
        if "event=started" in line:
            return line.split("listen=http://")[1].split()[0]
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
