"""When to fetch a source next, and when a permanent redirect moves it: pure decisions about time.

Owns: the next fetch time after a fetch (configured interval and the publisher's hints on success,
backoff on failure, jitter, RSS skipHours/skipDays) and the redirect streak that moves a source's
effective URL. Does not own: reading the clock (``now`` is passed in), randomness (``rng`` is passed
in), or storing anything.

Success (OK or NOT_MODIFIED): the next fetch is the latest of the configured interval, RSS ``<ttl>``,
``Cache-Control: max-age``, ``Expires`` and ``Retry-After``, clamped to
[``min_interval``, ``max_interval``], moved by up to ``jitter`` (a fraction) either way, then moved
out of the hours and days the publisher asked us to skip (UTC, as the RSS spec says).

Error: ``backoff_base * 2 ** (failures - 1)`` with the same jitter, capped at ``max_backoff``; it
never gives up. A Retry-After pushes it further, though never beyond the larger of ``max_backoff``
and ``max_interval``, so a broken or hostile header cannot park a source for years.

GONE: None, never again (until the operator resets the source).

A failed detail fetch (an entry's full text from another document) is retried at later fetches of
its source, after ``backoff_base * 4 ** (attempts - 1)`` (capped at ``max_backoff``), at most
``detail_attempts`` times in all (``detail_retry_at``).
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta

from .clock import http_date
from .config.settings import ScheduleSettings
from .models import FeedHints, FetchResult, FetchStatus

_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def next_fetch_at(
    *,
    now: datetime,
    interval: float,
    status: FetchStatus,
    failures: int,
    result: FetchResult | None,
    hints: FeedHints | None,
    settings: ScheduleSettings,
    rng: random.Random,
) -> datetime | None:
    """The time of the next fetch of a source after one that came to ``status``; None for GONE."""
    if status is FetchStatus.GONE:
        return None
    if status is FetchStatus.ERROR:
        return now + timedelta(seconds=_error_delay(now, failures, result, settings, rng))
    delay = _success_delay(now, interval, result, hints, settings)
    delay = _clamp(_jittered(delay, settings.jitter, rng), settings)
    return _skip(now + timedelta(seconds=delay), hints, settings.jitter * delay, rng)


def detail_retry_at(*, now: datetime, attempts: int, settings: ScheduleSettings) -> datetime | None:
    """When to try an entry's failed detail fetch again after ``attempts`` failures; None when
    they are used up."""
    if attempts >= settings.detail_attempts:
        return None
    delay = min(settings.backoff_base * 4 ** (attempts - 1), settings.max_backoff)
    return now + timedelta(seconds=delay)


def track_redirect(
    *, current_url: str, result: FetchResult, target: str | None, streak: int, needed: int
) -> tuple[str, str | None, int]:
    """(effective URL, remembered redirect target, streak) after one fetch.

    A successful fetch whose every hop was a permanent redirect to the same target as last time
    lengthens the streak; at ``needed`` the source moves there. A successful fetch without one
    resets the streak. A failed fetch says nothing either way and leaves everything as it was.
    """
    if result.error is not None:
        return current_url, target, streak
    moved_to = result.permanent_redirect
    if moved_to is None or moved_to == current_url:
        return current_url, None, 0
    streak = streak + 1 if moved_to == target else 1
    if streak >= needed:
        return moved_to, None, 0
    return current_url, moved_to, streak


def _error_delay(
    now: datetime,
    failures: int,
    result: FetchResult | None,
    settings: ScheduleSettings,
    rng: random.Random,
) -> float:
    exponent = min(max(failures, 1) - 1, 60)
    backoff = min(settings.backoff_base * 2.0**exponent, settings.max_backoff)
    delay = min(_jittered(backoff, settings.jitter, rng), settings.max_backoff)
    ceiling = max(settings.max_backoff, settings.max_interval)
    return max(delay, min(_retry_after(now, result) or 0.0, ceiling))


def _success_delay(
    now: datetime,
    interval: float,
    result: FetchResult | None,
    hints: FeedHints | None,
    settings: ScheduleSettings,
) -> float:
    candidates: list[float | None] = [interval]
    if hints is not None and hints.ttl_minutes:
        candidates.append(hints.ttl_minutes * 60.0)
    if result is not None:
        candidates += [_max_age(result), _expires(now, result), _retry_after(now, result)]
    return _clamp(max(c for c in candidates if c is not None), settings)


def _clamp(delay: float, settings: ScheduleSettings) -> float:
    return min(max(delay, settings.min_interval), settings.max_interval)


def _jittered(delay: float, jitter: float, rng: random.Random) -> float:
    return delay * (1.0 + rng.uniform(-jitter, jitter))


def _max_age(result: FetchResult) -> float | None:
    header = result.headers.get("cache-control", "")
    if "no-cache" in header.lower() or "no-store" in header.lower():
        return None
    match = _MAX_AGE.search(header)
    return float(match.group(1)) if match else None


def _expires(now: datetime, result: FetchResult) -> float | None:
    expires = http_date(result.headers.get("expires"))
    if expires is None:
        return None
    # Measured against the origin's own Date when it sent one, so its clock skew cancels out.
    base = http_date(result.headers.get("date")) or now
    return (expires - base).total_seconds()


def _retry_after(now: datetime, result: FetchResult | None) -> float | None:
    if result is None:
        return None
    if result.retry_after is not None:
        return (result.retry_after - now).total_seconds()
    value = result.headers.get("retry-after", "").strip()
    if value.isdigit():
        return float(value)
    when = http_date(value)
    return (when - now).total_seconds() if when else None


def _skip(when: datetime, hints: FeedHints | None, spread: float, rng: random.Random) -> datetime:
    """The first moment at or after ``when`` outside the skipped hours and days (UTC)."""
    if hints is None or not (hints.skip_hours or hints.skip_days):
        return when
    hours, days = {h % 24 for h in hints.skip_hours}, {d.strip().lower() for d in hints.skip_days}
    if hours >= set(range(24)) or days >= set(_DAYS):
        return when  # a publisher that skips everything is ignored rather than obeyed forever
    when = when.astimezone(UTC)
    start = when
    while when.hour in hours or _DAYS[when.weekday()] in days:
        if _DAYS[when.weekday()] in days:
            when = (when + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        else:
            when = (when + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    if when == start:
        return when
    # Sources released at the same hour boundary would otherwise all be fetched at once.
    return when + timedelta(seconds=rng.uniform(0.0, min(spread, 3599.0)))
