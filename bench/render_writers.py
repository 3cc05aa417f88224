"""RSS and Atom written with lxml (aggregator/publish/rss.py, atom.py) against feedgen (the
writers as they were, bench/render_feedgen_*.py), on the same prepared entries.

Entries are the shared corpus's (every feed with entries, read as tests/test_render.py reads
them), several sources merged so ``<source>`` attribution is written too. For each size it
prints CPU milliseconds per document (the best of ``--rounds``, writers taking turns; writing only:
the entries are prepared once), and for both writers: whether every document passes our RSS rules and the Atom RELAX NG
schema (jing, when installed) and whether the two writers' bytes are identical.

    .venv/bin/pip install -e '.[bench]'   # feedgen, for the comparison
    .venv/bin/python bench/render_writers.py --sizes 50 500
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from aggregator.models import Entry
from aggregator.publish import atom, rss
from aggregator.publish.render import FeedMeta, SourceRef, _authority, _Item, _items
from tests import test_render

Writer = Callable[[FeedMeta, Sequence[_Item]], bytes]


def entries(n: int) -> list[Entry]:
    """``n`` entries from the corpus feeds, taken in turn from each feed (again from the start,
    under other keys, when the corpus has fewer)."""
    per_feed = [list(test_render.corpus_entries(name)) for name in test_render._corpus_feeds()]
    pool: list[Entry] = []
    while any(per_feed):
        for feed in per_feed:
            if feed:
                pool.append(feed.pop(0))
    if not pool:
        sys.exit("no corpus entries: is ../shared beside the repository?")
    return [replace(pool[i % len(pool)], key=f"{pool[i % len(pool)].key}#{i}") for i in range(n)]


def meta_for(chosen: Sequence[Entry]) -> FeedMeta:
    sources = {
        e.source_id: SourceRef(
            f"source/{e.source_id}",
            e.source_id,
            "https://corpus.example/",
            {
                "rss": f"https://agg.example.org/s/{e.source_id}.rss",
                "atom": f"https://agg.example.org/s/{e.source_id}.atom",
            },
        )
        for e in chosen
    }
    return replace(
        test_render.META,
        sources=sources,
        hub="https://hub.example/",
        alternates={"json": "https://agg.example.org/all.json"},
    )


def per_document_ms(
    pair: dict[str, Writer], meta: FeedMeta, items: Sequence[_Item], rounds: int
) -> dict[str, float]:
    """CPU milliseconds per document of each writer: the fastest of ``rounds`` runs, the writers
    taking turns (the machine is shared: CPU time and the best run are what noise moves least)."""
    times: dict[str, list[float]] = {name: [] for name in pair}
    for _ in range(rounds):
        for name, write in pair.items():
            started = time.process_time()
            write(meta, items)
            times[name].append((time.process_time() - started) * 1000)
    return {name: min(t) for name, t in times.items()}


def atom_schema_ok(docs: Sequence[bytes]) -> str:
    try:
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for n, doc in enumerate(docs):
                paths.append(Path(tmp) / f"{n}.atom")
                paths[-1].write_bytes(doc)
            run = test_render.jing(paths)
    except BaseException as exc:  # noqa: BLE001 (pytest.skip: jing or the schema is missing)
        return f"not checked ({exc})"
    return "valid" if run.returncode == 0 else f"INVALID: {run.stdout[:300]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--rounds", type=int, default=21)
    opts = parser.parse_args()
    sys.path.insert(0, str(REPO / "bench"))
    import render_feedgen_atom
    import render_feedgen_rss

    writers: dict[str, dict[str, Writer]] = {
        "rss": {"feedgen": render_feedgen_rss.write, "lxml": rss.write},
        "atom": {"feedgen": render_feedgen_atom.write, "lxml": atom.write},
    }
    print(
        f"{'format':6} {'entries':>7} {'feedgen ms':>10} {'lxml ms':>8} {'speed-up':>8}  "
        "same bytes  feedgen valid / lxml valid"
    )
    for n in opts.sizes:
        chosen = entries(n)
        meta = meta_for(chosen)
        items = _items(chosen, _authority(meta), meta.sources)
        for fmt, pair in writers.items():
            ms = per_document_ms(pair, meta, items, opts.rounds)
            docs = {name: w(meta, items) for name, w in pair.items()}
            if fmt == "rss":
                valid = {
                    name: "valid" if not test_render.rss_problems(d) else "INVALID"
                    for name, d in docs.items()
                }
            else:
                valid = {
                    name: ("valid" if not test_render.atom_problems(d) else "INVALID")
                    + ", schema "
                    + atom_schema_ok([d])
                    for name, d in docs.items()
                }
            print(
                f"{fmt:6} {n:7d} {ms['feedgen']:10.2f} {ms['lxml']:8.2f} "
                f"{ms['feedgen'] / ms['lxml']:7.2f}x  {docs['feedgen'] == docs['lxml']!s:10}  "
                f"{valid['feedgen']} / {valid['lxml']}"
            )


if __name__ == "__main__":
    main()
