"""``aggregator explain REF``: why an entry has its categories, which entry it was merged into,
or which rule dropped it.

Owns: finding the entries and drops that match a reference (an entry id, a key, a link or a
canonical URL) and telling their story as lines or as one JSON value, with the nearest entries of
other sources for one that was not merged. Does not own: the decisions themselves (``pipeline/``);
it reads what they recorded.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace

from rich.console import Console

from ..clock import Clock, SystemClock
from ..config.settings import Settings
from ..dedupe import matching as dedupe
from ..store import Store, open_store
from . import output
from .common import load_settings


def cmd_explain(args: argparse.Namespace) -> int:
    settings, _ = load_settings(args)
    return explain(
        settings, args.entry, output.console, as_json=output.print_json if args.json else None
    )


def explain(
    settings: Settings,
    ref: str,
    console: Console,
    clock: Clock | None = None,
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
            as_json(
                {
                    "ref": ref,
                    "entries": [_entry_json(store, i, settings) for i in ids],
                    "dropped": [
                        {
                            "source": d.source_id,
                            "key": d.key,
                            "title": d.title,
                            "link": d.link,
                            "reason": d.reason,
                        }
                        for d in drops
                    ],
                }
            )
            return 0 if ids or drops else 1
        if not ids and not drops:
            console.print(
                f"no stored or dropped entry matches {ref!r}", highlight=False, markup=False
            )
            return 1
        for entry_id in ids:
            for line in _explain_entry(store, entry_id) + _nearest_lines(store, entry_id, settings):
                console.print(line, highlight=False, markup=False)
        for d in drops:
            console.print(
                f"dropped: {d.title!r} from {d.source_id} (key {d.key})",
                highlight=False,
                markup=False,
            )
            console.print(f"  - {d.reason}", highlight=False, markup=False)
        return 0
    finally:
        store.close()


def _entry_json(store: Store, entry_id: int, settings: Settings) -> dict[str, object]:
    e = store.get_entry(entry_id)
    if e is None:
        return {"id": entry_id}
    return {
        "id": e.id,
        "title": e.title,
        "source": e.source_id,
        "key": e.key,
        "link": e.link,
        "category_path": list(e.category_path),
        "categories": list(e.categories),
        "why": list(e.explanation),
        "duplicate_of": e.duplicate_of,
        "merge_reason": e.merge_reason,
        "copies": store.duplicates_of(entry_id),
        "nearest": [
            line.strip().removeprefix("- ") for line in _nearest_lines(store, entry_id, settings)
        ],
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
    rows = store.duplicate_candidates_many(e.source_id, [(e.canonical_url, e.content_hash, keys)])[
        0
    ]
    others = [r for r in rows if r.duplicate_of != entry_id]  # its own copies are listed above
    near = dedupe.nearest(replace(e.identity, entry_id=entry_id), others, settings.dedupe)
    if not near:
        return ["  not merged: no entry of another source shares a URL, content or band key"]
    return ["  not merged; nearest entries of other sources:"] + [
        f"  - {n.describe()}" for n in near
    ]
