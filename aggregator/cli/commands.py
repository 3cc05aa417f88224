"""What the one-shot CLI commands do, apart from parsing arguments and printing.

Owns: fetching every source once, dry runs of one source (every entry the document holds, new,
changed or already stored), the sources table rows, exports and ``explain`` (as lines or JSON).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

from ..clock import Clock, SystemClock
from ..config.settings import Settings
from ..errors import UsageError
from ..fetch.client import Fetcher
from ..http import report
from ..http.report import SourceRow
from ..models import Entry, FetchOutcome, Selection, Source, SourceState
from ..pipeline import dedupe
from ..pipeline.update import Pipeline, Processed
from ..publish.hexo import ExportStats, PostSource, export_posts
from ..runtime.daemon import open_configured_store
from ..runtime.owners import owner_id
from ..store import KnownEntry, Store, open_store


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
            # worker processes pay off from a few documents on; they start in about a second
            processes = 1 if len(claims) < 4 else None
            pipeline = Pipeline(settings, store, fetcher.fetch, clock, owner=owner_id(),
                                processes=processes)
            try:
                return await pipeline.run_batch(claims, progress)
            finally:
                pipeline.close()
    finally:
        store.close()


@dataclass(frozen=True)
class DryRun:
    """What ``check --source`` found: the outcome and every entry the document holds, each
    marked new, changed, stored (already in the store as it is) or dropped."""

    processed: Processed
    rows: tuple[tuple[str, Entry], ...]  # (mark, entry) for every parsed entry kept
    code: int

    def as_json(self) -> dict[str, object]:
        o = self.processed.outcome
        counts = {mark: sum(m == mark for m, _ in self.rows) for mark in ("new", "changed", "stored")}
        entries = [{"mark": mark, "key": e.key, "title": e.title, "link": e.link,
                    "published": e.published.isoformat() if e.published else None,
                    "category_path": list(e.category_path), "categories": list(e.categories),
                    "merged": e.merge_reason, "why": list(e.explanation)} for mark, e in self.rows]
        entries += [{"mark": "dropped", "key": d.key, "title": d.title, "link": d.link,
                     "why": [d.reason]} for d in self.processed.dropped]
        return {"source": o.source_id, "outcome": o.status.value, "error": o.error,
                **counts, "dropped": len(self.processed.dropped), "entries": entries}


class _Remembering:
    """The store as a dry run sees it: it remembers what the store knows of each parsed key and
    answers that it knows none, so every entry of the document is processed and shown."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.remembered: dict[str, KnownEntry] = {}

    def known(self, source_id: str, keys: Iterable[str]) -> dict[str, KnownEntry]:
        self.remembered.update(self.store.known(source_id, keys))
        return {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def dry_run(
    settings: Settings, source_id: str, console: Console, clock: Clock | None = None
) -> int:
    """Fetch one source and print every entry it holds and what would be stored, storing
    nothing; 0 when the fetch worked, else 1."""
    return (await dry_run_result(settings, source_id, console, clock)).code


async def dry_run_result(
    settings: Settings, source_id: str, console: Console, clock: Clock | None = None,
    quiet: bool = False,
) -> DryRun:
    """Fetch one source and print (unless ``quiet``) every entry it holds and what would be
    stored, storing nothing (the source rows are not synced either: only the schema is created
    when the database is new)."""
    clock = clock or SystemClock()
    sources = {s.id: s for s in settings.source_records()}
    if source_id not in sources:
        raise UsageError(f"unknown source {source_id!r}")
    source = sources[source_id]
    store = open_store(settings.storage.url, clock.now(), settings.storage)
    view = _Remembering(store)
    try:
        state = _dry_state(store.get_state(source_id), source)
        async with Fetcher(settings.fetch, clock) as fetcher:
            pipeline = Pipeline(settings, cast(Store, view), fetcher.fetch, clock, owner=owner_id(),
                                processes=1)
            processed = await pipeline.dry_run(source, state)
    finally:
        store.close()
    result = DryRun(processed, tuple((_mark(e, view.remembered), e) for e in processed.new),
                    0 if processed.outcome.error is None else 1)
    if not quiet:
        _print_dry_run(result, console)
    return result


def _mark(e: Entry, known: dict[str, KnownEntry]) -> str:
    if e.key not in known:
        return "new"
    stored = known[e.key]
    same = (stored.content_hash, stored.canonical_url) == (e.content_hash, e.canonical_url)
    return "stored" if same else "changed"


def _print_dry_run(result: DryRun, console: Console) -> None:
    processed = result.processed
    o = processed.outcome
    console.print(f"{o.source_id}: {o.status.value}" + (f" — {o.error}" if o.error else ""), highlight=False)
    if processed.state.last_error and o.undated:
        console.print(f"{o.undated} undated — {processed.state.last_error}", highlight=False,
                      markup=False)
    console.print(_dry_table(result, console.width))
    for line in explain_lines(processed):
        console.print(line, highlight=False, markup=False)
    marks = [m for m, _ in result.rows]
    stored = marks.count("stored")
    console.print(f"would store: {marks.count('new')} new, {marks.count('changed')} changed, "
                  f"{len(processed.dropped)} dropped (nothing was stored)"
                  + (f"; {stored} already stored as they are" if stored else ""), highlight=False)


def explain_lines(processed: Processed) -> list[str]:
    """Why each entry of a dry run would get its categories, be merged or be dropped."""
    lines: list[str] = []
    for e in (*processed.new, *processed.changed):
        why = list(e.explanation) + ([f"merged: {e.merge_reason}"] if e.merge_reason else [])
        if why:
            lines.append(f"{e.key}:")
            lines += [f"  - {w}" for w in why]
    for d in processed.dropped:
        lines += [f"{d.key}:", f"  - dropped: {d.reason}"]
    return lines


def _dry_state(stored: SourceState | None, source: Source) -> SourceState:
    """The state to fetch with: the stored one without validators (so the body comes back), or a
    fresh one for a source the store has not seen or whose URL the config changed."""
    if stored is None or stored.configured_url != source.url:
        return SourceState(source_id=source.id, url=source.url, configured_url=source.url)
    return replace(stored, etag=None, last_modified=None, body_hash=None)


def _dry_table(result: DryRun, width: int) -> Table:
    """Every entry of the document, one line each, fitted to ``width``: the title gets the most
    room; key, categories and link are cut with an ellipsis."""
    rows: list[tuple[str, ...]] = [
        (mark, e.title, _fmt(e.published), " / ".join(e.category_path) + _cats(e.categories),
         e.link or "", e.key) for mark, e in result.rows]
    rows += [("dropped", d.title, "-", d.reason, d.link or "", d.key) for d in result.processed.dropped]
    names = ("", "title", "published", "categories", "link", "key")
    natural = [max([cell_len(n)] + [cell_len(r[i]) for r in rows]) for i, n in enumerate(names)]
    left = max(40, width - natural[0] - natural[2] - (len(names) - 1))
    shares = {1: 0.45, 3: 0.15, 4: 0.25, 5: 0.15}
    widths = {0: natural[0], 2: natural[2]}
    widths |= {i: max(6, min(natural[i], int(left * share))) for i, share in shares.items()}
    table = Table(box=box.SIMPLE_HEAD, padding=0, pad_edge=False, show_edge=False)
    for index, name in enumerate(names):
        table.add_column(name, no_wrap=True, overflow="ellipsis", width=widths[index])
    for row in rows:
        table.add_row(*row)
    return table


def _cats(categories: Sequence[str]) -> str:
    return f" [{', '.join(categories)}]" if categories else ""


def _fmt(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def source_rows(settings: Settings, clock: Clock) -> list[SourceRow]:
    """One row per configured source, the same rows as the status page (``report.source_rows``)."""
    store = open_configured_store(settings, clock)
    try:
        return report.source_rows(store)
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
        feed_titles = {s.source_id: s.title for s in store.list_states(include_disabled=True)}
    finally:
        store.close()
    sources = {
        s.id: PostSource(
            site_name=s.site_name,
            title=s.title or feed_titles.get(s.id),
            placeholder_image=s.hexo_placeholder_image,
        )
        for s in settings.source_records()
    }
    return export_posts(entries, sources, out, settings.publish.title)


def explain(
    settings: Settings, ref: str, console: Console, clock: Clock | None = None,
    as_json: Callable[[object], None] | None = None,
) -> int:
    """Why an entry has its categories, which entry it was merged into, or which rule dropped it.
    ``ref`` is an entry id, a key, a link or a canonical URL. With ``as_json``, the same as one
    JSON value passed to it. 1 when nothing matches."""
    store = open_store(settings.storage.url, (clock or SystemClock()).now(), settings.storage)
    try:
        ids = store.find_entries(ref)
        drops = store.find_drops(ref)
        if as_json is not None:
            as_json({"ref": ref, "entries": [_entry_json(store, i, settings) for i in ids],
                     "dropped": [{"source": d.source_id, "key": d.key, "title": d.title,
                                  "link": d.link, "reason": d.reason} for d in drops]})
            return 0 if ids or drops else 1
        if not ids and not drops:
            console.print(f"no stored or dropped entry matches {ref!r}", highlight=False, markup=False)
            return 1
        for entry_id in ids:
            for line in _explain_entry(store, entry_id) + _nearest_lines(store, entry_id, settings):
                console.print(line, highlight=False, markup=False)
        for d in drops:
            console.print(f"dropped: {d.title!r} from {d.source_id} (key {d.key})", highlight=False, markup=False)
            console.print(f"  - {d.reason}", highlight=False, markup=False)
        return 0
    finally:
        store.close()


def _entry_json(store: Store, entry_id: int, settings: Settings) -> dict[str, object]:
    e = store.get_entry(entry_id)
    if e is None:
        return {"id": entry_id}
    return {
        "id": e.id, "title": e.title, "source": e.source_id, "key": e.key, "link": e.link,
        "category_path": list(e.category_path), "categories": list(e.categories),
        "why": list(e.explanation), "duplicate_of": e.duplicate_of, "merge_reason": e.merge_reason,
        "copies": store.duplicates_of(entry_id),
        "nearest": [line.strip().removeprefix("- ") for line in _nearest_lines(store, entry_id, settings)],
    }


def _explain_entry(store: Store, entry_id: int) -> list[str]:
    e = store.get_entry(entry_id)
    if e is None:
        return []
    lines = [f"entry {e.id}: {e.title!r} from {e.source_id} (key {e.key})"]
    lines.append(f"  category path: {' / '.join(e.category_path) or '-'}")
    lines.append(f"  categories: {', '.join(e.categories) or '-'}")
    lines += [f"  - {step}" for step in e.explanation]
    if e.duplicate_of is not None:
        primary = store.get_entry(e.duplicate_of)
        where = f"{primary.title!r} from {primary.source_id}" if primary else "a removed entry"
        lines.append(f"  merged into entry {e.duplicate_of} ({where}): {e.merge_reason}")
    copies = store.duplicates_of(entry_id)
    if copies:
        lines.append(f"  primary of a cluster; copies: {', '.join(map(str, copies))}")
    return lines


def _nearest_lines(store: Store, entry_id: int, settings: Settings) -> list[str]:
    """For an entry that was not merged: the closest entries of other sources, with scores."""
    e = store.get_entry(entry_id)
    if e is None or e.duplicate_of is not None:
        return []
    keys = store.entry_band_keys(entry_id)
    rows = store.duplicate_candidates_many(e.source_id, [(e.canonical_url, e.content_hash, keys)])[0]
    others = [r for r in rows if r.duplicate_of != entry_id]  # its own copies are listed above
    near = dedupe.nearest(replace(e.identity, entry_id=entry_id), others, settings.dedupe)
    if not near:
        return ["  not merged: no entry of another source shares a URL, content or band key"]
    return ["  not merged; nearest entries of other sources:"] + [f"  - {n.describe()}" for n in near]
