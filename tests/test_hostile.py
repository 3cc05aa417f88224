"""A hostile origin: about thirty misbehaving sources beside good ones, in one round of the real
pipeline with its worker processes. Every hostile case fails or succeeds on its own, with a
readable error and never an internal one; every good source is stored.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.cli import sources as commands
from aggregator.clock import FakeClock
from aggregator.config import loading as config
from aggregator.models import FetchStatus, Selection
from aggregator.store import open_store

from .hostile import good, hostile_routes
from .origin import Origin, Reply

GOOD = 6


@pytest.fixture
def hold() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


async def test_thirty_misbehaviours_fail_on_their_own(
    origin: Origin, clock: FakeClock, tmp_path: Path, hold: threading.Event
) -> None:
    """Every hostile source ends with its own outcome and no internal error; the good sources
    are all stored, in the same round, parsed by worker processes."""
    routes = hostile_routes(origin, hold)
    lines = [
        "[storage]",
        f'url = "sqlite:///{tmp_path / "agg.db"}"',
        "[fetch]",
        "allow_private_networks = true",
        "per_host_delay = 0",
        "max_retries = 0",
        'timeout = "2s"',
        "max_body_bytes = 2_000_000",
        "concurrency = 50",
        "per_host_concurrency = 50",
        "[content]",
        "processes = 2",
    ]
    for name, reply in routes.items():
        lines += ["[[sources]]", f'id = "h-{name}"', f'url = "{origin.route(f"/h/{name}", reply)}"']  # type: ignore[arg-type]
    for n in range(GOOD):
        lines += [
            "[[sources]]",
            f'id = "good-{n}"',
            f'url = "{origin.route(f"/good/{n}", Reply(good(n)))}"',
        ]
    path = tmp_path / "aggregator.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    settings = config.load(path)

    outcomes = await commands.fetch_all(settings, settings.source_records(), clock=clock)
    by_id = {o.source_id: o for o in outcomes}
    assert len(by_id) == len(routes) + GOOD
    internal = {sid: o.error for sid, o in by_id.items() if o.error and "internal error" in o.error}
    assert internal == {}
    for n in range(GOOD):
        assert by_id[f"good-{n}"].status is FetchStatus.OK and by_id[f"good-{n}"].added == 3
    assert by_id["h-lying-json-type"].added == 3  # RSS labelled application/json is still read
    failed = {sid for sid, o in by_id.items() if o.status in (FetchStatus.ERROR, FetchStatus.GONE)}
    assert {
        "h-gzip-bomb",
        "h-huge-body",
        "h-redirect-loop",
        "h-429",
        "h-503",
        "h-410",
        "h-404",
        "h-html-page",
        "h-reset",
        "h-empty",
        "h-binary",
        "h-json-not-feed",
        "h-local-path-body",
        "h-slow-headers",
        "h-500-then-200",
    } <= failed
    assert [sid for sid in failed if not by_id[sid].error] == []
    store = open_store(settings.storage.url, clock.now())
    try:
        titles = [e.title for e in store.list_entries(Selection(limit=500, merge_duplicates=False))]
        assert not any("root:" in t for t in titles)  # no local file read, no external entity
        assert max(len(t) for t in titles) <= 1000
    finally:
        store.close()
