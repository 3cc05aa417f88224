"""Dates as sources write them, turned into aware UTC datetimes.

Owns: ``parse_date`` for RFC 822 / RFC 1123 (RSS), RFC 3339 / ISO 8601 (Atom, JSON Feed), Unix
timestamps, and the forms Chinese sites write (``2020/1/10 14:33:00``, ``2021-12-09 18:07``,
``2021年12月9日 18:07``, full-width digits); and ``install_date_handlers``, which teaches feedparser
the forms it gets wrong (it reads ``2020/1/10 14:33:00`` as 2020-11-01). Does not own: which field
of a document holds a date (the adapters decide).

A date without a zone is taken to be China Standard Time (Asia/Shanghai, UTC+8, no daylight
saving). The RFCs that feeds follow require a zone, so zone-less dates come almost only from
Chinese sites and APIs (Qutoutiao among them), which write local time. The feedparser handler
claims only the Chinese-looking zone-less forms (slashes, 年月日, a space between date and time)
and Unix timestamps; other zone-less forms inside RSS/Atom keep feedparser's reading (UTC). An
RFC 822 date without a zone (or with ``-0000``) is read as UTC, as that RFC means.

One rule for absurd dates, wherever they come from (RSS, Atom, RDF ``dc:date``, JSON Feed, the
``json``, ``html`` and Qutoutiao adapters): **a date that cannot be represented (years 0, 1 or
9999 with an offset, overflowing timestamps), is before 1970-01-01 UTC, or is more than a day
after the fetch time, is treated as absent** (the entry is then dated by when it was first seen).
Relative dates (``relative_date``), as list pages write them, are read against the fetch time in
the source's zone: ``just now`` / ``刚刚``, ``N seconds|minutes|hours|days|weeks|months|years ago``
(``a``/``an`` for one; also ``mins``, ``hrs``, ``secs``) / ``N秒|分钟|小时|天|周|个月|年前``, and
``today|yesterday|今天|昨天|前天`` with an optional ``HH:MM`` (``at`` allowed). A month is 30 days,
a year 365. A small table of our own: ``dateparser`` reads these too, but measured 10-18 ms per
date on this project's fixtures (page items are parsed in worker processes under a CPU budget);
this takes microseconds.

Nothing here raises: ``plausible`` applies the rule, ``from_timestamp`` and ``from_struct`` build
instants that may be out of range, and ``parse_date`` applies the first two parts (it does not
know the fetch time; ``pipeline.workers.identify`` applies the third to every item it parses).
"""

from __future__ import annotations

import calendar
import re
import time
import unicodedata
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from email.utils import parsedate_tz

import feedparser

CHINA = timezone(timedelta(hours=8), "CST")

_NUMERIC = re.compile(
    r"""^(?P<y>\d{4})\s*[-/.年]\s*(?P<mo>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})\s*日?
    (?:(?P<sep>\s*T\s*|\s*)
       (?P<ampm>上午|下午|凌晨|晚上)?\s*
       (?P<h>\d{1,2})\s*[:时時点點]\s*(?P<mi>\d{1,2})
       (?:\s*[:分]\s*(?P<s>\d{1,2})(?:[.,](?P<frac>\d+))?\s*秒?|\s*分)?
    )?
    \s*(?P<tz>Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?$""",
    re.VERBOSE | re.IGNORECASE,
)
_AGO = re.compile(
    r"""^(?P<n>\d+|an?|one)\s*(?P<unit>sec(?:ond)?s?|min(?:ute)?s?|h(?:ou)?rs?|hours?|days?|weeks?
    |months?|years?)\s+ago$""",
    re.VERBOSE | re.IGNORECASE,
)
_AGO_ZH = re.compile(
    r"^(?P<n>\d+)\s*(?P<unit>秒|分钟|分|小时|个小时|天|日|周|星期|个月|月|年)\s*[之以]?前$"
)
_DAY = re.compile(
    r"^(?P<day>today|yesterday|今天|昨天|前天)\s*(?:at\s*)?(?:(?P<h>\d{1,2})\s*[:：]\s*(?P<mi>\d{2}))?$",
    re.IGNORECASE,
)
_NOW_WORDS = frozenset({"just now", "now", "刚刚", "刚才"})
_UNIT_SECONDS = {
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "mo": 30 * 86400,
    "y": 365 * 86400,
}
_ZH_UNITS = {
    "秒": "s",
    "分钟": "m",
    "分": "m",
    "小时": "h",
    "个小时": "h",
    "天": "d",
    "日": "d",
    "周": "w",
    "星期": "w",
    "个月": "mo",
    "月": "mo",
    "年": "y",
}
_DAYS_BACK = {"today": 0, "今天": 0, "yesterday": 1, "昨天": 1, "前天": 2}
_EPOCH = re.compile(r"^\d{10}(?:\d{3})?$")
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)  # dates before this are absent
FUTURE_SLACK = timedelta(days=1)  # dates further than this after the fetch time are absent
_installed = False


def plausible(when: datetime | None, now: datetime | None = None) -> datetime | None:
    """``when`` in UTC when an item may carry it, else None: not before 1970-01-01 and, when
    ``now`` (the fetch time) is given, no more than a day after it."""
    if when is None:
        return None
    try:
        when = when.astimezone(UTC)
    except (ValueError, OverflowError):  # 0001-01-01T00:00:00+01:00 is in year 0
        return None
    if when < EARLIEST or (now is not None and when > now + FUTURE_SLACK):
        return None
    return when


def from_timestamp(seconds: float) -> datetime | None:
    """Seconds since the epoch as a plausible UTC instant, else None (never raises)."""
    try:
        return plausible(datetime.fromtimestamp(seconds, UTC))
    except (ValueError, OverflowError, OSError):
        return None


def from_struct(parsed: time.struct_time) -> datetime | None:
    """A UTC ``struct_time`` (feedparser's ``*_parsed``) as a plausible instant, else None
    (feedparser reads ``0000-00-00`` as year -1 and ``9999-12-31T23:59:59-05:00`` as 10000)."""
    try:
        return from_timestamp(calendar.timegm(parsed))
    except (ValueError, OverflowError, TypeError):
        return None


def parse_date(text: str) -> datetime | None:
    """The instant ``text`` names, as an aware UTC datetime, or None when it names none or an
    implausible one (see the module docstring)."""
    return read_date(text)[1]


def read_date(text: str) -> tuple[bool, datetime | None]:
    """Whether ``text`` is written as a date, and the plausible instant it names (None when it
    names an impossible or implausible one such as ``0000-00-00``)."""
    if not text:
        return False, None
    cleaned = unicodedata.normalize("NFKC", text).strip()
    for parser in (_parse_numeric, _parse_epoch, _parse_rfc822):
        try:
            found = parser(cleaned)
        except (ValueError, OverflowError):  # a date's form with impossible numbers
            return True, None
        if found is not None:
            return True, plausible(found)
    return False, None


def relative_date(text: str, now: datetime, zone: tzinfo) -> datetime | None:
    """The instant a relative date (``3 days ago``, ``昨天 09:15``, ``3小时前``, ``刚刚``) names
    against ``now`` (the fetch time) in ``zone``, in UTC; None when ``text`` is no relative date."""
    cleaned = " ".join(unicodedata.normalize("NFKC", text).split())
    if cleaned.casefold() in _NOW_WORDS:
        return now.astimezone(UTC)
    seconds = _ago_seconds(cleaned)
    if seconds is not None:
        return (now - timedelta(seconds=seconds)).astimezone(UTC)
    match = _DAY.match(cleaned)
    if match is None:
        return None
    local = now.astimezone(zone) - timedelta(days=_DAYS_BACK[match["day"].lower()])
    if match["h"] is None:  # the same time of day, as near as the page says
        return local.astimezone(UTC)
    hour, minute = int(match["h"]), int(match["mi"])
    if hour > 23 or minute > 59:
        return None
    day = local.replace(hour=hour, minute=minute, second=0, microsecond=0, tzinfo=None)
    return day.replace(tzinfo=zone).astimezone(UTC)


def _ago_seconds(text: str) -> int | None:
    english = _AGO.match(text)
    if english:
        word = english["n"].lower()
        count = 1 if word in ("a", "an", "one") else int(word)
        unit = english["unit"].lower()
        key = "mo" if unit.startswith("mo") else "m" if unit.startswith("mi") else unit[0]
        return count * _UNIT_SECONDS[key]
    chinese = _AGO_ZH.match(text)
    if chinese:
        return int(chinese["n"]) * _UNIT_SECONDS[_ZH_UNITS[chinese["unit"]]]
    return None


def install_date_handlers() -> None:
    """Register our parser with feedparser for the forms it misreads (idempotent)."""
    global _installed
    if not _installed:
        feedparser.registerDateHandler(_feedparser_handler)
        _installed = True


def _feedparser_handler(text: str) -> time.struct_time | None:
    cleaned = unicodedata.normalize("NFKC", text or "").strip()
    if not _claims(cleaned):
        return None
    found = parse_date(cleaned)
    return found.utctimetuple() if found else None


def _claims(text: str) -> bool:
    """Forms feedparser gets wrong: Chinese and slash dates, space-separated zone-less ones."""
    if _EPOCH.match(text):
        return True
    match = _NUMERIC.match(text)
    if not match:
        return False
    chinese_or_slash = bool(re.search(r"[/年]", text))
    spaced_local = match["h"] is not None and "T" not in (match["sep"] or "").upper()
    spaced_local = spaced_local and not match["tz"]
    return chinese_or_slash or spaced_local


def _parse_numeric(text: str) -> datetime | None:
    match = _NUMERIC.match(text)
    if not match:
        return None
    hour = int(match["h"] or 0)
    if match["ampm"] in ("下午", "晚上") and hour < 12:
        hour += 12
    micro = int((match["frac"] or "0")[:6].ljust(6, "0"))
    return datetime(
        int(match["y"]),
        int(match["mo"]),
        int(match["d"]),
        hour,
        int(match["mi"] or 0),
        int(match["s"] or 0),
        micro,
        tzinfo=_zone(match["tz"]),
    )


def _zone(text: str | None) -> timezone:
    if not text:
        return CHINA
    if text.upper() in ("Z", "UTC", "GMT"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + int(digits[2:4] or 0)
    return timezone(sign * timedelta(minutes=minutes))


def _parse_epoch(text: str) -> datetime | None:
    if not _EPOCH.match(text):
        return None
    seconds = int(text) / (1000 if len(text) == 13 else 1)
    return datetime.fromtimestamp(seconds, UTC)  # ten digits cannot overflow


def _parse_rfc822(text: str) -> datetime | None:
    parts = parsedate_tz(text)
    if parts is None:
        return None
    offset = parts[9]
    zone = timezone(timedelta(seconds=offset)) if offset is not None else UTC
    year = parts[0]
    if year < 100:  # two-digit years, as RFC 822 allowed
        year += 2000 if year < 70 else 1900
    return datetime(year, parts[1], parts[2], parts[3], parts[4], parts[5], tzinfo=zone)
