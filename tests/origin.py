"""A fake origin server for tests: a real HTTP server on 127.0.0.1 that misbehaves on demand.

Routes map a path (``/feed.xml``) or, when the server is used as an HTTP proxy, an absolute URL
without its query (``http://api.1sapp.com/content/outList``) to a ``Reply`` or to a function of the
request that returns one. A ``Reply`` can be a plain body, a 304-aware resource, a slow body, a
dropped connection, gzip, or a sequence of replies served one after another.
"""

from __future__ import annotations

import gzip
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Request:
    method: str
    target: str  # the request target as sent: a path, or an absolute URL through a proxy
    path: str  # path without query
    query: str
    headers: dict[str, str]
    body: bytes = b""  # what a POST sent


@dataclass
class Reply:
    body: bytes | str = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = "application/xml"
    etag: str | None = None  # answer 304 to a matching If-None-Match
    last_modified: str | None = None  # answer 304 to an equal If-Modified-Since
    gzip: bool = False  # compress the body and say so
    chunk_delay: float = 0.0  # seconds between 1 KiB chunks (slow bodies)
    drop: bool = False  # close the connection without answering
    declared_length: int | None = None  # a Content-Length that lies
    chunked: bool = False  # no Content-Length: send the body with chunked transfer encoding

    def payload(self) -> bytes:
        return self.body.encode("utf-8") if isinstance(self.body, str) else self.body


Handler = Callable[[Request], Reply]


class Sequence_:
    """Serve the given replies in order, then keep serving the last one."""

    def __init__(self, *replies: Reply) -> None:
        self._replies = list(replies)
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Reply:
        with self._lock:
            return self._replies.pop(0) if len(self._replies) > 1 else self._replies[0]


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # many sources fetched at once must not meet a full listen backlog

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients hanging up early (cut-off bodies, timeouts) are expected, not worth a trace."""
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class Origin:
    def __init__(self) -> None:
        self.routes: dict[str, Reply | Handler] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        origin = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                origin._serve(self)

            def do_HEAD(self) -> None:
                origin._serve(self)

            def do_POST(self) -> None:
                origin._serve(self)

        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proxy_url = self.base_url
        # A short poll interval so that stop() (shutdown) returns quickly after each test.
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def start(self) -> Origin:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str) -> str:
        return self.base_url + path

    def route(self, key: str, reply: Reply | Handler) -> str:
        """Serve ``reply`` at ``key`` (a path or an absolute URL without query); return its URL."""
        self.routes[key] = reply
        return key if key.startswith("http") else self.url(key)

    def hits(self, key: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == key or _absolute(r) == key]

    def _find(self, request: Request) -> Reply | Handler | None:
        absolute = _absolute(request)
        if absolute and absolute in self.routes:
            return self.routes[absolute]
        return self.routes.get(request.path)

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        request = Request(
            method=h.command,
            target=h.path,
            path=parts.path,
            query=parts.query,
            headers={k.lower(): v for k, v in h.headers.items()},
            body=body,
        )
        request.headers["x-absolute"] = h.path if parts.scheme else ""
        with self._lock:
            self.requests.append(request)
        route = self._find(request)
        if route is None:
            reply = Reply(b"not found", status=404, content_type="text/plain")
        else:
            reply = route if isinstance(route, Reply) else route(request)
        _write(h, request, reply)


def _absolute(request: Request) -> str:
    target = request.headers.get("x-absolute") or ""
    return target.split("?", 1)[0] if target else ""


def _write(h: BaseHTTPRequestHandler, request: Request, reply: Reply) -> None:
    if reply.drop:
        h.close_connection = True
        h.connection.close()
        return
    status, body = reply.status, reply.payload()
    if _not_modified(request, reply):
        status, body = 304, b""
    headers = dict(reply.headers)
    if reply.content_type and status != 304:
        headers.setdefault("Content-Type", reply.content_type)
    if reply.etag:
        headers["ETag"] = reply.etag
    if reply.last_modified:
        headers["Last-Modified"] = reply.last_modified
    if reply.gzip and body:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    if reply.chunked:
        headers["Transfer-Encoding"] = "chunked"
    else:
        headers["Content-Length"] = str(
            reply.declared_length if reply.declared_length is not None else len(body)
        )
    h.send_response(status)
    for name, value in headers.items():
        h.send_header(name, value)
    h.end_headers()
    if request.method == "HEAD":
        return
    try:
        for chunk in _chunks(body, reply.chunk_delay):
            h.wfile.write(_framed(chunk) if reply.chunked else chunk)
            h.wfile.flush()
        if reply.chunked:
            h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()
    except (BrokenPipeError, ConnectionResetError):
        h.close_connection = True


def _framed(chunk: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunk else b""


def _chunks(body: bytes, delay: float) -> Iterator[bytes]:
    if not delay:
        yield body
        return
    for start in range(0, len(body), 1024):
        time.sleep(
            delay
        )  # the server side of a slow origin; the client's timeout is what is tested
        yield body[start : start + 1024]


def _not_modified(request: Request, reply: Reply) -> bool:
    if reply.status != 200:
        return False
    inm = request.headers.get("if-none-match")
    if reply.etag and inm:
        return reply.etag in [t.strip() for t in inm.split(",")]
    ims = request.headers.get("if-modified-since")
    return bool(reply.last_modified and ims and ims == reply.last_modified)


def http_date(timestamp: float) -> str:
    return formatdate(timestamp, usegmt=True)
