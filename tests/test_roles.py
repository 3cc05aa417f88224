"""Every role serves health and metrics: a worker on its own port (``--port`` or
``server.worker_port``), a web process on ``--port`` from the same config file; each process's
series carry ``role`` and ``process`` labels so they can be summed.

The process tests start the real daemon (``python run.py``) and talk to it over 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aggregator.clock import FakeClock
from aggregator.config import loading as config
from aggregator.http import metrics
from aggregator.runtime.daemon import command_line
from aggregator.runtime.owners import owner_id, process_start
from aggregator.runtime.roles import Role

from .conftest import REPO
from .ops_stack import make_config, running_stack
from .origin import Origin, Reply
from .test_reload import atom
from .test_web_processes import ATOM, free_port, poll


def write_config(tmp: Path, origin: Origin, port: int, store: str | None = None) -> Path:
    """One source on the origin; ``[server] port`` is ``port``; no worker_port; ``store``
    (default: a SQLite file in ``tmp``)."""
    url = origin.route("/a.atom", Reply(ATOM.encode(), content_type="application/atom+xml"))
    store = store or f"sqlite:///{tmp / 'agg.db'}"
    cfg = tmp / "aggregator.toml"
    cfg.write_text(
        "\n".join(
            [
                "[server]",
                'host = "127.0.0.1"',
                f"port = {port}",
                "[storage]",
                f'url = "{store}"',
                "[fetch]",
                "allow_private_networks = true",
                "per_host_delay = 0",
                "max_retries = 0",
                "[schedule]",
                'dispatch_every = "0.2s"',
                "[content]",
                "processes = 1",  # parse in a thread: no worker processes to start and stop
                "[logging]",
                'level = "INFO"',
                "[[sources]]",
                'id = "a"',
                f'url = "{url}"',
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    return cfg


class Procs:
    """Daemons started by one test; killed at the end."""

    def __init__(self, tmp: Path, cfg: Path) -> None:
        self.tmp, self.cfg = tmp, cfg
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"daemon-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "run.py"), "--config", str(self.cfg), "run", *args],
            cwd=self.tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def procs(tmp_path: Path, origin: Origin, empty_url: str) -> Iterator[Procs]:
    """Daemons of one config file on SQLite, then on PostgreSQL."""
    running = Procs(tmp_path, write_config(tmp_path, origin, free_port(), empty_url))
    yield running
    running.stop()


@pytest.fixture
def sqlite_procs(tmp_path: Path, origin: Origin) -> Iterator[Procs]:
    """Daemons of one config file on SQLite."""
    running = Procs(tmp_path, write_config(tmp_path, origin, free_port()))
    yield running
    running.stop()


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(base: str) -> Samples:
    text = httpx.get(base + "/metrics", timeout=5).raise_for_status().text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def labelled(
    samples: Samples, name: str, **labels: str
) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of ``name`` whose labels include ``labels``."""
    return {
        key: value
        for (n, key), value in samples.items()
        if n == name and set(labels.items()) <= set(key)
    }


@pytest.mark.slow
def test_a_worker_serves_metrics_and_health_on_its_port_beside_a_web_process(procs: Procs) -> None:
    """``run --role worker --port P`` and ``run --role web --port Q`` from one config file on one
    host: the worker answers /healthz, /readyz and /metrics (its fetch counters count what it
    fetched from the origin, labelled role=worker and process=host:pid) and nothing else; the
    web process serves the worker's entries on its own port."""
    wport, webport = free_port(), free_port()
    worker = procs.start("--role", "worker", "--port", str(wport))
    web = procs.start("--role", "web", "--port", str(webport))
    wbase, webbase = f"http://127.0.0.1:{wport}", f"http://127.0.0.1:{webport}"
    me = f"{socket.gethostname()}:{worker.pid}:{process_start(worker.pid)}"

    def fetched() -> float:
        found = labelled(scrape(wbase), "aggregator_fetches_total", outcome="ok")
        assert list(found) == [(("outcome", "ok"), ("process", me), ("role", "worker"))], found
        return sum(found.values())

    assert poll(fetched, 60, "the worker's fetch counter") >= 1
    assert httpx.get(wbase + "/healthz", timeout=5).status_code == 200
    ready = httpx.get(wbase + "/readyz", timeout=5)
    assert ready.status_code == 200 and "scheduler=ok" in ready.text
    assert not labelled(scrape(wbase), "aggregator_source_entries")  # the web roles show those
    assert httpx.get(wbase + "/feeds/all.atom", timeout=5).status_code == 404
    assert httpx.get(wbase + "/", timeout=5).status_code == 404

    poll(
        lambda: "First post" in httpx.get(webbase + "/feeds/all.atom", timeout=5).text,
        20,
        "the web process serving the worker's entry",
    )
    web_series = labelled(scrape(webbase), "aggregator_fetches_total", outcome="ok")
    assert list(web_series) == [
        (
            ("outcome", "ok"),
            ("process", f"{socket.gethostname()}:{web.pid}:{process_start(web.pid)}"),
            ("role", "web"),
        )
    ]
    for proc in (worker, web):
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


@pytest.mark.slow
def test_a_worker_without_a_port_has_no_listener(sqlite_procs: Procs) -> None:
    """Without --port or server.worker_port a worker serves no HTTP (so several workers can
    share one host and one config file) and says so when it starts."""
    procs = sqlite_procs
    worker = procs.start("--role", "worker")
    log = procs.tmp / "daemon-0.log"
    poll(lambda: "event=started" in log.read_text(), 20, "the worker to start")
    assert "role=worker" in log.read_text() and "listen=none" in log.read_text()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0


def test_port_on_the_command_line_overrides_the_config_per_role() -> None:
    """--port sets server.port for web and all, server.worker_port for a worker; --host sets
    server.host; without either nothing changes."""
    settings = config.parse('[server]\nport = 8080\nhost = "127.0.0.1"\n')
    web = command_line(None, 9000, Role.WEB)
    worker = command_line("0.0.0.0", 9101, Role.WORKER)
    assert web is not None and worker is not None
    assert web(settings).server.port == 9000 and web(settings).server.worker_port is None
    assert worker(settings).server.port == 8080 and worker(settings).server.worker_port == 9101
    assert worker(settings).server.host == "0.0.0.0"
    assert command_line(None, None, Role.WORKER) is None


def test_a_bad_port_is_refused_by_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    """--port takes 0-65535 only; anything else is a usage error, not a traceback."""
    from aggregator.cli.parser import main

    with pytest.raises(SystemExit) as exit_:
        main(["run", "--port", "70000"])
    assert exit_.value.code == 2
    assert "not a port number" in capsys.readouterr().err


async def test_dispatch_lag_and_event_counters_are_exposed(
    tmp_path: Path, origin: Origin, clock: FakeClock
) -> None:
    """Before each tick the scheduler sets aggregator_dispatch_lag_seconds to how long the
    oldest due source has waited (0 once none is due); db_error(), lease_lost() and
    lease_takeover() count into their _total series, labelled with the process."""
    path, _ = make_config(tmp_path, origin, {"a": atom("a", ["A1"]), "b": atom("b", ["B1"])})
    async with running_stack(path, clock) as st:
        clock.advance(42)  # both sources became due when the stack synced them
        before = metrics.events()
        await st.scheduler.tick()
        await st.scheduler.dispatcher.idle()  # the tick starts the round; wait for it
        metrics.db_error()
        metrics.lease_lost(2)
        metrics.lease_takeover()
        own = (("process", owner_id()), ("role", "all"))
        samples = await asyncio.to_thread(scrape, st.base)
        assert samples[("aggregator_dispatch_lag_seconds", own)] == 42
        assert samples[("aggregator_db_errors_total", own)] == before["db_errors"] + 1
        assert samples[("aggregator_lease_lost_total", own)] == before["lease_lost"] + 2
        assert samples[("aggregator_lease_takeovers_total", own)] == before["lease_takeovers"] + 1
        assert st.store.entry_counts() == {"a": 1, "b": 1}  # the tick ran after the measurement

        await st.scheduler.tick()  # nothing due now
        samples = await asyncio.to_thread(scrape, st.base)
        assert samples[("aggregator_dispatch_lag_seconds", own)] == 0


def test_oldest_due_is_the_earliest_due_enabled_source(empty_url: str) -> None:
    """store.oldest_due(now): the earliest next fetch time among enabled sources due at now,
    leased ones included; None when none is due (both databases)."""
    from datetime import timedelta

    from aggregator.models import Source
    from aggregator.store import open_store

    clock = FakeClock()
    start = clock.now()
    store = open_store(empty_url, start)
    try:
        store.sync_sources([Source(id=s, url=f"http://origin.test/{s}") for s in "abc"], start)
        clock.advance(10)
        assert store.oldest_due(clock.now()) == start
        assert [c.source_id for c in store.claim_due(clock.now(), 3, "me", 600)] == ["a", "b", "c"]
        assert store.oldest_due(clock.now()) == start  # still due while leased: that is lag
        store.sync_sources([Source(id="b", url="http://origin.test/b")], clock.now())  # a, c off
        assert store.oldest_due(clock.now()) == start
        assert store.oldest_due(start - timedelta(seconds=1)) is None
    finally:
        store.close()


def test_metrics_answer_while_the_database_cannot_be_read(tmp_path: Path) -> None:
    """When the per-source gauges cannot be read, /metrics still shows the process's own series
    and counts a database error (instead of failing the whole scrape)."""
    import sqlite3

    from aggregator.models import Source
    from aggregator.store import open_store

    clock = FakeClock()
    store = open_store(f"sqlite:///{tmp_path / 'agg.db'}", clock.now())
    try:
        store.sync_sources([Source(id="a", url="http://origin.test/a")], clock.now())
        registry = metrics.Metrics(store, role="web", process="h:1")
        assert 'aggregator_source_entries{source="a"} 0.0' in registry.exposition().decode()
        with sqlite3.connect(tmp_path / "agg.db") as conn:
            conn.execute("ALTER TABLE sources RENAME TO sources_away")
        before = metrics.events()["db_errors"]
        text = registry.exposition().decode()
        assert 'aggregator_fetches_total{outcome="ok",process="h:1",role="web"} 0.0' in text
        assert 'aggregator_source_entries{source="a"}' not in text
        assert metrics.events()["db_errors"] == before + 1
    finally:
        store.close()


def test_a_role_says_what_its_process_does() -> None:
    """The runtime asks a Role, never compares role names: the web role never fetches, the worker
    serves no feeds and forks no web processes, and each listens on its own port key."""
    server = config.parse("[server]\nprocesses = 3\nport = 8080\nworker_port = 9101\n").server
    assert [r.fetches for r in Role] == [True, True, False]
    assert [r.serves_feeds for r in Role] == [True, False, True]
    assert [r.extra_web_processes(server) for r in Role] == [2, 0, 2]
    assert [r.port(server) for r in Role] == [8080, 9101, 8080]
    assert Role("worker").port_key() == "worker_port" and Role.WEB.port_key() == "port"
