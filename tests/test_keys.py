"""An item's identity within its source (dedupe/keys.py): content hashes and keys."""

from __future__ import annotations

from aggregator.dedupe import keys as item_keys
from aggregator.models import Item

from .test_dedupe import TRACKING


def test_content_hash_ignores_whitespace_entities_and_tracking_noise() -> None:
    """Re-indented markup, entity spellings and tracking parameters leave the hash unchanged."""
    a = '<p>Rain “today”</p>\n<p>See <a href="https://x.example/a?id=2">more</a></p>'
    b = (
        "  <p>Rain &ldquo;today&rdquo;</p>\n\n    <p>See   "
        '<a href="https://x.example/a?utm_source=rss&amp;id=2">more</a></p>\n'
    )
    link_a, link_b = "https://x.example/s", "https://x.example/s?utm_campaign=z"
    assert item_keys.content_hash(" Rain ", a, link_a, TRACKING) == item_keys.content_hash(
        "Rain", b, link_b, TRACKING
    )


def test_content_hash_changes_with_words_and_real_urls() -> None:
    """A changed word, title or non-tracking URL is a real change."""
    base = item_keys.content_hash(
        "T", '<p>Ten <a href="https://x.example/a?id=1">x</a></p>', None, TRACKING
    )
    assert base != item_keys.content_hash(
        "T", '<p>Nine <a href="https://x.example/a?id=1">x</a></p>', None, TRACKING
    )
    assert base != item_keys.content_hash(
        "T", '<p>Ten <a href="https://x.example/a?id=2">x</a></p>', None, TRACKING
    )
    assert base != item_keys.content_hash(
        "U", '<p>Ten <a href="https://x.example/a?id=1">x</a></p>', None, TRACKING
    )


def test_content_hash_counts_the_link_only_without_a_body() -> None:
    """Same text under two sources' links hashes alike; title-only entries differ by link."""
    with_body = [item_keys.content_hash("T", "<p>x</p>", f"https://{h}/1", TRACKING) for h in "ab"]
    without = [item_keys.content_hash("T", None, f"https://{h}/1", TRACKING) for h in "ab"]
    assert with_body[0] == with_body[1]
    assert without[0] != without[1]


def test_entry_keys_prefer_guid_then_link_then_a_hash() -> None:
    """guid wins; a missing or blank guid falls back to the link, then to a title+content hash."""
    items = [
        Item(guid="g1", link="https://a.example/1", title="a"),
        Item(guid="  ", link=" https://a.example/2 ", title="b"),
        Item(guid=None, link=None, title="c", content="<p>body</p>"),
    ]
    keys = item_keys.entry_keys(items)
    assert keys[:2] == ["g1", "https://a.example/2"]
    assert keys[2].startswith("hash:")
    assert keys == item_keys.entry_keys(items)


def test_entry_keys_disambiguate_a_repeated_guid() -> None:
    """Items repeating a guid in one document get distinct keys derived from their own content."""
    items = [
        Item(guid="same", link=None, title="first"),
        Item(guid="same", link=None, title="second"),
        Item(guid="same", link=None, title="second"),
    ]
    keys = item_keys.entry_keys(items)
    assert keys[0] == "same"
    assert keys[1].startswith("same#") and keys[2] == keys[1] + "#2"
    assert len(set(keys)) == 3


def test_entry_keys_of_a_later_duplicate_do_not_depend_on_its_position() -> None:
    """The suffix of a repeated guid is a hash of the item, not its index in the document."""
    x = Item(guid="g", link=None, title="x")
    y = Item(guid="g", link=None, title="y")
    z = Item(guid="other", link=None, title="z")
    assert item_keys.entry_keys([x, y])[1] == item_keys.entry_keys([x, z, y])[2]
