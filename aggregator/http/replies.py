"""Feed requests as HTTP: status, headers and body for a request to a feed or to the OPML list
(whose document comes from ``opmlcache``).

Owns: mapping errors to 404 (unknown feed, source, category or format), 400 (a malformed
query) and 503 with Retry-After (the database is unavailable and the document was never
rendered); conditional requests (If-None-Match before If-Modified-Since, answered with 304);
content negotiation of gzip (the compressed bytes are cached with the document and carry their
own strong ETag); the caching headers. Framework-free: app.py turns a ``Reply`` into a Starlette
response and does nothing else. Does not own: routing (app.py) or rendering (publish/feeds.py).
The document's format is the path's extension unless the query's ``format=`` names another
(``FeedService.target``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from functools import cached_property, lru_cache
from weakref import ref

from ..clock import http_date
from ..errors import QueryError, SelectionError, StoreUnavailable
from ..publish.feeds import CONTENT_TYPES, FeedService, Rendered
from ..publish.opml import OPML_TYPE

HINT = (
    "Feeds are at /feeds/all.FMT, /feeds/ID.FMT (operator feeds), /feeds/source/ID.FMT and "
    "/feeds/category/PATH.FMT, with FMT one of rss, atom, json."
)
TEXT = "text/plain; charset=utf-8"
# Media types this module compresses itself; a compressing middleware must leave them alone.
PRECOMPRESSED = tuple(t.split(";")[0] for t in (*CONTENT_TYPES.values(), OPML_TYPE))


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @cached_property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers as an ASGI server takes them (lower-case latin-1 bytes), with the length of
        the body (not on a 304), as Starlette's Response would add it; encoded once per reply."""
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        if self.status != 304:
            raw.append((b"content-length", str(len(self.body)).encode("ascii")))
        return raw


class _PerDocument:
    """The 200 replies of each cached document (plain, gzip), built once (a document's headers
    never change), found by the document's identity: a lookup neither hashes nor compares the
    document. An entry goes when its document does."""

    def __init__(self) -> None:
        self.by_id: dict[int, tuple[ref[Rendered], dict[bool, Reply]]] = {}

    def of(self, r: Rendered) -> dict[bool, Reply]:
        entry = self.by_id.get(id(r))
        if entry is not None and entry[0]() is r:
            return entry[1]
        replies: dict[bool, Reply] = {}
        self.by_id[id(r)] = (ref(r, self._gone(id(r))), replies)
        return replies

    def _gone(self, key: int) -> Callable[[ref[Rendered]], None]:
        def gone(dead: ref[Rendered]) -> None:
            entry = self.by_id.get(key)
            if entry is not None and entry[0] is dead:
                del self.by_id[key]

        return gone


_FULL = _PerDocument()


async def feed_reply(
    feeds: FeedService,
    rest: str,
    params: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
) -> Reply:
    """The answer to ``GET /feeds/<rest>?<params>``; ``rest`` as sent (still percent-encoded)."""
    try:
        spec, fmt, query = feeds.target(rest, params)
        rendered = await feeds.serve(spec, fmt, query)
    except QueryError as exc:
        return Reply(400, {"Content-Type": TEXT}, f"400 Bad Request: {exc}\n".encode())
    except SelectionError as exc:
        return not_found(str(exc))
    except StoreUnavailable as exc:
        return unavailable(exc)
    return conditional(headers, rendered)


def unavailable(exc: StoreUnavailable) -> Reply:
    """503 with Retry-After: the database is unavailable and there is nothing cached to serve."""
    return Reply(
        503,
        {"Content-Type": TEXT, "Retry-After": str(exc.retry_after), "Cache-Control": "no-store"},
        f"503 Service Unavailable: {exc}; try again in {exc.retry_after} s\n".encode(),
    )


def not_found(message: str) -> Reply:
    return Reply(404, {"Content-Type": TEXT}, f"404 Not Found: {message}\n{HINT}\n".encode())


def conditional(headers: Mapping[str, str], r: Rendered) -> Reply:
    """200 with the document (gzip when accepted), or 304 when the reader's copy is current."""
    packed = bool(r.gzip_body) and accepts_gzip(headers.get("accept-encoding", ""))
    matched = _matching_tag(headers, r)
    if matched is None:
        return _full(r, packed)
    etag = r.gzip_etag if packed else r.etag
    return Reply(304, {**_caching(r, etag), "ETag": matched or etag})


def _full(r: Rendered, packed: bool) -> Reply:
    """The 200 reply of ``r`` (its gzip body when ``packed``), the same object every time."""
    replies = _FULL.of(r)
    reply = replies.get(packed)
    if reply is None:
        out = _caching(r, r.gzip_etag if packed else r.etag)
        out["Content-Type"] = r.content_type
        if packed:
            out["Content-Encoding"] = "gzip"
        reply = replies[packed] = Reply(200, out, r.gzip_body if packed else r.body)
    return reply


def _caching(r: Rendered, etag: str) -> dict[str, str]:
    """The caching headers of ``r`` sent under ``etag``: on a 200 and on a 304 alike."""
    out = {"ETag": etag, "Cache-Control": f"public, max-age={r.max_age}", "Vary": "Accept-Encoding"}
    if r.last_modified is not None:
        out["Last-Modified"] = _header_date(r.last_modified)
    return out


@lru_cache(maxsize=4096)
def _header_date(when: datetime) -> str:
    """``when`` as an HTTP date; remembered, as the same few dates are sent again and again."""
    return format_datetime(when.replace(microsecond=0), usegmt=True)


def _matching_tag(headers: Mapping[str, str], r: Rendered) -> str | None:
    """The tag the reader holds if its copy is current ("" for a date match), else None."""
    inm = headers.get("if-none-match")
    if inm is not None:  # RFC 9110 13.1.2: If-None-Match wins over If-Modified-Since
        tags = [t.strip().removeprefix("W/") for t in inm.split(",")]
        current = [t for t in (r.etag, r.gzip_etag) if t]
        if "*" in tags:
            return ""
        return next((t for t in current if t in tags), None)
    since = http_date(headers.get("if-modified-since"))
    if since is not None and r.last_modified is not None:
        return "" if r.last_modified.replace(microsecond=0) <= since else None
    return None


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header allows gzip (``gzip`` or ``*`` with q above 0)."""
    if not accept_encoding:
        return False
    allowed: dict[str, bool] = {}
    for item in accept_encoding.lower().split(","):
        name, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if name.strip():
            allowed[name.strip()] = q > 0
    return allowed.get("gzip", allowed.get("x-gzip", allowed.get("*", False)))
