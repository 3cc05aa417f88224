"""What a feed URL's query asks for, and the in-Python filtering of entries.

Owns: reading RSSHub-compatible query parameters (``limit``, ``filter``, ``filterout`` and their
``_title`` / ``_description`` / ``_author`` / ``_category`` variants, ``filter_case_sensitive``,
``filter_time``, ``sorted``), RSSHub's output parameters (``format``, ``brief``, ``opencc``,
``mode``, ``image_hotlink_template``: variants.py applies them) and our pagination cursor
(``before``) into a ``FeedQuery``; compiling
the patterns with RE2, whose matching time is linear in the text, so a hostile pattern from a URL
cannot stall the server; the opaque cursor format; and ``EntryRules``, the part of an operator
feed's selection that SQL does not do (several category paths, exclusions). Does not own: SQL (the
store), walking pages (pages.py), rendering or HTTP.

Semantics, as RSSHub documents them:

- ``filter`` keeps entries whose title or description matches; ``filter_title``,
  ``filter_description``, ``filter_author``, ``filter_category`` keep entries whose field matches.
  Every keep parameter given must hold.
- ``filterout`` drops entries whose title or description matches; ``filterout_FIELD`` drops entries
  whose field matches. Any drop parameter that matches drops the entry.
- The description is the entry's summary and content as text (tags removed); the category is any
  of the entry's categories, any part of its category path, or the path joined with ``/``.
- ``filter_case_sensitive=false`` makes every pattern ignore case (default ``true``).
- ``filter_time=N`` keeps entries published in the last N seconds; an entry without a date is
  judged by when it was first seen (the time it is published with).
- ``sorted=false`` orders the feed by arrival: the latest fetch first and, within one fetch, the
  source's own order (entries are stored in document order). The store pages in that order too,
  so its next links walk the history by arrival. The default sorts each page by publication date
  (else first-seen time), newest first, and pages by the store's ``sort_at``.
- ``limit`` is capped at ``publish.max_limit``.

Malformed values are a ``QueryError`` (HTTP 400) saying which parameter and why, and so is an
RSSHub parameter this server does not implement (``UNSUPPORTED``): a reader asking for Sci-Hub
links or Telegram instant view would otherwise get a feed without them and no word why. Other
unknown names (cache-busters such as ``_=1700000000``, access keys) are ignored, as RSSHub does.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import re2

from ..content.text import html_text
from ..errors import QueryError
from ..models import Entry
from .variants import OPENCC_CONFIGS, check_template

FIELDS = ("title", "description", "author", "category")
KEEP_PARAMS = ("filter",) + tuple(f"filter_{f}" for f in FIELDS)
DROP_PARAMS = ("filterout",) + tuple(f"filterout_{f}" for f in FIELDS)
OUTPUT_PARAMS = ("brief", "opencc", "mode", "image_hotlink_template")
# The order parameters take in canonical query strings (cache keys, self and next links).
# ``format`` is not among them: it picks the document's format, which the URL's path then names.
PARAMS = (
    "limit",
    *KEEP_PARAMS,
    *DROP_PARAMS,
    "filter_case_sensitive",
    "filter_time",
    "sorted",
    *OUTPUT_PARAMS,
    "before",
)
# RSSHub's documented parameters that this server does not implement: a 400 that names them.
UNSUPPORTED = ("tgiv", "scihub", "multimedia_hotlink_template", "wrap_multimedia_in_iframe")
FORMAT_VALUES = ("rss", "atom", "json")
MIN_BRIEF = 100  # RSSHub's lower bound for brief
MAX_PATTERN = 1000  # characters; RE2 bounds the time, this and MAX_PROGRAM bound the memory
MAX_PROGRAM = 8 << 20
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
_CURSOR_VERSION = "1"  # a place in the sort_at order: (sort_at, id)
_ARRIVAL_CURSOR = "a"  # a place in the arrival order: (arrival, id)

Pattern = Any  # re2's compiled pattern (the package ships no type hints)
Cursor = tuple[datetime, int] | tuple[int, int]  # (sort_at, id), or (arrival, id) when unsorted


@dataclass(frozen=True)
class FeedQuery:
    """One URL's query, normalized; equal queries render equal documents."""

    limit: int | None = None
    keep: tuple[tuple[str, str], ...] = ()  # (parameter name, pattern)
    drop: tuple[tuple[str, str], ...] = ()
    case_sensitive: bool = True
    max_age: int | None = None  # filter_time, seconds
    sorted: bool = True
    before: Cursor | None = None  # pagination cursor, exclusive
    format: str | None = None  # ``format=``: overrides the path's extension (not in ``pairs``)
    brief: int | None = None  # summary as plain text of at most this many characters, no content
    opencc: str | None = None  # OpenCC configuration name (s2t, t2s, …)
    fulltext: bool = False  # mode=fulltext
    hotlink: str | None = None  # image_hotlink_template
    _compiled: tuple[tuple[str, bool, Pattern], ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if (self.keep or self.drop) and not self._compiled:
            compiled = tuple(
                (name, name in KEEP_PARAMS, compile_pattern(name, pattern, self.case_sensitive))
                for name, pattern in self.keep + self.drop
            )
            object.__setattr__(self, "_compiled", compiled)

    @property
    def filters(self) -> bool:
        return bool(self.keep or self.drop or self.max_age is not None)

    def pairs(self) -> list[tuple[str, str]]:
        """The query as (name, value) pairs in canonical order, defaults left out."""
        values: dict[str, str] = dict(self.keep + self.drop)
        if self.limit is not None:
            values["limit"] = str(self.limit)
        if self.filters and not self.case_sensitive:
            values["filter_case_sensitive"] = "false"
        if self.max_age is not None:
            values["filter_time"] = str(self.max_age)
        if not self.sorted:
            values["sorted"] = "false"
        values.update(self._output_pairs())
        if self.before is not None:
            values["before"] = encode_cursor(*self.before)
        return [(name, values[name]) for name in PARAMS if name in values]

    def _output_pairs(self) -> dict[str, str]:
        out = {
            "brief": str(self.brief) if self.brief is not None else "",
            "opencc": self.opencc or "",
            "mode": "fulltext" if self.fulltext else "",
            "image_hotlink_template": self.hotlink or "",
        }
        return {k: v for k, v in out.items() if v}

    @property
    def reshapes(self) -> bool:
        """Whether the output parameters change the entries as published (variants.reshape)."""
        return bool(self.brief or self.opencc or self.fulltext or self.hotlink)

    def canonical(self) -> str:
        """The query string in canonical form (``""`` for the plain feed)."""
        return urlencode(self.pairs(), quote_via=quote, safe="")

    def paged(self, before: Cursor | None) -> FeedQuery:
        return replace(self, before=before)

    def admits(self, entry: Entry, now: datetime) -> bool:
        """Whether the entry passes the filter, filterout and filter_time parameters."""
        if self.max_age is not None and not _recent(entry, now - timedelta(seconds=self.max_age)):
            return False
        texts = _Texts(entry)
        for name, keep, pattern in self._compiled:
            found = any(pattern.search(t) for t in texts.of(_field(name)))
            if found != keep:
                return False
        return True

    def order(self, entries: Sequence[Entry]) -> list[Entry]:
        """A page's entries as published: by date, or unsorted in the store's arrival order."""
        if not self.sorted:
            return list(entries)
        return sorted(entries, key=_published, reverse=True)  # stable: ties keep store order


def parse_query(params: Iterable[tuple[str, str]], max_limit: int) -> FeedQuery:
    """A ``FeedQuery`` from URL parameters (a later repeat wins); unknown names are ignored,
    RSSHub parameters we do not implement are a ``QueryError``."""
    raw: dict[str, str] = {}
    for name, value in params:
        if name in UNSUPPORTED:
            raise QueryError(f"{name}: an RSSHub parameter this server does not support")
        if name in PARAMS or name == "format":
            raw[name] = value
    case_sensitive = _flag(raw, "filter_case_sensitive", True)
    limit = _positive(raw, "limit")
    is_sorted = _flag(raw, "sorted", True)
    before = decode_cursor(raw["before"]) if raw.get("before") else None
    if before is not None and isinstance(before[0], datetime) != is_sorted:
        raise QueryError(
            "before: a cursor of the other order (sorted=true / sorted=false); "
            "follow the next links of this URL"
        )
    return FeedQuery(  # compiles the patterns: a bad one raises QueryError here
        limit=min(limit, max_limit) if limit is not None else None,
        keep=tuple((n, raw[n]) for n in KEEP_PARAMS if raw.get(n)),
        drop=tuple((n, raw[n]) for n in DROP_PARAMS if raw.get(n)),
        case_sensitive=case_sensitive,
        max_age=_positive(raw, "filter_time"),
        sorted=is_sorted,
        before=before,
        **_output(raw),
    )


def _output(raw: Mapping[str, str]) -> dict[str, Any]:
    """The output parameters' fields of a ``FeedQuery``, each value checked."""
    fmt = _choice(raw, "format", FORMAT_VALUES)
    brief = _positive(raw, "brief")
    if brief is not None and brief < MIN_BRIEF:
        raise QueryError(
            f"brief: expected a number of characters of at least {MIN_BRIEF}, got {brief}"
        )
    template = raw.get("image_hotlink_template", "").strip() or None
    if template is not None:
        problem = check_template(template)
        if problem:
            raise QueryError(f"image_hotlink_template: {problem}")
    return {
        "format": fmt,
        "brief": brief,
        "opencc": _choice(raw, "opencc", OPENCC_CONFIGS),
        "fulltext": _choice(raw, "mode", ("fulltext",)) == "fulltext",
        "hotlink": template,
    }


def _choice(raw: Mapping[str, str], name: str, allowed: Sequence[str]) -> str | None:
    value = raw.get(name, "").strip().lower()
    if not value:
        return None
    if value not in allowed:
        raise QueryError(f"{name}: expected one of {', '.join(allowed)}, got {value[:40]!r}")
    return value


def compile_pattern(name: str, pattern: str, case_sensitive: bool = True) -> Pattern:
    """An RE2 pattern, or a ``QueryError`` naming the parameter and what is wrong."""
    if len(pattern) > MAX_PATTERN:
        raise QueryError(f"{name}: the pattern is longer than {MAX_PATTERN} characters")
    options = re2.Options()
    options.log_errors = False
    options.max_mem = MAX_PROGRAM
    options.case_sensitive = case_sensitive
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = (
            exc.args[0].decode("utf-8", "replace")
            if exc.args and isinstance(exc.args[0], bytes)
            else str(exc)
        )
        raise QueryError(f"{name}: not a valid regular expression (RE2 syntax): {reason}") from None


# --- cursors --------------------------------------------------------------------------------------


def encode_cursor(place: datetime | int, entry_id: int) -> str:
    """An opaque, URL-safe token for a place in the history: just after ``(sort_at, id)``, or
    after ``(arrival, id)`` in the arrival order."""
    if isinstance(place, datetime):
        kind, number = _CURSOR_VERSION, round(place.astimezone(UTC).timestamp() * 1_000_000)
    else:
        kind, number = _ARRIVAL_CURSOR, place
    raw = f"{kind}.{number}.{entry_id}".encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(token: str) -> Cursor:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
        kind, number, entry_id = raw.split(".")
        if kind == _ARRIVAL_CURSOR:
            return int(number), int(entry_id)
        if kind != _CURSOR_VERSION:
            raise ValueError(kind)
        when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(number))
        return when, int(entry_id)
    except (ValueError, UnicodeDecodeError, binascii.Error, OverflowError):
        raise QueryError("before: not a cursor from one of this server's next links") from None


def position(entry: Entry, by_arrival: bool = False) -> Cursor:
    """Where a stored entry is in the history, in the store's order: the key of
    ``Selection.before``."""
    if by_arrival and entry.arrival is not None and entry.id is not None:
        return entry.arrival, entry.id
    if not by_arrival and entry.sort_at is not None and entry.id is not None:
        return entry.sort_at, entry.id
    raise ValueError("only stored entries have a place in the history")


# --- operator feeds' rules ------------------------------------------------------------------------


@dataclass(frozen=True)
class EntryRules:
    """The parts of a feed definition the store does not filter on."""

    sources: tuple[str, ...] = ()
    categories: tuple[tuple[str, ...], ...] = ()
    exclude_sources: tuple[str, ...] = ()
    exclude_categories: tuple[tuple[str, ...], ...] = ()
    exclude_also: tuple[str, ...] = ()  # sources filed under an excluded category by also_in
    exclude_query: str | None = None

    @property
    def trivial(self) -> bool:
        return self == EntryRules()

    def admits(self, entry: Entry) -> bool:
        if (self.sources or self.categories) and not (
            entry.source_id in self.sources or any(_filed(entry, c) for c in self.categories)
        ):
            return False
        if entry.source_id in self.exclude_sources or entry.source_id in self.exclude_also:
            return False
        if any(_filed(entry, c) for c in self.exclude_categories):
            return False
        if self.exclude_query:
            needle = self.exclude_query.casefold()
            texts = (entry.title, entry.summary or "", entry.content or "")
            return not any(needle in t.casefold() for t in texts)
        return True


def admit_all(rules: EntryRules, query: FeedQuery, now: datetime) -> Callable[[Entry], bool] | None:
    """The combined in-Python test for one request, or None when every entry passes."""
    if rules.trivial and not query.filters:
        return None
    return lambda e: rules.admits(e) and query.admits(e, now)


# --- helpers ----------------------------------------------------------------------------------------


class _Texts:
    """An entry's searchable fields, each computed once and only when a pattern needs it."""

    def __init__(self, entry: Entry) -> None:
        self.entry = entry
        self._description: tuple[str, ...] | None = None

    def of(self, name: str) -> tuple[str, ...]:
        e = self.entry
        if name == "title":
            return (e.title or "",)
        if name == "description":
            if self._description is None:
                self._description = (html_text(e.summary), html_text(e.content))
            return self._description
        if name == "author":
            return (e.author or "",)
        if name == "category":
            return (*e.categories, *e.category_path, "/".join(e.category_path))
        return self.of("title") + self.of("description")  # plain filter / filterout


def _field(param: str) -> str:
    _, _, name = param.partition("_")
    return name


def _under(path: Sequence[str], prefix: Sequence[str]) -> bool:
    return bool(prefix) and tuple(path[: len(prefix)]) == tuple(prefix)


def _filed(entry: Entry, prefix: Sequence[str]) -> bool:
    """Filed under ``prefix``: by the entry's category path or one of its categories read as a
    path (a rule's ``AI``, ``a/b``), as the store selects category feeds."""
    return _under(entry.category_path, prefix) or any(
        _under(tuple(c.split("/")), prefix) for c in entry.categories
    )


def _published(entry: Entry) -> datetime:
    return entry.published or entry.first_seen or entry.sort_at or datetime.min.replace(tzinfo=UTC)


def _recent(entry: Entry, cutoff: datetime) -> bool:
    when = entry.published or entry.first_seen
    return when is None or when >= cutoff


def _flag(raw: Mapping[str, str], name: str, default: bool) -> bool:
    value = raw.get(name, "").strip().lower()
    if not value:
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise QueryError(f"{name}: expected true or false, got {value[:40]!r}")


def _positive(raw: Mapping[str, str], name: str) -> int | None:
    value = raw.get(name, "").strip()
    if not value:
        return None
    if not value.isascii() or not value.isdigit() or int(value) < 1 or len(value) > 12:
        raise QueryError(f"{name}: expected a whole number of at least 1, got {value[:40]!r}")
    return int(value)
