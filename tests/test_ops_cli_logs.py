"""Operator CLI and logs: `aggregator sources` fits 80 columns with the status page's columns,
`aggregator check --source ID` shows what would be stored and stores nothing, and log lines are
key=value by default and JSON objects by config."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from aggregator.cli import output
from aggregator.cli import parser as cli
from aggregator.clock import FakeClock
from aggregator.http.report import COLUMNS, SourceRow
from aggregator.logs import JsonFormatter, KeyValueFormatter, kv, parse_pairs, setup_logging
from aggregator.store import open_store

from .ops_stack import make_config, running_stack
from .origin import Origin, Reply
from .test_reload import atom


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def test_sources_table_fits_80_columns() -> None:
    """Every line of the sources table fits 80 columns; long URLs and errors end in an ellipsis
    while the short columns stay whole."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        SourceRow(
            "python-insider",
            "unchanged",
            now - timedelta(minutes=12),
            0,
            now + timedelta(minutes=18),
            123,
            10,
            4,
            "https://blog.python.org/feeds/posts/default",
            None,
            None,
        ),
        SourceRow(
            "bbc-world",
            "error",
            now - timedelta(days=2),
            7,
            now + timedelta(hours=3),
            5,
            10,
            0,
            "https://feeds.bbci.co.uk/news/world/rss.xml",
            None,
            "HTTP 500 Internal Server Error from feeds.bbci.co.uk, retried 3 times",
        ),
    ]
    console = Console(width=80, record=True, color_system=None)
    console.print(output.sources_table(rows, now, 80))
    lines = console.export_text().splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert lines[0].split()[:4] == ["id", "status", "last", "ok"]
    assert len(lines) == 4  # header, rule, one line per source
    assert lines[2].split()[:7] == ["python-insider", "unchanged", "12m", "ago", "0", "in", "18m"]
    assert "in 3h" in lines[3] and "…" in lines[3]


def test_sources_command_matches_the_status_page_rows(
    tmp_path: Path,
    origin: Origin,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`aggregator fetch` (exit 1: one source failed) then `aggregator sources` prints one line
    per source, within 80 columns, with the same columns as the status page."""
    path, _ = make_config(tmp_path, origin, {"alpha": atom("alpha", ["A1", "A2"]), "beta": b""})
    origin.route("/beta", Reply(b"nope", status=404, content_type="text/plain"))
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(output, "console", Console(width=80, color_system=None))
    assert cli.main(["--config", str(path), "fetch"]) == 1  # beta failed
    capsys.readouterr()
    assert cli.main(["--config", str(path), "sources"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 80 for line in out)
    header = " ".join(out[0].split())
    assert header.startswith(" ".join(COLUMNS[:3]))
    alpha = next(line for line in out if line.startswith("alpha"))
    beta = next(line for line in out if line.startswith("beta"))
    assert alpha.split()[1] == "ok" and " 2 " in alpha
    assert beta.split()[1] == "error"


def test_check_source_is_a_dry_run(
    tmp_path: Path, origin: Origin, capsys: pytest.CaptureFixture[str]
) -> None:
    """`aggregator check --source ID` fetches the source and lists its entries, and afterwards the
    store holds no entries, no fetch log and no source row."""
    path, _ = make_config(tmp_path, origin, {"alpha": atom("alpha", ["First title", "Second"])})
    assert cli.main(["--config", str(path), "check", "--source", "alpha"]) == 0
    out = capsys.readouterr().out
    assert "alpha: ok" in out and "First title" in out and "Second" in out
    assert "would store: 2 new, 0 changed" in out
    assert len(origin.hits("/alpha")) == 1
    store = open_store(f"sqlite:///{tmp_path / 'agg.db'}", datetime.now(UTC))
    try:
        assert store.entry_counts() == {}
        assert store.fetch_history("alpha") == []
        assert store.get_state("alpha") is None
    finally:
        store.close()
    assert cli.main(["--config", str(path), "check", "--source", "nope"]) == 2  # a usage error


def test_kv_round_trips_through_parse_pairs() -> None:
    """A message built with kv() reads back to the same fields, whatever quotes and spaces the
    values hold."""
    nasty = 'can\'t "parse" = this\nline'
    message = kv(source="a b", error=nasty, n=3, elapsed=0.25, skipped=None)
    assert parse_pairs(message) == {"source": "a b", "error": nasty, "n": "3", "elapsed": "0.250"}


@pytest.mark.parametrize("fmt", ["kv", "json"])
async def test_event_lines_are_key_value_or_json(
    fmt: str, tmp_path: Path, origin: Origin, clock: FakeClock, restore_logging: None
) -> None:
    """Fetch outcomes (ok and error) and reloads log one line each with the source id and the
    outcome: key=value by default, and a JSON object per line with format = "json"."""
    path, text = make_config(tmp_path, origin, {"ok": atom("ok", ["A"]), "bad": b""})
    origin.route("/bad", Reply(b"x", status=500, content_type="text/plain"))
    path.write_text(text.replace('level = "INFO"', f'level = "INFO"\nformat = "{fmt}"'), "utf-8")
    buffer = io.StringIO()
    async with running_stack(path, clock, serve=False) as st:
        setup_logging(st.settings.logging)
        logging.getLogger().handlers[0].setStream(buffer)  # type: ignore[attr-defined]
        await st.tick()
        st.ops.reloader.reload("SIGHUP")
        logging.getLogger().handlers[0].setStream(buffer)  # type: ignore[attr-defined]
        clock.advance(86400)
        await st.tick()
    lines = [line for line in buffer.getvalue().splitlines() if line]
    events = [json.loads(line) if fmt == "json" else parse_pairs(line) for line in lines]
    if fmt == "kv":
        assert not any(line.lstrip().startswith("{") for line in lines)
    fetched = [e for e in events if e.get("event") == "fetched"]
    assert {(e["source"], e["outcome"]) for e in fetched} >= {("ok", "ok"), ("bad", "error")}
    assert all(e["level"] in ("info", "warning") for e in events)
    assert any(e.get("event") == "reload" and e.get("reason") == "SIGHUP" for e in events)
    bad = next(e for e in fetched if e["source"] == "bad")
    assert "500" in bad["error"]


def test_formatters_put_the_pairs_first_class() -> None:
    """The JSON formatter turns the pairs into fields; the key=value one keeps them verbatim."""
    record = logging.LogRecord(
        "aggregator.x",
        logging.WARNING,
        __file__,
        1,
        "%s",
        (kv(source="s1", outcome="error", error="it's 500"),),
        None,
    )
    doc = json.loads(JsonFormatter().format(record))
    assert doc["source"] == "s1" and doc["error"] == "it's 500" and doc["level"] == "warning"
    line = KeyValueFormatter().format(record)
    assert parse_pairs(line)["error"] == "it's 500" and "level=warning" in line
