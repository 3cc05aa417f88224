"""Canonical URLs: the one spelling of a story's address that its copies share.

Owns: ``canonical_url`` (tracking parameters removed, host, port, path escapes and query order in
one form), which query parameters are tracking (``is_tracking_param``), and when two canonical
URLs name one story for the duplicate rules (``is_specific_url``, ``url_identity``,
``same_url``, ``site_of``).

Does not own: which URLs may be fetched or published (content/urls.py), or what counts as a
duplicate beyond the URL (dedupe.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_tracking_param(name: str, tracking_params: Sequence[str], host: str | None = None) -> bool:
    """True when a query parameter name matches the list (``utm_*`` is a prefix; case-insensitive;
    ``key@example.com`` applies only on that host and its subdomains)."""
    lowered = name.casefold()
    for pattern in tracking_params:
        p, _, scope = pattern.casefold().partition("@")
        if scope and not (host and (host == scope or host.endswith("." + scope))):
            continue
        if lowered.startswith(p[:-1]) if p.endswith("*") else lowered == p:
            return True
    return False


def canonical_url(url: str, tracking_params: Sequence[str]) -> str:
    """The shared form of an http(s) URL: lower-case scheme and host, no default port, no
    fragment (a ``#!`` route is kept), query sorted by name without tracking parameters, non-ASCII and
    escapes in the path in one spelling. Other URLs (urn:, mailto:, relative) come back stripped."""
    raw = url.strip()
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        return raw
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return raw
    netloc = _netloc(parts.hostname, port, scheme, parts.username, parts.password)
    fragment = parts.fragment if parts.fragment.startswith("!") else ""
    query = _clean_query(parts.query, tracking_params, parts.hostname.lower())
    return urlunsplit((scheme, netloc, _clean_path(parts.path), query, fragment))


def _netloc(host: str, port: int | None, scheme: str, user: str | None, pw: str | None) -> str:
    host = host.rstrip(".")
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    if user is not None:
        host = f"{user}:{pw}@{host}" if pw is not None else f"{user}@{host}"
    return host


def _clean_path(path: str) -> str:
    spelled = quote(path, safe="/%:@!$&'()*+,;=-._~")  # raw non-ASCII becomes %XX like its copies
    spelled = re.sub(r"%[0-9a-f]{2}", lambda m: m.group(0).upper(), spelled)
    return spelled or "/"


def _clean_query(query: str, tracking_params: Sequence[str], host: str | None = None) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if not is_tracking_param(k, tracking_params, host)]
    kept.sort(key=lambda kv: kv[0])  # by name; repeated names keep their order
    return urlencode(kept, quote_via=quote)


def is_specific_url(url: str | None) -> bool:
    """False for URLs too generic to identify a story (a site's home page, a non-http link):
    feeds that point every item at their home page must not make every item the same story."""
    if not url:
        return False
    parts = urlsplit(url)
    return parts.scheme in _DEFAULT_PORTS and (parts.path not in ("", "/") or bool(parts.query))


def site_of(url: str | None) -> str | None:
    """The host of an http(s) URL without a leading ``www.``; None for anything else."""
    host = urlsplit(url).hostname if url else None
    return host.removeprefix("www.") if host else None


def url_identity(url: str | None) -> str | None:
    """A canonical URL without its scheme: ``http`` and ``https`` of one host and path are one
    URL for dedupe (a site that moved to https); None for a URL too generic to identify a story."""
    if not is_specific_url(url):
        return None
    assert url is not None
    return url.split(":", 1)[1]


def same_url(a: str | None, b: str | None) -> bool:
    """True when two canonical URLs name one story (scheme aside; never a bare home page)."""
    key = url_identity(a)
    return key is not None and key == url_identity(b)
