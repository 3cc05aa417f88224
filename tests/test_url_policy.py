"""The URL policy: only absolute http(s) links are published, in every format and in /opml.

Hostile feeds are served by the fake origin, ingested by the real pipeline, and the documents we
publish from what was stored are searched for every script or non-URL link the feeds carried.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from aggregator.content.urls import public_link
from aggregator.models import Enclosure, Selection, SourceState
from aggregator.publish.opml import export_opml
from aggregator.publish.render import FeedMeta, render

from .feedworld import make_world
from .origin import Origin, Reply

SCRIPTS = [
    "javascript:alert(1)",
    " javascript:alert(2)",
    "JAVASCRIPT:alert(3)",
    "java\tscript:alert(4)",
    "\x01javascript:alert(5)",
    "vbscript:msgbox(6)",
    "data:text/html,<script>alert(7)</script>",
    "jAvAsCrIpT&colon;alert(8)",
]
META = FeedMeta("all", "All", "", "http://agg.test/feeds/all.rss", "http://agg.test/", None)


@pytest.mark.parametrize(
    "value",
    [
        *SCRIPTS,
        "urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a",
        "1.2",
        "mailto:a@b.c",
        "//no-scheme.example/x",
        "http://",
        1.2,
    ],
)
def test_non_web_links_are_not_published(value: Any) -> None:
    """Script, data and non-URL values are no link at all."""
    assert public_link(value) is None


def test_web_links_are_published_absolute() -> None:
    """http(s) links pass (scheme lower-cased, controls and spaces removed); relative ones
    resolve against an http(s) base only."""
    assert public_link(" HTTPS://Ex.com/a\n") == "https://Ex.com/a"
    assert public_link("/p?q=1", "http://ex.com/feed/") == "http://ex.com/p?q=1"
    assert public_link("p", "javascript:alert(1)//") is None


def _atom(href: str) -> str:
    return (
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>urn:x</id>'
        "<updated>2026-01-01T00:00:00Z</updated>"
        "<entry><id>urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a</id><title>no link</title>"
        "<updated>2026-01-01T00:00:00Z</updated><content>x</content></entry>"
        f'<entry><id>tag:x,2026:2</id><title>bad link</title><link href="{href}"/>'
        f'<link rel="enclosure" type="audio/mpeg" href="{href}"/>'
        "<updated>2026-01-01T00:00:00Z</updated><content>y</content></entry></feed>"
    )


def _json_feed() -> str:
    items: list[dict[str, Any]] = [
        {"id": "n", "url": 1.2, "title": "number url", "content_text": "a"},
        *(
            {
                "id": f"s{i}",
                "url": s,
                "title": f"script {i}",
                "image": s,
                "content_text": "b",
                "attachments": [{"url": s, "mime_type": "audio/mpeg"}],
            }
            for i, s in enumerate(SCRIPTS)
        ),
    ]
    return json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": "j",
            "home_page_url": "javascript:alert(9)",
            "items": items,
        }
    )


_LINK_START = re.compile(r'[>"]\s*(java|vbscript|data:|urn:|1\.2[<"])', re.IGNORECASE)


def _scripted(doc: bytes) -> list[str]:
    """Links (element text or attribute value) that start as a script, data or non-URL would."""
    return _LINK_START.findall(doc.decode())


async def test_hostile_links_never_reach_a_feed(origin: Origin, harness_factory: Any) -> None:
    """Script links and non-URLs from Atom and JSON Feed sources appear in no published format."""
    sources = [
        (
            "atom",
            origin.route("/a.xml", Reply(_atom(SCRIPTS[1]), content_type="application/atom+xml")),
        ),
        ("js", origin.route("/j.json", Reply(_json_feed(), content_type="application/feed+json"))),
    ]
    for i, script in enumerate(SCRIPTS[2:]):
        sources.append(
            (
                f"a{i}",
                origin.route(
                    f"/a{i}.xml",
                    Reply(_atom(script.replace("<", "&lt;")), content_type="application/atom+xml"),
                ),
            )
        )
    h = await harness_factory(sources)
    await h.tick()
    entries = h.store.list_entries(Selection(merge_duplicates=False, limit=1000))
    assert len(entries) == 2 * (len(SCRIPTS) - 1) + 1 + len(SCRIPTS)
    for fmt in ("rss", "atom", "json"):
        doc = render(fmt, META, entries)  # type: ignore[arg-type]
        assert _scripted(doc) == [], fmt
    items = [
        i
        for i in json.loads(render("json", META, entries))["items"]
        if i["title"].startswith(("script", "number", "no link"))
    ]
    assert len(items) == (len(SCRIPTS) - 1) + 1 + len(SCRIPTS)  # atom "no link", number, scripts
    linked = [i for i in items if "url" in i or "image" in i or "attachments" in i]
    # a JSON string without a scheme is a relative URL, resolved against the document's: harmless
    assert [(i["title"], i["url"]) for i in linked] == [
        ("script 7", origin.url("/jAvAsCrIpT&colon;alert(8)"))
    ]


def test_opml_publishes_only_web_links_and_plain_titles(tmp_path: Path) -> None:
    """/opml carries no script htmlUrl and no title markup."""
    world = make_world(tmp_path)
    states = []
    for sid in world.sources:
        state = world.store.get_state(sid)
        assert state is not None
        states.append(
            SourceState(
                **{
                    **state.__dict__,
                    "site_link": " JAVASCRIPT:alert(1)",
                    "title": '<b onmouseover="x()">Bold</b> &amp; <i>it</i>',
                }
            )
        )
    sources = {
        sid: s.__class__(**{**s.__dict__, "title": None}) for sid, s in world.sources.items()
    }
    doc = export_opml(world.settings, sources, states)
    outlines = etree.fromstring(doc).findall(".//outline[@xmlUrl]")
    assert outlines
    for o in outlines:
        assert o.get("htmlUrl") is None
        assert o.get("title") == o.get("text") == "Bold & it"


def test_enclosure_relative_to_the_entry_link_is_resolved() -> None:
    """A relative enclosure or image resolves against the entry's link; without one it is dropped."""
    from .test_render import entry

    rel = entry("r", enclosures=(Enclosure("/m.mp3", "audio/mpeg", 1),), image="i.png")
    item = json.loads(render("json", META, [rel]))["items"][0]
    assert item["attachments"][0]["url"] == "https://news.example.com/m.mp3"
    assert item["image"] == "https://news.example.com/i.png"
    bare = json.loads(
        render(
            "json",
            META,
            [
                entry(
                    "s", link="1.2", canonical_url=None, enclosures=(Enclosure("/m.mp3", None, 1),)
                )
            ],
        )
    )
    assert "url" not in bare["items"][0] and "attachments" not in bare["items"][0]


async def test_relative_item_links_are_stored_resolved_and_script_links_not_at_all(
    origin: Origin, clock: Any, harness_factory: Any
) -> None:
    """At ingest, a JSON Feed item's relative url, image and attachment are resolved against the
    document's URL; a script url is not stored as the entry's link."""
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "j",
        "items": [
            {
                "id": "1",
                "url": "/post/1",
                "image": "img/1.png",
                "content_text": "one",
                "attachments": [{"url": "media/1.mp3", "mime_type": "audio/mpeg"}],
            },
            {"id": "2", "url": " JAVASCRIPT:alert(1)", "content_text": "two"},
        ],
    }
    url = origin.route(
        "/feeds/j.json", Reply(json.dumps(doc), content_type="application/feed+json")
    )
    h = await harness_factory([("j", url)])
    await h.tick()
    stored = {e.key: e for e in h.store.list_entries(Selection(source_ids=("j",), limit=10))}
    assert len(stored) == 2
    one = next(e for e in stored.values() if e.link and e.link.endswith("/post/1"))
    assert one.link == origin.url("/post/1") and one.image == origin.url("/feeds/img/1.png")
    assert [e.url for e in one.enclosures] == [origin.url("/feeds/media/1.mp3")]
    assert [e.link for e in stored.values() if e is not one] == [None]
