"""``aggregator check``, ``fetch`` and ``sources``: the config's sources, fetched or shown.

Owns: validating the config (and with ``--source``, a dry run of one source: every entry the
document holds, marked new, changed, stored or dropped, storing nothing), fetching every source
once whatever its schedule, and the sources table (the status page's rows), as tables or JSON.
Does not own: the pipeline (``pipeline/``), the rows' wording (``http/report.py``) or the tables'
layout (``output.py``). The fetcher, the pipeline and the store are imported inside the functions
that use them, so ``aggregator check`` without ``--source`` stays quick.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..clock import Clock, SystemClock
from ..config.settings import Settings
from ..errors import UsageError
from ..http import report
from ..http.report import SourceRow
from ..models import Entry, FetchOutcome, FetchStatus, Source, SourceState
from . import output
from .common import load_settings

if TYPE_CHECKING:
    from ..pipeline.update import Processed
    from ..store import KnownEntry, Store


# --- check ---------------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    settings, path = load_settings(args)
    if not args.source:
        if args.json:
            output.print_json({"config": str(path), "ok": True, "sources": len(settings.sources)})
        else:
            output.console.print(f"{path}: ok, {len(settings.sources)} sources", highlight=False)
        return 0
    if not args.json:
        output.console.print(f"{path}: ok, {len(settings.sources)} sources", highlight=False)
    result = asyncio.run(dry_run_result(settings, args.source, output.console, quiet=args.json))
    if args.json:
        output.print_json(
            {
                "config": str(path),
                "ok": True,
                "sources": len(settings.sources),
                "dry_run": result.as_json(),
            }
        )
    return result.code


@dataclass(frozen=True)
class DryRun:
    """What ``check --source`` found: the outcome and every entry the document holds, each
    marked new, changed, stored (already in the store as it is) or dropped."""

    processed: Processed
    rows: tuple[tuple[str, Entry], ...]  # (mark, entry) for every parsed entry kept
    code: int

    def as_json(self) -> dict[str, object]:
        o = self.processed.outcome
        counts = {
            mark: sum(m == mark for m, _ in self.rows) for mark in ("new", "changed", "stored")
        }
        entries = [
            {
                "mark": mark,
                "key": e.key,
                "title": e.title,
                "link": e.link,
                "published": e.published.isoformat() if e.published else None,
                "category_path": list(e.category_path),
                "categories": list(e.categories),
                "merged": e.merge_reason,
                "why": list(e.explanation),
            }
            for mark, e in self.rows
        ]
        entries += [
            {"mark": "dropped", "key": d.key, "title": d.title, "link": d.link, "why": [d.reason]}
            for d in self.processed.dropped
        ]
        return {
            "source": o.source_id,
            "outcome": o.status.value,
            "error": o.error,
            **counts,
            "dropped": len(self.processed.dropped),
            "entries": entries,
        }


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
    settings: Settings,
    source_id: str,
    console: Console,
    clock: Clock | None = None,
    quiet: bool = False,
) -> DryRun:
    """Fetch one source and print (unless ``quiet``) every entry it holds and what would be
    stored, storing nothing (the source rows are not synced either: only the schema is created
    when the database is new)."""
    from ..fetch import Fetcher
    from ..pipeline.update import Pipeline
    from ..runtime.owners import owner_id
    from ..store import open_store

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
            pipeline = Pipeline(
                settings, cast("Store", view), fetcher.fetch, clock, owner=owner_id(), processes=1
            )
            processed = await pipeline.dry_run(source, state)
    finally:
        store.close()
    result = DryRun(
        processed,
        tuple((_mark(e, view.remembered), e) for e in processed.new),
        0 if processed.outcome.error is None else 1,
    )
    if not quiet:
        _print_dry_run(result, console)
    return result


def _mark(e: Entry, known: dict[str, KnownEntry]) -> str:
    if e.key not in known:
        return "new"
    stored = known[e.key]
    same = (stored.content_hash, stored.canonical_url) == (e.content_hash, e.canonical_url)
    return "stored" if same else "changed"


def _dry_state(stored: SourceState | None, source: Source) -> SourceState:
    """The state to fetch with: the stored one without validators (so the body comes back), or a
    fresh one for a source the store has not seen or whose URL the config changed."""
    if stored is None or stored.configured_url != source.url:
        return SourceState(source_id=source.id, url=source.url, configured_url=source.url)
    return replace(stored, etag=None, last_modified=None, body_hash=None)


def _print_dry_run(result: DryRun, console: Console) -> None:
    processed = result.processed
    o = processed.outcome
    console.print(
        f"{o.source_id}: {o.status.value}" + (f" — {o.error}" if o.error else ""), highlight=False
    )
    if processed.state.last_error and o.undated:
        console.print(
            f"{o.undated} undated — {processed.state.last_error}", highlight=False, markup=False
        )
    console.print(output.dry_run_table(_dry_rows(result), console.width))
    for line in explain_lines(processed):
        console.print(line, highlight=False, markup=False)
    marks = [m for m, _ in result.rows]
    stored = marks.count("stored")
    console.print(
        f"would store: {marks.count('new')} new, {marks.count('changed')} changed, "
        f"{len(processed.dropped)} dropped (nothing was stored)"
        + (f"; {stored} already stored as they are" if stored else ""),
        highlight=False,
    )


def _dry_rows(result: DryRun) -> list[tuple[str, ...]]:
    """One row of ``output.DRY_COLUMNS`` per entry of the document, the dropped ones last."""
    rows: list[tuple[str, ...]] = [
        (
            mark,
            e.title,
            output.fmt_time(e.published),
            " / ".join(e.category_path) + _cats(e.categories),
            e.link or "",
            e.key,
        )
        for mark, e in result.rows
    ]
    rows += [
        ("dropped", d.title, "-", d.reason, d.link or "", d.key) for d in result.processed.dropped
    ]
    return rows


def _cats(categories: Sequence[str]) -> str:
    return f" [{', '.join(categories)}]" if categories else ""


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


# --- fetch ---------------------------------------------------------------------------------------


def cmd_fetch(args: argparse.Namespace) -> int:
    settings, _ = load_settings(args)
    wanted = set(args.source or [])
    sources = [s for s in settings.source_records() if not wanted or s.id in wanted]
    unknown = wanted - {s.id for s in sources}
    if unknown:
        raise UsageError(f"unknown source(s): {', '.join(sorted(unknown))}")
    err = output.err_console
    with Progress(
        TextColumn("fetching"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err,
        transient=False,
        disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task("", total=len(sources))

        def step(outcome: FetchOutcome) -> None:
            progress.update(task, advance=1, description=outcome.source_id)

        outcomes = asyncio.run(fetch_all(settings, sources, step))
    _print_outcomes(outcomes, args.json)
    return 1 if any(_failed(o) for o in outcomes) else 0


def _failed(o: FetchOutcome) -> bool:
    return o.status in (FetchStatus.ERROR, FetchStatus.GONE)


def _print_outcomes(outcomes: Sequence[FetchOutcome], as_json: bool) -> None:
    failed = sum(_failed(o) for o in outcomes)
    added = sum(o.added for o in outcomes)
    if as_json:
        ordered = sorted(outcomes, key=lambda o: o.source_id)
        output.print_json(
            {
                "sources": len(outcomes),
                "added": added,
                "failed": failed,
                "outcomes": [outcome_json(o) for o in ordered],
            }
        )
    else:
        output.console.print(output.outcome_table(outcomes))
        output.console.print(
            f"{len(outcomes)} sources, {added} new entries, {failed} failed", highlight=False
        )


def outcome_json(o: FetchOutcome) -> dict[str, object]:
    return {
        "source": o.source_id,
        "outcome": o.status.value,
        "added": o.added,
        "updated": o.updated,
        "merged": o.merged,
        "bytes": o.bytes,
        "seconds": round(o.elapsed, 3),
        "error": o.error,
        "next_fetch": o.next_fetch_at.isoformat() if o.next_fetch_at else None,
    }


async def fetch_all(
    settings: Settings,
    sources: Sequence[Source],
    progress: Callable[[FetchOutcome], None] | None = None,
    clock: Clock | None = None,
) -> list[FetchOutcome]:
    """Fetch the given sources once now, whatever their schedule, and store the results."""
    from ..fetch import Fetcher
    from ..pipeline.update import Pipeline
    from ..runtime.daemon import open_configured_store
    from ..runtime.owners import owner_id

    clock = clock or SystemClock()
    store = open_configured_store(settings, clock)
    try:
        states = {s.source_id: s for s in store.list_states()}
        claims = [(src, states[src.id]) for src in sources if src.id in states]
        async with Fetcher(settings.fetch, clock) as fetcher:
            # worker processes pay off from a few documents on; they start in about a second
            processes = 1 if len(claims) < 4 else None
            pipeline = Pipeline(
                settings, store, fetcher.fetch, clock, owner=owner_id(), processes=processes
            )
            try:
                return await pipeline.run_batch(claims, progress)
            finally:
                pipeline.close()
    finally:
        store.close()


# --- sources -------------------------------------------------------------------------------------


def cmd_sources(args: argparse.Namespace) -> int:
    settings, _ = load_settings(args)
    clock = SystemClock()
    rows = source_rows(settings, clock)
    if args.json:
        output.print_json([row.as_json() for row in rows])
    else:
        output.console.print(output.sources_table(rows, clock.now(), output.console.width))
    return 0


def source_rows(settings: Settings, clock: Clock) -> list[SourceRow]:
    """One row per configured source, the same rows as the status page (``report.source_rows``)."""
    from ..runtime.daemon import open_configured_store

    store = open_configured_store(settings, clock)
    try:
        return report.source_rows(store)
    finally:
        store.close()
