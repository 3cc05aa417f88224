"""Deterministic synthetic feeds for the benchmarks: RSS 2.0 and Atom, English and Chinese.

Each feed is 20 to 100 entries and about 10 to 300 KB (log-uniform), about a third in Chinese,
half RSS and half Atom. Entry HTML looks like the real web: paragraphs, links (some relative),
lazy images, now and then a script or an event handler for the cleaner to remove. The same seed
gives the same bytes, byte for byte.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

WORDS = [
    "feed",
    "aggregator",
    "server",
    "client",
    "request",
    "response",
    "cache",
    "header",
    "entry",
    "title",
    "link",
    "content",
    "summary",
    "author",
    "update",
    "publish",
    "source",
    "network",
    "latency",
    "throughput",
    "memory",
    "process",
    "thread",
    "event",
    "loop",
    "parser",
    "sanitize",
    "image",
    "paragraph",
    "category",
    "schedule",
    "backoff",
    "retry",
    "timeout",
    "database",
    "index",
    "query",
    "commit",
    "transaction",
    "release",
    "version",
    "library",
    "python",
    "module",
    "package",
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "with",
    "as",
    "on",
    "be",
    "by",
    "this",
    "are",
    "from",
    "at",
    "or",
    "an",
    "was",
    "have",
]
HANZI = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下"
    "过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都"
    "两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重"
    "新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想"
)
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FeedSpec:
    index: int
    kind: str  # "rss" or "atom"
    chinese: bool
    entries: int
    target_bytes: int

    @property
    def name(self) -> str:
        return f"{self.index:05d}.{'rss' if self.kind == 'rss' else 'atom'}.xml"


def specs(count: int, seed: int) -> list[FeedSpec]:
    """The plan of ``count`` feeds: format, language, entry count and size of each."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        size = int(math.exp(rng.uniform(math.log(10_000), math.log(300_000))))
        out.append(
            FeedSpec(
                i, rng.choice(("rss", "atom")), rng.random() < 1 / 3, rng.randint(20, 100), size
            )
        )
    return out


def _words(rng: random.Random, chinese: bool, n: int) -> str:
    if chinese:
        return "".join(rng.choice(HANZI) for _ in range(n)) + "。"
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def entry_html(rng: random.Random, chinese: bool, size: int, site: str) -> str:
    """About ``size`` bytes of article HTML."""
    parts: list[str] = []
    total = 0
    while total < size:
        roll = rng.random()
        text = _words(rng, chinese, rng.randint(15, 60) // (1 if not chinese else 1))
        if roll < 0.12:
            n = rng.randint(1, 10**6)
            piece = (
                f'<p><img src="/img/blank.gif" data-src="/img/{n}.jpg" alt="{n}" width="640"></p>'
            )
        elif roll < 0.3:
            piece = f'<p>{text} <a href="/post/{rng.randint(1, 99999)}?utm_source=rss">{text[:20]}</a></p>'
        elif roll < 0.33:
            piece = f'<p onclick="track()">{text}</p><script>track({rng.randint(1, 9)})</script>'
        elif roll < 0.4:
            piece = f"<blockquote><strong>{text}</strong></blockquote>"
        else:
            piece = f"<p>{text}</p>"
        parts.append(piece)
        total += len(piece.encode())
    return "".join(parts)


def render(spec: FeedSpec, seed: int, base: str = "http://example.test") -> bytes:
    """The feed document for ``spec``."""
    rng = random.Random(seed * 1_000_003 + spec.index)
    site = f"{base}/site{spec.index}"
    per_entry = max(200, int(spec.target_bytes * 0.85) // spec.entries - 400)
    items = []
    for n in range(spec.entries):
        when = EPOCH - timedelta(minutes=37 * n + spec.index)
        title = _words(
            rng, spec.chinese, rng.randint(4, 12) if not spec.chinese else rng.randint(8, 20)
        )
        html = entry_html(rng, spec.chinese, int(per_entry * rng.uniform(0.5, 1.5)), site)
        items.append((f"{site}/post/{n}", title, html, when))
    title = _words(rng, spec.chinese, 4)
    body = _rss(site, title, items) if spec.kind == "rss" else _atom(site, title, items)
    return body.encode("utf-8")


def _rss(site: str, title: str, items: list[tuple[str, str, str, datetime]]) -> str:
    out = [
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>',
        f"<title>{escape(title)}</title><link>{site}/</link><description>{escape(title)}</description>",
    ]
    for link, t, html, when in items:
        out.append(
            f"<item><title>{escape(t)}</title><link>{link}</link><guid>{link}</guid>"
            f"<pubDate>{format_datetime(when, usegmt=True)}</pubDate>"
            f"<category>bench</category><description>{escape(html)}</description></item>"
        )
    out.append("</channel></rss>\n")
    return "\n".join(out)


def _atom(site: str, title: str, items: list[tuple[str, str, str, datetime]]) -> str:
    updated = items[0][3].isoformat() if items else EPOCH.isoformat()
    out = [
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">',
        f'<title>{escape(title)}</title><link href="{site}/"/><id>{site}/</id>'
        f"<updated>{updated}</updated>",
    ]
    for link, t, html, when in items:
        out.append(
            f'<entry><title>{escape(t)}</title><link href="{link}"/><id>{link}</id>'
            f"<updated>{when.isoformat()}</updated><author><name>bench</name></author>"
            f'<content type="html">{escape(html)}</content></entry>'
        )
    out.append("</feed>\n")
    return "\n".join(out)


def write(directory: Path, count: int, seed: int) -> list[Path]:
    """Write ``count`` feeds into ``directory`` (kept when already there); their paths in order."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for spec in specs(count, seed):
        path = directory / spec.name
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(render(spec, seed))
            tmp.rename(path)
        paths.append(path)
    return paths
