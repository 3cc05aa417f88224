"""Duplicates: whether two entries are one story, across sources and within one.

Owns the pure decisions about sameness:

- ``find_duplicate``: the cross-source duplicate rule (canonical URL, identical content,
  near-duplicate), with the reason and score of each merge; ``nearest`` explains the closest
  misses (``aggregator explain``).
- ``detect_rekeyed``: recognizes a source that changed its id scheme.

Both compare ``models.Identity`` records. Does not own: computing the URLs, hashes and
fingerprints they compare (canonical.py, keys.py, fingerprint.py), storing any of this
(store/), choosing which copy a feed shows (publish/), or cleaning HTML (content/).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from ..models import Identity
from .canonical import same_url, site_of, url_identity
from .fingerprint import similarity

if TYPE_CHECKING:  # parser worker processes import this module without the config
    from ..config.settings import DedupeSettings

Reason = Literal["canonical_url", "identical_content", "near_duplicate"]
_PRIORITY: dict[str, int] = {"canonical_url": 0, "identical_content": 1, "near_duplicate": 2}


@dataclass(frozen=True)
class Match:
    """Why a candidate is a copy of a stored entry."""

    entry_id: int  # the stored entry that matched
    primary_id: int  # the cluster's primary: what the candidate's duplicate_of becomes
    reason: Reason
    score: float  # 1.0 for canonical_url and identical_content; the similarity otherwise

    def describe(self) -> str:
        if self.reason == "near_duplicate":
            return f"near-duplicate of entry {self.entry_id} (similarity {self.score:.3f})"
        what = "same canonical URL as" if self.reason == "canonical_url" else "same content as"
        return f"{what} entry {self.entry_id}"


def required_score(length_a: int, length_b: int, settings: DedupeSettings) -> float | None:
    """The similarity two texts need to be near-duplicates; None when one is too short to judge.
    Under four times ``min_text_length`` a text must be a near-identical copy (three quarters of
    the way from the threshold to 1.0): a few dozen shingles of two templated teasers ("Live:
    A v B") agree by chance far more often than two articles."""
    shorter = min(length_a, length_b)
    if shorter < max(settings.min_text_length, 1):
        return None
    if shorter < 4 * settings.min_text_length:
        return _strict(settings)
    return settings.near_duplicate_threshold


def _strict(settings: DedupeSettings) -> float:
    return settings.near_duplicate_threshold + (1.0 - settings.near_duplicate_threshold) * 0.75


def _identical(a: Identity, b: Identity) -> bool:
    """The same title and text, at any length: the same content hash (with a body), or the
    same normalized text (same fingerprint and weight; markup and entity spellings aside)."""
    if a.content_hash == b.content_hash and a.text_length > 0 and a.fingerprint is not None:
        return True
    return (
        a.fingerprint is not None
        and a.fingerprint == b.fingerprint
        and (a.text_length == b.text_length > 0)
    )


def compare(candidate: Identity, other: Identity, settings: DedupeSettings) -> Match | None:
    """The strongest rule by which ``candidate`` copies ``other`` (another source's entry)."""
    if other.entry_id is None or other.source_id == candidate.source_id:
        return None
    primary = other.duplicate_of if other.duplicate_of is not None else other.entry_id
    if same_url(candidate.canonical_url, other.canonical_url):
        return Match(other.entry_id, primary, "canonical_url", 1.0)
    if _identical(candidate, other):
        return Match(other.entry_id, primary, "identical_content", 1.0)
    if candidate.fingerprint is None or other.fingerprint is None:
        return None
    needed = required_score(candidate.text_length, other.text_length, settings)
    if needed is None:
        return None
    same_site = site_of(candidate.canonical_url)
    if same_site is not None and same_site == site_of(other.canonical_url):
        needed = max(needed, _strict(settings))  # two pages of one site share its boilerplate
    score = similarity(candidate.fingerprint, other.fingerprint)
    return Match(other.entry_id, primary, "near_duplicate", score) if score >= needed else None


def find_duplicate(
    candidate: Identity, existing: Iterable[Identity], settings: DedupeSettings
) -> Match | None:
    """The stored entry of another source that ``candidate`` is a copy of, or None.

    Rules, strongest first: the same canonical URL (unless it is a bare home page); the same
    content hash; a fingerprint similarity at or above ``near_duplicate_threshold``. Texts under
    ``min_text_length`` never match by content; short texts, and two different pages of one
    site (which share its bylines and footers), need a near-identical score. Entries of the candidate's own source
    are never duplicates here: within a source, identity is the key (see ``detect_rekeyed``).
    Among several matches: the strongest reason, then the highest score, then the oldest
    primary (lowest id), so the answer does not depend on the order of ``existing``."""
    best: Match | None = None
    for other in existing:
        match = compare(candidate, other, settings)
        if match is not None and (best is None or _rank(match) < _rank(best)):
            best = match
    return best


def _rank(match: Match) -> tuple[int, float, int, int]:
    return (_PRIORITY[match.reason], -match.score, match.primary_id, match.entry_id)


@dataclass(frozen=True)
class Near:
    """How close a stored entry of another source came to being the same story."""

    entry_id: int
    source_id: str
    score: float  # similarity of the fingerprints (0.0 without one)
    needed: float | None  # the score the near-duplicate rule asks of these two; None: too short
    rule: str  # the rule that fired, else the one closest to firing

    def describe(self) -> str:
        if self.needed is None:
            gap = "too short to judge by similarity"
        else:
            gap = f"threshold {self.needed:.3f}"
        return f"entry {self.entry_id} from {self.source_id}: similarity {self.score:.3f} ({gap}); {self.rule}"


def nearest(
    candidate: Identity, others: Iterable[Identity], settings: DedupeSettings, n: int = 5
) -> list[Near]:
    """The ``n`` entries of other sources closest to ``candidate`` by fingerprint similarity,
    each with the threshold it needed and the rule that fired or came closest (``explain``)."""
    out = []
    for other in others:
        if other.entry_id is None or other.source_id == candidate.source_id:
            continue
        match = compare(candidate, other, settings)
        score = (
            similarity(candidate.fingerprint, other.fingerprint)
            if candidate.fingerprint is not None and other.fingerprint is not None
            else 0.0
        )
        needed = _needed(candidate, other, settings)
        rule = f"merged by {match.reason}" if match else _closest(candidate, other, score, needed)
        out.append(Near(other.entry_id, other.source_id, score, needed, rule))
    out.sort(key=lambda x: (-x.score, x.entry_id))
    return out[:n]


def _needed(a: Identity, b: Identity, settings: DedupeSettings) -> float | None:
    needed = required_score(a.text_length, b.text_length, settings)
    same_site = site_of(a.canonical_url)
    if needed is not None and same_site is not None and same_site == site_of(b.canonical_url):
        needed = max(needed, _strict(settings))
    return needed


def _closest(a: Identity, b: Identity, score: float, needed: float | None) -> str:
    if needed is not None:
        return f"closest rule: near_duplicate ({needed - score:.3f} short)"
    if url_identity(a.canonical_url) and url_identity(b.canonical_url):
        return "closest rule: identical_content (texts differ; URLs differ)"
    return "closest rule: identical_content (texts differ)"


# --- a source that changed its ids ----------------------------------------------------------------


class Keyed(Protocol):
    """Anything with a key, a canonical URL and a content hash (Identity, models.Entry)."""

    @property
    def key(self) -> str: ...

    @property
    def canonical_url(self) -> str | None: ...

    @property
    def content_hash(self) -> str: ...


REKEY_SCORE = 0.9  # a re-keyed item matched by its text: at least this similar to one old entry
REKEY_MARGIN = 0.1  # ... and this much more than to any other
REKEY_SCAN = 1000  # newest orphaned entries compared by text with each unmatched item


def detect_rekeyed(
    new_items: Sequence[Keyed],
    known: Iterable[Keyed],
    *,
    min_new_fraction: float = 0.5,
    fingerprint: Callable[[str], int | None] | None = None,
) -> dict[str, str]:
    """Map keys of this fetch to the keys the source already has for the same entries, when the
    publisher changed its id scheme.

    ``new_items`` is every item of the fetch, ``known`` the source's stored entries, newest
    first. It acts only when at least ``min_new_fraction`` of the fetched keys are unknown (one
    new post among old ones is just a new post, even if its text repeats an old one). A fetched
    item with an unknown key is mapped to a stored entry that is absent from this fetch and has
    the same specific canonical URL (``http`` and ``https`` alike) or else the same content hash,
    each unique on both sides; else, given ``fingerprint`` (fetched key -> its fingerprint) and
    stored entries with a ``fingerprint``, to the one old entry its text is clearly closest to
    (``REKEY_SCORE``, ``REKEY_MARGIN``): a CMS migration that changed ids, links and markup at
    once. An old key is claimed once at most."""
    stored = list(known)
    stored_keys = {k.key for k in stored}
    fresh = [i for i in new_items if i.key not in stored_keys]
    if not fresh or len(fresh) < min_new_fraction * len(new_items):
        return {}
    fetched_keys = {i.key for i in new_items}
    orphans = [k for k in stored if k.key not in fetched_keys]
    by_url = _unique(orphans, fresh, _url_of)
    by_hash = _unique(orphans, fresh, lambda k: k.content_hash or None)
    mapping: dict[str, str] = {}
    claimed: set[str] = set()
    for item in fresh:
        old = by_url.get(_url_of(item) or "") or by_hash.get(item.content_hash)
        if old is not None and old not in claimed:
            mapping[item.key] = old
            claimed.add(old)
    if fingerprint is not None:
        left = [i for i in fresh if i.key not in mapping]
        mapping.update(_by_text(left, [o for o in orphans if o.key not in claimed], fingerprint))
    return mapping


def _by_text(
    fresh: Sequence[Keyed], orphans: Sequence[Keyed], fingerprint: Callable[[str], int | None]
) -> dict[str, str]:
    """Unmatched fetched keys -> the old key whose stored text is clearly the closest."""
    olds = [
        (o.key, fp)
        for o in orphans[:REKEY_SCAN]
        if (fp := getattr(o, "fingerprint", None)) is not None
    ]
    out: dict[str, str] = {}
    if not olds:
        return out
    for item in fresh:
        fp = fingerprint(item.key)
        if fp is None:
            continue
        scored = sorted(((similarity(fp, old_fp), key) for key, old_fp in olds), reverse=True)
        if (
            scored
            and scored[0][0] >= REKEY_SCORE
            and (len(scored) == 1 or scored[1][0] <= scored[0][0] - REKEY_MARGIN)
            and scored[0][1] not in out.values()
        ):
            out[item.key] = scored[0][1]
    return out


def _url_of(k: Keyed) -> str | None:
    return url_identity(k.canonical_url)  # http and https of one page are one entry


def _unique(
    old: Sequence[Keyed], new: Sequence[Keyed], attr: Callable[[Keyed], str | None]
) -> dict[str, str]:
    """value -> old key, for values that occur exactly once among old and once among new."""
    old_counts = Counter(v for v in map(attr, old) if v)
    new_counts = Counter(v for v in map(attr, new) if v)
    return {
        value: k.key
        for k in old
        if (value := attr(k)) and old_counts[value] == 1 and new_counts[value] == 1
    }
