"""``aggregator export hexo|opml``, ``import opml FILE`` and ``build --out DIR``.

Owns: opening the store for these one-shot commands, running the ``publish/`` functions against
it, writing the config file back after an import (validated first) and what is printed. Does not
own: OPML, Hexo or feed syntax (``publish/``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..clock import Clock, SystemClock
from ..config.loading import write_config
from ..config.settings import Settings
from ..config.types import parse_category
from ..errors import AggregatorError, UsageError
from ..models import Selection
from ..publish.build import BuildReport, build_site
from ..publish.feeds import FeedService
from ..publish.hexo import ExportStats, PostSource, export_posts
from ..publish.opml import ImportReport, Skipped, add_to_config, export_opml, read_opml
from ..runtime.daemon import open_configured_store
from . import output
from .common import load_settings

# --- export --------------------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    if args.export_kind == "opml":
        return _export_opml(args)
    if args.export_kind != "hexo":
        raise AggregatorError(
            "say what to export: aggregator export hexo --out DIR, or export opml"
        )
    settings, _ = load_settings(args)
    category = parse_category(args.category) if args.category else None
    stats = export_hexo(settings, Path(args.out), args.source, category, args.limit)
    output.console.print(
        f"{stats.written} written, {stats.unchanged} unchanged, in {args.out}", highlight=False
    )
    return 0


def export_hexo(
    settings: Settings,
    out: Path,
    source_ids: Sequence[str] | None,
    category: tuple[str, ...] | None,
    limit: int,
) -> ExportStats:
    """Write the selected entries as Hexo posts under ``out`` (merged duplicates once, unless
    sources are named)."""
    store = open_configured_store(settings, SystemClock())
    try:
        sel = Selection(
            source_ids=tuple(source_ids) if source_ids else None,
            category_prefix=category,
            merge_duplicates=not source_ids,
            limit=limit,
        )
        states = store.list_states(include_disabled=True)
        unknown = (
            set(source_ids or ()) - {s.id for s in settings.sources} - {s.source_id for s in states}
        )
        if unknown:  # configured, or stored before it was removed from the config
            raise UsageError(f"unknown source(s): {', '.join(sorted(unknown))}")
        entries = store.list_entries(sel)
        feed_titles = {s.source_id: s.title for s in states}
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


def _export_opml(args: argparse.Namespace) -> int:
    settings, _ = load_settings(args)
    body = opml_of(settings)
    if args.out:
        Path(args.out).write_bytes(body)
        output.err_console.print(
            f"{len(settings.source_records())} sources written to {args.out}", highlight=False
        )
    else:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    return 0


def opml_of(settings: Settings, clock: Clock | None = None) -> bytes:
    """The OPML document ``GET /opml`` serves, for the sources of ``settings``."""
    store = open_configured_store(settings, clock or SystemClock())
    try:
        sources = {s.id: s for s in settings.source_records()}
        return export_opml(settings, sources, store.list_states(include_disabled=True))
    finally:
        store.close()


# --- import --------------------------------------------------------------------------------------


def cmd_import(args: argparse.Namespace) -> int:
    if args.import_kind != "opml":
        raise AggregatorError("say what to import: aggregator import opml FILE")
    settings, path = load_settings(args)
    report = import_opml(settings, path, Path(args.file), dry_run=args.dry_run)
    print_line = output.console.print
    for source_id, url in report.added:
        print_line(f"added    {source_id}  {url}", highlight=False, markup=False)
    for url, why in report.skipped:
        print_line(f"skipped  {url}  ({why})", highlight=False, markup=False)
    for note in report.notes:
        print_line(f"note     {note}", highlight=False, markup=False)
    verb = "would add" if args.dry_run else "added"
    where = "" if args.dry_run or not report.added else f" to {path}"
    print_line(
        f"{verb} {len(report.added)} sources{where}, skipped {len(report.skipped)}", highlight=False
    )
    return 0


def import_opml(
    settings: Settings, config_path: Path, opml_file: Path, dry_run: bool = False
) -> ImportReport:
    """Add the feeds of ``opml_file`` to the config file as [[sources]] (unless ``dry_run``)."""
    try:
        data = opml_file.read_bytes()
        text = config_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AggregatorError(f"cannot read {exc.filename}: {exc.strerror}") from None
    skipped: list[Skipped] = []
    feeds = read_opml(data, skipped)
    report = add_to_config(text, feeds, settings.server.public_base, skipped)
    if report.added and not dry_run:
        write_config(config_path, report.text)
    return report


# --- build ---------------------------------------------------------------------------------------


def cmd_build(args: argparse.Namespace) -> int:
    settings, _ = load_settings(args)
    report = build(settings, Path(args.out), paging=not args.no_paging)
    for feed_id in report.skipped:
        output.err_console.print(
            f"skipped feed {feed_id!r}: its name cannot be a file name", highlight=False
        )
    output.console.print(
        f"{len(report.written)} files written, {len(report.unchanged)} unchanged, in {args.out}",
        highlight=False,
    )
    return 0


def build(
    settings: Settings, out: Path, paging: bool = True, clock: Clock | None = None
) -> BuildReport:
    """Write every feed under ``out`` with the bytes the server would send."""
    clock = clock or SystemClock()
    store = open_configured_store(settings, clock)
    try:
        sources = {s.id: s for s in settings.source_records()}
        feeds = FeedService(settings, store, lambda: sources, clock)
        return build_site(feeds, out, paging=paging)
    finally:
        store.close()
