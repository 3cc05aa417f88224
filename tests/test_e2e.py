"""End to end: the real daemon as a subprocess, fed by the fake origin, read back over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest

from .conftest import CORPUS, REPO
from .origin import Origin, Reply

pytestmark = pytest.mark.slow

FEEDS = {
    "atom": ("miniflux+v2/small_atom.xml", "application/atom+xml"),
    "rss": ("feedjira+feedjira/Permalinks.xml", "application/rss+xml"),
    "rdf": ("feed-rs+feed-rs/rss_1.0_debian.xml", "application/rdf+xml"),
    "json": ("feed-rs+feed-rs/jsonfeed_spec_1.json", "application/feed+json"),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp: Path, origin: Origin, port: int) -> Path:
    lines = [
        "[server]",
        'host = "127.0.0.1"',
        f"port = {port}",
        "[storage]",
        f'url = "sqlite:///{tmp / "agg.db"}"',
        "[fetch]",
        "allow_private_networks = true",
        "per_host_delay = 0",
        "max_retries = 0",
        "[schedule]",
        'dispatch_every = "0.2s"',
        'interval = "30m"',
        "[publish]",
        "default_limit = 200",
    ]
    for sid, (path, ctype) in FEEDS.items():
        url = origin.route(f"/{sid}", Reply((CORPUS / path).read_bytes(), content_type=ctype))
        lines += ["[[sources]]", f'id = "{sid}"', f'url = "{url}"', f'category = "Test / {sid}"']
    cfg = tmp / "aggregator.toml"
    cfg.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return cfg


class Daemon:
    def __init__(self, config: Path, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "AGGREGATOR_CONFIG": str(config)}
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "run.py")],
            cwd=config.parent,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base + path, timeout=5)

    def wait_for(self, predicate: Any, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited early:\n{self.output()}")
            try:
                result = predicate()
                if result:
                    return result
            except httpx.HTTPError:
                pass
            time.sleep(0.1)  # polling a real subprocess: there is no clock to fake across processes
        raise AssertionError(f"timed out; daemon output:\n{self.stop_and_output()}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)

    def output(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.read().decode("utf-8", "replace")

    def stop_and_output(self) -> str:
        self.proc.kill()
        return self.output()


@pytest.fixture
def daemon_setup(tmp_path: Path, origin: Origin) -> Iterator[tuple[Path, int]]:
    port = free_port()
    yield write_config(tmp_path, origin, port), port


def expected_entries(sid: str) -> list[dict[str, Any]]:
    path, _ = FEEDS[sid]
    raw = (CORPUS / path).read_bytes()
    if sid == "json":
        return [{"title": i.get("title"), "link": i.get("url")} for i in json.loads(raw)["items"]]
    parsed = feedparser.parse(raw)
    return [
        {
            "title": e.get("title"),
            "link": e.get("link"),
            "date": e.get("published_parsed") or e.get("updated_parsed"),
        }
        for e in parsed.entries
    ]


def test_daemon_fetches_stores_and_republishes(daemon_setup: tuple[Path, int]) -> None:
    """Entries of every configured feed appear in the published RSS, Atom and JSON feeds, with
    the same titles, links and dates; SIGTERM exits 0 and a restart serves the same entries."""
    config, port = daemon_setup
    total = sum(len(expected_entries(s)) for s in FEEDS)
    daemon = Daemon(config, port)

    def all_atom() -> Any:
        doc = feedparser.parse(daemon.get("/feeds/all.atom").content)
        return doc if len(doc.entries) >= total else None

    atom = daemon.wait_for(all_atom)
    assert atom.bozo == 0
    rss = feedparser.parse(daemon.get("/feeds/all.rss").content)
    jsn = daemon.get("/feeds/all.json").json()
    assert len(rss.entries) == len(jsn["items"]) == len(atom.entries) == total

    for sid in FEEDS:
        published = feedparser.parse(daemon.get(f"/feeds/source/{sid}.atom").content)
        got = {e.title: e for e in published.entries}
        for want in expected_entries(sid):
            entry = got[want["title"]]
            alternates = [x.href for x in entry.get("links", []) if x.get("rel") == "alternate"]
            assert alternates == ([want["link"]] if want["link"] else [])
            if want.get("date"):
                assert entry.published_parsed[:6] == want["date"][:6]

    assert daemon.get("/feeds/all.rss").headers["content-type"].startswith("application/rss+xml")
    assert daemon.get("/feeds/all.atom").headers["content-type"].startswith("application/atom+xml")
    assert daemon.get("/feeds/all.json").headers["content-type"].startswith("application/feed+json")
    titles_before = [e.title for e in atom.entries]
    assert daemon.stop() == 0

    again = Daemon(config, port)
    try:
        doc = again.wait_for(lambda: feedparser.parse(again.get("/feeds/all.atom").content))
        assert [e.title for e in doc.entries] == titles_before
    finally:
        assert again.stop() == 0


def test_broken_config_is_a_clear_error(tmp_path: Path) -> None:
    """A config with an unknown key and a bad URL exits non-zero naming the source and field."""
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[[sources]]\nid = "x"\nurl = "not a url"\ncolour = 1\n', encoding="utf-8")
    proc = subprocess.run(  # noqa: PLW1510 - the exit code is asserted below
        [sys.executable, str(REPO / "run.py"), "--config", str(cfg), "check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "sources[0] (id=x).url" in proc.stderr and "colour: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr
