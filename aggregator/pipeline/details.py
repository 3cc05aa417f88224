"""Failed detail fetches: pure decisions about which entries to retry and what the source shows.

A detail is an item's full text from another document (a Qutoutiao article's detail JSON or page,
the ``detail`` of ``json`` and ``html`` sources). When it cannot be had, the entry is stored with
what the list gave (its summary) and the key is remembered with the error; later fetches of the
source try again once its retry time has come (timing.detail_retry_at: growing delays, a bounded
number of attempts), even when the list itself did not change. The source shows how many entries
miss their detail and the last error.

Owns: these decisions, as functions of the stored attempts, this fetch's items and ``now``. Does
not own: the fetches (the adapters' ``enrich``), storing (store/details.py) or the clock.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from .. import schedule
from ..config.settings import ScheduleSettings
from ..models import DetailAttempt, Item, SourceState


@dataclass(frozen=True)
class DetailChanges:
    """What one fetch changes in a source's detail attempts."""

    failed: tuple[DetailAttempt, ...] = ()  # new or repeated failures, with their next retry
    cleared: tuple[str, ...] = ()  # keys whose detail arrived, or that left the document

    def __bool__(self) -> bool:
        return bool(self.failed or self.cleared)


def due(attempts: Mapping[str, DetailAttempt], present: Collection[str], now: datetime) -> set[str]:
    """Keys of the document whose detail should be fetched again now."""
    return {
        key
        for key, a in attempts.items()
        if key in present and a.retry_at is not None and a.retry_at <= now
    }


def retry_due(state: SourceState, now: datetime) -> bool:
    """Whether some entry of the source waits for a detail retry now: then the list is fetched
    and processed even when it did not change."""
    return state.detail_retry_at is not None and state.detail_retry_at <= now


def changes(
    attempts: Mapping[str, DetailAttempt],
    present: Collection[str],
    enriched: Sequence[tuple[str, Item]],
    now: datetime,
    settings: ScheduleSettings,
) -> DetailChanges:
    """The failures of this fetch's enriched items (counted on from earlier attempts) and the keys
    to forget: those whose detail arrived and those no longer in the document."""
    failed: list[DetailAttempt] = []
    cleared = [key for key in attempts if key not in present]
    for key, item in enriched:
        if item.detail_error is None:
            if key in attempts:
                cleared.append(key)
            continue
        count = attempts[key].attempts + 1 if key in attempts else 1
        when = schedule.detail_retry_at(now=now, attempts=count, settings=settings)
        failed.append(DetailAttempt(key, count, item.detail_error, when))
    return DetailChanges(tuple(failed), tuple(cleared))


def summarized(
    state: SourceState, attempts: Mapping[str, DetailAttempt], change: DetailChanges
) -> SourceState:
    """The source's state with its detail summary after ``change``: entries missing their
    detail, the last error and the next retry time."""
    rows = {k: a for k, a in attempts.items() if k not in change.cleared}
    rows.update((a.key, a) for a in change.failed)
    if not rows:
        return replace(state, details_missing=0, detail_error=None, detail_retry_at=None)
    error = change.failed[-1].error if change.failed else state.detail_error
    retries = [a.retry_at for a in rows.values() if a.retry_at is not None]
    return replace(
        state,
        details_missing=len(rows),
        detail_error=error,
        detail_retry_at=min(retries) if retries else None,
    )
