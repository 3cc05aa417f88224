"""The daemon beside a hostile origin for a few minutes: are the good sources fetched on schedule,
and how much memory do the daemon and its worker processes hold?

    .venv/bin/python bench/hostile.py                 # 150 s, 20 good sources every minute
    .venv/bin/python bench/hostile.py --seconds 60 --good 10

The origin serves the thirty misbehaviours of tests/hostile.py (slow bodies and headers, gzip
bombs, huge bodies, redirect loops, 429/503, 410, HTML, resets, entity expansion, XXE, absurd
dates, huge titles, …) plus a feed of 100,000 items and one with 50,000 attributes on one element,
all on a 1-minute interval beside the good sources. Prints, per good source, how many fetches it
got and the longest gap between two of them, the peak RSS of every process of the daemon, their
sum and the most they held at once, and whether the sum is under 300 MB (issue 14's bound).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for p in (str(REPO), str(REPO / "bench")):
    if p not in sys.path:
        sys.path.insert(0, p)

import itertools

from perf.servers import free_port
from perf.serving import Daemon, _kind, children

from tests.hostile import good, hostile_routes, many_attributes, many_items
from tests.origin import Origin, Reply


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=150)
    parser.add_argument("--good", type=int, default=20)
    args = parser.parse_args()
    hold = threading.Event()
    origin = Origin().start()
    try:
        with tempfile.TemporaryDirectory(prefix="aggregator-hostile-") as tmp:
            run(Path(tmp), origin, hold, args.good, args.seconds)
    finally:
        hold.set()
        origin.stop()


def run(tmp: Path, origin: Origin, hold: threading.Event, good_count: int, seconds: float) -> None:
    routes = {
        **hostile_routes(origin, hold),
        "many-items": Reply(many_items(100_000)),
        "many-attributes": Reply(many_attributes(50_000)),
    }
    port = free_port()
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
        'timeout = "10s"',
        "concurrency = 50",
        "per_host_concurrency = 50",
        "[schedule]",
        'interval = "1m"',
        'min_interval = "1m"',
        'dispatch_every = "1s"',
        "jitter = 0",
        "[logging]",
        'level = "WARNING"',
    ]
    for name, reply in routes.items():
        lines += ["[[sources]]", f'id = "h-{name}"', f'url = "{origin.route(f"/h/{name}", reply)}"']  # type: ignore[arg-type]
    for n in range(good_count):
        lines += [
            "[[sources]]",
            f'id = "good-{n}"',
            f'url = "{origin.route(f"/good/{n}", Reply(good(n)))}"',
        ]
    config = tmp / "aggregator.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    daemon = Daemon(config, port, tmp / "daemon.log").start()
    started = time.monotonic()
    peaks: dict[int, tuple[str, float]] = {}  # pid -> (kind, VmHWM at its last sample)
    together = 0.0  # the most all processes held at one sample (VmRSS summed)
    try:
        while time.monotonic() - started < seconds:
            pids = [daemon.proc.pid, *children(daemon.proc.pid)]
            for pid in pids:
                # the last reading, not the largest: a child read between its fork and its
                # exec would count the daemon's pages (exec starts a new high-water mark)
                if (mb := status_mb(pid, "VmHWM")) is not None:
                    peaks[pid] = ("daemon" if pid == daemon.proc.pid else _kind(pid), mb)
            together = max(together, sum(status_mb(pid, "VmRSS") or 0.0 for pid in pids))
            time.sleep(SAMPLE)
    finally:
        daemon.stop()
    report(tmp / "agg.db", good_count, seconds, peaks, together)


SAMPLE = 0.1  # seconds between two readings of the processes' memory
LIMIT_MB = 300  # issue 14: the daemon with all its processes, a 100,000-item feed in the mix


def status_mb(pid: int, field: str) -> float | None:
    """A ``/proc/PID/status`` memory field (``VmRSS``, ``VmHWM``) in MiB; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def report(
    db: Path, good_count: int, seconds: float, peaks: dict[int, tuple[str, float]], together: float
) -> None:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT source_id, at, status, error FROM fetch_log ORDER BY at"
        ).fetchall()
    by_source: dict[str, list[datetime]] = {}
    outcome: dict[str, str] = {}
    for sid, at, status, error in rows:
        by_source.setdefault(sid, []).append(datetime.fromisoformat(str(at)))
        outcome[sid] = f"{status}" + (f" ({error[:70]})" if error else "")
    print(f"{seconds:.0f} s, interval 1 minute, {good_count} good sources:")
    gaps = []
    for n in range(good_count):
        times = by_source.get(f"good-{n}", [])
        gap = max(
            ((b - a).total_seconds() for a, b in itertools.pairwise(times)), default=float("nan")
        )
        gaps.append(gap)
        print(f"  good-{n}: {len(times)} fetches, longest gap {gap:.1f} s")
    print(
        f"longest gap over all good sources: {max(gaps):.1f} s (interval 60 s, dispatch every 1 s)"
    )
    print("hostile sources, last outcome:")
    for sid in sorted(s for s in outcome if s.startswith("h-")):
        print(f"  {sid}: {len(by_source[sid])} fetches, {outcome[sid]}")
    print("peak RSS by process (MB, VmHWM):")
    for pid, (kind, mb) in sorted(peaks.items(), key=lambda p: (p[1][0] != "daemon", p[0])):
        print(f"  {kind} {pid}: {mb:.0f}")
    total = sum(mb for _, mb in peaks.values())
    print(
        f"sum of each process's peak: {total:.0f} MB (an upper bound: the peaks need not "
        "coincide, and replaced workers count too)"
    )
    print(
        f"most held at once (VmRSS of all processes summed, sampled every {SAMPLE:g} s): "
        f"{together:.0f} MB"
    )
    verdict = "yes" if total < LIMIT_MB else "NO"
    print(
        f"under {LIMIT_MB} MB (the sum of the peaks): {verdict}, {LIMIT_MB - total:.0f} MB to spare"
    )


if __name__ == "__main__":
    main()
