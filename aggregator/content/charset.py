"""Character encodings of fetched documents: whatever a source sent, hand the parser UTF-8.

Owns: deciding which encoding a document's bytes are in, for every document fetched (feeds,
JSON lists and details, HTML pages: ``decode_page`` adds a page's ``<meta charset>``), and
re-encoding feeds as UTF-8 with the XML declaration rewritten to match, so feedparser (told the
bytes are UTF-8) never guesses.
Does not own: parsing the document (the adapters do).

The order of evidence, strongest first:

1. A byte order mark; then the UTF-16/UTF-32 patterns of XML's appendix F.
2. Bytes that are valid UTF-8 are UTF-8, whatever the HTTP charset or the XML declaration say
   (servers and templates mislabel far more often than they mis-encode). Bytes that are nearly
   valid UTF-8 (at least two valid multi-byte sequences for every broken one) are UTF-8 with the
   broken bytes replaced; real legacy text almost never forms valid multi-byte sequences.
3. The HTTP charset, then the XML declaration, each decoded strictly with a WHATWG-style superset:
   GB2312 and GBK are read as GB18030, ISO-8859-1 and ASCII as windows-1252, EUC-KR as cp949,
   Shift_JIS as cp932. An unknown name is skipped.
4. Detection (charset-normalizer), never worse than feedparser's own fixed order (UTF-8, then
   windows-1252): windows-1252 wins among equally good guesses, and over a guess that differs from
   it only in which Latin letter a byte is (``simulaēões``, cp1257, for ``simulações``); a reading
   full of half-width katakana (Big5 or GBK read as Shift_JIS) loses to the next guess.
5. Nothing detected: windows-1252 when the bytes decode as it, else UTF-8 with replacement
   characters.
"""

from __future__ import annotations

import codecs
import re
import unicodedata

import charset_normalizer

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_SNIFFS = (
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<\x00?", "utf-16-be"),
    (b"<\x00?\x00", "utf-16-le"),
)
_ALIASES = {
    "x-gbk": "gbk",
    "gb_2312-80": "gb2312",
    "csgb2312": "gb2312",
    "x-gb18030": "gb18030",
    "windows-31j": "cp932",
    "x-sjis": "shift_jis",
    "x-euc-jp": "euc_jp",
    "x-mac-roman": "mac_roman",
}
# Labels that mean a larger encoding in practice (the WHATWG Encoding Standard does the same).
_SUPERSETS = {
    "gb2312": ("gb18030",),
    "gbk": ("gb18030",),
    "iso8859-1": ("cp1252", "iso8859-1"),
    "ascii": ("cp1252", "iso8859-1"),
    "euc_kr": ("cp949", "euc_kr"),
    "shift_jis": ("cp932", "shift_jis"),
}
_XML_DECL = re.compile(rb"""^\s*<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
_XML_DECL_BYTES = re.compile(rb"""^(\s*<\?xml[^>]*?\bencoding\s*=\s*)(["'])[^"']*\2""")
_XML_DECL_TEXT = re.compile(r"""^(\s*<\?xml[^>]*?\bencoding\s*=\s*)(["'])[^"']*\2""")
_META_CHARSET = re.compile(
    rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE
)
_CHARSET = re.compile(r"""charset\s*=\s*["']?([^"';,\s]+)""", re.IGNORECASE)
_DETECT_SAMPLE = 1024 * 1024
_SLICE = 1024 * 1024  # bytes checked as UTF-8 at a time
_JAPANESE = frozenset(
    {
        "cp932",
        "shift_jis",
        "shift_jis_2004",
        "shift_jisx0213",
        "euc_jp",
        "euc_jis_2004",
        "euc_jisx0213",
    }
)


def decode_feed(content: bytes, content_type_header: str | None) -> tuple[bytes, str]:
    """``content`` re-encoded as UTF-8 (declaration rewritten, BOM dropped), and the encoding
    it was read as (a Python codec name such as ``utf-8``, ``gb18030``, ``cp1252``)."""
    if _plain_utf8(content):  # the common case, without a text copy and a re-encoded copy
        return _declared_utf8(content), "utf-8"
    text, encoding = decode_text(content, content_type_header)
    return _rewrite_declaration(text).encode("utf-8"), encoding


def _plain_utf8(content: bytes) -> bool:
    """Valid UTF-8 without a byte order mark or a UTF-16/32 pattern: what ``decode_text`` reads
    as UTF-8 unchanged."""
    if _by_bom(content) is not None:
        return False
    if content.isascii():
        return True
    check = codecs.getincrementaldecoder("utf-8")()  # in slices: no text copy of a big body
    view = memoryview(content)
    try:
        for at in range(0, len(content), _SLICE):
            check.decode(view[at : at + _SLICE])
        check.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _declared_utf8(content: bytes) -> bytes:
    """UTF-8 ``content`` with its XML declaration saying so; ``content`` itself (no copy of a
    big body) when it does already or has none."""
    match = _XML_DECL_BYTES.match(content)
    if match is None:
        return content
    declared = match.group(0)[len(match.group(1)) + 1 : -1]
    if declared.lower() == b"utf-8":
        return content
    return match.group(1) + match.group(2) + b"utf-8" + match.group(2) + content[match.end() :]


def decode_text(content: bytes, content_type_header: str | None) -> tuple[str, str]:
    """The text of ``content`` and the encoding it was read as (see the module docstring)."""
    for decide in (_by_bom, _by_utf8):
        found = decide(content)
        if found is not None:
            return found
    declared = [header_charset(content_type_header), xml_declared_encoding(content)]
    for label in declared:
        found = _by_label(content, label)
        if found is not None:
            return found
    return _by_detection(content)


def decode_page(content: bytes, content_type_header: str | None) -> str:
    """The text of an HTML page (an html source, a detail or article page): as ``decode_text``,
    with the page's ``<meta charset>`` standing in for the HTTP charset when the header names
    none."""
    if header_charset(content_type_header) is None:
        meta = _META_CHARSET.search(content[:4096])
        if meta:
            content_type_header = f"text/html; charset={meta.group(1).decode('ascii')}"
    text, _encoding = decode_text(content, content_type_header)
    return text


def header_charset(content_type_header: str | None) -> str | None:
    match = _CHARSET.search(content_type_header or "")
    return match.group(1) if match else None


def xml_declared_encoding(content: bytes) -> str | None:
    match = _XML_DECL.match(content[:1024])
    return match.group(1).decode("ascii") if match else None


def _by_bom(content: bytes) -> tuple[str, str] | None:
    for bom, encoding in _BOMS:
        if content.startswith(bom):
            return content[len(bom) :].decode(encoding, "replace"), encoding
    for pattern, encoding in _SNIFFS:
        if content.startswith(pattern):
            return content.decode(encoding, "replace"), encoding
    return None


def _by_utf8(content: bytes) -> tuple[str, str] | None:
    text = content.decode("utf-8", "replace")
    broken = text.count("\ufffd")
    if broken == 0:
        return text, "utf-8"
    multibyte = len(text) - len(text.encode("ascii", "ignore")) - broken
    return (text, "utf-8") if multibyte >= 2 * broken else None


def _by_label(content: bytes, label: str | None) -> tuple[str, str] | None:
    for encoding in _candidates(label):
        try:
            return content.decode(encoding), encoding
        except (UnicodeDecodeError, LookupError):
            continue
    return None


def _candidates(label: str | None) -> tuple[str, ...]:
    if not label:
        return ()
    name = label.strip().lower()
    try:
        codec = codecs.lookup(_ALIASES.get(name, name)).name
    except LookupError:
        return ()
    if codec.startswith(("utf-16", "utf-32")):
        return ()  # without a BOM or the appendix F pattern the bytes are not UTF-16/32
    return _SUPERSETS.get(codec, (codec,))


def _by_detection(content: bytes) -> tuple[str, str]:
    """charset-normalizer's best guess, corrected where it is known to be worse than feedparser's
    fixed order (UTF-8, then windows-1252): see the module docstring."""
    matches = charset_normalizer.from_bytes(content[:_DETECT_SAMPLE])
    if not matches:
        return _fallback(content)
    best = min(matches, key=lambda m: m.chaos + _kana_penalty(m))
    ties = [m.encoding for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
    guess = "cp1252" if "cp1252" in ties else best.encoding
    encoding = _candidates(guess)[0] if _candidates(guess) else guess
    if encoding != "cp1252" and _only_latin_lookalikes(content, encoding):
        encoding = "cp1252"
    return content.decode(encoding, "replace"), encoding


def _fallback(content: bytes) -> tuple[str, str]:
    """Nothing detected: windows-1252 when the bytes are that (feedparser's choice), else UTF-8."""
    try:
        return content.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return content.decode("utf-8", "replace"), "utf-8"


def _kana_penalty(match: charset_normalizer.CharsetMatch) -> float:
    """A Japanese reading's share of half-width katakana (other readings are not decoded)."""
    return _halfwidth_kana_share(str(match)) if match.encoding in _JAPANESE else 0.0


def _halfwidth_kana_share(text: str) -> float:
    """The share of half-width katakana among the non-ASCII characters: Big5 and GBK bytes read as
    Shift_JIS come out as such, real Japanese text almost never uses them."""
    wide = [c for c in text if ord(c) > 0x7F]
    kana = sum(1 for c in wide if "\uff61" <= c <= "\uff9f")
    return kana / len(wide) if wide else 0.0


def _only_latin_lookalikes(content: bytes, encoding: str) -> bool:
    """True when windows-1252 reads ``content`` too and every byte the two encodings read
    differently is a Latin letter in both: detection then only guessed between look-alike Latin
    charsets (``simulaįões``, ``simulaēões``), and windows-1252, by far the most common and what
    feedparser reads, wins. Cyrillic, Greek or ``ż`` (``¿`` in windows-1252) keep the guess."""
    try:
        content.decode("cp1252")
    except UnicodeDecodeError:
        return False
    for byte in set(content) - set(range(0x80)):
        ours = bytes([byte]).decode(encoding, "replace")
        theirs = bytes([byte]).decode("cp1252")
        if ours != theirs and not (_latin_letter(ours) and _latin_letter(theirs)):
            return False
    return True


def _latin_letter(char: str) -> bool:
    return len(char) == 1 and char.isalpha() and unicodedata.name(char, "").startswith("LATIN ")


def _rewrite_declaration(text: str) -> str:
    return _XML_DECL_TEXT.sub(r"\g<1>\g<2>utf-8\g<2>", text, count=1)
