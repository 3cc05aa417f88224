"""Prometheus metrics of one running process, in a registry of its own (never the global one).

Owns: the metric names and what they count. Per-source gauges (last success time, consecutive
failures, next fetch time, entry count) are read from the store at scrape time, so they are right
whichever process did the fetching, and carry no process labels (every process reads the same
rows; workers leave them to the roles that serve HTTP, so scraping many workers does not repeat
the query; a scrape while the database is away counts a database error and shows the rest). Everything else is this process's own and carries the labels ``role`` (all, worker, web)
and ``process`` (host:pid, the owner name of its leases), so the series of every process of a
deployment can be summed: counters (fetches by outcome, bytes, entries added, updated and merged)
and the fetch-time histogram come from the dispatcher's outcomes; the render-time histogram times
``FeedService.render``; the dispatch-lag gauge is set by the scheduler before each tick; database
errors, lost leases and lease takeovers are counted by whichever code sees them through the
module functions ``db_error``, ``lease_lost`` and ``lease_takeover`` (process-wide counts, no
registry needed), to which the store's own counts of lost leases and takeovers are added at scrape.
Does not own: HTTP (routes.py serves ``/metrics``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from functools import wraps
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..logs import kv
from ..models import FetchOutcome, FetchStatus
from ..publish.feeds import FeedService
from ..runtime.owners import owner_id
from ..store import ReadStore, Store, WorkStore

log = logging.getLogger("aggregator.metrics")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
RENDER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

# --- process-wide event counts: callable from any module or thread, no Metrics object needed ---

_EVENTS = {"db_errors": 0.0, "lease_lost": 0.0, "lease_takeovers": 0.0}
_EVENT_HELP = {
    "db_errors": "Database operations that failed (refused, timed out, broken connection).",
    "lease_lost": "Fetch results dropped because this process's lease was no longer current.",
    "lease_takeovers": "Sources claimed after another process's lease on them expired.",
}
_EVENTS_LOCK = threading.Lock()


def _count(name: str, n: float) -> None:
    with _EVENTS_LOCK:
        _EVENTS[name] += n


def db_error(n: int = 1) -> None:
    """Count ``n`` failed database operations (``aggregator_db_errors_total``)."""
    _count("db_errors", n)


def lease_lost(n: int = 1) -> None:
    """Count ``n`` writes refused because the claim was no longer current
    (``aggregator_lease_lost_total``)."""
    _count("lease_lost", n)


def lease_takeover(n: int = 1) -> None:
    """Count ``n`` sources claimed from an expired lease of another owner
    (``aggregator_lease_takeovers_total``)."""
    _count("lease_takeovers", n)


def events() -> dict[str, float]:
    """The process-wide counts so far (name -> count)."""
    with _EVENTS_LOCK:
        return dict(_EVENTS)


class Metrics:
    def __init__(
        self,
        store: Store,
        role: str = "all",
        process: str | None = None,
        per_source: bool = True,
    ) -> None:
        """``role`` and ``process`` (default: the owner id, host:pid:start) label every series of this process (not
        the per-source gauges, which read the shared database; ``per_source=False`` leaves
        them out)."""
        process = process or owner_id()
        self.registry = CollectorRegistry()
        r = CollectorRegistry(
            auto_describe=True
        )  # this process's own series, labelled on the way out
        self.fetches = Counter("aggregator_fetches", "Fetches by outcome.", ["outcome"], registry=r)
        for status in FetchStatus:
            self.fetches.labels(outcome=status.value)
        self.fetch_bytes = Counter("aggregator_fetch_bytes", "Bytes of fetched bodies.", registry=r)
        self.added = Counter("aggregator_entries_added", "New entries stored.", registry=r)
        self.updated = Counter("aggregator_entries_updated", "Changed entries stored.", registry=r)
        self.merged = Counter(
            "aggregator_entries_merged", "Entries merged as duplicates.", registry=r
        )
        self.fetch_seconds = Histogram(
            "aggregator_fetch_seconds",
            "Time to fetch and process one source.",
            buckets=FETCH_BUCKETS,
            registry=r,
        )
        self.render_seconds = Histogram(
            "aggregator_render_seconds",
            "Time to render one feed document (cache hits included).",
            ["format"],
            buckets=RENDER_BUCKETS,
            registry=r,
        )
        self.dispatch_lag = Gauge(
            "aggregator_dispatch_lag_seconds",
            "Age of the oldest due source at the last dispatcher tick (0: none was due).",
            registry=r,
        )
        r.register(EventCollector(store))
        self.registry.register(Labelled(r, {"role": role, "process": process}))
        if per_source:
            self.registry.register(SourceCollector(store))

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


class Labelled(Collector):
    """Every series of ``inner`` with ``labels`` added (Prometheus client has no constant
    labels)."""

    def __init__(self, inner: CollectorRegistry, labels: Mapping[str, str]) -> None:
        self.inner = inner
        self.labels = dict(labels)

    def collect(self) -> Iterable[Metric]:
        for family in self.inner.collect():
            out = Metric(family.name, family.documentation, family.type, family.unit)
            out.samples = [s._replace(labels={**self.labels, **s.labels}) for s in family.samples]
            yield out


class EventCollector(Collector):
    """The process-wide event counts (``db_error``, ``lease_lost``, ``lease_takeover``), plus the
    lost leases and takeovers its store counted (the store does not import this module)."""

    def __init__(self, store: WorkStore | None = None) -> None:
        self.store = store

    def collect(self) -> Iterable[Metric]:
        counts = events()
        if self.store is not None:
            counts["lease_lost"] += getattr(self.store, "leases_lost", 0)
            counts["lease_takeovers"] += getattr(self.store, "lease_takeovers", 0)
        for name, value in counts.items():
            yield CounterMetricFamily(f"aggregator_{name}", _EVENT_HELP[name], value=value)


class SourceCollector(Collector):
    """Per-source gauges computed from the store when scraped."""

    def __init__(self, store: ReadStore) -> None:
        self.store = store

    def collect(self) -> Iterable[Metric]:
        success = GaugeMetricFamily(
            "aggregator_source_last_success_timestamp_seconds",
            "Unix time of the last successful fetch (0: never).",
            labels=["source"],
        )
        failures = GaugeMetricFamily(
            "aggregator_source_consecutive_failures", "Failed fetches in a row.", labels=["source"]
        )
        next_fetch = GaugeMetricFamily(
            "aggregator_source_next_fetch_timestamp_seconds",
            "Unix time of the next fetch (0: never, e.g. after 410 Gone).",
            labels=["source"],
        )
        entries = GaugeMetricFamily(
            "aggregator_source_entries", "Entries stored for the source.", labels=["source"]
        )
        try:
            counts, states = self.store.entry_counts(), self.store.list_states()
        except Exception as exc:  # noqa: BLE001  # database away: the process's own series still answer
            db_error()
            log.warning("%s", kv(event="metrics_without_sources", error=type(exc).__name__))
            return []
        for st in states:
            sid = [st.source_id]
            success.add_metric(sid, st.last_success_at.timestamp() if st.last_success_at else 0)
            failures.add_metric(sid, st.consecutive_failures)
            due = None if st.last_status == "gone" else st.next_fetch_at
            next_fetch.add_metric(sid, due.timestamp() if due else 0)
            entries.add_metric(sid, counts.get(st.source_id, 0))
        return [success, failures, next_fetch, entries]
