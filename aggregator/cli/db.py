"""The ``aggregator db`` commands: upgrade the schema, copy a store to another database, prune.

Owns: the three command bodies and what they print (the arguments are in ``parser.py``). The SQL
lives in ``store/`` (``store/admin.py`` for upgrade and copy, ``SQLStore.prune``); the retention
limits come from the ``[retention]`` settings.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from ..clock import Clock, SystemClock
from ..config.settings import RetentionSettings, Settings
from ..errors import AggregatorError, StoreError
from . import output
from .common import load_settings


def cmd_db(args: argparse.Namespace) -> int:
    settings, _ = load_settings(args)
    return run(args, settings, output.console, output.err_console)


def run(args: argparse.Namespace, settings: Settings, out: Console, err: Console) -> int:
    """Run one ``db`` subcommand; return the exit code."""
    clock = SystemClock()
    if args.db_command == "upgrade":
        before, after = upgrade(args.url or settings.storage.url, clock)
        applied = (
            f"applied {after - before} migration(s)" if after > before else "already up to date"
        )
        out.print(f"schema version {after} ({applied})", highlight=False, markup=False)
        return 0
    if args.db_command == "copy":
        return _copy_command(args, settings, clock, out, err)
    if args.db_command == "prune":
        return _prune_command(settings, clock, out)
    raise AggregatorError("say what to do: aggregator db upgrade | copy --to URL | prune")


# --- upgrade -------------------------------------------------------------------------------------


def upgrade(url: str, clock: Clock) -> tuple[int, int]:
    """Apply pending migrations at ``url``; return (version before, version after)."""
    from ..store import admin

    return admin.upgrade(url, clock.now())


# --- copy ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CopyReport:
    rows: dict[str, int]  # table -> rows copied (equal on both sides, checked)


def copy_store(
    source_url: str,
    target_url: str,
    clock: Clock,
    force: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> CopyReport:
    """Copy every table from ``source_url`` to ``target_url`` with ids kept, then check that both
    hold the same rows. Both are migrated to the latest schema first. A target with rows is
    refused unless ``force`` (then its rows are replaced)."""
    from ..store import SQLStore

    if source_url == target_url:
        raise AggregatorError("the source and the target are the same database")
    source = SQLStore(source_url, clock.now())
    target = SQLStore(target_url, clock.now())
    try:
        found = target.table_counts()
        if any(rows for rows, _ in found.values()) and not force:
            listed = ", ".join(f"{name}={rows}" for name, (rows, _) in found.items() if rows)
            raise AggregatorError(
                f"the target is not empty ({listed}); use --force to replace its rows"
            )
        if force:
            target.clear_tables()
        source.copy_into(target, progress or (lambda *_: None))
        before, after = source.table_counts(), target.table_counts()
    finally:
        source.close()
        target.close()
    if before != after:
        raise StoreError(
            f"copy check failed: source has {before}, target has {after} (rows, top id)"
        )
    return CopyReport({name: rows for name, (rows, _) in after.items()})


def _copy_command(
    args: argparse.Namespace, settings: Settings, clock: Clock, out: Console, err: Console
) -> int:
    source = args.source or settings.storage.url
    with Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def step(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(table, total=total)
            bar.update(tasks[table], completed=done)

        report = copy_store(source, args.to, clock, args.force, step)
    counted = ", ".join(f"{name} {rows}" for name, rows in report.rows.items())
    out.print(f"copied and verified: {counted}", highlight=False, markup=False)
    if not args.source:
        out.print(
            "next: set [storage] url to the target, then start the processes",
            highlight=False,
            markup=False,
        )
    return 0


# --- prune ---------------------------------------------------------------------------------------


def prune_now(url: str, retention: RetentionSettings, clock: Clock) -> tuple[int, int, bool]:
    """Apply the retention limits once; return (entries removed, sources touched, skipped)."""
    from ..store import SQLStore

    store = SQLStore(url, clock.now())
    try:
        result = store.prune(clock.now(), retention.max_entries_per_source, retention.max_age)
    finally:
        store.close()
    return result.removed, result.sources, result.skipped


def _prune_command(settings: Settings, clock: Clock, out: Console) -> int:
    retention = settings.retention
    if not retention.max_entries_per_source and retention.max_age is None:
        out.print("no [retention] limits are set: nothing to prune", highlight=False, markup=False)
        return 0
    removed, touched, skipped = prune_now(settings.storage.url, retention, clock)
    if skipped:
        out.print(
            "another process is pruning this database right now; nothing done",
            highlight=False,
            markup=False,
        )
        return 0
    out.print(
        f"removed {removed} entries from {touched} sources (tombstones keep them out)",
        highlight=False,
        markup=False,
    )
    return 0
