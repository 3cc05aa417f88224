"""Scheduling: publisher hints, clamping, jitter, skipHours/skipDays, backoff, redirect streaks."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from aggregator.config.settings import ScheduleSettings
from aggregator.models import FeedHints, FetchResult, FetchStatus
from aggregator.schedule import next_fetch_at, track_redirect

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # a Monday, noon UTC
NO_JITTER = ScheduleSettings(jitter=0, min_interval=300, max_interval=86400)


def ok(headers: dict[str, str] | None = None, status_code: int = 200, **fields: Any) -> FetchResult:
    return FetchResult(
        url="http://example.com/feed", status_code=status_code, headers=headers or {}, **fields
    )


def delay(
    *,
    status: FetchStatus = FetchStatus.OK,
    interval: float = 1800,
    failures: int = 0,
    result: FetchResult | None = None,
    hints: FeedHints | None = None,
    settings: ScheduleSettings = NO_JITTER,
    seed: int = 1,
) -> float:
    """Seconds from NOW to the next fetch."""
    when = next_fetch_at(
        now=NOW,
        interval=interval,
        status=status,
        failures=failures,
        result=result,
        hints=hints,
        settings=settings,
        rng=random.Random(seed),
    )
    assert when is not None
    return (when - NOW).total_seconds()


# Success


def test_configured_interval_when_no_hints() -> None:
    """With no publisher hints, the next fetch is one configured interval away."""
    assert delay(interval=1800, result=ok()) == 1800


def test_not_modified_is_scheduled_like_success() -> None:
    """A 304 is scheduled by the interval and hints, like a success."""
    assert delay(status=FetchStatus.NOT_MODIFIED, result=ok(status_code=304)) == 1800


def test_rss_ttl_pushes_later() -> None:
    """An RSS ttl longer than the interval wins."""
    assert delay(hints=FeedHints(ttl_minutes=60)) == 3600


def test_shorter_hints_never_pull_earlier() -> None:
    """Hints shorter than the configured interval do not make fetching more frequent."""
    headers = {"cache-control": "max-age=60"}
    assert delay(result=ok(headers), hints=FeedHints(ttl_minutes=1)) == 1800


def test_cache_control_max_age() -> None:
    """Cache-Control max-age longer than the interval wins; no-cache makes it ignored."""
    assert delay(result=ok({"cache-control": "public, max-age=7200"})) == 7200
    assert delay(result=ok({"cache-control": "no-cache, max-age=7200"})) == 1800


def test_expires_is_measured_against_the_origin_date() -> None:
    """Expires counts from the origin's Date header, so origin clock skew cancels out."""
    origin_now = NOW - timedelta(hours=5)  # the origin's clock is five hours behind
    headers = {
        "date": format_datetime(origin_now, usegmt=True),
        "expires": format_datetime(origin_now + timedelta(hours=2), usegmt=True),
    }
    assert delay(result=ok(headers)) == 7200


def test_expires_without_date_counts_from_now() -> None:
    """Without a Date header, Expires counts from now; an invalid Expires is ignored."""
    headers = {"expires": format_datetime(NOW + timedelta(hours=3), usegmt=True)}
    assert delay(result=ok(headers)) == 10800
    assert delay(result=ok({"expires": "0"})) == 1800


def test_retry_after_seconds_and_date_on_success() -> None:
    """A Retry-After on a success, in seconds or as an HTTP date, pushes the next fetch later."""
    assert delay(result=ok({"retry-after": "5400"})) == 5400
    when = format_datetime(NOW + timedelta(hours=2), usegmt=True)
    assert delay(result=ok({"retry-after": when})) == 7200
    assert delay(result=ok(retry_after=NOW + timedelta(hours=4))) == 14400


def test_clamped_to_min_and_max_interval() -> None:
    """The result is clamped between min_interval and max_interval."""
    assert delay(interval=10) == 300
    assert delay(result=ok({"cache-control": "max-age=999999"})) == 86400


def test_jitter_stays_within_its_fraction_and_varies() -> None:
    """Jitter moves the time by at most the configured fraction and differs between draws."""
    settings = ScheduleSettings(jitter=0.1, min_interval=60, max_interval=86400)
    values = {delay(interval=3600, settings=settings, seed=seed) for seed in range(20)}
    assert all(3240 <= v <= 3960 for v in values) and len(values) > 10


def test_skip_hours_move_out_of_the_window() -> None:
    """A time inside skipHours (UTC) moves to the first hour that is not skipped."""
    hints = FeedHints(skip_hours=frozenset({12, 13, 14}))
    assert NOW + timedelta(seconds=delay(hints=hints)) == NOW.replace(hour=15)


def test_skip_days_move_to_the_next_allowed_day() -> None:
    """A time on a skipped day moves to midnight UTC of the next day that is not skipped."""
    hints = FeedHints(skip_days=frozenset({"Monday", "tuesday"}))
    assert NOW + timedelta(seconds=delay(hints=hints)) == datetime(2026, 1, 7, tzinfo=UTC)


def test_skip_window_release_is_spread_by_jitter() -> None:
    """With jitter, sources released from a skip window do not all start on the hour."""
    settings = ScheduleSettings(jitter=0.5, min_interval=60, max_interval=86400)
    hints = FeedHints(skip_hours=frozenset({12, 13}))
    values = {delay(hints=hints, settings=settings, seed=s) for s in range(10)}
    base = 2 * 3600  # 12:15..12:45 with this jitter, all inside the window: released at 14:00
    assert all(base <= v < base + 3600 for v in values) and len(values) > 5


def test_skipping_every_hour_is_ignored() -> None:
    """A publisher that skips all 24 hours is ignored instead of stopping fetches forever."""
    assert delay(hints=FeedHints(skip_hours=frozenset(range(24)))) == 1800


# Errors


@pytest.mark.parametrize(("failures", "expected"), [(1, 60), (2, 120), (3, 240), (5, 960)])
def test_error_backoff_doubles(failures: int, expected: float) -> None:
    """Consecutive failures back off exponentially from backoff_base."""
    settings = ScheduleSettings(jitter=0, backoff_base=60, max_backoff=86400)
    assert delay(status=FetchStatus.ERROR, failures=failures, settings=settings) == expected


def test_error_backoff_is_capped_and_never_gives_up() -> None:
    """After many failures (a week of them, say) the wait stays at max_backoff, never None."""
    settings = ScheduleSettings(jitter=0.1, backoff_base=60, max_backoff=86400)
    for failures in (20, 200, 10_000):
        assert (
            0.9 * 86400
            <= delay(status=FetchStatus.ERROR, failures=failures, settings=settings)
            <= 86400
        )


def test_error_backoff_honours_retry_after() -> None:
    """A Retry-After on a failed fetch is waited at least, beyond the backoff."""
    settings = ScheduleSettings(jitter=0, backoff_base=60)
    result = FetchResult(
        url="u", status_code=429, error="HTTP 429", retry_after=NOW + timedelta(hours=3)
    )
    assert delay(status=FetchStatus.ERROR, failures=1, result=result, settings=settings) == 10800


def test_absurd_retry_after_is_bounded() -> None:
    """A Retry-After years away is bounded by max_backoff/max_interval, so the source lives on."""
    settings = ScheduleSettings(jitter=0, max_backoff=86400, max_interval=86400)
    result = FetchResult(
        url="u", status_code=503, error="HTTP 503", retry_after=NOW + timedelta(days=900)
    )
    assert delay(status=FetchStatus.ERROR, failures=1, result=result, settings=settings) == 86400


def test_gone_means_never() -> None:
    """A GONE source gets no next fetch time."""
    when = next_fetch_at(
        now=NOW,
        interval=1800,
        status=FetchStatus.GONE,
        failures=0,
        result=None,
        hints=None,
        settings=NO_JITTER,
        rng=random.Random(1),
    )
    assert when is None


# Redirect streaks


def moved(target: str | None, *, error: str | None = None) -> FetchResult:
    return FetchResult(
        url=target or "http://old/", status_code=200, error=error, permanent_redirect=target
    )


def test_redirect_moves_after_needed_consecutive_fetches() -> None:
    """The same permanent target on `needed` consecutive fetches moves the URL there."""
    state: tuple[str, str | None, int] = ("http://old/", None, 0)
    for expected_streak in (1, 2):
        state = track_redirect(
            current_url=state[0],
            result=moved("http://new/"),
            target=state[1],
            streak=state[2],
            needed=3,
        )
        assert state == ("http://old/", "http://new/", expected_streak)
    state = track_redirect(
        current_url=state[0],
        result=moved("http://new/"),
        target=state[1],
        streak=state[2],
        needed=3,
    )
    assert state == ("http://new/", None, 0)


def test_redirect_streak_resets_on_a_fetch_without_it() -> None:
    """A successful fetch without the permanent redirect resets the streak."""
    state = track_redirect(
        current_url="http://old/", result=moved(None), target="http://new/", streak=2, needed=3
    )
    assert state == ("http://old/", None, 0)


def test_redirect_streak_restarts_on_a_different_target() -> None:
    """A different permanent target starts a new streak at one."""
    state = track_redirect(
        current_url="http://old/",
        result=moved("http://other/"),
        target="http://new/",
        streak=2,
        needed=3,
    )
    assert state == ("http://old/", "http://other/", 1)


def test_failed_fetch_leaves_the_streak_alone() -> None:
    """A failed fetch says nothing about redirects: the streak is kept as it was."""
    failed = FetchResult(url="http://old/", status_code=None, error="timed out")
    state = track_redirect(
        current_url="http://old/", result=failed, target="http://new/", streak=2, needed=3
    )
    assert state == ("http://old/", "http://new/", 2)
