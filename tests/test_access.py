"""Access control with ``server.access_key`` (RSSHub's conventions): private areas need
``?key=``, ``?code=md5(path + key)`` or an ``X-Access-Key`` header; feeds stay public unless
listed; health checks are never private; HTML pages carry the security headers."""

from __future__ import annotations

import hashlib
import html
import re
from pathlib import Path

import pytest

from aggregator.clock import FakeClock
from aggregator.config import loading as config

from .ops_stack import make_config, running_stack
from .origin import Origin
from .test_reload import atom

KEY = "s3cr3t-k3y"


def _code(path: str, key: str = KEY) -> str:
    return hashlib.md5((path + key).encode()).hexdigest()


async def test_status_and_opml_are_private_with_a_key(
    tmp_path: Path, origin: Origin, clock: FakeClock
) -> None:
    """With a key, status pages, /opml and /metrics answer 403 without it and 200 with it;
    feeds and health checks stay public."""
    path, _ = make_config(
        tmp_path, origin, {"a": atom("a", ["A1"])}, server_extra=f'access_key = "{KEY}"'
    )
    async with running_stack(path, clock) as st:
        await st.tick()
        async with st.client() as http:
            for page in ("/", "/sources/a", "/opml", "/metrics"):
                refused = await http.get(page)
                assert refused.status_code == 403 and "Access denied" in refused.text, page
                assert (await http.get(page, params={"key": "wrong"})).status_code == 403
                assert (
                    await http.get(page, params={"code": _code(page, "wrong")})
                ).status_code == 403
                assert (await http.get(page, params={"key": KEY})).status_code == 200, page
                assert (await http.get(page, params={"code": _code(page)})).status_code == 200, page
                assert (await http.get(page, headers={"X-Access-Key": KEY})).status_code == 200, (
                    page
                )
            for public in ("/feeds/all.atom", "/healthz", "/readyz"):
                assert (await http.get(public)).status_code == 200, public


async def test_feeds_can_be_private_too(tmp_path: Path, origin: Origin, clock: FakeClock) -> None:
    """Listing feeds in server.private protects them; the per-URL code works for a feed."""
    extra = f'access_key = "{KEY}"\nprivate = ["feeds"]'
    path, _ = make_config(tmp_path, origin, {"a": atom("a", ["A1"])}, server_extra=extra)
    async with running_stack(path, clock) as st:
        await st.tick()
        async with st.client() as http:
            assert (await http.get("/feeds/all.atom")).status_code == 403
            assert (
                await http.get("/feeds/all.atom", params={"code": _code("/feeds/all.atom")})
            ).status_code == 200
            assert (await http.get("/")).status_code == 200  # not listed: public


async def test_private_pages_link_with_per_url_codes(
    tmp_path: Path, origin: Origin, clock: FakeClock
) -> None:
    """A private status page links to the other private pages and feeds with their per-URL
    codes, which open them without the key; the key itself is never in the page."""
    extra = f'access_key = "{KEY}"\nprivate = ["status", "feeds", "opml", "metrics"]'
    path, _ = make_config(tmp_path, origin, {"a": atom("a", ["A1"])}, server_extra=extra)
    async with running_stack(path, clock) as st:
        await st.tick()
        async with st.client() as http:
            page = (await http.get("/", headers={"X-Access-Key": KEY})).text
            links = {html.unescape(m) for m in re.findall(r'href="(/[^"]*)"', page)}
            assert KEY not in page
            assert {
                "/sources/a?code=" + _code("/sources/a"),
                "/feeds/all.atom?code=" + _code("/feeds/all.atom"),
            } <= links
            for link in links:
                assert (await http.get(link)).status_code == 200, link
            detail = (await http.get("/sources/a?code=" + _code("/sources/a"))).text
            back = {html.unescape(m) for m in re.findall(r'href="(/[^"]*)"', detail)}
            assert "/?code=" + _code("/") in back


async def test_no_key_nothing_private_and_pages_carry_security_headers(
    tmp_path: Path, origin: Origin, clock: FakeClock
) -> None:
    """Without a key everything is public; status pages send CSP, frame and sniffing headers."""
    path, _ = make_config(tmp_path, origin, {"a": atom("a", ["A1"])})
    async with running_stack(path, clock) as st:
        await st.tick()
        async with st.client() as http:
            for page in ("/", "/sources/a"):
                reply = await http.get(page)
                assert reply.status_code == 200
                csp = reply.headers["content-security-policy"]
                assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
                assert reply.headers["x-content-type-options"] == "nosniff"
                assert reply.headers["x-frame-options"] == "DENY"
                assert reply.headers["referrer-policy"] == "no-referrer"


def test_access_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key (and other secrets) can come from the environment: "${NAME}" or AGGREGATOR_ACCESS_KEY."""
    monkeypatch.setenv("MY_KEY", "from-env")
    monkeypatch.setenv("DB_URL", "sqlite:///x.db")
    settings = config.parse('[server]\naccess_key = "${MY_KEY}"\n[storage]\nurl = "${DB_URL}"\n')
    assert settings.server.access_key == "from-env" and settings.storage.url == "sqlite:///x.db"
    monkeypatch.setenv("AGGREGATOR_ACCESS_KEY", "env-key")
    assert config.parse("").server.access_key == "env-key"
    with pytest.raises(config.ConfigError, match="NOT_SET is not set"):
        config.parse('[server]\nadmin_token = "${NOT_SET}"\n')
