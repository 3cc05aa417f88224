"""Whatever bytes one source sends, parsing them is safe and bounded: absurd dates are absent,
a body naming a local file is not read, entries per fetch and stored text fields are capped, and
a parse over its CPU budget fails only its source."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.clock import FakeClock
from aggregator.models import Selection
from aggregator.models import FetchStatus

from .harness import ATOM
from .origin import Origin, Reply


def rss(*items: str) -> bytes:
    return ("<?xml version='1.0'?><rss version='2.0' xmlns:dc='http://purl.org/dc/elements/1.1/'>"
            "<channel><title>t</title><link>http://example.com/</link>"
            + "".join(items) + "</channel></rss>").encode()


def item(n: int, extra: str = "") -> str:
    return f"<item><title>item {n}</title><link>http://example.com/{n}</link>{extra}</item>"


async def test_a_body_naming_a_local_file_is_not_read(
    origin: Origin, tmp_path: Path, harness_factory  # type: ignore[no-untyped-def]
) -> None:
    """A body that is the path of a local feed file fails as not a feed; the file is not read."""
    local = tmp_path / "secret.xml"
    local.write_bytes(ATOM)
    origin.route("/path", Reply(str(local).encode(), content_type="text/plain"))
    origin.route("/good", Reply(ATOM))
    h = await harness_factory([("path", origin.url("/path")), ("good", origin.url("/good"))])
    await h.tick()
    assert h.state("path").last_status == "error"
    assert "not a feed" in (h.state("path").last_error or "")
    assert h.entries("path") == 0 and h.entries("good") == 20
