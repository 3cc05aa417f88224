"""The Starlette app: feeds over HTTP with caching headers, health checks. No business logic.

Owns: URL routing, conditional requests (ETag / Last-Modified / 304), content types and
compression. Everything it serves comes from ``publish.feeds.FeedService`` or the store.
"""

from __future__ import annotations

from email.utils import format_datetime, parsedate_to_datetime
from typing import Callable
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from .errors import SelectionError
from .publish.feeds import FeedService, FeedSpec, Rendered

NOT_FOUND_HINT = "Feeds are at /feeds/all.{rss,atom,json}, /feeds/source/ID.FMT and /feeds/category/PATH.FMT"


def create_app(feeds: FeedService, ready: Callable[[], bool] | None = None) -> Starlette:
    def _spec_and_format(request: Request) -> tuple[FeedSpec, str]:
        kind = request.path_params.get("kind", "all")
        rest = unquote(request.path_params.get("rest", ""))
        name, dot, fmt = rest.rpartition(".")
        if not dot or not name:
            raise SelectionError("a feed URL ends in .rss, .atom or .json")
        if kind == "all" and name == "all":
            return feeds.all(), fmt
        if kind == "source":
            return feeds.source(name), fmt
        if kind == "category":
            return feeds.category(tuple(name.split("/"))), fmt
        raise SelectionError(f"unknown feed {request.url.path!r}")

    async def feed(request: Request) -> Response:
        try:
            spec, fmt = _spec_and_format(request)
            rendered = feeds.render(spec, fmt)
        except SelectionError as exc:
            return PlainTextResponse(f"404 Not Found: {exc}\n{NOT_FOUND_HINT}\n", status_code=404)
        return _conditional(request, rendered)

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
        # "/feeds/all.rss" has no slash after /feeds/; "/feeds/source/x.rss" does.
        Route("/feeds/{rest:str}", feed, methods=["GET", "HEAD"], name="all_feed"),
        Route("/feeds/{kind:str}/{rest:path}", feed, methods=["GET", "HEAD"], name="feed"),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(GZipMiddleware, minimum_size=512)],
        exception_handlers={404: not_found},
    )


def _conditional(request: Request, r: Rendered) -> Response:
    headers = {
        "ETag": r.etag,
        "Cache-Control": f"public, max-age={r.max_age}",
        "Vary": "Accept-Encoding",
    }
    if r.last_modified:
        headers["Last-Modified"] = format_datetime(r.last_modified, usegmt=True)
    if _fresh(request, r):
        return Response(status_code=304, headers=headers)
    return Response(r.body, media_type=r.content_type, headers=headers)


def _fresh(request: Request, r: Rendered) -> bool:
    inm = request.headers.get("if-none-match")
    if inm is not None:
        tags = [t.strip().removeprefix("W/") for t in inm.split(",")]
        return r.etag in tags or "*" in tags
    ims = request.headers.get("if-modified-since")
    if ims and r.last_modified:
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
        return r.last_modified.replace(microsecond=0) <= since
    return False
