"""What RSSHub's output parameters cost a rendering: one feed page of Chinese entries rendered
plain and with each parameter, through ``FeedService.render`` (store read, reshape, render), with
the rendered-bytes cache emptied before each run so every run renders.

    .venv/bin/python bench/output_params.py                 # 50 entries of about 2,000 characters
    .venv/bin/python bench/output_params.py --entries 20 --chars 10000

Prints, per variant, the median time of one rendering and the extra over the plain one; for
opencc also the conversion rate alone (characters a second through OpenCC on HTML).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aggregator.clock import FakeClock
from aggregator.config import loading as config
from aggregator.models import Entry, FetchOutcome, FetchStatus
from aggregator.publish.feeds import FeedService
from aggregator.publish.variants import convert_html, converter
from aggregator.store import open_store

CONFIG = """
[server]
base_url = "https://feeds.example.org"
[publish]
default_limit = {limit}
max_limit = 200
[[sources]]
id = "zh"
url = "https://zh.example/atom.xml"
title = "简体中文博客"
"""
PARAGRAPH = (
    "<p>这是一段用于测试简体繁体转换速度的中文内容，其中包含软件、网络、信息等常见词语。"
    '<img src="https://img.example.cn/p/{n}.png"></p>'
)
VARIANTS = (
    "",
    "opencc=s2t",
    "brief=200",
    "mode=fulltext",
    "image_hotlink_template=https%3A%2F%2Fproxy.example%2F%3Fu%3D%24%7Bhref_ue%7D",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument(
        "--chars", type=int, default=2000, help="about this many characters a content"
    )
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        feeds, html = _world(Path(tmp), args.entries, args.chars)
        spec = feeds.source("zh")
        plain = None
        for variant in VARIANTS:
            query = feeds.query(parse_qsl(variant))
            times = []
            for _ in range(args.runs):
                feeds._cache.clear()
                started = time.perf_counter()
                feeds.render(spec, "atom", query)
                times.append(time.perf_counter() - started)
            ms = statistics.median(times) * 1000
            plain = ms if plain is None else plain
            extra = "" if not variant else f"  (+{ms - plain:.1f} ms)"
            label = variant.split("=")[0] + "=…" if len(variant) > 30 else variant or "plain"
            print(f"{label:<30} {ms:7.1f} ms per rendering{extra}")
        _conversion_rate(html)


def _world(tmp: Path, count: int, chars: int) -> tuple[FeedService, str]:
    settings = config.parse(CONFIG.format(limit=count))
    clock = FakeClock(datetime(2026, 3, 1, tzinfo=UTC))
    store = open_store(f"sqlite:///{tmp / 'b.db'}", clock.now())
    store.sync_sources(settings.source_records(), clock.now())
    per = max(1, chars // 60)
    html = "".join(PARAGRAPH.format(n=n) for n in range(per))
    entries = [
        Entry(
            source_id="zh",
            key=f"k{i}",
            title=f"第 {i} 篇：简体中文标题与软件发展",
            link=f"https://zh.example/{i}",
            content=html,
            summary="这是摘要，介绍文章的主要内容。",
            author="作者",
            published=clock.now() + timedelta(minutes=i),
            updated=None,
            categories=("科技",),
            category_path=(),
            content_hash=f"h{i}",
            first_seen=clock.now() + timedelta(minutes=i),
        )
        for i in range(count)
    ]
    state = store.get_state("zh")
    assert state is not None
    store.apply(state, entries, [], FetchOutcome("zh", FetchStatus.OK, added=count), clock.now())
    sources = {s.id: s for s in settings.source_records()}
    return FeedService(settings, store, lambda: sources, clock), html


def _conversion_rate(html: str) -> None:
    convert = converter("s2t")
    text = html * 20
    started = time.perf_counter()
    for _ in range(10):
        convert_html(text, convert)
    seconds = (time.perf_counter() - started) / 10
    print(
        f"OpenCC s2t on HTML: {len(text) / seconds / 1e6:.2f} million characters a second "
        f"({len(text)} characters in {seconds * 1000:.1f} ms)"
    )


if __name__ == "__main__":
    main()
