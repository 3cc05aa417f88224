"""Fetching URLs from the real web: the only user of httpx and tenacity.

Owns: one shared ``httpx.AsyncClient``; conditional GET; form POSTs (``post``, for WebSub pings:
the same retries, checks and politeness, no redirects followed); retries within one fetch (connect errors,
timeouts, dropped connections, 5xx, 408 and 429, with exponential backoff and jitter, honouring a
short Retry-After); redirects followed by hand (a loop is an error; whether every hop was permanent
is recorded); per-host politeness (a concurrency limit, a minimum gap between request starts, and a
429's Retry-After holding the URL or host back for later fetches); a global concurrency limit;
connect and total timeouts; a body size limit on the decoded bytes; an optional proxy; refusing
private network addresses unless allowed, on every request and every redirect hop, with or without
the proxy (``urls.host_address`` reads every numeric host form, ``urls.is_public`` judges NAT64,
6to4 and mapped IPv6 by their IPv4 address; a numeric host is sent in its dotted form, so a proxy
never gets ``2130706433`` as a name); a source's own request options (headers, User-Agent,
cookies, Referer, basic auth) on each of its requests, its cookies and credentials sent to its own
origin only (not to another host it redirects to). Does not own: what a status means for a
source (the pipeline maps 304, 410 and errors), when to fetch again (schedule.py), or
decoding text (content/charset.py).

``Fetcher.fetch`` never raises for a network or HTTP problem: every failure is a ``FetchResult``
with a readable ``error``; ``status_code`` is None when no HTTP answer was had (connect errors,
timeouts, dropped connections, refused addresses, a URL held back by an earlier 429). httpx
exceptions become messages in one place, ``_convert``. Time is read from the injected clock and
every backoff or politeness wait goes through ``clock.sleep``; only the total timeout runs on real
time, because it has to cut a real socket.

Limits worth knowing: the body limit counts decoded bytes as httpx hands them over, so one network
read of a gzip bomb (at most 64 KiB) can inflate to about 64 MiB before it is counted and cut. The
address check resolves the host itself and httpx resolves it again when connecting (a DNS answer
that changes in between is not caught). ``trust_env`` is off: only ``fetch.proxy`` picks a proxy.
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import random
import socket
import zlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Self
from urllib.parse import urlencode, urljoin, urlsplit

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
)

from .clock import Clock
from .config.settings import FetchSettings
from .content.urls import canonical_host, host_address, is_public
from .models import FetchResult, RequestOptions

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8"
)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class _Reply:
    """The answer to one request (no redirect followed)."""

    url: str
    status: int
    headers: Mapping[str, str]
    content: bytes = b""
    error: str | None = None  # set when the answer came but could not be used (too large, bad gzip)
    retry_after: datetime | None = None


@dataclass(frozen=True)
class Posted:
    """How a POST ended: the status of the last answer (None when none came), why it failed
    (None for a 2xx), and how many requests it took."""

    status: int | None
    error: str | None
    attempts: int


@dataclass(frozen=True)
class _Request:
    """What is sent besides the URL: a GET's conditional headers, or a POST and its body."""

    headers: Mapping[str, str]
    method: str = "GET"
    content: bytes | None = None
    auth: httpx.Auth | None = None  # a source's basic auth (its own origin only)


class _Failure(Exception):
    """No usable HTTP answer; ``retryable`` says whether trying again within this fetch may help."""

    def __init__(
        self, message: str, url: str, *, retryable: bool, retry_after: datetime | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.url = url
        self.retryable = retryable
        self.retry_after = retry_after


class _HostGate:
    """Politeness state for one host: a concurrency limit and the earliest next request start."""

    def __init__(self, limit: int) -> None:
        self.slots = asyncio.Semaphore(limit)
        self.lock = asyncio.Lock()
        self.next_start: datetime | None = None


class Fetcher:
    """Fetches URLs politely and answers every fetch with a ``FetchResult``."""

    def __init__(
        self, settings: FetchSettings, clock: Clock, *, rng: random.Random | None = None
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._rng = rng or random.Random()
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
            follow_redirects=False,
            proxy=settings.proxy,
            trust_env=False,
            headers={"User-Agent": settings.user_agent, "Accept": _ACCEPT},
        )
        self._global = asyncio.Semaphore(settings.concurrency)
        self._hosts: dict[str, _HostGate] = {}
        self._held: dict[str, datetime] = {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        request: RequestOptions | None = None,
    ) -> FetchResult:
        """GET ``url`` (conditionally when validators are given), following redirects, with the
        source's own request options (``request``) when it has some."""
        started = self._clock.now()
        try:
            result = await self._follow(url, _conditional(etag, last_modified), request)
        except _Failure as failure:
            result = FetchResult(
                url=failure.url,
                status_code=None,
                error=failure.message,
                retry_after=failure.retry_after,
            )
        self._remember_hold(result)
        elapsed = (self._clock.now() - started).total_seconds()
        return replace(result, elapsed=elapsed, fetched_at=started)

    async def post(self, url: str, form: Mapping[str, str]) -> Posted:
        """POST ``form`` (``application/x-www-form-urlencoded``) to ``url``, retried like a fetch;
        a redirect is an answer like any other (a POST is not repeated elsewhere)."""
        request = _Request(
            {"Content-Type": "application/x-www-form-urlencoded"}, "POST", urlencode(form).encode()
        )
        attempts = 0

        async def once(url: str, request: _Request) -> _Reply:
            nonlocal attempts
            attempts += 1
            return await self._exchange(url, request)

        try:
            reply: _Reply = await self._retrying()(once, url, request)
        except _Failure as failure:
            return Posted(None, failure.message, attempts)
        return Posted(reply.status, reply.error or _status_error(reply), attempts)

    async def _follow(
        self, url: str, conditional: dict[str, str], request: RequestOptions | None
    ) -> FetchResult:
        seen, hops, first = {url}, list[int](), _origin(url)
        for _ in range(self._settings.max_redirects + 1):
            # credentials go to the source's own origin only, never to where it redirects
            headers, auth = _options(request, conditional, same_origin=_origin(url) == first)
            reply = await self._with_retries(url, _Request(headers, auth=auth))
            location = reply.headers.get("location", "").strip()
            if reply.status not in _REDIRECTS or not location or reply.error:
                return _result(reply, hops)
            hops.append(reply.status)
            url = urljoin(url, location).split("#", 1)[0]  # httpx has already checked it parses
            if url in seen:
                return _result(reply, hops, error=f"redirect loop: redirected back to {url}")
            seen.add(url)
        limit = self._settings.max_redirects
        return _result(reply, hops, error=f"too many redirects (more than {limit})")

    async def _with_retries(self, url: str, request: _Request) -> _Reply:
        reply: _Reply = await self._retrying()(self._exchange, url, request)
        return reply

    def _retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            stop=stop_after_attempt(self._settings.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(_retryable) | retry_if_result(self._should_retry),
            sleep=self._clock.sleep,
            retry_error_callback=_last_outcome,
        )

    def _should_retry(self, reply: _Reply) -> bool:
        if reply.error is not None or not (reply.status in (408, 429) or reply.status >= 500):
            return False
        wait = self._seconds_until(reply.retry_after)
        return wait is None or wait <= self._settings.retry_max_delay

    def _wait(self, state: RetryCallState) -> float:
        """Exponential backoff with jitter, or a (short) Retry-After when it is longer."""
        base = self._settings.retry_base_delay * 2.0 ** min(state.attempt_number - 1, 30)
        backoff = min(base, self._settings.retry_max_delay)
        delay = backoff / 2 + self._rng.uniform(0.0, backoff / 2)
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            delay = max(delay, self._seconds_until(outcome.result().retry_after) or 0.0)
        return delay

    async def _exchange(self, url: str, request: _Request) -> _Reply:
        """One request: checks, politeness slot, total timeout, and exception conversion."""
        await self._check_address(url)
        self._check_held(url)
        try:
            async with self._slot(urlsplit(url).hostname or ""):
                async with asyncio.timeout(self._settings.timeout):
                    return await self._send(url, request)
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            raise _convert(exc, url, self._settings) from None

    async def _send(self, url: str, request: _Request) -> _Reply:
        built = self._client.build_request(
            request.method, _wire_url(url), headers=request.headers, content=request.content
        )
        response = await self._client.send(built, stream=True, auth=request.auth)
        try:
            reply = _Reply(
                url=url,
                status=response.status_code,
                headers={k.lower(): v for k, v in response.headers.items()},
                retry_after=self._parse_retry_after(response.headers.get("retry-after")),
            )
            if not 200 <= response.status_code < 300:
                return reply
            return await self._read_body(response, reply)
        finally:
            await response.aclose()

    async def _read_body(self, response: httpx.Response, reply: _Reply) -> _Reply:
        """The body, cut off once it passes the limit (raw or decoded)."""
        limit = self._settings.max_body_bytes
        declared = reply.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return replace(reply, error=f"body too large: {declared} bytes declared, limit {limit}")
        encoding = reply.headers.get("content-encoding", "").strip().lower()
        if encoding in _GZIP:
            return await self._read_gzip(response, reply, limit)
        body = io.BytesIO()
        try:
            async for chunk in response.aiter_bytes():
                body.write(chunk)
                if body.tell() > limit or response.num_bytes_downloaded > limit:
                    return replace(reply, error=_too_large(limit, reply.headers))
        except httpx.DecodingError as exc:
            return replace(reply, error=f"could not decode the {encoding} body: {exc}")
        return replace(reply, content=_bytes_of(body))

    async def _read_gzip(self, response: httpx.Response, reply: _Reply, limit: int) -> _Reply:
        """A gzip body inflated by us, never past ``limit`` + 1 bytes: httpx inflates each read
        whole, and one 64 KB read of a gzip bomb is 60 MB."""
        inflate = zlib.decompressobj(wbits=31)
        body = io.BytesIO()
        try:
            async for raw in response.aiter_raw():
                if response.num_bytes_downloaded > limit:
                    return replace(reply, error=_too_large(limit, reply.headers))
                body.write(inflate.decompress(raw, limit + 1 - body.tell()))
                if body.tell() > limit:
                    return replace(reply, error=_too_large(limit, reply.headers))
            body.write(inflate.flush())
        except zlib.error as exc:
            return replace(reply, error=f"could not decode the gzip body: {exc}")
        if body.tell() > limit:
            return replace(reply, error=_too_large(limit, reply.headers))
        return replace(reply, content=_bytes_of(body))

    @asynccontextmanager
    async def _slot(self, host: str) -> AsyncIterator[None]:
        """A request slot: the host's limit and gap first, then the global limit."""
        gate = self._hosts.get(host)
        if gate is None:
            gate = self._hosts[host] = _HostGate(self._settings.per_host_concurrency)
        async with gate.slots:
            await self._keep_gap(gate)
            async with self._global:
                yield

    async def _keep_gap(self, gate: _HostGate) -> None:
        async with gate.lock:
            wait = self._seconds_until(gate.next_start)
            if wait is not None and wait > 0:
                await self._clock.sleep(wait)
            gate.next_start = self._clock.now() + timedelta(seconds=self._settings.per_host_delay)

    def _hold_key(self, url: str) -> str:
        parts = urlsplit(url)
        if self._settings.retry_after_per_host:
            return f"host:{parts.hostname}"
        return parts._replace(fragment="").geturl()

    def _check_held(self, url: str) -> None:
        key = self._hold_key(url)
        until = self._held.get(key)
        if until is None:
            return
        if until <= self._clock.now():
            del self._held[key]
            return
        message = f"held back until {until.isoformat()} by the origin's 429 Retry-After"
        raise _Failure(message, url, retryable=False, retry_after=until)

    def _remember_hold(self, result: FetchResult) -> None:
        until = result.retry_after
        if result.status_code == 429 and until is not None and until > self._clock.now():
            self._held[self._hold_key(result.url)] = until

    async def _check_address(self, url: str) -> None:
        """Refuse URLs that are not http(s), and private addresses unless they are allowed."""
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a malformed port
        except ValueError:
            raise _Failure(f"invalid URL {url!r}", url, retryable=False) from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _Failure(f"not an http(s) URL: {url!r}", url, retryable=False)
        if self._settings.allow_private_networks:
            return
        for address in await self._addresses(parts.hostname, parts.port):
            if not is_public(address):
                raise _Failure(
                    f"refusing private address {address} for host {parts.hostname}; "
                    "set fetch.allow_private_networks = true to allow",
                    url,
                    retryable=False,
                )

    async def _addresses(self, host: str, port: int | None) -> list[IPAddress]:
        """The addresses ``host`` stands for (in any numeric form a resolver reads, such as
        ``2130706433`` or ``127.1``); hostnames are left to the proxy when there is one."""
        address = host_address(host)
        if address is not None:
            return [address]
        if self._settings.proxy:
            return []
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._settings.connect_timeout):
                infos = await loop.getaddrinfo(host, port or 80, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):  # unresolvable: the connect attempt reports it
            return []
        return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]

    def _parse_retry_after(self, value: str | None) -> datetime | None:
        value = (value or "").strip()
        if value.isdigit():
            return self._clock.now() + timedelta(seconds=int(value))
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when

    def _seconds_until(self, when: datetime | None) -> float | None:
        return None if when is None else (when - self._clock.now()).total_seconds()


def _conditional(etag: str | None, last_modified: str | None) -> dict[str, str]:
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


_CREDENTIALS = frozenset({"authorization", "cookie"})


def _options(
    request: RequestOptions | None, conditional: dict[str, str], *, same_origin: bool
) -> tuple[dict[str, str], httpx.Auth | None]:
    """The headers and auth of one request: the source's own, then the validators; on another
    origin than the source's URL (after a redirect) without its cookies and credentials."""
    if request is None:
        return conditional, None
    headers = {k: v for k, v in request.headers if same_origin or k.lower() not in _CREDENTIALS}
    auth = None
    if same_origin and request.username is not None:
        auth = httpx.BasicAuth(request.username, request.password or "")
    return headers | conditional, auth


def _origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port: where a source's credentials may go."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return ("", url, None)
    return (parts.scheme, (parts.hostname or "").lower(), port)


def _result(reply: _Reply, hops: list[int], *, error: str | None = None) -> FetchResult:
    error = error or reply.error or _status_error(reply)
    permanent = bool(hops) and all(status in _PERMANENT for status in hops)
    return FetchResult(
        url=reply.url,
        status_code=reply.status,
        content=reply.content if error is None else b"",
        headers=dict(reply.headers),
        error=error,
        permanent_redirect=reply.url if permanent else None,
        retry_after=reply.retry_after,
    )


def _bytes_of(body: io.BytesIO) -> bytes:
    """The bytes written to ``body``, without a copy: ``getvalue`` hands over the buffer, which
    grew in place, where joining a list of chunks held the body twice at its end."""
    content = body.getvalue()
    body.close()
    return content


def _status_error(reply: _Reply) -> str | None:
    status = reply.status
    if 200 <= status < 300 or status == 304:
        return None
    if status == 410:
        return "410 Gone"
    message = f"HTTP {status} {httpx.codes.get_reason_phrase(status)}".rstrip()
    if status in _REDIRECTS:
        return f"{message} without a Location header"
    return message


_GZIP = ("gzip", "x-gzip")


def _too_large(limit: int, headers: Mapping[str, str]) -> str:
    decoded = " after decompression" if headers.get("content-encoding") else ""
    return f"body too large: more than {limit} bytes{decoded}"


def _wire_url(url: str) -> str:
    """``url`` with a numeric host in its standard spelling (``http://127.1/`` becomes
    ``http://127.0.0.1/``), so that neither httpx nor a proxy takes it for a host name."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    wire = canonical_host(host)
    if wire is None:
        return url
    userinfo, at, _ = parts.netloc.rpartition("@")
    port = f":{parts.port}" if parts.port is not None else ""
    return parts._replace(netloc=f"{userinfo}{at}{wire}{port}").geturl()


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, _Failure) and exc.retryable


def _last_outcome(state: RetryCallState) -> _Reply:
    """When retries run out: the last reply, or the last failure raised again."""
    assert state.outcome is not None
    reply: _Reply = state.outcome.result()
    return reply


def _convert(exc: Exception, url: str, settings: FetchSettings) -> _Failure:
    """The one place where httpx and socket exceptions become readable messages."""
    host = urlsplit(url).hostname or url
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        return _Failure(
            f"timed out connecting to {host} ({settings.connect_timeout:g} s)", url, retryable=True
        )
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        return _Failure(
            f"timed out: no complete answer from {host} within {settings.timeout:g} s",
            url,
            retryable=True,
        )
    if isinstance(exc, httpx.ProxyError):
        return _Failure(f"proxy error: {detail}", url, retryable=True)
    if isinstance(exc, httpx.ConnectError):
        return _Failure(f"could not connect to {host}: {detail}", url, retryable=True)
    if isinstance(exc, httpx.RemoteProtocolError) and detail.startswith("Invalid URL in location"):
        return _Failure(f"invalid redirect Location from {host}: {detail}", url, retryable=False)
    if isinstance(exc, httpx.RemoteProtocolError):
        return _Failure(f"connection dropped by {host}: {detail}", url, retryable=True)
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return _Failure(f"invalid URL {url!r}: {detail}", url, retryable=False)
    return _Failure(f"request to {host} failed: {detail}", url, retryable=True)
