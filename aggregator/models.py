"""Records that cross module borders.

Every value here is a frozen dataclass: stages take these and return new ones, nobody mutates a
record another module holds. Settings (the validated config) live in ``config/settings.py``; this
module owns only the data that flows through the pipeline and the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any


class FetchStatus(str, Enum):
    """What one fetch of a source came to."""

    OK = "ok"  # new content was parsed and applied
    NOT_MODIFIED = "not_modified"  # 304, or a 200 whose body hash did not change
    ERROR = "error"  # any failure; the source keeps being retried with backoff
    GONE = "gone"  # 410: fetching stops until the operator resets the source


@dataclass(frozen=True)
class ParseLimits:
    """How much work one fetched document of a source may cost (``sources/limits.py``)."""

    max_entries: int = 500  # [fetch] max_entries: items kept per document, newest first
    cpu_budget: float = 20.0  # [content] parse_cpu_budget: CPU seconds of one parse; 0: none


@dataclass(frozen=True)
class RequestOptions:
    """A source's own request options (``headers``, ``user_agent``, ``cookies``, ``referer``, basic
    auth), sent with every request of that source: its document, details and full text.

    Its repr names no value: headers, cookies and the password may be secrets."""

    headers: tuple[tuple[str, str], ...] = ()  # User-Agent, Referer and Cookie included
    username: str | None = None
    password: str | None = None  # read from the environment variable ``password_env`` names

    def __repr__(self) -> str:
        names = ", ".join(name for name, _ in self.headers)
        return f"RequestOptions(headers=[{names}], auth={'basic' if self.username else None})"


@dataclass(frozen=True)
class Source:
    """A source as the operator configured it (immutable; the config is its owner)."""

    id: str
    url: str
    kind: str = "feed"
    title: str | None = None
    interval: float = 1800.0  # seconds between fetches
    category: tuple[str, ...] = ()
    also_in: tuple[tuple[str, ...], ...] = ()  # more category paths the source is filed under
    site_name: str | None = None
    hexo_placeholder_image: bool = False  # Hexo posts without an image get a picsum one
    options: Mapping[str, Any] = field(default_factory=dict)  # kind-specific settings
    request: RequestOptions | None = None  # the source's own headers, cookies, basic auth
    # the same for every source (from [fetch] and [content]); not part of what a reload compares
    limits: ParseLimits = field(default=ParseLimits(), compare=False)


@dataclass(frozen=True)
class SourceState:
    """What the store remembers about a source between fetches."""

    source_id: str
    url: str  # effective URL (may differ from the configured one after a permanent move)
    configured_url: str = ""
    title: str | None = None
    site_link: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    next_fetch_at: datetime | None = None
    last_fetch_at: datetime | None = None
    last_success_at: datetime | None = None
    last_status: str | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    redirect_target: str | None = None
    redirect_streak: int = 0
    enabled: bool = True
    fetch_count: int = 0
    not_modified_count: int = 0
    # entries of the source's current document whose detail (full text) fetch failed: how many,
    # the last error, and when the next retry is due (None: no retry left)
    details_missing: int = 0
    detail_error: str | None = None
    detail_retry_at: datetime | None = None
    # The fencing number of the claim this state was read under (the store adds one at every
    # claim): a write carrying it is rejected once the source has been claimed again since.
    lease_token: int | None = None


@dataclass(frozen=True)
class Enclosure:
    url: str
    type: str | None = None
    length: int | None = None


@dataclass(frozen=True)
class Item:
    """One entry as an adapter parsed it from a source document, before processing."""

    guid: str | None
    link: str | None
    title: str | None
    content: str | None = None  # HTML
    summary: str | None = None  # HTML or text
    author: str | None = None
    published: datetime | None = None  # always timezone-aware UTC
    updated: datetime | None = None
    categories: tuple[str, ...] = ()
    enclosures: tuple[Enclosure, ...] = ()
    image: str | None = None
    extra: Mapping[str, Any] = field(
        default_factory=dict
    )  # adapter-private hints (e.g. detail URL)
    base: str | None = None  # what relative URLs in content and summary resolve against (a feed's
    #   xml:base or its own URL); None: the item's link, else the source document's link or URL
    detail_error: str | None = None  # set by ``enrich`` when the item's detail could not be had


@dataclass(frozen=True)
class DetailAttempt:
    """An entry whose detail fetch failed: how often so far, the last error, the next retry."""

    key: str
    attempts: int
    error: str
    retry_at: datetime | None  # None: the attempts are used up


@dataclass(frozen=True)
class FeedHints:
    """Scheduling hints a publisher put in the document itself."""

    ttl_minutes: int | None = None
    skip_hours: frozenset[int] = frozenset()
    skip_days: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ParsedFeed:
    """What an adapter makes of one fetched document."""

    title: str | None
    link: str | None
    items: tuple[Item, ...]
    hints: FeedHints = FeedHints()
    undated: tuple[str, ...] = ()  # per item whose date did not parse, why (json and html kinds)


@dataclass(frozen=True)
class Entry:
    """An entry as stored and republished: an Item after cleaning, identity and categories."""

    source_id: str
    key: str  # identity within its source
    title: str
    link: str | None
    content: str | None
    summary: str | None
    author: str | None
    published: datetime | None
    updated: datetime | None
    categories: tuple[str, ...] = ()
    category_path: tuple[str, ...] = ()
    enclosures: tuple[Enclosure, ...] = ()
    image: str | None = None
    content_hash: str = ""
    canonical_url: str | None = None
    fingerprint: int | None = None  # fingerprint.signature: 128 bits (stored as two 64-bit columns)
    first_seen: datetime | None = None
    changed_at: datetime | None = None  # last time the content changed (or first seen)
    id: int | None = None  # store-assigned, stable for the entry's life
    duplicate_of: int | None = None
    merge_reason: str | None = None
    sort_at: datetime | None = None  # store-assigned place in the history (pagination cursors)
    arrival: int | None = None  # store-assigned: the write that stored it (sorted=false pages)
    text_length: int = 0  # weight of the entry's text (fingerprint.text_weight)
    band_keys: tuple[int, ...] = ()  # near-duplicate index keys (fingerprint.signature)
    explanation: tuple[str, ...] = ()  # why the entry has its categories

    @property
    def identity(self) -> Identity:
        return Identity(
            self.source_id,
            self.key,
            self.canonical_url,
            self.content_hash,
            self.fingerprint,
            self.text_length,
            self.band_keys,
            self.id,
            self.duplicate_of,
        )


@dataclass(frozen=True)
class FetchResult:
    """The fetcher's answer for one URL: a body, a 304, or an error as a value."""

    url: str  # final URL after redirects
    status_code: int | None
    content: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    permanent_redirect: str | None = None  # set when every hop was 301/308
    retry_after: datetime | None = None
    elapsed: float = 0.0
    fetched_at: datetime | None = None  # when the fetch started (the fetcher's clock)

    @property
    def not_modified(self) -> bool:
        return self.status_code == 304

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class FetchOutcome:
    """The result of one pipeline run for one source: what the batch reports and logs."""

    source_id: str
    status: FetchStatus
    added: int = 0
    updated: int = 0
    merged: int = 0
    error: str | None = None
    undated: int = 0  # items of the document whose date did not parse
    next_fetch_at: datetime | None = None
    elapsed: float = 0.0
    bytes: int = 0


@dataclass(frozen=True)
class Identity:
    """Who an entry is: its key within its source, and what the duplicate rules compare across
    sources (canonical URL, content hash, fingerprint and text weight).

    One record at every step: an item just parsed (key, URL and hash; no fingerprint or id yet),
    a new entry about to be stored (``Entry.identity``), and another source's stored entry read
    back as a duplicate candidate (with its id and its cluster's primary)."""

    source_id: str
    key: str
    canonical_url: str | None
    content_hash: str
    fingerprint: int | None = None  # fingerprint.signature (both windows, 128 bits); None: no text
    text_length: int = 0  # fingerprint.text_weight of its text; short texts never near-match
    band_keys: tuple[int, ...] = ()  # near-duplicate index keys
    entry_id: int | None = None  # None for an entry not stored yet
    duplicate_of: int | None = None  # the primary of the cluster a stored entry belongs to


@dataclass(frozen=True)
class Drop:
    """An entry the categorize rules or filters dropped."""

    source_id: str
    key: str
    title: str
    link: str | None
    reason: str
    at: datetime | None = None


@dataclass(frozen=True)
class Selection:
    """Which entries a feed or an export shows."""

    source_ids: tuple[str, ...] | None = None  # None: every source
    category_prefix: tuple[str, ...] | None = None  # filed under it (path, tag or any copy's)
    category_prefixes: tuple[tuple[str, ...], ...] = ()  # filed under any of these
    also_sources: tuple[str, ...] = ()  # with a category: these sources' entries are filed there
    query: str | None = None
    exclude_source_ids: tuple[str, ...] = ()
    merge_duplicates: bool = True
    limit: int = 50
    before: tuple[datetime, int] | tuple[int, int] | None = None  # cursor: (sort time, id), or
    by_arrival: bool = False  # (arrival, id) when ordered by arrival instead of sort time
