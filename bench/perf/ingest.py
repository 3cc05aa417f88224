"""Ingest measurements, each run in its own process: ours, ``reader``, and the feedparser floor.

Each part reports wall seconds and the CPU seconds of its process (all threads) and of the
worker processes it started and joined, so a run on a busy machine can still be judged by CPU
cost per source.

Run: ``python -m perf.ingest {ours,reader,floor} JSON-ARGS`` from bench/ (``bench/run.py`` does
this); prints one JSON object with the wall time and counts.

Ours: ``aggregator.cli.sources.fetch_all`` (the same code as ``aggregator fetch``) with a SQLite
store; politeness for the benchmark: every source is on 127.0.0.1, so ``per_host_delay = 0`` and
``per_host_concurrency`` equals the global ``concurrency``; ``allow_private_networks = true``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any


def settings_for(urls: list[str], db: Path, concurrency: int) -> Any:
    from aggregator.config.settings import Settings

    return Settings.model_validate(
        {
            "storage": {"url": f"sqlite:///{db}"},
            "fetch": {
                "allow_private_networks": True,
                "per_host_delay": 0,
                "concurrency": concurrency,
                "per_host_concurrency": concurrency,
                "max_retries": 0,
            },
            "sources": [{"id": f"s{i:05d}", "url": u} for i, u in enumerate(urls)],
        }
    )


def _children_cpu() -> float:
    """CPU seconds of this process's waited-for children (our parser worker processes)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ours(args: dict[str, Any]) -> dict[str, Any]:
    from aggregator.cli.sources import fetch_all

    # What fetch_all imports on first use (the CLI keeps its command modules lazy), imported
    # before the clock starts: a daemon pays for these once at start, not per round.
    import aggregator.fetch
    import aggregator.pipeline.update
    import aggregator.runtime.daemon
    import aggregator.runtime.owners  # noqa: F401

    settings = settings_for(args["urls"], Path(args["db"]), args.get("concurrency", 32))
    started, cpu = time.perf_counter(), time.process_time() + _children_cpu()
    outcomes = asyncio.run(fetch_all(settings, settings.source_records()))  # joins its workers
    seconds = time.perf_counter() - started
    cpu = time.process_time() + _children_cpu() - cpu
    statuses: dict[str, int] = {}
    for o in outcomes:
        statuses[o.status.value] = statuses.get(o.status.value, 0) + 1
    errors = [o.error for o in outcomes if o.error][:3]
    return {
        "seconds": seconds,
        "cpu": cpu,
        "sources": len(outcomes),
        "statuses": statuses,
        "added": sum(o.added for o in outcomes),
        "errors": errors,
    }


def reader_run(args: dict[str, Any]) -> dict[str, Any]:
    from reader import make_reader

    db = Path(args["db"])
    fresh = not db.exists()
    r = make_reader(str(db), search_enabled=False)
    if fresh:
        for url in args["urls"]:
            r.add_feed(url, exist_ok=True)
    started, cpu = time.perf_counter(), time.process_time()
    r.update_feeds(scheduled=False, workers=args.get("workers", 16))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    counts = r.get_entry_counts()
    errors = sum(1 for f in r.get_feeds() if f.last_exception)
    r.close()
    return {
        "seconds": seconds,
        "cpu": cpu,
        "sources": len(args["urls"]),
        "entries": counts.total,
        "errors": errors,
    }


def floor(args: dict[str, Any]) -> dict[str, Any]:
    import feedparser

    blobs = [Path(p).read_bytes() for p in args["paths"]]
    started, cpu = time.perf_counter(), time.process_time()
    entries = 0
    for blob in blobs:
        entries += len(feedparser.parse(blob).entries)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"seconds": seconds, "cpu": cpu, "sources": len(blobs), "entries": entries}


KINDS = {"ours": ours, "reader": reader_run, "floor": floor}

if __name__ == "__main__":
    print(json.dumps(KINDS[sys.argv[1]](json.loads(Path(sys.argv[2]).read_text()))))
