"""The full-text extractor comparison behind ``aggregator/sources/fulltext.py``: trafilatura,
readability-lxml and goose3 on the saved article pages of ``tests/data/articles`` (an English
blog post, a news article full of ads, navigation and comments, a GBK page declared only by
``<meta charset=gbk>`` and a GB18030 page that declares no charset anywhere).

    python3 -m venv /tmp/extractors && /tmp/extractors/bin/pip install -e . readability-lxml goose3
    /tmp/extractors/bin/python bench/fulltext_extractors.py [--runs 50]

In a venv of its own: readability-lxml pulls in chardet, which feedparser then uses, and
tests/test_encoding.py measures feedparser without it.

Every extractor gets the same text (decoded by our own ``content.charset.decode_page``). Quality:
how many of the article's phrases (first paragraph to last) the extracted text holds, and how
many phrases of the page's junk (navigation, ads, comments, sidebars) it kept. Speed: the
median CPU milliseconds of one extraction over ``--runs`` runs (CPU time, not wall time: other
work on a shared machine would skew the comparison).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lxml import html as lxml_html

from aggregator.content.charset import decode_page
from tests.articles import PAGES

URL = "https://example.org/2026/article.html"
Extractor = Callable[[str], str]


def text_of(markup: str) -> str:
    """The visible text of extracted HTML, without any whitespace (phrases compare that way)."""
    if not markup.strip():
        return ""
    root = lxml_html.fromstring(markup)
    return "".join("".join(root.itertext()).split())


def squeeze(text: str) -> str:
    return "".join(text.split())


def by_trafilatura(page: str) -> str:
    """Exactly as the aggregator calls it (``fulltext.extract``)."""
    from aggregator.sources.fulltext import extract

    return text_of(extract(page, URL)[0] or "")


def by_readability(page: str) -> str:
    from readability import Document

    return text_of(Document(page, url=URL).summary(html_partial=True))


def by_goose(page: str) -> str:
    from goose3 import Goose

    with Goose({"enable_image_fetching": False}) as goose:
        return squeeze(goose.extract(raw_html=page).cleaned_text or "")


EXTRACTORS: dict[str, Extractor] = {
    "trafilatura": by_trafilatura,
    "readability-lxml": by_readability,
    "goose3": by_goose,
}


def measure(extract: Extractor, page: str, runs: int) -> tuple[str, float]:
    out, times = "", []
    for _ in range(runs):
        started = time.process_time()
        out = extract(page)
        times.append((time.process_time() - started) * 1000)
    return out, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    print("| page | extractor | article phrases found | junk phrases kept | CPU ms per page |")
    print("| --- | --- | --- | --- | --- |")
    totals: dict[str, list[float]] = {name: [0, 0, 0, 0, 0.0] for name in EXTRACTORS}
    for article in PAGES:
        page = decode_page(article.body(), article.content_type)
        for name, extract in EXTRACTORS.items():
            try:
                text, ms = measure(extract, page, args.runs)
            except Exception as exc:  # noqa: BLE001 (an extractor's failure is a row of the table)
                print(f"| {article.name} | {name} | failed: {type(exc).__name__} | | |")
                continue
            found = sum(squeeze(p) in text for p in article.article)
            kept = [j for j in article.junk if squeeze(j) in text]
            t = totals[name]
            t[0] += found
            t[1] += len(article.article)
            t[2] += len(kept)
            t[3] += len(article.junk)
            t[4] += ms
            print(
                f"| {article.name} | {name} | {found}/{len(article.article)} "
                f"| {len(kept)}/{len(article.junk)} {', '.join(kept)} | {ms:.1f} |"
            )
    for name, (found, total, kept, junk, ms) in totals.items():
        print(
            f"| all {len(PAGES)} | {name} | {found:.0f}/{total:.0f} | {kept:.0f}/{junk:.0f} "
            f"| {ms / len(PAGES):.1f} (mean) |"
        )


if __name__ == "__main__":
    main()
