"""Worker processes for parsing, cleaning and fingerprinting: the same results as a thread, a dead
worker fails only its documents, and workers never outlive the daemon."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import astuple
from pathlib import Path

import pytest

from aggregator.cli.sources import fetch_all
from aggregator.clock import FakeClock
from aggregator.config.settings import Settings
from aggregator.content import clean as content
from aggregator.errors import ParseError
from aggregator.models import FetchResult, FetchStatus, Selection, Source
from aggregator.pipeline import workers as offload
from aggregator.pipeline.workers import Offload
from aggregator.store import open_store

from .conftest import CORPUS
from .harness import ATOM, make_settings
from .origin import Origin, Reply

FEEDS = [
    "miniflux+v2/large_atom.xml",
    "miniflux+v2/large_rss.xml",
    "miniflux+v2/small_atom.xml",
    "miniflux+v2/rdf_UTF8.xml",
    "miniflux+v2/koi8r.xml",
    "miniflux+v2/urdu_UTF8.xml",
]
TRACKING = Settings().dedupe.tracking_params


def _stored(settings: Settings, clock: FakeClock) -> list[tuple[object, ...]]:
    store = open_store(settings.storage.url, clock.now())
    try:
        entries = store.list_entries(Selection(merge_duplicates=False, limit=10_000))
    finally:
        store.close()
    return sorted(astuple(e)[:18] + (e.fingerprint, e.band_keys) for e in entries)


async def test_worker_processes_store_exactly_what_a_thread_stores(
    origin: Origin, tmp_path: Path, clock: FakeClock
) -> None:
    """The same feeds fetched with two worker processes and with none give the same entries,
    field by field (cleaned HTML, text, fingerprints and band keys included)."""
    sources = [
        (f"s{i}", origin.route(f"/f{i}", Reply((CORPUS / f).read_bytes())))
        for i, f in enumerate(FEEDS)
    ]
    results = []
    for processes in (2, 1):
        folder = tmp_path / f"p{processes}"
        folder.mkdir()
        settings = make_settings(folder, sources, extra=f"[content]\nprocesses = {processes}")
        outcomes = await fetch_all(settings, settings.source_records(), clock=clock)
        assert [o.status for o in outcomes] == [FetchStatus.OK] * len(FEEDS)
        results.append(_stored(settings, clock))
    assert len(results[0]) > 100
    assert results[0] == results[1]


async def test_a_dead_worker_fails_only_its_documents() -> None:
    """A worker killed by a signal breaks the pool: the job that meets it fails as a parse error
    naming the cause, and the next job runs in a new pool."""
    pool_owner = Offload(2)
    source = Source(id="s", url="http://127.0.0.1/feed")
    result = FetchResult(
        url=source.url,
        status_code=200,
        content=(CORPUS / "miniflux+v2/small_atom.xml").read_bytes(),
    )
    try:
        parsed, keyed = await pool_owner.identify(source, result, TRACKING)
        assert len(keyed) == len(parsed.items) > 0
        pool = pool_owner._pool
        assert pool is not None
        victim = next(iter(pool._processes))  # a pid
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not pool._broken and time.monotonic() < deadline:  # the pool notices by itself
            await asyncio.sleep(0.05)
        with pytest.raises(ParseError, match="worker process parsing this document died"):
            await pool_owner.identify(source, result, TRACKING)
        again, _ = await pool_owner.identify(source, result, TRACKING)
        assert again == parsed and pool_owner._pool is not pool
    finally:
        pool_owner.close()


def test_workers_exit_when_the_daemon_is_killed(tmp_path: Path) -> None:
    """SIGKILL of the process that owns the pool leaves no worker behind."""
    script = tmp_path / "owner.py"
    feed = tmp_path / "feed.xml"
    feed.write_bytes(ATOM)
    script.write_text(
        textwrap.dedent(f"""
        import asyncio, sys, time
        from pathlib import Path
        from aggregator.models import FetchResult, Source
        from aggregator.pipeline.workers import Offload

        async def main():
            offload = Offload(2)
            src = Source(id="s", url="http://127.0.0.1/feed")
            body = Path({str(feed)!r}).read_bytes()
            await offload.identify(src, FetchResult(url=src.url, status_code=200, content=body), ())
            print(" ".join(str(p) for p in offload._pool._processes), flush=True)
            time.sleep(600)

        if __name__ == "__main__":
            asyncio.run(main())
    """)
    )
    owner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        workers = [int(p) for p in owner.stdout.readline().split()]
        assert workers and all(_alive(p) for p in workers)  # started on demand: 1 or 2
    finally:
        owner.kill()
        owner.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in workers)


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_a_worker_that_parses_feeds_loads_neither_the_config_nor_bs4() -> None:
    """A spawned process that parses, cleans and fingerprints a feed imports only what that
    needs: not the config module (pydantic), the web stack or BeautifulSoup, which cost a worker
    50 MB. (One process, so the check runs where the work ran.)"""
    source = Source(id="s", url="http://127.0.0.1/feed")
    body = (CORPUS / "miniflux+v2/large_atom.xml").read_bytes()
    result = FetchResult(url=source.url, status_code=200, content=body)
    check = (
        "sorted(m for m in __import__('sys').modules if m.split('.')[0] in "
        "('pydantic', 'bs4', 'starlette', 'sqlalchemy', 'httpx') or m == 'aggregator.config')"
    )
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        parsed, keyed = pool.submit(offload.identify, source, result, TRACKING).result()
        prepared = pool.submit(
            offload.prepare, [item for _, item in keyed], parsed.link, content.CleanOptions()
        ).result()
        assert len(prepared) == len(keyed) > 0
        assert pool.submit(eval, check).result() == []
