"""The URL policy: which URLs we publish, which addresses we may reach, and URLs safe to show.

Owns three small decisions every stage uses:

- ``public_link``: a link, enclosure, image, icon or OPML URL is published only if it is an
  absolute ``http``/``https`` URL with a host, after resolving it against a base. Tabs, newlines
  and other control characters are removed everywhere in it and spaces at either end (what a
  browser does before it reads a scheme), and the scheme is compared case-insensitively, so
  `` javascript:``, ``JAVASCRIPT:``, ``java\\tscript:``, ``vbscript:``, ``data:text/html`` and
  non-URLs (``urn:uuid:…``, ``1.2``) never become links.
- ``host_address`` and ``is_public``: a URL's host in any form a resolver accepts (decimal
  ``2130706433``, hex ``0x7f000001``, octal ``017700000001``, short dotted ``127.1``, a trailing
  dot, IPv6 with a zone id) read as the IP address it is, and an address judged by the IPv4
  address it carries (IPv4-mapped, -compatible and -translated, NAT64 ``64:ff9b::/96`` and ``64:ff9b:1::/48``,
  6to4 ``2002::/16``, Teredo).
- ``redact``: a URL with its password (or a lone user name, often a token) and secret query
  parameters replaced by ``***``, for status pages, OPML, logs and notices.

Does not own: fetching (client.py applies the address check to every request) or HTML cleaning
(content/clean.py).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

WEB_SCHEMES = ("http", "https")
MASK = "***"
# Query parameters whose values are secrets wherever they appear (compared case-insensitively).
SECRET_PARAMS = frozenset(
    {
        "access_key",
        "access_token",
        "api_key",
        "apikey",
        "key",
        "password",
        "passwd",
        "pwd",
        "secret",
        "signature",
        "token",
    }
)

_CONTROLS = re.compile("[\x00-\x1f\x7f]")  # C0 controls (tab, newline too) and DEL
_NUMERIC_HOST = re.compile(r"^[0-9a-fx.]+$", re.IGNORECASE)
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


# --- publishing ----------------------------------------------------------------------------------


def public_link(value: object, base: str | None = None) -> str | None:
    """``value`` as an absolute http(s) URL (resolved against ``base`` when relative and
    ``base`` is itself one), or None when it is not a usable web link."""
    if not isinstance(value, str):
        return None
    text = _CONTROLS.sub("", value).strip(" ")
    if not text:
        return None
    try:
        if not urlsplit(text).scheme and base:
            absolute_base = public_link(base)
            text = urljoin(absolute_base, text) if absolute_base else text
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in WEB_SCHEMES or not parts.hostname:
        return None
    return scheme + text[len(scheme) :]  # urlsplit lower-cases the scheme, the text keeps it


# --- reaching ------------------------------------------------------------------------------------


def host_address(host: str) -> IPAddress | None:
    """The IP address ``host`` is written as, in any numeric form; None for a host name."""
    host = host.strip().removesuffix(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host.split("%", 1)[0]  # an IPv6 zone id names an interface, not an address
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not host or not _NUMERIC_HOST.match(host) or ".." in host:
        return None
    try:  # the classic inet_aton forms every resolver accepts: 127.1, 0x7f000001, 017700000001
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def canonical_host(host: str) -> str | None:
    """The dotted spelling of an IPv4 host written another way (``127.1``, ``2130706433``),
    else None: what to send instead, so that nothing downstream (a proxy) reads it as a name.
    IPv6 literals are never taken for names and are left as they are."""
    address = host_address(host)
    if address is None or address.version == 6 or str(address) == host:
        return None
    return str(address)


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, translated, NAT64, 6to4),
    if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    # NAT64, and ::/64: IPv4-compatible ::a.b.c.d and -translated ::ffff:0:a.b.c.d
    if any(address in net for net in _NAT64) or int(address) >> 64 == 0:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if int(address) > 1 else None
    return None


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is a global unicast address, judged by the IPv4 address it carries."""
    inner = embedded_ipv4(address)
    if inner is not None and not is_public(inner):
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.teredo is not None:
        return all(is_public(a) for a in address.teredo)
    return address.is_global and not address.is_multicast


# --- showing -------------------------------------------------------------------------------------


def redact(url: str | None, secret_params: frozenset[str] = SECRET_PARAMS) -> str:
    """``url`` with its password (or a lone user name) and secret query values as ``***``:
    ``http://alice:***@host/``. Text that does not parse as a URL is returned unchanged when it
    holds no ``@``, else masked whole."""
    if not url:
        return url or ""
    try:
        parts = urlsplit(url)
        netloc = _redacted_netloc(parts.netloc)
        query = _redacted_query(parts.query, secret_params)
    except ValueError:
        return MASK if "@" in url else url
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


_USERINFO_IN_TEXT = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^\s/@'\"<>]*)@")


def redact_text(text: str | None) -> str:
    """``text`` (an error message, a notice) with the userinfo of every URL in it redacted."""
    if not text:
        return text or ""
    return _USERINFO_IN_TEXT.sub(
        lambda m: m[1] + _redacted_netloc(m[2] + "@").removesuffix("@") + "@", text
    )


def _redacted_netloc(netloc: str) -> str:
    userinfo, at, hostport = netloc.rpartition("@")
    if not at:
        return netloc
    user, colon, _password = userinfo.partition(":")
    shown = f"{user}:{MASK}" if colon and user else MASK
    return f"{shown}@{hostport}"


def _redacted_query(query: str, secret_params: frozenset[str]) -> str:
    if not query:
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(name.lower() in secret_params for name, _ in pairs):
        return query
    masked = [(n, MASK if n.lower() in secret_params else v) for n, v in pairs]
    return urlencode(masked, safe="*")
