"""HTTP routes of the operating surface: status pages, admin actions and ``/metrics``.

Owns: gathering what the pages show (from the store, in a thread through the feed service's
``StoreGuard``: a database that is down or hung makes a page a quick 503, never a blocked event
loop; from the feed service and the reload state), the
admin actions (POST only, only with ``server.admin_token`` set, the token from a form field or an
``Authorization: Bearer`` header, compared in constant time), and serving the metrics registry.
Does not own: markup (status.py), feeds (app.py, replies.py) or what the actions do (the store).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..clock import Clock
from ..config.settings import Settings
from ..errors import SelectionError, StoreUnavailable
from ..logs import kv
from ..models import Entry, Selection, Source, SourceState
from ..publish.catalog import source_title
from ..publish.feeds import FeedService, FeedSpec
from ..runtime.reload import ReloadState
from ..store import FetchLogLine, ReadStore, Store
from . import replies as feed_http
from .access import sign_links, signed
from .metrics import CONTENT_TYPE, Metrics
from .report import SourceRow, row_of, source_rows
from .status import (
    PAGE_HEADERS,
    FeedLink,
    Notice,
    Overview,
    SourceDetail,
    View,
    error_page,
    overview_page,
    source_page,
)

log = logging.getLogger("aggregator.web")

NEWEST = 20
HISTORY = 30
SOURCE_ENTRIES = 30
MAX_FORM_BYTES = 16 * 1024
ACTIONS: dict[str, str] = {
    "fetch-now": "Fetch requested: the source is due now and will be fetched within seconds.",
    "reset": "Errors reset: the failure count is cleared and the source is due now.",
}


@dataclass
class WebContext:
    """What the pages read; ``settings`` and ``sources`` return the live (reloaded) values."""

    store: Store
    feeds: FeedService
    clock: Clock
    settings: Callable[[], Settings]
    sources: Callable[[], Mapping[str, Source]]
    reload: ReloadState | None = None
    poke: Callable[[], None] | None = None
    metrics: Metrics | None = None


def routes(ctx: WebContext) -> list[BaseRoute]:
    return [
        Route("/", _page(ctx, overview), methods=["GET", "HEAD"], name="status"),
        Route("/sources/{sid:str}", _page(ctx, source), methods=["GET", "HEAD"], name="source"),
        Route("/sources/{sid:str}/{action:str}", _page(ctx, admin), methods=["POST"], name="admin"),
        Route("/metrics", _page(ctx, metrics), methods=["GET", "HEAD"], name="metrics"),
    ]


Endpoint = Callable[[WebContext, Request], Awaitable[Response]]


def _page(ctx: WebContext, endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        return await endpoint(ctx, request)

    return handle


# --- pages ------------------------------------------------------------------------------------


async def overview(ctx: WebContext, request: Request) -> Response:
    settings = ctx.settings()
    try:
        rows, newest, states = await ctx.feeds.guard.call("status", _overview_reads, ctx.store)
    except StoreUnavailable as exc:
        return unavailable(exc)
    page = Overview(
        title=settings.publish.title,
        now=ctx.clock.now(),
        notices=notices(ctx.reload),
        rows=tuple(rows),
        feeds=tuple(feed_links(ctx.feeds, ctx.sources())),
        newest=tuple(newest),
        names=display_names(ctx.sources(), states.get),
        view=View.of(request.query_params),
    )
    return HTMLResponse(sign_links(overview_page(page), settings.server), headers=PAGE_HEADERS)


def _overview_reads(
    store: ReadStore,
) -> tuple[list[SourceRow], list[Entry], dict[str, SourceState]]:
    states = {s.source_id: s for s in store.list_states(include_disabled=True)}
    return source_rows(store), store.list_entries(Selection(limit=NEWEST)), states


async def source(ctx: WebContext, request: Request) -> Response:
    sid = request.path_params["sid"]
    try:
        found = await ctx.feeds.guard.call("status", _source_reads, ctx.store, sid)
    except StoreUnavailable as exc:
        return unavailable(exc)
    if found is None:
        return PlainTextResponse(
            f"404 Not Found: no source {sid!r}\nSee / for every source.\n", 404
        )
    state, count, history, latest = found
    configured = ctx.sources()
    name = display_names(configured, {sid: state}.get).get(sid, state.title or sid)
    done = request.query_params.get("done")
    page = SourceDetail(
        title=ctx.settings().publish.title,
        now=ctx.clock.now(),
        notices=notices(ctx.reload),
        row=row_of(state, count),
        name=name,
        history=tuple(history),
        entries=tuple(latest),
        feed=_link(partial(ctx.feeds.source, sid)) if sid in configured else None,
        admin=bool(ctx.settings().server.admin_token),
        message=ACTIONS.get(done) if done else None,
    )
    return HTMLResponse(sign_links(source_page(page), ctx.settings().server), headers=PAGE_HEADERS)


def _source_reads(
    store: ReadStore, sid: str
) -> tuple[SourceState, int, list[FetchLogLine], list[Entry]] | None:
    state = store.get_state(sid)
    if state is None:
        return None
    latest = store.list_entries(
        Selection(source_ids=(sid,), merge_duplicates=False, limit=SOURCE_ENTRIES)
    )
    return state, store.entry_counts().get(sid, 0), store.fetch_history(sid, HISTORY), latest


async def metrics(ctx: WebContext, request: Request) -> Response:
    if ctx.metrics is None:
        return PlainTextResponse("404 Not Found: metrics are off\n", 404)
    # The per-source gauges read the store (a failed read is counted and left out, metrics.py);
    # a hung database makes the scrape a 503 after the guard's timeout, never a stuck loop.
    scrape = asyncio.ensure_future(asyncio.to_thread(ctx.metrics.exposition))
    try:
        body = await asyncio.wait_for(asyncio.shield(scrape), ctx.feeds.guard.timeout)
    except TimeoutError:
        return unavailable(ctx.feeds.guard.unavailable("the database did not answer in time"))
    return Response(body, media_type=CONTENT_TYPE)


def unavailable(exc: StoreUnavailable) -> Response:
    reply = feed_http.unavailable(exc)
    return Response(reply.body, status_code=reply.status, headers=reply.headers)


# --- admin ------------------------------------------------------------------------------------


async def admin(ctx: WebContext, request: Request) -> Response:
    sid, action = request.path_params["sid"], request.path_params["action"]
    if action not in ACTIONS:
        return PlainTextResponse(
            f"404 Not Found: no action {action!r}; use fetch-now or reset\n", 404
        )
    expected = ctx.settings().server.admin_token
    if not expected:
        return _refused(
            ctx,
            request,
            sid,
            "this server is read-only; set server.admin_token in "
            "the config to enable admin actions",
        )
    given = await presented_token(request)
    if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
        log.warning(
            "%s",
            kv(
                event="admin",
                action=action,
                source=sid,
                result="refused",
                client=request.client.host if request.client else None,
            ),
        )
        return _refused(ctx, request, sid, "wrong or missing admin token; nothing was changed")
    try:
        known = await ctx.feeds.guard.call("admin", _act, ctx.store, sid, action, ctx.clock.now())
    except StoreUnavailable as exc:
        return unavailable(exc)
    if not known:
        return PlainTextResponse(f"404 Not Found: no source {sid!r}\n", 404)
    if ctx.poke:
        ctx.poke()
    log.info("%s", kv(event="admin", action=action, source=sid, result="done"))
    target = signed(ctx.settings().server, f"/sources/{quote(sid, safe='')}?done={action}")
    return RedirectResponse(target, status_code=303)


def _act(store: Store, sid: str, action: str, now: datetime) -> bool:
    """Do ``action`` to source ``sid``; False when there is no such source."""
    if store.get_state(sid) is None:
        return False
    if action == "reset":
        store.reset_source(sid, now)
    else:
        store.fetch_now(sid, now)
    return True


def _refused(ctx: WebContext, request: Request, sid: str, why: str) -> Response:
    """403: an HTML page with a way back to the source for a browser, plain text otherwise."""
    if "text/html" not in request.headers.get("accept", ""):
        return PlainTextResponse(f"403 Forbidden: {why}\n", 403)
    page = error_page(
        "Forbidden",
        403,
        why[:1].upper() + why[1:] + ".",
        f"/sources/{quote(sid, safe='')}",
        "back to the source",
    )
    return HTMLResponse(sign_links(page, ctx.settings().server), 403, headers=PAGE_HEADERS)


async def presented_token(request: Request) -> str | None:
    """The token from ``Authorization: Bearer …`` or else from a urlencoded form field ``token``."""
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    values = parse_qs(body.decode("utf-8", "replace")).get("token")
    return values[0] if values else None


# --- data -------------------------------------------------------------------------------------


def notices(state: ReloadState | None) -> tuple[Notice, ...]:
    if state is None:
        return ()
    found = []
    if state.error:
        when = state.error_at.strftime("%Y-%m-%d %H:%M:%S UTC") if state.error_at else ""
        found.append(
            Notice(
                "error",
                f"The config file {state.path} has errors and was not applied ({when}); "
                "the daemon keeps running the previous config.",
                state.error,
            )
        )
    if state.needs_restart:
        found.append(
            Notice(
                "warning",
                "Changed settings that take effect only after a restart",
                state.needs_restart,
            )
        )
    return tuple(found)


def feed_links(feeds: FeedService, sources: Mapping[str, Source]) -> list[FeedLink]:
    """Every feed the feed service offers for the running config (``every()``: all, each source,
    each category and its parents, each operator feed)."""
    every = getattr(feeds, "every", None)
    if callable(every):
        return [_as_link(spec) for spec in every()]
    links = [_link(feeds.all)]  # a feed service without a catalog: the built-in feeds
    links += [_link(partial(feeds.source, sid)) for sid in sorted(sources)]
    paths = sorted(
        {s.category[:n] for s in sources.values() for n in range(1, len(s.category) + 1)}
    )
    links += [_link(partial(feeds.category, p)) for p in paths]
    return [link for link in links if link is not None]


def _link(spec: Callable[[], FeedSpec]) -> FeedLink | None:
    try:
        return _as_link(spec())
    except SelectionError:
        return None


def _as_link(spec: FeedSpec) -> FeedLink:
    kind = spec.id.split("/", 1)[0] if spec.id == "all" or "/" in spec.id else "feed"
    formats = tuple(getattr(spec, "formats", ("rss", "atom", "json")))
    return FeedLink(title=spec.title, path=spec.path, kind=kind, formats=formats)


def display_names(
    sources: Mapping[str, Source], state: Callable[[str], SourceState | None]
) -> dict[str, str]:
    """Each source's title as every published place shows it (catalog.source_title)."""
    return {sid: source_title(s, state(sid)) for sid, s in sources.items()}
