"""The health of each source as rows: one definition shared by the status page and the CLI table.

Owns: which columns an operator sees about a source (status, last success, last error, failures,
next fetch, entries, share of 304s, URL; entries missing their detail where there is no error) and
how each is worded (and the same row as JSON for ``--json``), so ``aggregator sources`` and the
status page at ``/`` cannot drift apart; a source whose errors were reset reads ``reset``. Does not own: reading the config, HTML or terminal output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ..content.urls import redact, redact_text
from ..models import SourceState
from ..store import ReadStore

COLUMNS: tuple[str, ...] = (
    "id",
    "status",
    "last ok",
    "fails",
    "next fetch",
    "entries",
    "304s",
    "url",
    "last error",
)
TIME_COLUMNS = frozenset({"last ok", "next fetch"})
FAILING = frozenset({"error", "gone", "offline"})
STATUS_WORDS = {"not_modified": "unchanged"}  # a 304 or the same bytes: healthy, nothing new
RESET = "reset"  # a failing source whose errors an operator reset: due now, not failing


@dataclass(frozen=True)
class SourceRow:
    """What the operator sees about one source; ``cells`` words it for a table."""

    source_id: str
    status: str
    last_success: datetime | None
    failures: int
    next_fetch: datetime | None
    entries: int
    fetches: int
    not_modified: int
    url: str
    moved_from: str | None
    last_error: str | None
    details_missing: int = 0  # entries whose detail (full text) fetch failed
    detail_error: str | None = None

    @property
    def failing(self) -> bool:
        return self.status in FAILING

    @property
    def share_304(self) -> str:
        return f"{100 * self.not_modified / self.fetches:.0f}%" if self.fetches else "-"

    def next_fetch_text(self, now: datetime) -> str:
        return "never" if self.status == "gone" else ago(self.next_fetch, now)

    @property
    def url_text(self) -> str:
        return self.url + (f" (moved from {self.moved_from})" if self.moved_from else "")

    def cells(self, now: datetime) -> tuple[str, ...]:
        """The row's text, one string per entry of ``COLUMNS``; times relative to ``now``."""
        return (
            self.source_id,
            self.status,
            ago(self.last_success, now),
            str(self.failures),
            self.next_fetch_text(now),
            str(self.entries),
            self.share_304,
            self.url_text,
            self.last_error or self.details_text,
        )

    @property
    def details_text(self) -> str:
        """How many entries miss their detail, and why the last one does; "" when none."""
        if not self.details_missing:
            return ""
        n = self.details_missing
        what = "1 entry without its detail" if n == 1 else f"{n} entries without their detail"
        return f"{what}: {self.detail_error}" if self.detail_error else what

    def as_json(self) -> dict[str, object]:
        """The row for ``aggregator sources --json``: absolute ISO times, numbers as numbers."""

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.source_id,
            "status": self.status,
            "failing": self.failing,
            "last_success": iso(self.last_success),
            "failures": self.failures,
            "next_fetch": None if self.status == "gone" else iso(self.next_fetch),
            "entries": self.entries,
            "fetches": self.fetches,
            "not_modified": self.not_modified,
            "url": self.url,
            "moved_from": self.moved_from,
            "last_error": self.last_error,
            "details_missing": self.details_missing,
            "detail_error": self.detail_error,
        }

    def times(self) -> dict[str, datetime | None]:
        """The absolute times behind the relative ones in ``cells``, by column."""
        return {"last ok": self.last_success, "next fetch": self.next_fetch}


def status_word(state: SourceState) -> str:
    """The status shown: the last fetch's outcome, ``reset`` once errors were reset (the store
    clears the failures and the error but keeps the last outcome until the next fetch)."""
    last = state.last_status or "new"
    if last in FAILING and state.consecutive_failures == 0 and state.last_error is None:
        return RESET
    return STATUS_WORDS.get(last, last)


def row_of(state: SourceState, entries: int) -> SourceRow:
    return SourceRow(
        source_id=state.source_id,
        status=status_word(state),
        last_success=state.last_success_at,
        failures=state.consecutive_failures,
        next_fetch=state.next_fetch_at,
        entries=entries,
        fetches=state.fetch_count,
        not_modified=state.not_modified_count,
        url=redact(state.url),  # credentials in a source URL are never shown
        moved_from=redact(state.configured_url)
        if state.configured_url not in ("", state.url)
        else None,
        last_error=redact_text(state.last_error) if state.last_error else None,
        details_missing=state.details_missing,
        detail_error=redact_text(state.detail_error) if state.detail_error else None,
    )


def source_rows(store: ReadStore, only: Sequence[str] | None = None) -> list[SourceRow]:
    """One row per enabled source in the store (optionally only the given ids), sorted by id."""
    counts = store.entry_counts()
    wanted = set(only) if only is not None else None
    return [
        row_of(st, counts.get(st.source_id, 0))
        for st in store.list_states()
        if wanted is None or st.source_id in wanted
    ]


def ago(when: datetime | None, now: datetime) -> str:
    """``"5m ago"``, ``"in 2h"``, ``"now"`` or ``"-"``: short enough for an 80-column table."""
    if when is None:
        return "-"
    seconds = (when - now).total_seconds()
    size = abs(seconds)
    if size < 60:
        return "now"
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if size >= length:
            amount = f"{int(size // length)}{unit}"
            break
    return f"in {amount}" if seconds > 0 else f"{amount} ago"


def fmt_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"
