"""Time of the one text reader (aggregator/content/text.py) on the entries of the shared corpus.

Parses every feed of ../shared/corpus, cleans each entry's content as the pipeline does, and
times, over ten passes of all the cleaned fragments (best of seven): ``html_text`` with
``first_image`` (what cleaning reads from every entry) and ``fingerprint.normalize_text``
(what the fingerprints are made from).

    .venv/bin/python bench/content_text.py
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from aggregator.content.clean import clean_html
from aggregator.content.text import first_image, html_text
from aggregator.dedupe import matching as dedupe
from aggregator.errors import ParseError
from aggregator.models import FetchResult, Source
from aggregator.dedupe import fingerprint
from aggregator.sources import get_adapter

CORPUS = REPO.parent / "shared" / "corpus"
BASE = "http://example.com/"


def fragments() -> list[str]:
    """The cleaned content of every entry of every corpus feed that parses."""
    source, adapter, found = Source(id="bench", url=BASE), get_adapter("feed"), []
    for path in sorted(
        p for p in CORPUS.rglob("*") if p.is_file() and p.stat().st_size < 5_000_000
    ):
        try:
            parsed = adapter.parse(
                source, FetchResult(url=BASE, status_code=200, content=path.read_bytes())
            )
        except ParseError:
            continue
        found += [clean_html(item.content, BASE) for item in parsed.items if item.content]
    return found


def best(run: Callable[[str], object], texts: list[str]) -> float:
    times = []
    for _ in range(7):
        start = time.perf_counter()
        for text in texts * 10:
            run(text)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    if not CORPUS.is_dir():
        sys.exit(f"no corpus at {CORPUS}")
    texts = fragments()
    n = len(texts) * 10
    print(f"{n} cleaned fragments ({sum(map(len, texts)) * 10 / 1e6:.1f} MB), best of 7:")
    for name, run in (
        ("html_text + first_image", lambda t: (html_text(t), first_image(t))),
        ("fingerprint.normalize_text", fingerprint.normalize_text),
    ):
        took = best(run, texts)
        print(f"  {name:26} {took * 1e3:6.0f} ms  {took / n * 1e6:6.1f} us per fragment")


if __name__ == "__main__":
    main()
