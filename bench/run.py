"""Benchmarks, side by side with the alternatives in the same run; prints a table of figures,
each with the command that reproduces it.

    .venv/bin/python bench/run.py                    # 1,000 sources: ingest, refresh, serving
    .venv/bin/python bench/run.py --quick            # 20 sources, short load runs (a smoke run)
    .venv/bin/python bench/run.py --memory           # also: 10,000 sources, 1,000,000 entries
    .venv/bin/python bench/run.py --only cold,warm   # some parts only

Parts:
  cold    first fetch of N sources end to end into a fresh SQLite store (aggregator fetch code),
          beside reader's update_feeds(workers=W) on the same URLs, and feedparser alone parsing
          the same bytes in one process (the floor);
  warm    the same again when every source answers 304, ours and reader;
  serve   /feeds/all.atom from the real daemon (cached), 64 connections, wrk --latency, beside
          nginx serving the same bytes as a static file: --serve-rounds alternated runs of each,
          the median reported;
  memory  (--memory) peak RSS (VmHWM) of the daemon with 10,000 sources and 1,000,000 stored
          entries while it serves and dispatches; database bytes per entry.

The origin is nginx (a child process with its own config on a free port) serving generated
feeds with ETag/Last-Modified, so a conditional request gets a 304. Without nginx a Starlette
static server stands in. Generated feeds are cached under --workdir by seed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for p in (str(BENCH), str(REPO)):
    if p not in sys.path:
        sys.path.insert(0, p)

from perf import feedgen, servers, serving

PARTS = ("cold", "warm", "serve", "memory")
SERVE_PROCESSES = os.cpu_count() or 1  # default for both: nginx's `worker_processes auto`


@dataclass
class Row:
    figure: str
    ours: str
    other: str
    ratio: str
    target: str
    met: str
    command: str


def have_reader() -> bool:
    try:
        import reader  # noqa: F401
    except ImportError:
        return False
    return True


def run_part(kind: str, args: dict[str, Any], work: Path) -> dict[str, Any]:
    """One measurement in a fresh process (no warm caches or leftover memory between them)."""
    arg_file = work / f"args-{kind}.json"
    arg_file.write_text(json.dumps(args))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCH), str(REPO)])}
    out = subprocess.run(
        [sys.executable, "-m", "perf.ingest", kind, str(arg_file)],
        cwd=BENCH,
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def fmt(x: float | None, unit: str = "") -> str:
    return "-" if x is None else f"{x:,.1f}{unit}"


def ingest(
    opts: argparse.Namespace,
    urls: list[str],
    paths: list[Path],
    work: Path,
    rows: list[Row],
    results: dict[str, Any],
) -> None:
    n = len(urls)
    ours_db, reader_db = work / "ours.db", work / "reader.db"
    for f in list(work.glob("ours.db*")) + list(work.glob("reader.db*")):
        f.unlink()
    cmd = f".venv/bin/python bench/run.py --sources {n} --only cold,warm"
    with_reader = have_reader() and not opts.no_reader
    cold = run_part(
        "ours", {"urls": urls, "db": str(ours_db), "concurrency": opts.concurrency}, work
    )
    floor = run_part("floor", {"paths": [str(p) for p in paths]}, work)
    rdr = (
        run_part(
            "reader", {"urls": urls, "db": str(reader_db), "workers": opts.reader_workers}, work
        )
        if with_reader
        else None
    )
    results.update(cold_ours=cold, cold_floor=floor, cold_reader=rdr)
    ours_rate, floor_rate = n / cold["seconds"], n / floor["seconds"]
    reader_rate = n / rdr["seconds"] if rdr else None
    rows.append(
        Row(
            "cold ingest, sources/s (ours vs reader)",
            fmt(ours_rate),
            fmt(reader_rate),
            _ratio(ours_rate, reader_rate),
            ">= 1.5x",
            _met(ours_rate, reader_rate, 1.5),
            cmd,
        )
    )
    rows.append(
        Row(
            "cold ingest, sources/s (ours vs feedparser floor)",
            fmt(ours_rate),
            fmt(floor_rate),
            _ratio(ours_rate, floor_rate),
            ">= 0.67x",
            _met(ours_rate, floor_rate, 1 / 1.5),
            cmd,
        )
    )
    rows.append(
        Row(
            "cold ingest, CPU ms per source (ours / reader / floor)",
            _cpu(cold, n),
            f"{_cpu(rdr, n)} / {_cpu(floor, n)}",
            "",
            "",
            "",
            cmd,
        )
    )
    if "warm" not in opts.parts:
        return
    warm = run_part(
        "ours", {"urls": urls, "db": str(ours_db), "concurrency": opts.concurrency}, work
    )
    rwarm = (
        run_part(
            "reader", {"urls": urls, "db": str(reader_db), "workers": opts.reader_workers}, work
        )
        if with_reader
        else None
    )
    results.update(warm_ours=warm, warm_reader=rwarm)
    w_ours = n / warm["seconds"]
    w_reader = n / rwarm["seconds"] if rwarm else None
    rows.append(
        Row(
            "warm refresh (all 304), sources/s",
            fmt(w_ours),
            fmt(w_reader),
            _ratio(w_ours, w_reader),
            ">= 1.5x",
            _met(w_ours, w_reader, 1.5),
            cmd,
        )
    )
    rows.append(
        Row(
            "warm refresh, CPU ms per source (ours / reader)",
            _cpu(warm, n),
            _cpu(rwarm, n),
            "",
            "",
            "",
            cmd,
        )
    )


def serve(
    opts: argparse.Namespace, urls: list[str], work: Path, rows: list[Row], results: dict[str, Any]
) -> None:
    """The daemon over the cold-ingested store (fetching it first when needed), with as many
    HTTP processes (``[server] processes``) as nginx has workers: one per CPU."""
    db = work / "ours.db"
    if not db.exists():
        run_part("ours", {"urls": urls, "db": str(db), "concurrency": opts.concurrency}, work)
    _nothing_due(db)
    port = serving.port()
    config = serving.write_config(
        work / "serve.toml", _stored_urls(db, urls), db, port, processes=opts.serve_processes
    )
    daemon = serving.Daemon(config, port, work / "daemon-serve.log").start(
        processes=opts.serve_processes, warm="/feeds/all.atom"
    )
    static = work / "static"
    try:
        import httpx

        body = httpx.get(f"{daemon.base}/feeds/all.atom", timeout=60).raise_for_status().content
        static.mkdir(exist_ok=True)
        (static / "all.atom").write_bytes(body)
        rounds = _alternate(opts, daemon.base, static, work)
        results["serve_ours_rss_mb"] = daemon.peak_rss_mb()
    finally:
        daemon.stop()
    ours = _median(r["ours"] for r in rounds)
    nginx = _median(r["nginx"] for r in rounds) if rounds[0]["nginx"] else None
    ratios = sorted(r["ours"]["rps"] / r["nginx"]["rps"] for r in rounds if r["nginx"])
    ratio = ratios[len(ratios) // 2] if ratios else None  # the median round's
    results.update(serve_rounds=rounds, serve_ours=ours, serve_nginx=nginx, serve_bytes=len(body))
    cmd = f".venv/bin/python bench/run.py --sources {len(urls)} --only serve"
    other = nginx["rps"] if nginx else None
    spread = f", rounds {ratios[0]:.2f}-{ratios[-1]:.2f}x" if len(ratios) > 1 else ""
    rows.append(
        Row(
            f"serving /feeds/all.atom ({len(body) // 1024} KB), req/s, 64 conns, "
            f"{opts.serve_processes} processes / {SERVE_PROCESSES} nginx workers, median of "
            f"{len(rounds)} alternated rounds{spread}",
            fmt(ours["rps"]),
            fmt(other),
            f"{ratio:.2f}x" if ratio is not None else "-",
            ">= 0.8x",
            _met(ratio, 1.0, 0.8),
            cmd,
        )
    )
    p99_other = nginx["p99_ms"] if nginx else None
    rows.append(
        Row(
            "serving p99 latency, ms (ours / nginx), median of the rounds",
            fmt(ours["p99_ms"]),
            fmt(p99_other),
            _ratio(ours["p99_ms"], p99_other),
            "<= 2x",
            _met(p99_other, ours["p99_ms"], 0.5) if p99_other else "n/a",
            cmd,
        )
    )


def _alternate(
    opts: argparse.Namespace, base: str, static: Path, work: Path
) -> list[dict[str, Any]]:
    """``--serve-rounds`` load runs of the daemon and of nginx (serving ``static``), alternated
    while both are up, after 2 s of each unmeasured (each daemon process has rendered the feed
    once): the machine's other load falls on both alike. Prints each round."""
    url = f"{base}/feeds/all.atom"
    if not servers.nginx_path():
        return [{"ours": serving.load(url, 64, opts.duration), "nginx": None}]
    rounds = []
    with servers.StaticServer(static, work / "nginx-static", workers=str(SERVE_PROCESSES)) as ngx:
        serving.load(url, 64, 2)  # every process has rendered and cached the feed
        serving.load(f"{ngx.base}/all.atom", 64, 2)
        for k in range(opts.serve_rounds):
            ours = serving.load(url, 64, opts.duration)
            nginx = serving.load(f"{ngx.base}/all.atom", 64, opts.duration)
            rounds.append({"ours": ours, "nginx": nginx})
            print(
                f"serve round {k + 1}: ours {ours['rps']:,.0f} req/s, nginx {nginx['rps']:,.0f} "
                f"({ours['rps'] / nginx['rps']:.2f}x), p99 {ours['p99_ms']} / {nginx['p99_ms']} ms",
                flush=True,
            )
    return rounds


def _median(runs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The median requests per second and p99 of load runs, each on its own."""
    runs = list(runs)
    middle = len(runs) // 2
    return {
        "rps": sorted(r["rps"] for r in runs)[middle],
        "p99_ms": sorted(r["p99_ms"] or 0.0 for r in runs)[middle],
        "tool": runs[0]["tool"],
        "non2xx": sum(r["non2xx"] for r in runs),
    }


def _stored_urls(db: Path, urls: list[str]) -> list[str]:
    """The URLs the store already has for these sources: the origin's port differs from run to
    run, and a source whose configured URL changed is due at once, so a daemon started with this
    run's URLs would spend the measurement refetching every source."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        stored = dict(conn.execute("SELECT id, configured_url FROM sources").fetchall())
    return [stored.get(f"s{i:05d}", url) for i, url in enumerate(urls)]


def _nothing_due(db: Path) -> None:
    """Push every source's next fetch a day ahead: the serving run measures the cached path, not
    a dispatcher refreshing sources that fell due since the ingest (the memory part does that)."""
    import sqlite3
    from datetime import UTC, datetime, timedelta

    later = (datetime.now(UTC) + timedelta(days=1)).replace(tzinfo=None).isoformat(sep=" ")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE sources SET next_fetch_at = ?", (later,))


def memory(
    opts: argparse.Namespace, base: str, work: Path, rows: list[Row], results: dict[str, Any]
) -> None:
    from perf import memory as mem

    n_sources, n_entries = opts.memory_sources, opts.memory_entries
    names = [p.name for p in feedgen.write(opts.data / "feeds", min(n_sources, 200), opts.seed)]
    urls = [f"{base}/feeds/{names[i % len(names)]}?s={i}" for i in range(n_sources)]
    db = work / "memory.db"
    for f in work.glob("memory.db*"):
        f.unlink()
    build_s = mem.build(db, urls, n_entries, opts.seed, due=min(500, n_sources))
    size = sum(f.stat().st_size for f in work.glob("memory.db*"))
    port = serving.port()
    config = serving.write_config(work / "memory.toml", urls, db, port)
    daemon = serving.Daemon(config, port, work / "daemon-memory.log").start(timeout=600)
    try:
        paths = [
            "/feeds/all.atom",
            "/feeds/all.rss",
            "/feeds/all.json",
            "/feeds/category/Bench/c1.atom",
        ] + [f"/feeds/source/s{i:05d}.atom" for i in range(0, n_sources, max(1, n_sources // 50))]
        served = _browse(daemon.base, paths, opts.memory_seconds)
        by_process = daemon.peak_rss_by_process()
        peak = sum(by_process.values())
        results["memory_by_process_mb"] = by_process
    finally:
        daemon.stop()
    results.update(
        memory_peak_mb=peak, memory_db_bytes=size, memory_build_s=build_s, memory_requests=served
    )
    cmd = (
        f".venv/bin/python bench/run.py --only memory --memory --memory-sources {n_sources} "
        f"--memory-entries {n_entries}"
    )
    rows.append(
        Row(
            f"daemon peak RSS, {n_sources:,} sources, {n_entries:,} entries, MB",
            fmt(peak),
            "-",
            "",
            "< 300 MB",
            "yes" if peak < 300 else "NO",
            cmd,
        )
    )
    parts = ", ".join(f"{name.split()[0]} {mb:.0f}" for name, mb in by_process.items())
    rows.append(Row("peak RSS by process, MB", parts, "-", "", "", "", cmd))
    rows.append(
        Row("database bytes per entry", fmt(size / max(1, n_entries)), "-", "", "", "", cmd)
    )


def _browse(base: str, paths: list[str], seconds: float) -> int:
    """Readers polling feeds while the dispatcher works: 16 clients for ``seconds``."""
    import asyncio

    import httpx

    async def go() -> int:
        done = 0
        deadline = time.monotonic() + seconds
        async with httpx.AsyncClient(timeout=120) as client:

            async def reader(k: int) -> None:
                nonlocal done
                i = k
                while time.monotonic() < deadline:
                    await client.get(base + paths[i % len(paths)])
                    done += 1
                    i += 7

            await asyncio.gather(*(reader(k) for k in range(16)))
        return done

    return asyncio.run(go())


def _cpu(part: dict[str, Any] | None, n: int) -> str:
    """CPU milliseconds per source of one part's process (robust to a busy machine)."""
    return "-" if not part or "cpu" not in part else f"{1000 * part['cpu'] / n:,.0f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}x"


def _met(a: float | None, b: float | None, need: float) -> str:
    if a is None or not b:
        return "n/a"
    return "yes" if a / b >= need else "NO"


def print_table(rows: list[Row], header: str) -> str:
    cols = ("figure", "ours", "alternative", "ratio", "target", "met", "reproduce")
    lines = [header, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = (r.figure, r.ours, r.other, r.ratio, r.target, r.met, f"`{r.command}`")
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sources", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="20 sources, 2 s load runs")
    ap.add_argument("--only", default="cold,warm,serve", help="comma-separated parts")
    ap.add_argument("--memory", action="store_true", help="also run the memory part (slow)")
    ap.add_argument("--memory-sources", type=int, default=10_000)
    ap.add_argument("--memory-entries", type=int, default=1_000_000)
    ap.add_argument("--memory-seconds", type=float, default=60.0)
    ap.add_argument("--reader-workers", type=int, default=8)
    ap.add_argument("--no-reader", action="store_true")
    ap.add_argument("--concurrency", type=int, default=32, help="our fetch concurrency")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per load run")
    ap.add_argument(
        "--serve-rounds",
        type=int,
        default=3,
        help="alternated load runs of ours and nginx in the serve part; the median is reported",
    )
    ap.add_argument(
        "--serve-processes",
        type=int,
        default=SERVE_PROCESSES,
        help="the daemon's [server] processes in the serve part (default: CPUs, "
        "as many as nginx's workers)",
    )
    ap.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "aggregator-bench"
    )
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    opts = ap.parse_args(argv)
    if opts.quick:
        opts.sources, opts.duration = min(opts.sources, 20), 2.0
    opts.parts = [p for p in opts.only.split(",") if p]
    if opts.memory and "memory" not in opts.parts:
        opts.parts.append("memory")
    opts.data = opts.workdir / f"seed-{opts.seed}"
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    paths = feedgen.write(opts.data / "feeds", opts.sources, opts.seed)
    work = opts.workdir / f"run-{opts.sources}"
    work.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    results: dict[str, Any] = {"sources": opts.sources, "seed": opts.seed}
    started = time.perf_counter()
    with servers.StaticServer(opts.data, work / "origin") as origin:
        urls = [f"{origin.base}/feeds/{p.name}" for p in paths]
        results["origin"] = origin.kind
        if "cold" in opts.parts:
            ingest(opts, urls, paths, work, rows, results)
        if "serve" in opts.parts:
            serve(opts, urls, work, rows, results)
        if "memory" in opts.parts:
            memory(opts, origin.base, work, rows, results)
    total = sum(p.stat().st_size for p in paths)
    header = (
        f"{opts.sources} generated feeds ({total / 1e6:.1f} MB, seed {opts.seed}), origin "
        f"{results['origin']} on 127.0.0.1, {os.cpu_count()} CPUs, "
        f"{time.perf_counter() - started:.0f} s"
    )
    results["table"] = print_table(rows, header)
    if opts.json:
        opts.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
