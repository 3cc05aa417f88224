"""The HTTP app: feeds over HTTP with caching headers, health checks. No business logic.

Owns: URL routing (a Starlette ``Router``), the access check of private areas (``access.py``) in
front of every route, and compression. Every request, a feed's too, takes the one path: the server
(uvicorn, within ``limits.py``), this app, a route. The app is ``App``, not a ``Starlette``
application: that class adds two exception middlewares whose work (a 500 page, HTTPException
handling) uvicorn and the router already do, and which cost a fifth of a cached feed's time in the
app. Feed and OPML answers (status, conditional requests, ETag /
Last-Modified / 304, content types, gzip of cached documents) come from ``replies.py``; everything
it serves comes from ``publish.feeds.FeedService`` or the store, whose calls run in threads
through the feed service's ``StoreGuard``: ``/healthz`` never asks the database, ``/readyz`` is 503
within ``[storage] request_timeout`` when it is down or hung.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote

from starlette.datastructures import URLPath
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Match, NoMatchFound, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

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
) -> App:
    opml_doc = opml or OpmlDocument(feeds)

    async def feed(scope: Scope, receive: Receive, send: Send) -> None:
        """The feed route's endpoint, plain ASGI: no Request or Response object per request;
        the reply and its encoded headers are built once per document (``replies.py``)."""
        query = scope["query_string"]
        params = parse_qsl(query.decode("latin-1"), keep_blank_values=True) if query else ()
        reply = await feed_http.feed_reply(feeds, _feed_path(scope), params, _conditions(scope))
        await _send(send, reply)

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

    routes = [
        # Every feed URL (publish/catalog.py draws the space); the path is resolved as sent.
        FeedRoute(feed),
        Route("/opml", opml_list, methods=["GET", "HEAD"], name="opml"),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
    ]
    return App(feeds, Router(routes, default=_not_found))


class App:
    """The HTTP app, one path for every request: the 403 of ``server.access_key`` for a private
    area (access.py); gzip (Starlette's middleware) for every answer but a feed's or /opml's,
    which replies.py sends compressed itself when asked (the gzip body is cached with the
    document, with its own ETag); then the routes, a Starlette ``Router`` (``operate.attach``
    adds the status pages' to ``router.routes``). An exception that escapes a route is uvicorn's
    to log and answer 500.

    The settings are read per request, so a reload's new key applies at once."""

    def __init__(self, feeds: FeedService, router: Router) -> None:
        self.feeds, self.router = feeds, router
        self.gzip = GZipMiddleware(
            router,
            minimum_size=512,
            exclude_content_types=DEFAULT_EXCLUDED_CONTENT_TYPES + PRECOMPRESSED,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.router(scope, receive, send)
            return
        if not access.scope_granted(self.feeds.settings.server, scope):
            await access.deny(send)
            return
        path = scope["path"]
        if path.startswith(FeedRoute.PREFIX) or path == "/opml":
            await self.router(scope, receive, send)
        else:
            await self.gzip(scope, receive, send)


class FeedRoute(BaseRoute):
    """Every path under ``/feeds/`` to one plain-ASGI endpoint, for GET and HEAD: a prefix test
    where a ``Route`` would match a pattern and build path parameters per request (the endpoint
    reads the path as sent, still percent-encoded)."""

    PREFIX = "/feeds/"
    METHODS = ("GET", "HEAD")

    def __init__(self, endpoint: ASGIApp) -> None:
        self.endpoint, self.name = endpoint, "feed"

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or not scope["path"].startswith(self.PREFIX):
            return Match.NONE, {}
        return (Match.FULL if scope["method"] in self.METHODS else Match.PARTIAL), {}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        if name != self.name or set(path_params) != {"rest"}:
            raise NoMatchFound(name, path_params)
        return URLPath(self.PREFIX + str(path_params["rest"]), protocol="http")

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] in self.METHODS:
            await self.endpoint(scope, receive, send)
            return
        allow = {"Allow": ", ".join(self.METHODS)}
        await PlainTextResponse("Method Not Allowed", 405, headers=allow)(scope, receive, send)


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    """Any path no route takes."""
    if scope["type"] == "http":
        reply = PlainTextResponse(f"404 Not Found\n{NOT_FOUND_HINT}\n", status_code=404)
        await reply(scope, receive, send)


async def _send(send: Send, reply: feed_http.Reply) -> None:
    """``reply`` as ASGI messages."""
    headers = list(reply.raw_headers)  # a middleware may change the list it is sent
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


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


# The request headers a feed reply depends on (replies.conditional reads only these).
_CONDITIONS = (b"accept-encoding", b"if-none-match", b"if-modified-since")


def _conditions(scope: Scope) -> dict[str, str]:
    """The request headers a feed reply reads, by lower-case name (the first of a repeated
    header, as Starlette's ``Headers.get`` gives it)."""
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
