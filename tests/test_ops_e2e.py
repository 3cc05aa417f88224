"""The README walk-through against the real daemon subprocess: break a source, fix the config, and
watch it recover on the status page without a restart (SIGHUP and the file watcher); a broken
config is shown and not applied; with JSON logging every line the daemon prints is JSON."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from .origin import Origin, Reply
from .test_e2e import Daemon, free_port
from .test_reload import atom

pytestmark = pytest.mark.slow


def config(tmp: Path, port: int, sources: dict[str, str]) -> str:
    lines = [
        "[server]",
        'host = "127.0.0.1"',
        f"port = {port}",
        'admin_token = "t0ken"',
        "[storage]",
        f'url = "sqlite:///{tmp / "agg.db"}"',
        "[fetch]",
        "allow_private_networks = true",
        "per_host_delay = 0",
        "max_retries = 0",
        "[schedule]",
        'dispatch_every = "0.2s"',
        'interval = "30m"',
        'backoff_base = "1h"',
        "[logging]",
        'format = "json"',
    ]
    for sid, url in sources.items():
        lines += ["[[sources]]", f'id = "{sid}"', f'url = "{url}"']
    return "\n".join(lines) + "\n"


def test_break_fix_recover_without_restart(tmp_path: Path, origin: Origin) -> None:
    """A source pointed at a 404 shows as failing; fixing its URL and sending SIGHUP makes it
    healthy within seconds; an edited file is picked up without a signal; an invalid file is
    reported on the page while the daemon keeps running; every log line is a JSON object."""
    good = origin.route("/good", Reply(atom("good", ["G1"]), content_type="application/atom+xml"))
    fixed = origin.route(
        "/fixed", Reply(atom("fixed", ["F1", "F2"]), content_type="application/atom+xml")
    )
    late = origin.route("/late", Reply(atom("late", ["L1"]), content_type="application/atom+xml"))
    port = free_port()
    cfg = tmp_path / "aggregator.toml"
    cfg.write_text(config(tmp_path, port, {"good": good, "news": origin.url("/missing")}), "utf-8")
    daemon = Daemon(cfg, port)
    try:
        page = daemon.wait_for(lambda: _page_with(daemon, "/sources/news", "<b>error</b>"))
        assert "HTTP 404" in page

        cfg.write_text(config(tmp_path, port, {"good": good, "news": fixed}), "utf-8")
        daemon.proc.send_signal(signal.SIGHUP)
        page = daemon.wait_for(
            lambda: _page_with(daemon, "/sources/news", '<span class="badge good">ok</span>')
        )
        assert "F1" in page and "F2" in page

        cfg.write_text(config(tmp_path, port, {"good": good, "news": fixed, "late": late}), "utf-8")
        daemon.wait_for(lambda: _page_with(daemon, "/sources/late", "L1"), timeout=15)

        cfg.write_text(config(tmp_path, port, {"good": good}) + "colour = 1\n", "utf-8")
        daemon.proc.send_signal(signal.SIGHUP)
        page = daemon.wait_for(lambda: _page_with(daemon, "/", "has errors and was not applied"))
        assert "colour: unknown key" in page and 'id="source-late"' in page
        assert daemon.get("/healthz").status_code == 200
        assert daemon.get("/readyz").status_code == 200
    finally:
        code = daemon.stop()
    lines = daemon.output().splitlines()
    assert code == 0
    events = [json.loads(line) for line in lines]  # every line parses
    assert {"started", "stopped", "reload", "signal", "fetched"} <= {e.get("event") for e in events}
    assert any(
        e.get("event") == "fetched" and e.get("source") == "news" and e.get("outcome") == "error"
        for e in events
    )
    assert any(
        e.get("event") == "reload" and e.get("result") == "applied" and e.get("changed") == "news"
        for e in events
    )
    assert any(e.get("event") == "reload" and e.get("result") == "rejected" for e in events)


def _page_with(daemon: Daemon, path: str, text: str) -> str | None:
    r = daemon.get(path)
    return r.text if r.status_code == 200 and text in r.text else None
