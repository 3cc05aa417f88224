"""Near-duplicate fingerprints: the normalized text of an entry and its MinHash signature.

Owns ``document_text``/``normalize_text`` (tags, case, punctuation and spaces removed, full-width
forms and Traditional Chinese folded, so Chinese text without spaces works), ``signature`` (two
64-bit MinHashes, one bit from each of 64 one-permutation bins, over character shingles: one of
the lede, the leading ``WINDOW``, one of the body from the second block on, and the
locality-sensitive band keys of both) and ``similarity`` of two fingerprints. A trimmed ending
or an appended footer moves neither window much; a rewritten lead leaves the body's; an added
byline block makes one copy's body the other's lede. The band keys let a near-duplicate lookup
compare a small share of the stored entries (0.3% on the evaluation set, mostly same-topic
stories) instead of all of them.

Does not own: the rule that decides a duplicate (dedupe.py), or storing fingerprints (store/).

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
import re
import unicodedata
from collections.abc import Callable, Sequence

from ..content.text import drop_hidden, html_text

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
    found = {
        h & (HALF - 1): h >> _BIN_BITS for h in hashes
    }  # so the last one written is the minimum
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


def _agree(a: int, b: int) -> float:
    return 1.0 - ((a ^ b) & _HALF_MASK).bit_count() / HALF


def window_scores(a: int, b: int) -> dict[str, float]:
    """Share of equal bits of each pair of windows of two fingerprints: lede/lede, body/body,
    and lede/body both ways (one copy has an extra first block)."""
    la, ba, lb, bb = (
        a & _HALF_MASK,
        (a >> HALF) & _HALF_MASK,
        b & _HALF_MASK,
        (b >> HALF) & _HALF_MASK,
    )
    return {
        "lede": _agree(la, lb),
        "body": _agree(ba, bb),
        "lede-body": _agree(la, bb),
        "body-lede": _agree(ba, lb),
    }


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


def _band_key(band: int, rows: Sequence[tuple[int, int]]) -> int:
    text = f"{band}|" + "|".join(f"{v}.{d}" for v, d in rows)
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def stored_signature(
    title: str | None, body: str | None
) -> tuple[int | None, tuple[int, ...], int]:
    """``signature`` of a stored entry's title and cleaned content, as the pipeline computed it:
    what a recomputation of stored fingerprints writes when their meaning changed."""
    return signature(document_text(title, body))
