"""The Starlette app: feeds over HTTP with caching headers, health checks. No business logic.

Owns: URL routing and compression. Feed and OPML answers (status, conditional requests, ETag /
Last-Modified / 304, content types, gzip of cached documents) come from ``publish.http``; everything
it serves comes from ``publish.feeds.FeedService`` or the store.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl, quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .publish import http as feed_http
from .publish.feeds import FeedService

NOT_FOUND_HINT = feed_http.HINT
PRECOMPRESSED = feed_http.PRECOMPRESSED


def create_app(feeds: FeedService, ready: Callable[[], bool] | None = None) -> Starlette:
    async def feed(request: Request) -> Response:
        params = request.query_params.multi_items()
        reply = await feed_http.feed_reply(feeds, _feed_path(request), params, request.headers)
        return Response(reply.body, status_code=reply.status, headers=reply.headers)

    async def opml(request: Request) -> Response:
        reply = await run_in_threadpool(feed_http.opml_reply, feeds, request.headers)
        return Response(reply.body, status_code=reply.status, headers=reply.headers)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        store_ok = feeds.store.ping()
        sched_ok = ready() if ready else True
        body = f"store={'ok' if store_ok else 'down'} scheduler={'ok' if sched_ok else 'down'}\n"
        return PlainTextResponse(body, status_code=200 if store_ok and sched_ok else 503)

    async def not_found(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(f"404 Not Found\n{NOT_FOUND_HINT}\n", status_code=404)

    routes = [
        # Every feed URL (publish/catalog.py draws the space); the path is resolved as sent.
        Route("/feeds/{rest:path}", feed, methods=["GET", "HEAD"], name="feed"),
        Route("/opml", opml, methods=["GET", "HEAD"], name="opml"),
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


class _FeedsFirst(Starlette):
    """Starlette, except that ``GET``/``HEAD /feeds/...`` is answered before routing and
    middleware (the same ``publish.http`` reply the feed route gives, as raw ASGI messages: a cached
    feed costs a dict look-up and one store read)."""

    feeds: FeedService

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] not in ("GET", "HEAD")
                or not scope["path"].startswith("/feeds/")):
            await super().__call__(scope, receive, send)
            return
        request = Request(scope)
        params = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        reply = await feed_http.feed_reply(self.feeds, _feed_path(request), params, request.headers)
        body = b"" if scope["method"] == "HEAD" else reply.body
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()]
        if reply.status != 304:
            headers.append((b"content-length", str(len(reply.body)).encode()))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _feed_path(request: Request) -> str:
    """The path after ``/feeds/`` as the client sent it (still percent-encoded), so that an
    encoded slash stays inside one name and nothing is decoded twice."""
    raw = request.scope.get("raw_path") or quote(request.scope["path"]).encode("ascii")
    return raw.decode("utf-8", "replace").split("?", 1)[0].removeprefix("/feeds/")
