"""Prometheus metrics of one running daemon, in a registry of its own (never the global one).

Owns: the metric names and what they count. Per-source gauges (last success time, consecutive
failures, next fetch time, entry count) are read from the store at scrape time, so they are right
whichever process did the fetching; counters (fetches by outcome, bytes, entries added, updated
and merged) and the fetch-time histogram come from the dispatcher's outcomes; the render-time
histogram times ``FeedService.render``. Does not own: HTTP (web/routes.py serves ``/metrics``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from functools import wraps
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .models import FetchOutcome, FetchStatus
from .publish.feeds import FeedService
from .store import Store

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
RENDER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class Metrics:
    def __init__(self, store: Store) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.fetches = Counter("aggregator_fetches", "Fetches by outcome.", ["outcome"], registry=r)
        for status in FetchStatus:
            self.fetches.labels(outcome=status.value)
        self.fetch_bytes = Counter("aggregator_fetch_bytes", "Bytes of fetched bodies.", registry=r)
        self.added = Counter("aggregator_entries_added", "New entries stored.", registry=r)
        self.updated = Counter("aggregator_entries_updated", "Changed entries stored.", registry=r)
        self.merged = Counter("aggregator_entries_merged", "Entries merged as duplicates.", registry=r)
        self.fetch_seconds = Histogram(
            "aggregator_fetch_seconds", "Time to fetch and process one source.",
            buckets=FETCH_BUCKETS, registry=r,
        )
        self.render_seconds = Histogram(
            "aggregator_render_seconds", "Time to render one feed document (cache hits included).",
            ["format"], buckets=RENDER_BUCKETS, registry=r,
        )
        r.register(SourceCollector(store))

    def observe(self, outcomes: Sequence[FetchOutcome]) -> None:
        """Count one dispatcher batch (the Dispatcher's ``on_outcomes`` callback)."""
        for o in outcomes:
            self.fetches.labels(outcome=o.status.value).inc()
            self.fetch_bytes.inc(o.bytes)
            self.added.inc(o.added)
            self.updated.inc(o.updated)
            self.merged.inc(o.merged)
            self.fetch_seconds.observe(o.elapsed)

    def instrument(self, feeds: FeedService) -> None:
        """Time every ``feeds.render`` call from now on."""
        render = feeds.render

        @wraps(render)
        def timed(spec: Any, fmt: str, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return render(spec, fmt, *args, **kwargs)
            finally:
                self.render_seconds.labels(format=fmt).observe(time.perf_counter() - started)

        feeds.render = timed  # type: ignore[method-assign]  # the instance attribute shadows the method

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class SourceCollector(Collector):
    """Per-source gauges computed from the store when scraped."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterable[Metric]:
        success = GaugeMetricFamily(
            "aggregator_source_last_success_timestamp_seconds",
            "Unix time of the last successful fetch (0: never).", labels=["source"])
        failures = GaugeMetricFamily(
            "aggregator_source_consecutive_failures", "Failed fetches in a row.", labels=["source"])
        next_fetch = GaugeMetricFamily(
            "aggregator_source_next_fetch_timestamp_seconds",
            "Unix time of the next fetch (0: never, e.g. after 410 Gone).", labels=["source"])
        entries = GaugeMetricFamily(
            "aggregator_source_entries", "Entries stored for the source.", labels=["source"])
        counts = self.store.entry_counts()
        for st in self.store.list_states():
            sid = [st.source_id]
            success.add_metric(sid, st.last_success_at.timestamp() if st.last_success_at else 0)
            failures.add_metric(sid, st.consecutive_failures)
            due = None if st.last_status == "gone" else st.next_fetch_at
            next_fetch.add_metric(sid, due.timestamp() if due else 0)
            entries.add_metric(sid, counts.get(st.source_id, 0))
        return [success, failures, next_fetch, entries]

