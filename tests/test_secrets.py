"""Secrets never shown: credentials in source URLs and in restart-only settings are redacted on
the status pages, in /opml, in reload notices and in the log."""

from __future__ import annotations

import logging
from pathlib import Path

from aggregator.clock import FakeClock
from aggregator.content.urls import redact, redact_text

from .ops_stack import make_config, running_stack
from .origin import Origin
from .test_reload import atom


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def test_source_credentials_are_redacted_on_pages_and_opml(
    tmp_path: Path, origin: Origin, clock: FakeClock
) -> None:
    """A source URL's password appears on no status page and not in /opml."""
    path, text = make_config(tmp_path, origin, {"a": atom("a", ["A1"])})
    path.write_text(
        text.replace("http://127.0.0.1", "http://alice:s3cret@127.0.0.1"), encoding="utf-8"
    )
    async with running_stack(path, clock) as st:
        await st.tick()
        async with st.client() as http:
            pages = [(await http.get(p)).text for p in ("/", "/sources/a", "/opml")]
    assert all("s3cret" not in page for page in pages)
    assert "alice:***@127.0.0.1" in pages[0] and "alice:***@127.0.0.1" in pages[2]


async def test_restart_notice_shows_database_and_proxy_urls_redacted(
    tmp_path: Path, origin: Origin, clock: FakeClock
) -> None:
    """After a live edit of storage.url and fetch.proxy, the notice and the log show no password."""
    path, text = make_config(tmp_path, origin, {"a": atom("a", ["A1"])})
    lines = _Lines()
    logging.getLogger("aggregator.reload").addHandler(lines)
    try:
        async with running_stack(path, clock) as st:
            edited = text.replace('url = "sqlite:', 'url = "postgresql://bob:dbpass@db.test/agg" #')
            st.write(
                edited.replace(
                    "[fetch]", '[fetch]\nproxy = "http://carol:proxypass@proxy.test:3128"'
                )
            )
            assert st.ops.reloader.check() is True
            notice = st.ops.reloader.state.needs_restart
            async with st.client() as http:
                page = (await http.get("/")).text
    finally:
        logging.getLogger("aggregator.reload").removeHandler(lines)
    assert any("bob:***@db.test" in line for line in notice), notice
    assert any("carol:***@proxy.test" in line for line in notice), notice
    shown = "\n".join([*notice, page, *lines.lines])
    assert "needs_restart" in "\n".join(lines.lines)
    assert "dbpass" not in shown and "proxypass" not in shown


def test_redaction_forms() -> None:
    """Passwords, lone user names and secret query values become ***; other URLs are untouched."""
    assert (
        redact("http://alice:pw@h.test:8/x?token=t&a=1")
        == "http://alice:***@h.test:8/x?token=***&a=1"
    )
    assert redact("https://tok@h.test/") == "https://***@h.test/"
    assert redact("sqlite:///data/a.db") == "sqlite:///data/a.db"
    assert redact_text("invalid URL 'http://u:p@h/x'") == "invalid URL 'http://u:***@h/x'"


def test_log_lines_never_carry_url_passwords() -> None:
    """Whoever logs a URL with credentials, both log formats write its password as ***."""
    from aggregator.logs import JsonFormatter, KeyValueFormatter, kv

    record = logging.LogRecord(
        "aggregator.x",
        logging.WARNING,
        __file__,
        1,
        "%s",
        (
            kv(
                event="fetch",
                url="http://alice:pw1@h.test/feed",
                error="proxy https://u:pw2@p.test failed",
            ),
        ),
        None,
    )
    for formatter in (KeyValueFormatter(), JsonFormatter()):
        line = formatter.format(record)
        assert "pw1" not in line and "pw2" not in line and "alice:***@h.test" in line
