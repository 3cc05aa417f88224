"""Entry identity, canonical URLs, content hashes and near-duplicate fingerprints.

Owns the pure decisions about sameness:

- ``entry_keys``: the key of each parsed item within its source (guid, else link, else a hash of
  title and content); a key repeated inside one document is disambiguated, never merged.
- ``canonical_url``: the form of a URL two copies of a story share (tracking parameters removed).
- ``content_hash``: changes when the content really changes, not for whitespace or tracking noise.
- ``document_text``/``normalize_text``/``fingerprint``/``similarity``: two 64-bit MinHashes (one
  bit from each of 64 one-permutation bins) over character shingles of the normalized text (tags,
  case, punctuation and spaces removed, full-width forms and Traditional Chinese folded, so
  Chinese text without spaces works): one of the lede (the leading ``WINDOW``), one of the body
  from the second block (paragraph) on. A trimmed ending or an appended footer moves neither
  much; a rewritten lead leaves the body's; an added byline block makes one copy's body the
  other's lede.
- ``band_keys`` and ``BandIndex``: locality-sensitive keys so a near-duplicate lookup compares a
  small share of the stored entries (0.3% on the evaluation set, mostly same-topic stories)
  instead of all of them.
- ``find_duplicate``: the cross-source duplicate rule (canonical URL, identical content,
  near-duplicate), with the reason and score of each merge.
- ``detect_rekeyed``: recognizes a source that changed its id scheme.

Does not own: storing any of this (store/), choosing which copy a feed shows (publish/), or
cleaning HTML (content.py).

Why b-bit MinHash and not SimHash: each window's fingerprint must fit a 64-bit column. Both
fit, but a SimHash's agreement is 1 - angle/pi, which squeezes a true copy (cosine 0.85: 0.82)
and another story of the same topic (cosine 0.5: 0.67) within two standard deviations of its
64-bit noise; a 1-bit MinHash agrees in (1 + Jaccard) / 2 of its bits,
which spreads the same two pairs to 0.87 and 0.67. Measured on the evaluation set
(bench/dedupe_eval.py; texts of at least 240, URLs withheld, same shingles and window, threshold
0.8): SimHash recall 0.955, this 0.982, both at precision 0.994. The full bin minima also give
``band_keys`` for the index at no extra hashing.

Why two windows and not the lede alone (issue 18): with the lede alone, a copy whose
first paragraph another outlet rewrote shares almost nothing that is fingerprinted (recall 0.13
on the evaluation's rewritten leads). The whole text instead puts a trimmed or footed copy and a
rewritten lead at a Jaccard similarity near 0.6, where 64 bits cannot tell them from another
story of the same template (about 0.4). Two aligned windows keep the copies near 1.0 in at least
one of them. Two windows aligned together count all 128 bits; one window alone (64 bits, more
noise) must score ``ONE_WINDOW_MARGIN`` higher. A body window that skips a short first block,
drops the last block, or is shorter did worse on one side or the other.

Why 64 bits per window (the body's in a second column, ``body_fingerprint``, migration 8) and
not two 32-bit halves of one column: with 32 bits a window's noise put templated wire copies
(byline, trim, edits and footer on a 600-letter story) and template stories with other numbers
within reach of each other (English wire copies recall 0.85, 7 template stories merged).
Measured (bench/dedupe_eval.py, synthetic + corpus, 2,022 same-story and 14,568 different-story
pairs): 2 x 32 bits precision 0.9959, recall 0.9708; 2 x 64 bits precision 0.9985, recall
0.9787, every kind of copy at 0.95 or more (wire copies 0.96, rewritten lead and last sentence
0.97) but one site's teaser padded with its byline and footer, 3 template stories merged. The
one-window margin is 2 bits of 64; 0, 1 and 4 bits gave precision 0.9970, 0.9985 and 0.9990,
recall 0.9807, 0.9787 and 0.9768 (4 bits missed 3 of 16 Chinese rewritten leads and endings).
The band keys stay 10 per window (from 30 of its 64 bins), so the index is no bigger.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from ..content.text import drop_hidden, html_text
from ..models import Item

if TYPE_CHECKING:  # parser worker processes import this module without the config
    from ..config.settings import DedupeSettings

CJK_WEIGHT = 3  # a CJK character carries about as much as three letters
SHINGLE = 15  # weight of a shingle: 15 letters or digits (two or three words), 5 CJK characters
WINDOW = 500  # weight of each fingerprinted window: a story's lede (~90 words, ~170 汉字);
#   a trimmed ending, a footer or related links after it do not move the fingerprint
ONE_WINDOW_MARGIN = 0.03125  # two bits of 64: what one window alone must score above two together
BODY_ALONE = 200  # a body at least this heavy is fingerprinted without its (often rewritten) title
HALF = 64  # bits of each window's MinHash: the lede's (low half) and the body's (high half)
_BIN_BITS = 6  # log2(HALF): the low bits of a shingle's hash pick its bin
_BLAKE8 = hashlib.blake2b(digest_size=8)  # copied per shingle, never updated itself
BANDS, ROWS = 10, 3  # band_keys: 10 bands of 3 bins (30 of each window's 64 bins)
_HALF_MASK = (1 << HALF) - 1
_DEFAULT_PORTS = {"http": 80, "https": 443}

Reason = Literal["canonical_url", "identical_content", "near_duplicate"]
_PRIORITY: dict[str, int] = {"canonical_url": 0, "identical_content": 1, "near_duplicate": 2}


# --- canonical URLs -------------------------------------------------------------------------------


def is_tracking_param(name: str, tracking_params: Sequence[str], host: str | None = None) -> bool:
    """True when a query parameter name matches the list (``utm_*`` is a prefix; case-insensitive;
    ``key@example.com`` applies only on that host and its subdomains)."""
    lowered = name.casefold()
    for pattern in tracking_params:
        p, _, scope = pattern.casefold().partition("@")
        if scope and not (host and (host == scope or host.endswith("." + scope))):
            continue
        if lowered.startswith(p[:-1]) if p.endswith("*") else lowered == p:
            return True
    return False


def canonical_url(url: str, tracking_params: Sequence[str]) -> str:
    """The shared form of an http(s) URL: lower-case scheme and host, no default port, no
    fragment (a ``#!`` route is kept), query sorted by name without tracking parameters, non-ASCII and
    escapes in the path in one spelling. Other URLs (urn:, mailto:, relative) come back stripped."""
    raw = url.strip()
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        return raw
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return raw
    netloc = _netloc(parts.hostname, port, scheme, parts.username, parts.password)
    fragment = parts.fragment if parts.fragment.startswith("!") else ""
    query = _clean_query(parts.query, tracking_params, parts.hostname.lower())
    return urlunsplit((scheme, netloc, _clean_path(parts.path), query, fragment))


def _netloc(host: str, port: int | None, scheme: str, user: str | None, pw: str | None) -> str:
    host = host.rstrip(".")
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    if user is not None:
        host = f"{user}:{pw}@{host}" if pw is not None else f"{user}@{host}"
    return host


def _clean_path(path: str) -> str:
    spelled = quote(path, safe="/%:@!$&'()*+,;=-._~")  # raw non-ASCII becomes %XX like its copies
    spelled = re.sub(r"%[0-9a-f]{2}", lambda m: m.group(0).upper(), spelled)
    return spelled or "/"


def _clean_query(query: str, tracking_params: Sequence[str], host: str | None = None) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if not is_tracking_param(k, tracking_params, host)]
    kept.sort(key=lambda kv: kv[0])  # by name; repeated names keep their order
    return urlencode(kept, quote_via=quote)


def is_specific_url(url: str | None) -> bool:
    """False for URLs too generic to identify a story (a site's home page, a non-http link):
    feeds that point every item at their home page must not make every item the same story."""
    if not url:
        return False
    parts = urlsplit(url)
    return parts.scheme in _DEFAULT_PORTS and (parts.path not in ("", "/") or bool(parts.query))


# --- content hash and keys ------------------------------------------------------------------------

_URL_IN_TEXT = re.compile(r"https?://[^\s\"'<>]+", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_SPACE_AT_TAG = re.compile(r" ?(<[^<>]*>) ?")


def _squash(text: str | None) -> str:
    """Text with entities decoded, Unicode composed and whitespace runs collapsed."""
    decoded = unicodedata.normalize("NFC", html.unescape(text or ""))
    return _SPACE.sub(" ", decoded).strip()


def _squash_html(markup: str | None, tracking_params: Sequence[str]) -> str:
    text = _squash(markup)
    text = _URL_IN_TEXT.sub(lambda m: canonical_url(m.group(0), tracking_params), text)
    return _SPACE_AT_TAG.sub(r"\1", text)  # re-indented markup is the same content


def content_hash(
    title: str | None, content: str | None, link: str | None, tracking_params: Sequence[str]
) -> str:
    """SHA-256 (hex) of the title and body as a reader sees them: whitespace runs, entity
    spellings, whitespace around tags and tracking parameters in URLs do not change it; any
    change of words, markup or real URLs does. The entry's link counts only when there is no
    body (then the link is what the entry is), so two sources carrying the same text under
    their own links share a hash."""
    body = _squash_html(content, tracking_params)
    parts = [_squash(title), body]
    if not body and link:
        parts.append(canonical_url(link, tracking_params))
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def changed(stored_hash: str, stored_url: str | None, item: Keyed) -> bool:
    """Whether a fetched item differs from its stored entry (same key): its content hash, or
    its canonical URL (a link that moved, tracking parameters aside, is served as it is now)."""
    return stored_hash != item.content_hash or stored_url != item.canonical_url


def _base_key(item: Item) -> str:
    if item.guid and item.guid.strip():
        return item.guid.strip()
    if item.link and item.link.strip():
        return item.link.strip()
    text = "\x1f".join((_squash(item.title), _squash(item.content or item.summary)))
    return "hash:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _item_digest(item: Item) -> str:
    text = "\x1f".join(_squash(x) for x in (item.title, item.link, item.content or item.summary))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def entry_keys(items: Sequence[Item]) -> list[str]:
    """One key per item, unique within the document, in the items' order. The first item with a
    given guid (else link, else title+content hash) keeps it as its key; a later item repeating
    it gets ``key#<hash of its title, link and body>``, and ``#2``, ``#3``… if even that repeats.
    Deterministic: the same document always gives the same keys."""
    keys: list[str] = []
    used: set[str] = set()
    for item in items:
        key = _base_key(item)
        if key in used:
            key = f"{key}#{_item_digest(item)}"
        stem, n = key, 1
        while key in used:
            n += 1
            key = f"{stem}#{n}"
        used.add(key)
        keys.append(key)
    return keys


# --- fingerprints ---------------------------------------------------------------------------------

_NOT_ALNUM = re.compile(r"[\W_]+")


def normalize_text(markup: str | None) -> str:
    """Letters and digits only: the text every stage reads (``content.text.html_text``: tags,
    scripts and comments removed, entities decoded), NFKC (full-width forms become ASCII),
    Traditional Chinese folded to Simplified (``fold_script``), case folded, punctuation and
    whitespace dropped."""
    text = fold_script(unicodedata.normalize("NFKC", html_text(markup))).casefold()
    return _NOT_ALNUM.sub("", text)


_HAN = re.compile("[\u3400-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")
_t2s: Callable[[str], str] | None = None


def fold_script(text: str) -> str:
    """Chinese text in one script: Traditional characters become Simplified (OpenCC's ``t2s``,
    character and common-phrase level; regional vocabulary such as 軟體/软件 stays apart), so a
    Hong Kong or Taiwan copy of a mainland report shingles like it. Text without Han characters
    is returned as it is (and costs one regex search).

    Why OpenCC: measured on the evaluation's Chinese articles converted to Traditional and back,
    OpenCC (C++ with a wheel for Linux), zhconv and opencc-python-reimplemented all restore every
    character, at 3 to 6, 0.1 to 0.6 and 0.08 million characters a second: OpenCC is ten times
    the speed of the next (bench/dedupe_eval.py --converters; it adds 5 MB to a process)."""
    if not _HAN.search(text):
        return text
    global _t2s
    if _t2s is None:  # loaded on first use: 5 MB of dictionaries a Latin-only worker never needs
        import opencc

        _t2s = opencc.OpenCC("t2s.json").convert
    return _t2s(text)


_CJK = re.compile(
    "[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f]"
)  # kana, CJK ideographs, Hangul syllables


def text_weight(text: str) -> int:
    """Length in Latin-letter equivalents: a CJK character (a word or half of one) weighs 3.
    Block breaks (``\\n`` in ``document_text``) weigh nothing."""
    return len(text) - text.count("\n") + (CJK_WEIGHT - 1) * len(_CJK.findall(text))


_BLOCK_BREAK = re.compile(
    r"<br\b[^>]*>|</?(?:p|div|li|ul|ol|h[1-6]|blockquote|pre|tr|table|section|article|figure"
    r"|figcaption|header|footer|aside|dd|dt)\b[^>]*>",
    re.IGNORECASE,
)


def blocks_text(markup: str | None) -> str:
    """``normalize_text`` of each block (paragraph, list item, heading; a ``<br>`` ends one too)
    of ``markup``, empty blocks left out, joined by ``\\n``: where a story's second paragraph
    starts, whatever its markup."""
    parts = (normalize_text(b) for b in _BLOCK_BREAK.split(drop_hidden(markup or "")))
    return "\n".join(p for p in parts if p)


def document_text(title: str | None, body: str | None) -> str:
    """The normalized text an entry is fingerprinted by, its blocks joined by ``\\n``: the body
    alone when it weighs at least ``BODY_ALONE`` (republishers rewrite headlines), else the title
    as a first block before the body (a teaser or a title-only entry is too little to go on
    without its title)."""
    text = blocks_text(body)
    if text_weight(text) >= BODY_ALONE:
        return text
    head = normalize_text(title)
    return f"{head}\n{text}" if head and text else head or text


def windows(text: str) -> tuple[str, str]:
    """The two stretches of ``text`` (``document_text``) that are fingerprinted, block breaks
    removed: the lede (from the start) and the body (from the second block on; the lede again
    when there is one block). Each is cut to ``WINDOW`` by ``shingles``."""
    _, _, rest = text.partition("\n")
    lede = text.replace("\n", "")
    return lede, (rest.replace("\n", "") if rest else lede)


def shingles(text: str) -> set[str]:
    """Distinct shingles of the leading ``WINDOW`` of ``text`` (without block breaks): every
    substring of weight ``SHINGLE`` (15 letters or digits, 5 CJK characters, or a mix)."""
    head = text.replace("\n", "")[:WINDOW]
    if not _CJK.search(head):  # the common case, and a fast one
        return {head[i : i + SHINGLE] for i in range(max(len(head) - SHINGLE, 0) + 1)} - {""}
    weights: list[int] = []
    total = 0
    for ch in head:
        if total >= WINDOW:
            break
        weights.append(CJK_WEIGHT if _CJK.match(ch) else 1)
        total += weights[-1]
    out: set[str] = set()
    end = acc = 0
    for start in range(len(weights)):
        while end < len(weights) and acc < SHINGLE:
            acc += weights[end]
            end += 1
        if acc < SHINGLE and start > 0:
            break  # the tail is inside the previous shingle
        out.add(head[start:end])
        acc -= weights[start]
    return out


Bins = list[tuple[int, int]]


def _bins(text: str) -> Bins | None:
    """One-permutation MinHash of one window: the smallest shingle hash in each of ``HALF``
    bins, an empty bin borrowing from the next full one (value, distance), so short texts fill
    every bin."""
    copy, from_bytes = _BLAKE8.copy, int.from_bytes
    hashes = []
    for shingle in shingles(text):
        h = copy()  # cheaper than a new blake2b(..., digest_size=8) per shingle
        h.update(shingle.encode())
        hashes.append(from_bytes(h.digest(), "big"))
    if not hashes:
        return None
    hashes.sort(reverse=True)  # within a bin (the low 6 bits) the order of h is that of h >> 6,
    found = {h & (HALF - 1): h >> _BIN_BITS for h in hashes}  # so the last one written is the minimum
    mins = [found.get(slot) for slot in range(HALF)]
    return [_fill(mins, i) for i in range(HALF)]


def _both(text: str) -> tuple[Bins, Bins] | None:
    lede, body = windows(text)
    lede_bins = _bins(lede)
    if lede_bins is None:
        return None
    return lede_bins, (lede_bins if body == lede else _bins(body) or lede_bins)


def _fill(mins: list[int | None], slot: int) -> tuple[int, int]:
    for distance in range(HALF):
        value = mins[(slot + distance) % HALF]
        if value is not None:
            return value, distance
    raise AssertionError("unreachable: at least one bin is full")


def _half_of(bins: Sequence[tuple[int, int]]) -> int:
    value = 0
    for slot, (minimum, distance) in enumerate(bins):
        value |= ((minimum >> (distance % 58)) & 1) << slot  # a borrowed bin gives another bit
    return value


def _fingerprint_of(both: tuple[Bins, Bins] | None) -> int:
    if both is None:
        return 0
    return _half_of(both[0]) | _half_of(both[1]) << HALF


def _band_keys_of(both: tuple[Bins, Bins] | None) -> tuple[int, ...]:
    """The bands of both windows, numbered alike: a lede that is another copy's body (a byline
    or an editor's note added before it) shares its keys too."""
    if both is None:
        return ()
    keys = [_band_key(b, bins[b * ROWS : (b + 1) * ROWS]) for bins in both for b in range(BANDS)]
    return tuple(dict.fromkeys(keys))


def fingerprint(text: str) -> int:
    """128 bits of ``text`` (the output of ``document_text``): a 64-bit one-permutation b-bit
    MinHash of its lede (low half) and one of its body from the second block on (high half),
    each over the shingles of the leading ``WINDOW``. Two windows' halves agree in a share of
    bits whose expected value is (1 + J) / 2, J the Jaccard similarity of their shingle sets.
    0 for an empty text. Unsigned; the store keeps each half in a signed 64-bit column
    (store.schema.fingerprint_columns)."""
    return _fingerprint_of(_both(text))


def _agree(a: int, b: int) -> float:
    return 1.0 - ((a ^ b) & _HALF_MASK).bit_count() / HALF


def window_scores(a: int, b: int) -> dict[str, float]:
    """Share of equal bits of each pair of windows of two fingerprints: lede/lede, body/body,
    and lede/body both ways (one copy has an extra first block)."""
    la, ba, lb, bb = a & _HALF_MASK, (a >> HALF) & _HALF_MASK, b & _HALF_MASK, (b >> HALF) & _HALF_MASK
    return {"lede": _agree(la, lb), "body": _agree(ba, bb), "lede-body": _agree(la, bb),
            "body-lede": _agree(ba, lb)}


def similarity(a: int, b: int) -> float:
    """How alike two fingerprints are, 0.0 to 1.0 (signed or unsigned inputs): the best of
    ``window_scores``. About (1 + J) / 2 of the best-matching windows: the default threshold
    0.8 asks for a Jaccard similarity of about 0.6 there."""
    s = window_scores(a, b)
    both = s["lede"] + max(s["body"], s["lede-body"], s["body-lede"])
    return max(both / 2, max(s.values()) - ONE_WINDOW_MARGIN)


def signature(text: str) -> tuple[int | None, tuple[int, ...], int]:
    """Fingerprint (None for an empty text), band keys and weight of ``text`` in one pass (the
    MinHash bins are computed once for both)."""
    both = _both(text)
    return (_fingerprint_of(both) if both else None), _band_keys_of(both), text_weight(text)


def band_keys(text: str) -> tuple[int, ...]:
    """Index keys for the near-duplicate lookup: ``BANDS`` signed 64-bit integers per window
    (each band's ``ROWS`` full bin minima hashed with the band number, so one indexed column
    holds them all; the same band of both windows shares a key when they are one text).
    Windows whose shingle sets have a Jaccard similarity of 0.7 share a key with probability
    0.97, unrelated texts (Jaccard 0.05) one in 800. Empty for an empty text."""
    return _band_keys_of(_both(text))


def _band_key(band: int, rows: Sequence[tuple[int, int]]) -> int:
    text = f"{band}|" + "|".join(f"{v}.{d}" for v, d in rows)
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


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


# --- identity of parsed items ---------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """What dedupe computes for one parsed item (the pipeline stores all of it with the entry)."""

    key: str
    canonical_url: str | None
    content_hash: str
    fingerprint: int | None  # None when the item has no text at all
    text_length: int  # text_weight of document_text; short texts never near-match
    band_keys: tuple[int, ...]


def identify(items: Sequence[Item], tracking_params: Sequence[str]) -> list[Identity]:
    """Keys, canonical URLs, content hashes and fingerprints of one document's items, in order."""
    return [_identity(item, key, tracking_params) for item, key in zip(items, entry_keys(items))]


def _identity(item: Item, key: str, tracking_params: Sequence[str]) -> Identity:
    body = item.content or item.summary
    text = document_text(item.title, body)
    bins = _both(text)
    link = item.link.strip() if item.link and item.link.strip() else None
    return Identity(
        key=key,
        canonical_url=canonical_url(link, tracking_params) if link else None,
        content_hash=content_hash(item.title, body, link, tracking_params),
        fingerprint=_fingerprint_of(bins) if bins else None,
        text_length=text_weight(text),
        band_keys=_band_keys_of(bins),
    )


# --- duplicates across sources --------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One entry as the duplicate rules see it."""

    entry_id: int | None  # None for an entry not stored yet
    source_id: str
    canonical_url: str | None
    content_hash: str
    fingerprint: int | None
    text_length: int
    duplicate_of: int | None = None  # the primary of the cluster this entry already belongs to

    @classmethod
    def of(cls, identity: Identity, source_id: str, entry_id: int | None = None) -> Candidate:
        return cls(
            entry_id,
            source_id,
            identity.canonical_url,
            identity.content_hash,
            identity.fingerprint,
            identity.text_length,
        )


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


def site_of(url: str | None) -> str | None:
    """The host of an http(s) URL without a leading ``www.``; None for anything else."""
    host = urlsplit(url).hostname if url else None
    return host.removeprefix("www.") if host else None


def url_identity(url: str | None) -> str | None:
    """A canonical URL without its scheme: ``http`` and ``https`` of one host and path are one
    URL for dedupe (a site that moved to https); None for a URL too generic to identify a story."""
    if not is_specific_url(url):
        return None
    assert url is not None
    return url.split(":", 1)[1]


def same_url(a: str | None, b: str | None) -> bool:
    """True when two canonical URLs name one story (scheme aside; never a bare home page)."""
    key = url_identity(a)
    return key is not None and key == url_identity(b)


def _identical(a: Candidate, b: Candidate) -> bool:
    """The same title and text, at any length: the same content hash (with a body), or the
    same normalized text (same fingerprint and weight; markup and entity spellings aside)."""
    if a.content_hash == b.content_hash and a.text_length > 0 and a.fingerprint is not None:
        return True
    return a.fingerprint is not None and a.fingerprint == b.fingerprint and (
        a.text_length == b.text_length > 0
    )


def compare(candidate: Candidate, other: Candidate, settings: DedupeSettings) -> Match | None:
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
    candidate: Candidate, existing: Iterable[Candidate], settings: DedupeSettings
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


def stored_signature(title: str | None, body: str | None) -> tuple[int | None, tuple[int, ...], int]:
    """``signature`` of a stored entry's title and cleaned content, as the pipeline computed it:
    what a recomputation of stored fingerprints writes when their meaning changed."""
    return signature(document_text(title, body))


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
    candidate: Candidate, others: Iterable[Candidate], settings: DedupeSettings, n: int = 5
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


def _needed(a: Candidate, b: Candidate, settings: DedupeSettings) -> float | None:
    needed = required_score(a.text_length, b.text_length, settings)
    same_site = site_of(a.canonical_url)
    if needed is not None and same_site is not None and same_site == site_of(b.canonical_url):
        needed = max(needed, _strict(settings))
    return needed


def _closest(a: Candidate, b: Candidate, score: float, needed: float | None) -> str:
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
    olds = [(o.key, fp) for o in orphans[:REKEY_SCAN]
            if (fp := getattr(o, "fingerprint", None)) is not None]
    out: dict[str, str] = {}
    if not olds:
        return out
    for item in fresh:
        fp = fingerprint(item.key)
        if fp is None:
            continue
        scored = sorted(((similarity(fp, old_fp), key) for key, old_fp in olds), reverse=True)
        if scored and scored[0][0] >= REKEY_SCORE and (
            len(scored) == 1 or scored[1][0] <= scored[0][0] - REKEY_MARGIN
        ) and scored[0][1] not in out.values():
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
