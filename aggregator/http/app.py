"""The Starlette app: feeds over HTTP with caching headers, health checks. No business logic.

Owns: URL routing and compression. Feed and OPML answers (status, conditional requests, ETag /
Last-Modified / 304, content types, gzip of cached documents) come from ``publish.http``; everything
it serves comes from ``publish.feeds.FeedService`` or the store, whose calls run in threads
through the feed service's ``StoreGuard``: ``/healthz`` never asks the database, ``/readyz`` is 503
within ``[storage] request_timeout`` when it is down or hung.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from urllib.parse import parse_qsl, quote

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..errors import StoreUnavailable
from ..publish.feeds import FeedService, Rendered
from ..publish.opmlcache import OpmlDocument
from ..store.guard import StoreGuard
from . import access
from . import replies as feed_http

NOT_FOUND_HINT = feed_http.HINT
PRECOMPRESSED = feed_http.PRECOMPRESSED


def create_app(
    feeds: FeedService, ready: Callable[[], bool] | None = None, opml: OpmlDocument | None = None
) -> Starlette:
    opml_doc = opml or OpmlDocument(feeds)

    async def feed(request: Request) -> Response:
        params = request.query_params.multi_items()
        reply = await feed_http.feed_reply(feeds, _feed_path(request.scope), params, request.headers)
        return Response(reply.body, status_code=reply.status, headers=reply.headers)

    async def opml_list(request: Request) -> Response:  # cached like feeds (publish/opmlcache.py)
        try:
            reply = feed_http.conditional(request.headers, await _opml(opml_doc, feeds.guard))
        except StoreUnavailable as exc:
            reply = feed_http.unavailable(exc)
        return Response(reply.body, status_code=reply.status, headers=reply.headers)

    async def healthz(request: Request) -> Response:  # the pid tells the processes of a port apart
        return PlainTextResponse(f"ok pid={os.getpid()}\n")  # never asks the database

    async def readyz(request: Request) -> Response:  # 503 within [storage] request_timeout
        store_ok = await feeds.guard.ready()
        sched_ok = ready() if ready else True
        body = f"store={'ok' if store_ok else 'down'} scheduler={'ok' if sched_ok else 'down'}\n"
        return PlainTextResponse(body, status_code=200 if store_ok and sched_ok else 503)

    async def not_found(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(f"404 Not Found\n{NOT_FOUND_HINT}\n", status_code=404)

    routes = [
        # Every feed URL (publish/catalog.py draws the space); the path is resolved as sent.
        Route("/feeds/{rest:path}", feed, methods=["GET", "HEAD"], name="feed"),
        Route("/opml", opml_list, methods=["GET", "HEAD"], name="opml"),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
    ]
    app = _FeedsFirst(
        routes=routes,
        # Feed documents come compressed from publish.http (cached, with their own ETag).
        middleware=[Middleware(GZipMiddleware, minimum_size=512,
                               exclude_content_types=DEFAULT_EXCLUDED_CONTENT_TYPES + PRECOMPRESSED)],
        exception_handlers={404: not_found},
    )
    app.feeds = feeds
    return app


async def _opml(doc: OpmlDocument, guard: StoreGuard) -> Rendered:
    """The /opml document, its store read awaited at most the guard's timeout; while the
    database is unavailable, the last one rendered (``StoreUnavailable`` when there is none)."""
    hit = doc.cached()
    if hit is not None:
        return hit
    if not guard.down:
        with contextlib.suppress(StoreUnavailable):
            return await guard.wait("opml", doc.serve())
    last = doc.last()
    if last is None:
        raise guard.unavailable()
    return last


class _FeedsFirst(Starlette):
    """Starlette, except that ``GET``/``HEAD /feeds/...`` is answered before routing and
    middleware: the same ``publish.http`` reply the feed route gives, as raw ASGI messages, read
    straight from the ASGI scope (no Request object, no header dict; the reply's header lines are
    encoded once per cached document). A cached feed costs a few dict look-ups."""

    feeds: FeedService

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not access.scope_granted(self.feeds.settings.server, scope):
            await access.deny(send)  # server.access_key: private areas (web/access.py)
            return
        if (scope["type"] != "http" or scope["method"] not in _FEED_METHODS
                or not scope["path"].startswith("/feeds/")):
            await super().__call__(scope, receive, send)
            return
        qs = scope["query_string"]
        params = parse_qsl(qs.decode("latin-1"), keep_blank_values=True) if qs else ()
        reply = await feed_http.feed_reply(self.feeds, _feed_path(scope), params, _conditions(scope))
        await send({"type": "http.response.start", "status": reply.status,
                    "headers": reply.wire_headers})
        await send({"type": "http.response.body",
                    "body": b"" if scope["method"] == "HEAD" else reply.body})


_FEED_METHODS = ("GET", "HEAD")
# The request headers a feed reply depends on (publish.http.conditional reads only these).
_CONDITIONS = (b"accept-encoding", b"if-none-match", b"if-modified-since")


def _conditions(scope: Scope) -> dict[str, str]:
    """The request headers a feed reply reads, by lower-case name (the first of a repeated
    header, as Starlette's ``Headers.get`` gives it to the feed route)."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in _CONDITIONS:
            found.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return found


def _feed_path(scope: Scope) -> str:
    """The path after ``/feeds/`` as the client sent it (still percent-encoded), so that an
    encoded slash stays inside one name and nothing is decoded twice."""
    raw = scope.get("raw_path") or quote(scope["path"]).encode("ascii")
    return str(raw.decode("utf-8", "replace").split("?", 1)[0].removeprefix("/feeds/"))
