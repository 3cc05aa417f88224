"""Where a source's CPU goes in the parser workers, stage by stage, over the generated feeds of
bench/run.py (in one process, so each stage's process CPU time is its own): parse and key
(``workers.identify``), clean (``content.clean``), document text, signature (MinHash), and the
pickling ``Offload`` does to send a job and its answer between processes.

    .venv/bin/python bench/stages.py --sources 200            # needs bench/run.py's seed cache
    .venv/bin/python bench/stages.py --sources 200 --profile  # also the top functions (cProfile)
"""

from __future__ import annotations

import argparse
import cProfile
import pickle
import pstats
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator.content import clean as content
from aggregator.models import FetchResult, Source
from aggregator.dedupe import fingerprint as dedupe
from aggregator.pipeline import workers


def _timed(totals: dict[str, float], stage: str, fn, *args):  # type: ignore[no-untyped-def]
    start = time.process_time()
    out = fn(*args)
    totals[stage] += time.process_time() - start
    return out


def run(paths: list[Path], totals: dict[str, float]) -> None:
    options = content.CleanOptions()
    now = datetime.now(UTC)
    for n, path in enumerate(paths):
        source = Source(id=f"s{n}", url=f"http://127.0.0.1/{path.name}")
        result = FetchResult(
            url=source.url,
            status_code=200,
            content=path.read_bytes(),
            headers={"content-type": "application/xml"},
            fetched_at=now,
        )
        _timed(totals, "pickle: job to a worker (identify)", pickle.dumps, (source, result))
        parsed, keyed = _timed(
            totals, "parse and key (identify)", workers.identify, source, result, ()
        )
        _timed(totals, "pickle: parsed feed and keys back", pickle.dumps, (parsed, keyed))
        items = [item for _identity, item in keyed]
        _timed(totals, "pickle: items to a worker (prepare)", pickle.dumps, items)
        prepared = []
        for item in items:
            against = item.base or item.link or source.url
            body = _timed(totals, "clean", content.clean, item.content, against, options)
            teaser = (
                _timed(totals, "clean", content.clean, item.summary, against, options)
                if item.summary
                else None
            )
            doc = _timed(
                totals,
                "document text",
                dedupe.document_text,
                item.title,
                body.html or (teaser.html if teaser else None),
            )
            prepared.append(_timed(totals, "signature (MinHash)", dedupe.signature, doc))
        _timed(totals, "pickle: prepared back", pickle.dumps, prepared)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", default="/tmp/aggregator-bench")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    paths = sorted((Path(args.workdir) / f"seed-{args.seed}" / "feeds").iterdir())[: args.sources]
    totals: dict[str, float] = defaultdict(float)
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    run(paths, totals)
    if profiler:
        profiler.disable()
    for stage, seconds in totals.items():
        print(f"{stage:40} {seconds / len(paths) * 1000:6.1f} CPU ms per source")
    print(
        f"{'all':40} {sum(totals.values()) / len(paths) * 1000:6.1f} CPU ms per source"
        f" ({len(paths)} sources)"
    )
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
