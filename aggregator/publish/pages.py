"""Walking the stored history one page at a time (RFC 5005 paged feeds).

Owns: choosing the entries of one page of a feed — the store's cheap selection, then the in-Python
test (operator rules and URL filters) — and where the next page starts. Pages follow the store's
order (``sort_at`` then id, newest first; or, unsorted, arrival: the latest write first and one
write's entries in document order), so a cursor names a fixed place in the history: walking the
``next`` links visits every selected entry once, even while new entries arrive at the top.
Does not own: SQL, rendering or URLs.

A filter that matches rarely could make one request read the whole history; a page therefore
reads at most ``scan`` stored entries and, if it stops there, links to where it stopped (the next
page may then have fewer entries than the limit, or none).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from ..models import Entry, Selection
from .query import Cursor, position

ListEntries = Callable[[Selection], list[Entry]]
SCAN = 5000  # stored entries one request may read at most
BATCH = 200  # entries asked of the store at once when filtering in Python


@dataclass(frozen=True)
class Page:
    entries: tuple[Entry, ...]  # in the store's order
    next_before: Cursor | None  # cursor of the next page; None on the last page


def collect(
    list_entries: ListEntries,
    selection: Selection,
    limit: int,
    before: Cursor | None = None,
    admit: Callable[[Entry], bool] | None = None,
    scan: int = SCAN,
    by_arrival: bool = False,
) -> Page:
    """Up to ``limit`` selected entries after ``before`` (exclusive), and the next page's cursor;
    in arrival order with ``by_arrival`` (``before`` then is an arrival cursor)."""
    selection = replace(selection, by_arrival=by_arrival)
    if admit is None:  # everything the store selects is shown: one query of limit + 1 rows
        rows = list_entries(replace(selection, limit=limit + 1, before=before))
        more = len(rows) > limit
        return Page(tuple(rows[:limit]), position(rows[limit - 1], by_arrival) if more else None)
    return _filtered(list_entries, selection, limit, before, admit, scan)


def _filtered(
    list_entries: ListEntries,
    selection: Selection,
    limit: int,
    before: Cursor | None,
    admit: Callable[[Entry], bool],
    scan: int,
) -> Page:
    found: list[Entry] = []
    arrival = selection.by_arrival
    cursor, read = before, 0
    batch = min(max(limit + 1, BATCH), scan)
    while True:
        rows = list_entries(replace(selection, limit=batch, before=cursor))
        for entry in rows:
            read += 1
            if admit(entry):
                found.append(entry)
                if len(found) > limit:  # one beyond the page: there is a next page
                    return Page(tuple(found[:limit]), position(found[limit - 1], arrival))
            cursor = position(entry, arrival)
            if read >= scan:
                return Page(tuple(found), cursor)
        if len(rows) < batch:
            return Page(tuple(found), None)
