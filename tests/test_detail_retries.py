"""Failed detail fetches: recorded on the source, retried on later fetches with backoff and a
bounded number of attempts, and cut off by the source's enrichment budget when detail hosts hang.

A ``json`` source whose items' full text comes from a detail URL on the fake origin, through the
real pipeline (``aggregator fetch``'s code), fetcher and SQLite store, with a fake clock.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest

from aggregator.cli import sources as commands
from aggregator.clock import FakeClock
from aggregator.config import loading as config
from aggregator.config.settings import Settings
from aggregator.http import report
from aggregator.models import Entry, FetchStatus, Selection, SourceState
from aggregator.store import open_store

from .origin import Origin, Reply, Request, Sequence_

SOURCE = """
[[sources]]
id = "api"
kind = "json"
url = "{url}"
items = "items"
detail = {{ url = "{detail}", content = "html" }}

[sources.fields]
id = "id"
title = "title"
content = "summary"
"""
LIST = json.dumps(
    {
        "items": [
            {"id": 1, "title": "First story", "summary": "<p>summary one</p>"},
            {"id": 2, "title": "Second story", "summary": "<p>summary two</p>"},
        ]
    }
)


def detail(n: int) -> Reply:
    return Reply(json.dumps({"html": f"<p>full text {n}</p>"}), content_type="application/json")


def settings_for(tmp: Path, origin: Origin, lease: str = "10m") -> Settings:
    url = origin.route("/list", Reply(LIST, content_type="application/json", etag='"v1"'))
    body = SOURCE.format(url=url, detail=origin.url("/d/{id}"))
    text = (
        f'[storage]\nurl = "sqlite:///{tmp / "agg.db"}"\n'
        "[fetch]\nallow_private_networks = true\nper_host_delay = 0\nmax_retries = 0\n"
        f'[schedule]\nlease = "{lease}"\njitter = 0\nbackoff_base = "1m"\n' + body
    )
    path = tmp / "aggregator.toml"
    path.write_text(text, encoding="utf-8")
    return config.load(path)


async def fetch(settings: Settings, clock: FakeClock) -> tuple[dict[str, Entry], SourceState]:
    (outcome,) = await commands.fetch_all(settings, settings.source_records(), clock=clock)
    assert outcome.status in (FetchStatus.OK, FetchStatus.NOT_MODIFIED), outcome.error
    store = open_store(settings.storage.url, clock.now())
    try:
        entries = store.list_entries(Selection(source_ids=("api",), limit=10))
        state = store.get_state("api")
        assert state is not None
        return {e.key: e for e in entries}, state
    finally:
        store.close()


async def test_a_failed_detail_is_recorded_and_retried_until_it_arrives(
    origin: Origin, clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A detail that fails keeps the entry's summary, counts on the source with its error and a
    WARNING; once its retry is due the list is fetched again in full (no If-None-Match) and the
    entry gets its full text; the source's count goes back to 0."""
    origin.route("/d/1", detail(1))
    origin.route("/d/2", Sequence_(Reply("down", status=500), detail(2)))
    settings = settings_for(tmp_path, origin)
    with caplog.at_level(logging.WARNING, logger="aggregator"):
        entries, state = await fetch(settings, clock)
    assert entries["1"].content == "<p>full text 1</p>"
    assert entries["2"].content == "<p>summary two</p>"
    assert state.details_missing == 1
    assert state.detail_error == f"{origin.url('/d/2')}: HTTP 500 Internal Server Error"
    assert (
        state.detail_retry_at is not None
        and (state.detail_retry_at - clock.now()).total_seconds() == 60
    )
    assert "event=detail_failed key=2 attempt=1" in caplog.text
    (row,) = report.source_rows(open_store(settings.storage.url, clock.now()))
    assert row.cells(clock.now())[-1] == f"1 entry without its detail: {state.detail_error}"

    clock.advance(61)  # the retry is due; the list itself has not changed
    entries, state = await fetch(settings, clock)
    assert origin.hits("/list")[-1].headers.get("if-none-match") is None
    assert entries["2"].content == "<p>full text 2</p>"
    assert (state.details_missing, state.detail_error, state.detail_retry_at) == (0, None, None)
    assert len(origin.hits("/d/1")) == 1 and len(origin.hits("/d/2")) == 2

    clock.advance(31 * 60)
    await fetch(settings, clock)
    assert origin.hits("/list")[-1].headers.get("if-none-match") == '"v1"'  # nothing to retry


async def test_detail_retries_back_off_and_stop_after_the_set_attempts(
    origin: Origin, clock: FakeClock, tmp_path: Path
) -> None:
    """A detail that always fails is tried at growing intervals, `detail_attempts` (5) times in all;
    then the entry keeps its summary and the source still shows it as missing its detail."""
    origin.route("/d/1", detail(1))
    origin.route("/d/2", Reply("down", status=503))
    settings = settings_for(tmp_path, origin)
    gaps = []
    _, state = await fetch(settings, clock)
    while state.detail_retry_at is not None:
        gaps.append((state.detail_retry_at - clock.now()).total_seconds())
        clock.set(state.detail_retry_at)
        _, state = await fetch(settings, clock)
    assert gaps == [60, 240, 960, 3840]
    assert len(origin.hits("/d/2")) == 5 and state.details_missing == 1
    clock.advance(2 * 3600)
    entries, state = await fetch(settings, clock)
    assert len(origin.hits("/d/2")) == 5 and entries["2"].content == "<p>summary two</p>"


async def test_a_hanging_detail_host_cannot_hold_the_source_past_its_lease(
    origin: Origin, clock: FakeClock, tmp_path: Path
) -> None:
    """A detail host that never answers is cut off at the source's enrichment budget (half of its
    budget of 90% of the lease): the source is stored with what it has, the detail retried later."""
    release = threading.Event()

    def hang(request: Request) -> Reply:
        release.wait(10)
        return detail(2)

    origin.route("/d/1", detail(1))
    origin.route("/d/2", hang)
    settings = settings_for(tmp_path, origin, lease="2s")
    try:
        entries, state = await fetch(settings, clock)
    finally:
        release.set()
    assert (
        entries["1"].content == "<p>full text 1</p>"
        and entries["2"].content == "<p>summary two</p>"
    )
    assert state.last_status == "ok" and state.details_missing == 1
    assert state.detail_error == "detail not fetched within the source's enrichment budget (0.9 s)"
