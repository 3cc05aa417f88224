"""Identity, duplicates and categories through the real pipeline, store and feeds."""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path

import feedparser
from starlette.testclient import TestClient

from aggregator.cli import parser as cli
from aggregator.clock import FakeClock
from aggregator.http.app import create_app
from aggregator.models import Selection
from aggregator.publish.feeds import FeedService

from .harness import Harness
from .origin import Origin, Reply

STORY_ZH = (
    "国家统计局今天发布数据显示，十一月份全国居民消费价格同比上涨百分之零点三，环比下降百分之零点二。"
    "其中城市上涨百分之零点四，农村持平；食品价格下降百分之一点二，非食品价格上涨百分之零点六。"
    "分析人士认为，猪肉和鲜菜价格回落是拉低物价的主要因素，服务价格则保持温和上涨的态势。"
)
OTHER_ZH = (
    "市气象台发布寒潮蓝色预警，预计未来三天全市将出现大风降温天气，最低气温将降至零下八度。"
    "气象部门提醒市民注意防寒保暖，农业设施做好加固，出行车辆注意防滑，学校做好校舍安全检查。"
)
STORY_EN = (
    "The city council voted on Tuesday to expand the riverside park by twelve acres, adding a "
    "playground, a community garden and a new pedestrian bridge. Construction is expected to begin "
    "in the spring and to finish within eighteen months, officials said after the meeting."
)


def rss(items: list[dict[str, str]]) -> str:
    """A small RSS 2.0 document; each item may have title, link, guid, description, category."""
    parts = []
    for i, item in enumerate(items):
        date = format_datetime(FakeClock().now() - timedelta(hours=i + 1), usegmt=True)
        fields = "".join(
            f"<{k}>{escape(v)}</{k}>"
            for k, v in item.items()
            if k in ("title", "link", "guid", "category")
        )
        desc = f"<description>{escape(item.get('description', ''))}</description>"
        parts.append(f"<item>{fields}{desc}<pubDate>{date}</pubDate></item>")
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        f"<link>http://example.com/</link><description>d</description>{''.join(parts)}</channel></rss>"
    )


def all_entries(h: Harness, merge: bool = True, source: str | None = None):  # type: ignore[no-untyped-def]
    sel = Selection(source_ids=(source,) if source else None, merge_duplicates=merge, limit=1000)
    return h.store.list_entries(sel)


async def test_same_story_from_two_sources_is_one_entry_in_merged_feeds(
    origin: Origin, harness_factory
) -> None:  # type: ignore[no-untyped-def]
    """The same article (tracking parameters aside) from two sources: one entry in `all`, each
    source keeps its copy, and the merge records its reason."""
    origin.route(
        "/a",
        Reply(
            rss(
                [
                    {
                        "title": "Park grows",
                        "link": "https://News.example.com/park?id=7",
                        "description": STORY_EN,
                    }
                ]
            )
        ),
    )
    origin.route(
        "/b",
        Reply(
            rss(
                [
                    {
                        "title": "Council expands the park",
                        "link": "https://news.example.com/park?utm_source=x&id=7#top",
                        "description": "Wire copy.",
                    }
                ]
            )
        ),
    )
    h = await harness_factory([("a", origin.url("/a")), ("b", origin.url("/b"))])
    await h.tick()
    merged = all_entries(h)
    assert len(merged) == 1
    assert (
        len(all_entries(h, merge=False, source="a"))
        == len(all_entries(h, merge=False, source="b"))
        == 1
    )
    copy = [e for e in all_entries(h, merge=False) if e.duplicate_of is not None]
    assert len(copy) == 1 and copy[0].duplicate_of == merged[0].id
    assert "same canonical URL" in (copy[0].merge_reason or "")


async def test_republished_chinese_story_with_new_headline_is_a_near_duplicate(
    origin: Origin, harness_factory
) -> None:  # type: ignore[no-untyped-def]
    """A Chinese article republished elsewhere under a new headline with a byline and a trimmed
    ending is merged as a near-duplicate; a different story is not."""
    origin.route(
        "/a",
        Reply(
            rss(
                [
                    {
                        "title": "11月CPI同比上涨0.3%",
                        "link": "http://a.example.cn/1",
                        "description": STORY_ZH,
                    },
                    {"title": "寒潮预警", "link": "http://a.example.cn/2", "description": OTHER_ZH},
                ]
            )
        ),
    )
    trimmed = "（本报记者 王芳）" + STORY_ZH[: int(len(STORY_ZH) * 0.8)]
    origin.route(
        "/b",
        Reply(
            rss(
                [
                    {
                        "title": "物价数据出炉：猪肉价格回落",
                        "link": "http://b.example.cn/x",
                        "description": trimmed,
                    }
                ]
            )
        ),
    )
    h = await harness_factory([("a", origin.url("/a")), ("b", origin.url("/b"))])
    await h.tick()
    titles = {e.title for e in all_entries(h)}  # whichever copy was stored first is the primary
    assert len(titles) == 2 and "寒潮预警" in titles
    assert titles & {"11月CPI同比上涨0.3%", "物价数据出炉：猪肉价格回落"}
    copy = [e for e in all_entries(h, merge=False) if e.duplicate_of is not None]
    assert len(copy) == 1 and (copy[0].merge_reason or "").startswith("near-duplicate")
    assert copy[0].title != "寒潮预警"


async def test_source_whose_ids_all_change_makes_no_duplicates(
    origin: Origin, clock: FakeClock, harness_factory
) -> None:  # type: ignore[no-untyped-def]
    """A publisher that changes every guid between two fetches gets no new entries in any feed."""
    stories = [
        (f"Story {n}", f"http://pub.example.com/s/{n}", f"Body of story number {n}. " * 12)
        for n in range(6)
    ]
    first = [
        {"title": t, "link": l, "guid": f"old-{n}", "description": d}
        for n, (t, l, d) in enumerate(stories)
    ]
    second = [
        {"title": t, "link": l + "?utm_campaign=z", "guid": f"urn:new:{n}", "description": d}
        for n, (t, l, d) in enumerate(stories)
    ]
    doc = {"body": rss(first)}
    origin.route("/feed", lambda req: Reply(doc["body"]))
    h = await harness_factory([("p", origin.url("/feed"))])
    await h.tick()
    keys = sorted(e.key for e in all_entries(h))
    doc["body"] = rss(second)
    clock.advance(3600)
    await h.tick()
    assert len(all_entries(h, merge=False)) == 6
    assert sorted(e.key for e in all_entries(h)) == keys


async def test_content_change_updates_in_place_but_noise_does_not(
    origin: Origin, clock: FakeClock, harness_factory
) -> None:  # type: ignore[no-untyped-def]
    """A changed body updates the entry (same id, new changed time); whitespace and tracking
    parameters alone do not."""
    body = {"d": "<p>First  version of the text.</p>", "l": "http://x.example.com/a?utm_medium=rss"}
    origin.route(
        "/f",
        lambda req: Reply(
            rss([{"title": "T", "link": body["l"], "guid": "g1", "description": body["d"]}])
        ),
    )
    h = await harness_factory([("s", origin.url("/f"))])
    await h.tick()
    (before,) = all_entries(h)
    body.update(
        d="<p>First version   of the text.</p>\n", l="http://x.example.com/a?utm_medium=email"
    )
    clock.advance(3600)
    await h.tick()
    (same,) = all_entries(h)
    assert same.changed_at == before.changed_at and same.content == before.content
    body["d"] = "<p>Second version of the text.</p>"
    clock.advance(3600)
    await h.tick()
    (after,) = all_entries(h)
    assert after.id == before.id and after.changed_at > before.changed_at
    assert "Second version" in (after.content or "")


async def test_repeated_guid_in_one_document_is_two_entries(
    origin: Origin, harness_factory
) -> None:  # type: ignore[no-untyped-def]
    """Two different items sharing a guid inside one document are both kept."""
    origin.route(
        "/f",
        Reply(
            rss(
                [
                    {"title": "One", "guid": "same", "description": "first body"},
                    {"title": "Two", "guid": "same", "description": "second body"},
                ]
            )
        ),
    )
    h = await harness_factory([("s", origin.url("/f"))])
    await h.tick()
    assert sorted(e.title for e in all_entries(h)) == ["One", "Two"]


CATEGORIZE = """
[categorize]
aliases = { "科技" = ["Tech", "technology"] }

[[categorize.rules]]
name = "ai"
field = "title"
keywords = ["GPT", "人工智能"]
add = ["AI"]

[[categorize.rules]]
name = "no-ads"
field = "title"
regex = "^\\\\[(AD|广告)\\\\]"
drop = true

[[categorize.filters]]
source = "b"
exclude = [{ field = "author", keywords = ["spammer"] }]
"""


async def test_categories_aliases_rules_filters_and_category_feeds(
    origin: Origin, tmp_path: Path, harness_factory
) -> None:  # type: ignore[no-untyped-def]
    """Feed categories go through aliases, rules add and drop, per-source filters exclude; the
    category feed serves everything under its path, and explain says why."""
    origin.route(
        "/a",
        Reply(
            rss(
                [
                    {
                        "title": "New GPT model released",
                        "link": "http://a.example.com/1",
                        "category": "technology",
                        "description": "A model.",
                    },
                    {
                        "title": "[AD] Buy now",
                        "link": "http://a.example.com/2",
                        "description": "Cheap.",
                    },
                ]
            )
        ),
    )
    origin.route(
        "/b",
        Reply(
            rss(
                [
                    {
                        "title": "人工智能大会开幕",
                        "link": "http://b.example.com/1",
                        "description": "会议内容。",
                    }
                ]
            )
        ),
    )
    h = await harness_factory(
        [("a", origin.url("/a"), "Test / A"), ("b", origin.url("/b"), "Test / B")],
        tail=CATEGORIZE,
    )
    await h.tick()
    by_title = {e.title: e for e in all_entries(h)}
    assert set(by_title) == {"New GPT model released", "人工智能大会开幕"}
    gpt = by_title["New GPT model released"]
    assert set(gpt.categories) == {"科技", "AI"}
    assert any("rule 'ai'" in line for line in gpt.explanation)
    assert h.store.find_drops("http://a.example.com/2")[0].reason.startswith("rule 'no-ads'")

    feeds = FeedService(h.settings, h.store, lambda: {s.id: s for s in h.settings.source_records()})
    client = TestClient(create_app(feeds))
    doc = feedparser.parse(client.get("/feeds/category/Test.atom").content)
    assert doc.bozo == 0 and len(doc.entries) == 2
    assert client.get("/feeds/category/Nope.atom").status_code == 404


async def test_explain_command_says_why(
    origin: Origin, tmp_path: Path, harness_factory, capsys
) -> None:  # type: ignore[no-untyped-def]
    """`aggregator explain` prints categories with their rules, the merge and the drop reasons."""
    origin.route(
        "/a",
        Reply(
            rss(
                [
                    {
                        "title": "GPT story",
                        "link": "http://n.example.com/1",
                        "description": STORY_EN,
                    },
                    {"title": "[AD] x", "link": "http://n.example.com/ad", "description": "ad"},
                ]
            )
        ),
    )
    origin.route(
        "/b",
        Reply(
            rss(
                [
                    {
                        "title": "Same",
                        "link": "http://n.example.com/1?utm_source=feed",
                        "description": "copy",
                    }
                ]
            )
        ),
    )
    h = await harness_factory([("a", origin.url("/a")), ("b", origin.url("/b"))], tail=CATEGORIZE)
    await h.tick()
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[storage]\nurl = "{h.settings.storage.url}"\n'
        + CATEGORIZE.replace('source = "b"', 'source = "a"')
        + '\n[[sources]]\nid = "a"\nurl = "http://x.example/a"\n',
        encoding="utf-8",
    )
    copy = next(e for e in all_entries(h, merge=False) if e.duplicate_of is not None)
    assert cli.main(["--config", str(cfg), "explain", str(copy.id)]) == 0
    out = capsys.readouterr().out
    assert f"merged into entry {copy.duplicate_of}" in out and "same canonical URL" in out
    assert cli.main(["--config", str(cfg), "explain", "http://n.example.com/1"]) == 0
    assert "rule 'ai'" in capsys.readouterr().out
    assert cli.main(["--config", str(cfg), "explain", "http://n.example.com/ad"]) == 0
    assert "dropped" in capsys.readouterr().out
    assert cli.main(["--config", str(cfg), "explain", "nothing-like-this"]) == 1


async def test_explain_lists_the_nearest_candidates_of_an_unmerged_entry(  # type: ignore[no-untyped-def]
    origin: Origin, tmp_path: Path, harness_factory, capsys
) -> None:
    """`aggregator explain` on an entry that was not merged shows its nearest entries of other
    sources with their similarity, the threshold and the closest rule."""
    head = STORY_EN[: len(STORY_EN) * 2 // 3]  # shares band keys with the story, scores under 0.8
    other = head + " Meanwhile an unrelated council vote on parking fees drew a record crowd."
    origin.route(
        "/a",
        Reply(rss([{"title": "Quake", "link": "http://n.example.com/1", "description": STORY_EN}])),
    )
    origin.route(
        "/b",
        Reply(rss([{"title": "Quake", "link": "http://m.example.com/2", "description": other}])),
    )
    h = await harness_factory([("a", origin.url("/a")), ("b", origin.url("/b"))])
    await h.tick()
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[storage]\nurl = "{h.settings.storage.url}"\n', encoding="utf-8")
    entries = all_entries(h, merge=False)
    assert len(entries) == 2 and all(e.duplicate_of is None for e in entries)
    b = next(e for e in entries if e.source_id == "b")
    assert cli.main(["--config", str(cfg), "explain", str(b.id)]) == 0
    out = capsys.readouterr().out
    a_id = next(e.id for e in entries if e.source_id == "a")
    assert "nearest entries of other sources" in out and f"entry {a_id} from a: similarity" in out
    assert "(threshold 0.950)" in out and "closest rule:" in out  # a short text: strict


async def test_a_changed_link_on_the_same_guid_is_stored_and_served(
    origin: Origin, clock: FakeClock, harness_factory
) -> None:  # type: ignore[no-untyped-def]
    """An item whose link changes (same guid, same text) gets its new link stored and served."""
    doc = {"l": "http://x.example.com/old-path"}
    origin.route(
        "/f",
        lambda req: Reply(
            rss(
                [
                    {
                        "title": "T",
                        "link": doc["l"],
                        "guid": "g1",
                        "description": "<p>The same text.</p>",
                    }
                ]
            )
        ),
    )
    h = await harness_factory([("s", origin.url("/f"))])
    await h.tick()
    (before,) = all_entries(h)
    doc["l"] = "https://x.example.com/new-path"
    clock.advance(3600)
    await h.tick()
    (after,) = all_entries(h)
    assert after.id == before.id and after.link == "https://x.example.com/new-path"
    feeds = FeedService(h.settings, h.store, lambda: {s.id: s for s in h.settings.source_records()})
    doc_out = feedparser.parse(TestClient(create_app(feeds)).get("/feeds/all.atom").content)
    assert [e.link for e in doc_out.entries] == ["https://x.example.com/new-path"]


async def test_a_site_moving_to_https_with_new_markup_makes_no_duplicates(
    origin: Origin, clock: FakeClock, harness_factory
) -> None:  # type: ignore[no-untyped-def]
    """Guids and links moved from http to https, bodies re-marked-up, some items title-only:
    every item is recognized as the entry it was."""

    def items(scheme: str, markup: str) -> list[dict[str, str]]:
        out = [
            {
                "title": f"Story {n}",
                "link": f"{scheme}://pub.example.com/s/{n}",
                "guid": f"{scheme}://pub.example.com/?p={n}",
                "description": markup.format(f"Body of story number {n}. " * 12),
            }
            for n in range(5)
        ]
        out += [
            {
                "title": f"Brief {n}",
                "link": f"{scheme}://pub.example.com/b/{n}",
                "guid": f"{scheme}://pub.example.com/?b={n}",
            }
            for n in range(3)
        ]
        return out

    doc = {"body": rss(items("http", "<p>{}</p>"))}
    origin.route("/feed", lambda req: Reply(doc["body"]))
    h = await harness_factory([("p", origin.url("/feed"))])
    await h.tick()
    keys = sorted(e.key for e in all_entries(h))
    doc["body"] = rss(items("https", '<div class="entry"><p class="x">{}</p></div>'))
    clock.advance(3600)
    await h.tick()
    assert len(all_entries(h, merge=False)) == 8
    assert sorted(e.key for e in all_entries(h)) == keys


async def test_a_cms_migration_that_changes_ids_links_and_markup_makes_no_duplicates(
    origin: Origin, clock: FakeClock, harness_factory
) -> None:  # type: ignore[no-untyped-def]
    """A source whose guids, links and markup all change at once keeps its entries (matched by
    their text) and serves the new links."""
    bodies = [STORY_EN, STORY_EN[::-1], STORY_ZH, OTHER_ZH]
    first = [
        {
            "title": f"Story {n}",
            "link": f"http://pub.example.com/?p={n}",
            "guid": f"p{n}",
            "description": f"<p>{b}</p>",
        }
        for n, b in enumerate(bodies)
    ]
    second = [
        {
            "title": f"Story {n}",
            "link": f"https://pub.example.com/2024/story-{n}",
            "guid": f"urn:uuid:{n}",
            "description": f'<div class="c"><p class="x">{b}</p></div>',
        }
        for n, b in enumerate(bodies)
    ]
    doc = {"body": rss(first)}
    origin.route("/feed", lambda req: Reply(doc["body"]))
    h = await harness_factory([("p", origin.url("/feed"))])
    await h.tick()
    keys = sorted(e.key for e in all_entries(h))
    doc["body"] = rss(second)
    clock.advance(3600)
    await h.tick()
    entries = all_entries(h, merge=False)
    assert len(entries) == 4 and sorted(e.key for e in entries) == keys
    assert all((e.link or "").startswith("https://pub.example.com/2024/") for e in entries)


async def test_recomputing_fingerprints_restores_what_the_pipeline_stored(
    origin: Origin, harness_factory
) -> None:  # type: ignore[no-untyped-def]
    """store.recompute_fingerprints(fingerprints.stored_signature) rewrites each entry's fingerprint,
    weight and band keys to exactly what the pipeline computes for it (stale ones after an
    upgrade included), so near-duplicate lookups find it again."""
    from sqlalchemy import delete, update

    from aggregator.dedupe import fingerprint as fingerprints
    from aggregator.store.schema import entries, entry_bands

    origin.route(
        "/a",
        Reply(
            rss(
                [
                    {"title": "Quake", "link": "http://n.example.com/1", "description": STORY_EN},
                    {"title": "地震", "link": "http://n.example.com/2", "description": STORY_ZH},
                ]
            )
        ),
    )
    h = await harness_factory([("a", origin.url("/a"))])
    await h.tick()
    before = {
        e.id: (e.fingerprint, e.text_length, h.store.entry_band_keys(e.id)) for e in all_entries(h)
    }
    with h.store.engine.begin() as conn:  # what an older version stored
        conn.execute(update(entries).values(fingerprint=12345, text_length=1))
        conn.execute(delete(entry_bands))
    assert h.store.recompute_fingerprints(fingerprints.stored_signature) == 2
    after = {
        e.id: (e.fingerprint, e.text_length, h.store.entry_band_keys(e.id)) for e in all_entries(h)
    }
    assert {k: (f, w, set(b)) for k, (f, w, b) in after.items()} == {
        k: (f, w, set(b)) for k, (f, w, b) in before.items()
    }
    assert all(b for _, _, b in after.values())


async def test_upgrading_the_schema_recomputes_stored_fingerprints(
    origin: Origin, harness_factory, clock
) -> None:  # type: ignore[no-untyped-def]
    """A database at schema 7 (fingerprints of the older meaning: two 32-bit windows in one
    column) opened by this version is migrated to 8: the body's column is added and every stored
    fingerprint, weight and band key is computed again."""
    from sqlalchemy import delete, text, update

    from aggregator.store import open_store
    from aggregator.store.schema import entries, entry_bands, schema_version

    origin.route(
        "/a",
        Reply(
            rss(
                [
                    {"title": "Quake", "link": "http://n.example.com/1", "description": STORY_EN},
                    {"title": "地震", "link": "http://n.example.com/2", "description": STORY_ZH},
                ]
            )
        ),
    )
    h = await harness_factory([("a", origin.url("/a"))])
    await h.tick()
    before = {
        e.id: (e.fingerprint, e.text_length, set(h.store.entry_band_keys(e.id)))
        for e in all_entries(h)
    }
    assert all(f is not None and f >> 64 for f, _, _ in before.values())  # both windows' bits
    with h.store.engine.begin() as conn:  # what version 7 left behind
        conn.execute(update(entries).values(fingerprint=12345, text_length=1))
        conn.execute(delete(entry_bands))
        conn.execute(text("ALTER TABLE entries DROP COLUMN body_fingerprint"))
        conn.execute(delete(schema_version).where(schema_version.c.version >= 8))
    h.store.close()
    again = open_store(h.settings.storage.url, clock.now())
    try:
        after = {
            e.id: (e.fingerprint, e.text_length, set(again.entry_band_keys(e.id)))  # type: ignore[attr-defined]
            for e in again.list_entries(Selection(merge_duplicates=False, limit=100))
        }
    finally:
        again.close()
    assert after == before and all(b for _, _, b in after.values())
