"""Access control for the HTTP surface, off by default: RSSHub's ``ACCESS_KEY`` conventions.

Owns: which area a path belongs to (``status``: ``/`` and ``/sources/…`` pages; ``opml``;
``feeds``: ``/feeds/…``; ``metrics``), and whether a request may see it. With
``server.access_key`` set, the areas listed in ``server.private`` (default: status, opml, metrics;
feeds stay public) answer only a request that brings the key as ``?key=KEY``, as
``?code=md5(path + KEY)`` (a per-URL code that does not reveal the key, as RSSHub computes it:
the hex MD5 of the path without query followed by the key), or in an ``X-Access-Key`` header.
Keys and codes are compared in constant time. ``/healthz`` and ``/readyz`` are never private;
admin actions (POST) keep their own token (``server.admin_token``). Private status pages (seen
only by who has the key) link to the other private pages with their per-URL codes, never the key.

Does not own: the routes (app.py, routes.py), where the settings come from.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote

from starlette.types import Scope, Send

from ..config.settings import ServerSettings

HEADER = b"x-access-key"
DENIED = (
    b"403 Forbidden: Access denied. This page needs the server's access key: add ?key=KEY or "
    b"?code=MD5(path + KEY) to the URL, or send an X-Access-Key header.\n"
)


def area_of(path: str) -> str | None:
    """The area ``path`` belongs to, or None for what is never private (health checks)."""
    if path.startswith("/feeds/"):
        return "feeds"
    if path == "/opml":
        return "opml"
    if path == "/metrics":
        return "metrics"
    if path == "/" or path.startswith("/sources/"):
        return "status"
    return None


def is_private(server: ServerSettings, area: str | None) -> bool:
    return bool(server.access_key) and area is not None and area in server.private


def granted(
    server: ServerSettings,
    method: str,
    path: str,
    query: str,
    headers: Iterable[tuple[bytes, bytes]],
) -> bool:
    """Whether a request for ``path`` may be answered under ``server``'s access settings."""
    if method == "POST" or not is_private(server, area_of(path)):
        return True
    key = (server.access_key or "").encode()
    for name, value in headers:
        if name.lower() == HEADER and hmac.compare_digest(value.strip(), key):
            return True
    params = dict(parse_qsl(query, keep_blank_values=True))
    given = params.get("key")
    if given is not None and hmac.compare_digest(given.encode(), key):
        return True
    code = params.get("code")
    return code is not None and hmac.compare_digest(
        code.lower().encode(), _code(path, key).encode()
    )


def _code(path: str, key: bytes) -> str:
    """RSSHub's per-URL code: the hex MD5 of the (decoded) path followed by the key."""
    return hashlib.md5(path.encode() + key, usedforsecurity=False).hexdigest()


def signed(server: ServerSettings, target: str) -> str:
    """``target`` (a site-relative URL, percent-encoded as in a link) with its ``code`` added
    when it is in a private area."""
    path, _, query = target.partition("?")
    decoded = unquote(path)
    if not server.access_key or not is_private(server, area_of(decoded)):
        return target
    code = "code=" + _code(decoded, server.access_key.encode())
    return f"{path}?{query}&{code}" if query else f"{path}?{code}"


_OWN_LINK = re.compile(r'(href|action|formaction)="(/(?!/)[^"]*)"')


def sign_links(page: str, server: ServerSettings) -> str:
    """A private status page's links to other private pages, each with its per-URL code (the
    page is shown only to who has the key; a public page is returned unchanged)."""
    if not is_private(server, "status"):
        return page

    def sign(m: re.Match[str]) -> str:
        target = html.unescape(m[2])
        return f'{m[1]}="{html.escape(signed(server, target))}"'

    return _OWN_LINK.sub(sign, page)


def scope_granted(server: ServerSettings, scope: Scope) -> bool:
    """``granted`` for an ASGI HTTP scope."""
    if not server.access_key:  # nothing is private
        return True
    query = scope.get("query_string", b"").decode("latin-1")
    return granted(server, scope["method"], scope["path"], query, scope["headers"])


async def deny(send: Send) -> None:
    """The 403 answer, as ASGI messages."""
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(DENIED)).encode()),
                (b"cache-control", b"no-store"),
                (b"x-content-type-options", b"nosniff"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": DENIED})
