"""Bounded work per document: peak memory and time of `aggregator fetch` (the main process and its
parser workers together) when one of its sources is hostile.

    .venv/bin/python bench/parse_bounds.py --case huge     # 100,000 items, about 12 MB
    .venv/bin/python bench/parse_bounds.py --case json     # a JSON Feed of 100,000 items
    .venv/bin/python bench/parse_bounds.py --case attrs    # 50,000 attributes on one element
    .venv/bin/python bench/parse_bounds.py --case huge --extra '[fetch]\nmax_entries = 100000'

Each case serves the hostile document and three small good feeds from a local HTTP server, runs
`aggregator fetch` once with `[content] processes = 2` (four sources: worker processes are used),
samples the resident memory of the whole process tree every 20 ms and prints the peak of the sum,
the wall time and each source's status and last error.
"""

from __future__ import annotations

import argparse
import functools
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def rss(items: list[str]) -> bytes:
    head = "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>t</title>"
    return (
        head + "<link>http://example.com/</link>" + "".join(items) + "</channel></rss>"
    ).encode()


def huge(n: int = 100_000) -> bytes:
    return rss(
        [
            f"<item><title>Item {i}</title><link>http://example.com/{i}</link>"
            f"<pubDate>Mon, 01 Jan 2024 00:00:00 +0000</pubDate></item>"
            for i in range(n)
        ]
    )


def json_feed(n: int = 100_000) -> bytes:
    items = ",".join(
        f'{{"id":"{i}","url":"http://example.com/{i}","title":"Item {i}",'
        f'"date_published":"2024-01-01T00:00:00Z","content_text":"x"}}'
        for i in range(n)
    )
    return (
        '{"version":"https://jsonfeed.org/version/1.1","title":"t","items":[' + items + "]}"
    ).encode()


def attrs(n: int = 50_000) -> bytes:
    many = " ".join(f'a{i}="v"' for i in range(n))
    return rss([f"<item><title {many}>t</title><link>http://example.com/x</link></item>"])


def good(k: int) -> bytes:
    return rss(
        [
            f"<item><title>good {k} {i}</title><link>http://example.com/g{k}/{i}</link></item>"
            for i in range(20)
        ]
    )


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def tree_rss(pid: int) -> dict[int, int]:
    """Resident bytes of ``pid`` and each of its descendants."""
    found, todo = {}, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    found[p] = int(line.split()[1]) * 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _all_fetched(db: Path) -> bool:
    try:
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT count(*), count(last_status) FROM sources").fetchone()
    except sqlite3.Error:
        return False
    return bool(rows and rows[0] == 4 and rows[1] == 4)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--case", choices=("huge", "json", "attrs"), default="huge")
    ap.add_argument("--extra", default="", help="TOML appended to the config (\\n for newlines)")
    ap.add_argument(
        "--daemon",
        action="store_true",
        help="run the daemon (`aggregator run`) until every source was fetched once",
    )
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="parse-bounds-"))
    (work / "hostile.xml").write_bytes(
        {"huge": huge, "json": json_feed, "attrs": attrs}[args.case]()
    )
    for k in range(3):
        (work / f"good{k}.xml").write_bytes(good(k))
    handler = functools.partial(_Quiet, directory=str(work))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    sources = "".join(
        f'[[sources]]\nid = "{n}"\nurl = "{base}/{n}.xml"\n'
        for n in ("hostile", "good0", "good1", "good2")
    )
    config = work / "agg.toml"
    port = _free_port()
    config.write_text(
        f"[server]\nport = {port}\n"
        f'[storage]\nurl = "sqlite:///{work / "agg.db"}"\n[fetch]\nallow_private_networks = true\n'
        f"per_host_delay = 0\n[content]\nprocesses = 2\n{args.extra.replace(chr(92) + 'n', chr(10))}\n"
        + sources
    )
    size = (work / "hostile.xml").stat().st_size
    started = time.monotonic()
    command = "run" if args.daemon else "fetch"
    proc = subprocess.Popen(
        [sys.executable, "run.py", "--config", str(config), command],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak, main_peak, worker_peak = 0, 0, 0
    while proc.poll() is None:
        if args.daemon and _all_fetched(work / "agg.db"):
            proc.terminate()  # the daemon this script started
            proc.wait(30)
            break
        sample = tree_rss(proc.pid)
        peak = max(peak, sum(sample.values()))
        main_peak = max(main_peak, sample.get(proc.pid, 0))
        worker_peak = max([worker_peak, *(v for k, v in sample.items() if k != proc.pid)])
        time.sleep(0.02)
    wall = time.monotonic() - started
    print(
        f"{command} case={args.case} document={size / 1e6:.1f} MB exit={proc.returncode} "
        f"wall={wall:.1f} s peak_rss_tree={peak / 1e6:.0f} MB (main {main_peak / 1e6:.0f} MB, "
        f"largest child {worker_peak / 1e6:.0f} MB)"
    )
    with sqlite3.connect(work / "agg.db") as db:
        for row in db.execute(
            "SELECT id, last_status, last_error, (SELECT count(*) FROM entries e "
            "WHERE e.source_id = s.id) FROM sources s ORDER BY id"
        ):
            print("  ", *row)
    if proc.returncode and not args.daemon:
        print(proc.stderr.read()[-2000:] if proc.stderr else "")
    server.shutdown()


if __name__ == "__main__":
    main()
