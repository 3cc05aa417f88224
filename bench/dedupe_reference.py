"""The duplicate rules' reference twin, for the tests and the evaluation (bench/dedupe_eval.py).

The pipeline computes an item's identity in two steps (keys, URL and hash in ``workers.identify``;
the fingerprint only for new and changed items, from cleaned HTML, in ``workers.prepare``), and
the store indexes band keys in a table. Here the same functions are called in one step on raw
items, and ``BandIndex`` keeps the band keys in memory: what the tests and the evaluation need,
and nothing the daemon runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from aggregator.dedupe.canonical import canonical_url
from aggregator.dedupe.fingerprint import document_text, signature
from aggregator.dedupe.keys import content_hash, entry_keys
from aggregator.models import Identity, Item


def fingerprint(text: str) -> int:
    """128 bits of ``text`` (the output of ``document_text``): a 64-bit one-permutation b-bit
    MinHash of its lede (low half) and one of its body from the second block on (high half),
    each over the shingles of the leading ``WINDOW``. Two windows' halves agree in a share of
    bits whose expected value is (1 + J) / 2, J the Jaccard similarity of their shingle sets.
    0 for an empty text. Unsigned; the store keeps each half in a signed 64-bit column
    (store.schema.fingerprint_columns)."""
    return signature(text)[0] or 0


def band_keys(text: str) -> tuple[int, ...]:
    """Index keys for the near-duplicate lookup: ``BANDS`` signed 64-bit integers per window
    (each band's ``ROWS`` full bin minima hashed with the band number, so one indexed column
    holds them all; the same band of both windows shares a key when they are one text).
    Windows whose shingle sets have a Jaccard similarity of 0.7 share a key with probability
    0.97, unrelated texts (Jaccard 0.05) one in 800. Empty for an empty text."""
    return signature(text)[1]


def identify(
    items: Sequence[Item], tracking_params: Sequence[str], source_id: str = ""
) -> list[Identity]:
    """Keys, canonical URLs, content hashes and fingerprints of one document's items, in order."""
    return [
        _identity(item, key, tracking_params, source_id)
        for item, key in zip(items, entry_keys(items))
    ]


def _identity(item: Item, key: str, tracking_params: Sequence[str], source_id: str) -> Identity:
    body = item.content or item.summary
    fingerprint_, bands, weight = signature(document_text(item.title, body))
    link = item.link.strip() if item.link and item.link.strip() else None
    return Identity(
        source_id=source_id,
        key=key,
        canonical_url=canonical_url(link, tracking_params) if link else None,
        content_hash=content_hash(item.title, body, link, tracking_params),
        fingerprint=fingerprint_,
        text_length=weight,
        band_keys=bands,
    )


class BandIndex:
    """In-memory near-duplicate index: band key -> entry ids. The store keeps the same thing as
    a table (entry_id, band_key) indexed on band_key; this class is its reference and test twin."""

    def __init__(self) -> None:
        self._buckets: dict[int, set[int]] = {}
        self._keys: dict[int, tuple[int, ...]] = {}

    def add(self, entry_id: int, keys: Sequence[int]) -> None:
        self.discard(entry_id)
        self._keys[entry_id] = tuple(keys)
        for key in keys:
            self._buckets.setdefault(key, set()).add(entry_id)

    def discard(self, entry_id: int) -> None:
        for key in self._keys.pop(entry_id, ()):
            bucket = self._buckets.get(key)
            if bucket is not None:
                bucket.discard(entry_id)
                if not bucket:
                    del self._buckets[key]

    def candidates(self, keys: Sequence[int]) -> set[int]:
        """Ids of entries sharing at least one band key: the only ones worth comparing."""
        found: set[int] = set()
        for key in keys:
            found |= self._buckets.get(key, set())
        return found

    def __len__(self) -> int:
        return len(self._keys)
