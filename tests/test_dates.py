"""Dates: RFC 822, RFC 3339 and Chinese forms parse to the right UTC instant, in feedparser too."""

from __future__ import annotations

from datetime import UTC, datetime

import feedparser
import pytest

from aggregator.sources.dates import install_date_handlers, parse_date


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sat, 15 Feb 2026 10:00:00 +0000", utc(2026, 2, 15, 10, 0)),
        ("Thu, 09 Dec 2021 18:07:00 GMT", utc(2021, 12, 9, 18, 7)),
        ("Thu, 09 Dec 2021 18:07:00 -0500", utc(2021, 12, 9, 23, 7)),
        ("09 Dec 21 18:07 +0100", utc(2021, 12, 9, 17, 7)),
        ("2021-12-09T18:07:00Z", utc(2021, 12, 9, 18, 7)),
        ("2021-12-09T18:07:00.250+05:30", utc(2021, 12, 9, 12, 37, 0, 250000)),
        ("2021-12-09T18:07:00+0800", utc(2021, 12, 9, 10, 7)),
    ],
)
def test_rfc_dates_with_zones(text: str, expected: datetime) -> None:
    """RFC 822 and RFC 3339 dates with a zone give that instant in UTC."""
    assert parse_date(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020/1/10 14:33:00", utc(2020, 1, 10, 6, 33)),
        ("2021-12-09 18:07", utc(2021, 12, 9, 10, 7)),
        ("2021-12-09 18:07:30", utc(2021, 12, 9, 10, 7, 30)),
        ("2021年12月9日 18:07", utc(2021, 12, 9, 10, 7)),
        ("2021年12月9日18时07分", utc(2021, 12, 9, 10, 7)),
        ("2021年12月9日 下午6:07", utc(2021, 12, 9, 10, 7)),
        ("２０２１年１２月９日　１８：０７", utc(2021, 12, 9, 10, 7)),
        ("2021-12-09", utc(2021, 12, 8, 16, 0)),
    ],
)
def test_chinese_forms_without_zone_are_china_time(text: str, expected: datetime) -> None:
    """Zone-less Chinese forms are read as UTC+8 (Asia/Shanghai) and returned in UTC."""
    assert parse_date(text) == expected


def test_chinese_form_with_explicit_zone_keeps_it() -> None:
    """An explicit zone after a Chinese-style date wins over the UTC+8 assumption."""
    assert parse_date("2020/1/10 14:33:00 +00:00") == utc(2020, 1, 10, 14, 33)


def test_unix_timestamps() -> None:
    """Ten-digit seconds and thirteen-digit milliseconds since the epoch are understood."""
    assert parse_date("1518478934") == utc(2018, 2, 12, 23, 42, 14)
    assert parse_date("1518478934000") == utc(2018, 2, 12, 23, 42, 14)


@pytest.mark.parametrize("text", ["", "nonsense", "2021-13-40 10:00", "2021/2/30", "yesterday"])
def test_garbage_gives_none(text: str) -> None:
    """Text that names no valid instant gives None, never an exception."""
    assert parse_date(text) is None


def test_results_are_always_aware_utc() -> None:
    """Every parsed value carries the UTC zone."""
    for text in ("2020/1/10 14:33:00", "Sat, 15 Feb 2026 10:00:00 +0000", "2021-12-09T18:07:00Z"):
        found = parse_date(text)
        assert found is not None and found.utcoffset() is not None and found.tzinfo == UTC


def rss_with_date(value: str) -> bytes:
    return (
        "<rss version='2.0'><channel><title>t</title><item><title>i</title>"
        f"<pubDate>{value}</pubDate></item></channel></rss>"
    ).encode()


def test_feedparser_reads_chinese_dates_after_install() -> None:
    """Once installed, feedparser reads 2020/1/10 14:33:00 as 10 January (not 1 November)."""
    install_date_handlers()
    install_date_handlers()  # idempotent
    entry = feedparser.parse(rss_with_date("2020/1/10 14:33:00")).entries[0]
    assert tuple(entry.published_parsed)[:6] == (2020, 1, 10, 6, 33, 0)
    entry = feedparser.parse(rss_with_date("2021年12月9日 18:07")).entries[0]
    assert tuple(entry.published_parsed)[:6] == (2021, 12, 9, 10, 7, 0)


def test_feedparser_keeps_its_own_reading_of_standard_dates() -> None:
    """Standard RSS dates still parse through feedparser after the handler is installed."""
    install_date_handlers()
    entry = feedparser.parse(rss_with_date("Sat, 15 Feb 2026 10:00:00 +0000")).entries[0]
    assert tuple(entry.published_parsed)[:6] == (2026, 2, 15, 10, 0, 0)
    entry = feedparser.parse(rss_with_date("2021-12-09T18:07:00")).entries[0]
    assert tuple(entry.published_parsed)[:6] == (2021, 12, 9, 18, 7, 0)
