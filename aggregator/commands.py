"""What the one-shot CLI commands do, apart from parsing arguments and printing.

Owns: fetching every source once, dry runs of one source, the sources table rows and exports.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Sequence

from rich.console import Console
from rich.table import Table

from .clock import Clock, SystemClock
from .config import Settings
from .daemon import open_configured_store, owner_id
from .errors import AggregatorError
from .fetch import Fetcher
from .models import FetchOutcome, Selection, Source
from .pipeline import Pipeline
from .publish.hexo import ExportStats, export_posts


async def fetch_all(
    settings: Settings,
    sources: Sequence[Source],
    progress: Callable[[FetchOutcome], None] | None = None,
    clock: Clock | None = None,
) -> list[FetchOutcome]:
    """Fetch the given sources once now, whatever their schedule, and store the results."""
    clock = clock or SystemClock()
    store = open_configured_store(settings, clock)
    try:
        states = {s.source_id: s for s in store.list_states()}
        claims = [(src, states[src.id]) for src in sources if src.id in states]
        async with Fetcher(settings.fetch, clock) as fetcher:
            pipeline = Pipeline(settings, store, fetcher.fetch, clock, owner=owner_id())
            return await pipeline.run_batch(claims, progress)
    finally:
        store.close()


async def dry_run(settings: Settings, source_id: str, console: Console) -> int:
    """Fetch one source and print what would be stored, storing nothing."""
    clock = SystemClock()
    sources = {s.id: s for s in settings.source_records()}
    if source_id not in sources:
        raise AggregatorError(f"unknown source {source_id!r}")
    store = open_configured_store(settings, clock)
    try:
        state = store.get_state(source_id)
        assert state is not None  # synced just above
        state = _without_validators(state)
        async with Fetcher(settings.fetch, clock) as fetcher:
            pipeline = Pipeline(settings, store, fetcher.fetch, clock, owner=owner_id())
            processed = await pipeline.dry_run(sources[source_id], state)
    finally:
        store.close()
    o = processed.outcome
    console.print(f"{source_id}: {o.status.value}" + (f" — {o.error}" if o.error else ""), highlight=False)
    table = Table("", "key", "title", "published", "categories", "link")
    for mark, group in (("new", processed.new), ("changed", processed.changed)):
        for e in group:
            table.add_row(mark, e.key[:40], e.title[:60], _fmt(e.published),
                          " / ".join(e.category_path) + _cats(e.categories), e.link or "")
    for e, why in processed.dropped:
        table.add_row("dropped", e.key[:40], e.title[:60], _fmt(e.published), "; ".join(why), e.link or "")
    console.print(table)
    return 0 if o.error is None else 1


def _without_validators(state: Any) -> Any:
    from dataclasses import replace

    return replace(state, etag=None, last_modified=None, body_hash=None)


def _cats(categories: Sequence[str]) -> str:
    return f" [{', '.join(categories)}]" if categories else ""


def _fmt(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def source_rows(settings: Settings, clock: Clock) -> list[dict[str, Any]]:
    """One row per configured source, the same columns as the status page."""
    store = open_configured_store(settings, clock)
    try:
        counts = store.entry_counts()
        rows = []
        for st in store.list_states():
            share = f"{100 * st.not_modified_count / st.fetch_count:.0f}%" if st.fetch_count else "-"
            rows.append({
                "id": st.source_id,
                "status": st.last_status or "new",
                "last success": _fmt(st.last_success_at),
                "failures": st.consecutive_failures,
                "next fetch": _fmt(st.next_fetch_at) if st.last_status != "gone" else "never (410)",
                "entries": counts.get(st.source_id, 0),
                "304s": share,
                "url": st.url + ("" if st.url == st.configured_url else f" (moved from {st.configured_url})"),
                "last error": (st.last_error or "")[:80],
            })
        return rows
    finally:
        store.close()


def export_hexo(
    settings: Settings,
    out: Path,
    source_ids: Sequence[str] | None,
    category: tuple[str, ...] | None,
    limit: int,
) -> ExportStats:
    clock = SystemClock()
    store = open_configured_store(settings, clock)
    try:
        sel = Selection(
            source_ids=tuple(source_ids) if source_ids else None,
            category_prefix=category,
            merge_duplicates=not source_ids,
            limit=limit,
        )
        entries = store.list_entries(sel)
    finally:
        store.close()
    names = {s.id: s.site_name or s.title or s.id for s in settings.source_records()}
    return export_posts(entries, names, out)
