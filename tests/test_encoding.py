"""Encodings: real third-party feeds with wrong, missing and legacy charsets come out as clean UTF-8."""

from __future__ import annotations

import re

import feedparser
import pytest

from aggregator.content.charset import decode_feed, decode_text

from .conftest import CORPUS

FP = CORPUS / "kurtmckee+feedparser"
MF = CORPUS / "miniflux+v2"
UTF8 = "application/xml; charset=utf-8"  # what sources.feed hands feedparser beside decoded bytes


def parse(name: str, content_type: str | None = None) -> tuple[feedparser.FeedParserDict, str]:
    """Decode a corpus file as the pipeline will, then parse it with feedparser."""
    raw = (CORPUS / name).read_bytes()
    header = content_type or simulated_header(raw)
    utf8, encoding = decode_feed(raw, header)
    parsed = feedparser.parse(utf8, response_headers={"content-type": UTF8})
    return parsed, encoding


def simulated_header(raw: bytes) -> str | None:
    """feedparser's fixtures simulate HTTP headers in a leading comment ('Header: ...')."""
    match = re.search(rb"Header:\s*Content-type:\s*([^\r\n]+)", raw, re.IGNORECASE)
    return match.group(1).decode("ascii").strip() if match else None


def test_gb2312_without_any_declaration_is_detected() -> None:
    """GB2312 bytes with no charset anywhere are detected and read as GB18030."""
    parsed, encoding = parse("kurtmckee+feedparser/illformed/chardet/gb2312.xml")
    assert encoding == "gb18030"
    assert parsed.entries[0].title == "不归移民漫画系列：专业工作"


def test_gb2312_declaration_is_read_as_gb18030() -> None:
    """A GB2312 declaration decodes as GB18030, which also covers characters outside GB2312."""
    text = "<?xml version='1.0' encoding='gb2312'?><rss><channel><title>镕基 𠀀</title></channel></rss>"
    raw = text.encode("gb18030")  # 镕 is GBK-only, 𠀀 GB18030-only: a strict GB2312 read fails
    utf8, encoding = decode_feed(raw, "text/xml; charset=GB2312")
    assert encoding == "gb18030"
    parsed = feedparser.parse(utf8, response_headers={"content-type": UTF8})
    assert parsed.feed.title == "镕基 𠀀" and not parsed.bozo


def test_http_charset_beats_xml_declaration_when_bytes_are_not_utf8() -> None:
    """When the bytes are not UTF-8, the HTTP charset wins over the XML declaration."""
    raw = "<?xml version='1.0' encoding='utf-8'?><rss><channel><title>新闻</title></channel></rss>"
    text, encoding = decode_text(raw.encode("gbk"), "application/rss+xml; charset='gbk'")
    assert encoding == "gb18030" and "<title>新闻</title>" in text


def test_http_charset_gb2312_over_ascii_bytes_parses() -> None:
    """feedparser's 'charset overrides encoding' fixture parses cleanly (ASCII bytes)."""
    parsed, _ = parse(
        "kurtmckee+feedparser/encoding/http_application_atom_xml_gb2312_charset_overrides_encoding.xml"
    )
    assert not parsed.bozo and parsed.version == "atom10"


@pytest.mark.parametrize(
    "name",
    ["miniflux+v2/utf8-incorrect-prolog.xml", "miniflux+v2/invalid-prolog.xml"],
)
def test_utf8_bytes_win_over_a_wrong_or_invalid_declaration(name: str) -> None:
    """UTF-8 bytes under an ISO-8859-1 or nonsense declaration are read as UTF-8."""
    parsed, encoding = parse(name, "text/xml; charset=ISO-8859-1")
    assert encoding == "utf-8"
    assert parsed.feed.title == "테스트 피드" and parsed.entries[0].title == "Café"


def test_utf8_bytes_win_over_windows_1252_declaration() -> None:
    """A UTF-8 euro sign under a windows-1252 declaration is not turned into mojibake."""
    parsed, encoding = parse("miniflux+v2/windows-1252-incorrect-prolog.xml")
    assert encoding == "utf-8" and parsed.feed.title == "Euro €"


def test_latin1_bytes_declared_utf8_fall_back() -> None:
    """Latin-1 bytes declared as UTF-8 are invalid UTF-8 and fall back to windows-1252."""
    raw = (MF / "iso88591_utf8_mismatch.xml").read_bytes()
    text, encoding = decode_text(raw, None)
    assert encoding == "cp1252" and "<to>Anaïs</to>" in text and "<from>Jürgen</from>" in text


@pytest.mark.parametrize(
    ("name", "encoding", "feed_title", "entry_title"),
    [
        ("miniflux+v2/koi8r.xml", "koi8-r", "Пример RSS ленты", "Первая новость"),
        ("miniflux+v2/encoding_WINDOWS-1251.xml", "cp1251", "iBash.Org.Ru", "Цитата #17703"),
        ("kurtmckee+feedparser/encoding/euc-kr.xml", "cp949", "년", None),
    ],
)
def test_declared_legacy_encodings_are_honoured(
    name: str, encoding: str, feed_title: str, entry_title: str | None
) -> None:
    """KOI8-R, windows-1251 and EUC-KR declarations decode to the right letters."""
    parsed, used = parse(name)
    assert used == encoding and parsed.feed.title == feed_title and not parsed.bozo
    if entry_title:
        assert parsed.entries[0].title == entry_title


def test_iso_8859_1_declaration_reads_as_windows_1252() -> None:
    """An ISO-8859-1 label decodes as windows-1252 (its superset), accents intact."""
    parsed, encoding = parse("feed-rs+feed-rs/rss_2.0_encoding_1.xml")
    assert encoding == "cp1252" and parsed.feed.title == "RSS Feed do Site Inovação Tecnológica"


def test_undeclared_latin1_is_detected_as_windows_1252() -> None:
    """A French feed with no declaration at all and Latin-1 bytes keeps its accents."""
    parsed, encoding = parse("miniflux+v2/no_encoding_ISO-8859-1.xml")
    assert encoding == "cp1252"
    assert "é" in parsed.entries[0].title or "é" in parsed.entries[0].summary
    assert "ŕ" not in parsed.entries[0].summary  # the windows-1250 misreading of à


@pytest.mark.parametrize(
    ("name", "encoding"),
    [
        ("kurtmckee+feedparser/encoding/utf-16le-bom.xml", "utf-16-le"),
        ("kurtmckee+feedparser/encoding/utf-32be-autodetect.xml", "utf-32-be"),
    ],
)
def test_boms_and_utf16_32_patterns_are_honoured(name: str, encoding: str) -> None:
    """A UTF-16 BOM and a BOM-less UTF-32 document are recognised and parse as RSS."""
    parsed, used = parse(name)
    assert used == encoding and parsed.version.startswith("rss") and not parsed.bozo


def test_utf8_bom_is_dropped_and_declaration_rewritten() -> None:
    """The output has no BOM and its XML declaration says utf-8."""
    raw = b"\xef\xbb\xbf<?xml version='1.0' encoding='windows-1252'?><rss/>"
    utf8, encoding = decode_feed(raw, None)
    assert encoding == "utf-8" and utf8 == b"<?xml version='1.0' encoding='utf-8'?><rss/>"


def test_mostly_utf8_with_a_broken_byte_stays_utf8() -> None:
    """A UTF-8 document with one corrupt byte keeps its UTF-8 text (one replacement mark)."""
    raw = "<rss><title>“Zoë” — 中文新闻</title>".encode() + b"\xff" + b"</rss>"
    text, encoding = decode_text(raw, "text/xml; charset=windows-1252")
    assert encoding == "utf-8" and "“Zoë” — 中文新闻" in text and text.count("\ufffd") == 1


# --- never worse than feedparser ------------------------------------------------------------------

# Corpus files where feedparser's own reading is wrong and ours is right: what each reading holds.
BETTER_THAN_FEEDPARSER = {
    "kurtmckee+feedparser/illformed/chardet/gb2312.xml": ("不归移民漫画系列", "²»¹éÒÆÃñ"),
    "kurtmckee+feedparser/illformed/chardet/big5.xml": ("我希望", "§Ú§Æ±æ"),
    "miniflux+v2/windows-1252-incorrect-prolog.xml": ("Euro €", "Euro â‚¬"),
    "kurtmckee+feedparser/encoding/bozo_linenoise.xml": ("’", "â€™"),
}
_DECL = re.compile(rb"^\s*<\?xml\s[^>]*\?>")


def _feedparser_reading(raw: bytes, header: str | None) -> str:
    """The text feedparser's charset step reads from ``raw``, XML declarations removed."""
    headers = {"content-type": header} if header else {}
    data = feedparser.encodings.convert_to_utf8(headers, raw, feedparser.FeedParserDict())
    return _without_declaration(data.decode("utf-8") if isinstance(data, bytes) else data)


def _without_declaration(text: str) -> str:
    return re.sub(r"^(\s*<\?xml\s[^>]*\?>)+", "", text.lstrip("\ufeff"), count=1).strip()


def _texts(raw: bytes, header: str | None) -> list[str]:
    """What feedparser finally reads (it repairs some misreadings later): feed title and
    subtitle, entry titles and summaries."""
    headers = {"content-type": header} if header else {}
    parsed = feedparser.parse(
        raw, response_headers=headers, sanitize_html=False, resolve_relative_uris=False
    )
    feed = [parsed.feed.get("title", ""), parsed.feed.get("subtitle", "")]
    return feed + [f"{e.get('title', '')}\n{e.get('summary', '')}" for e in parsed.entries]


def _corpus_xml() -> list[str]:
    return (
        sorted(str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*.xml")) if CORPUS.exists() else []
    )


@pytest.mark.parametrize("name", _corpus_xml())
def test_no_corpus_file_reads_worse_than_feedparser_alone(name: str) -> None:
    """Every corpus feed reads exactly as feedparser alone reads it, or better (the table above)."""
    raw = (CORPUS / name).read_bytes()
    header = simulated_header(raw)
    text, _ = decode_text(raw, header)
    if name not in BETTER_THAN_FEEDPARSER and _without_declaration(text) == _feedparser_reading(
        raw, header
    ):
        return  # the very same characters
    ours = "\n".join(_texts(decode_feed(raw, header)[0], UTF8))
    theirs = "\n".join(_texts(raw, header))
    if name not in BETTER_THAN_FEEDPARSER:
        assert ours == theirs
        return
    right, wrong = BETTER_THAN_FEEDPARSER[name]
    assert right in ours and wrong not in ours
    assert wrong in theirs  # feedparser alone still misreads it


def test_undeclared_latin1_portuguese_is_not_read_as_another_latin_charset() -> None:
    """Latin-1 Portuguese with no declaration anywhere reads as windows-1252 (not cp1257/latin-6)."""
    doc = (
        "<rss><channel><title>Ação</title><item><title>Programação e simulações numéricas em C"
        "</title><description>Uma introdução às simulações; edição 3, março</description></item>"
        "</channel></rss>"
    )
    text, encoding = decode_text(doc.encode("latin-1"), None)
    assert encoding == "cp1252" and text == doc
    assert (
        feedparser.parse(doc.encode("latin-1"))
        .entries[0]
        .title.endswith("simulações numéricas em C")
    )


@pytest.mark.parametrize(
    "name",
    [
        "feed-rs+feed-rs/rss_0.91_encoding_2.xml",
        "feed-rs+feed-rs/rss_1.0_iso8859.xml",
        "feed-rs+feed-rs/rss_2.0_encoding_1.xml",
        "miniflux+v2/encoding_ISO-8859-1.xml",
    ],
)
def test_latin1_corpus_feeds_without_their_declaration_read_the_same(name: str) -> None:
    """A real ISO-8859-1 feed whose declaration is cut off still reads as windows-1252."""
    raw = (CORPUS / name).read_bytes()
    declared, _ = decode_text(raw, None)
    text, encoding = decode_text(_DECL.sub(b"", raw, count=1), None)
    assert encoding == "cp1252" and text.strip() == _without_declaration(declared)


def test_undeclared_cyrillic_and_central_european_are_still_detected() -> None:
    """Preferring windows-1252 among Latin look-alikes leaves windows-1251 and -1250 text alone."""
    russian = "<rss><channel><title>Новости</title><item><title>Привет, мир: сегодня солнечно</title></item></channel></rss>"
    text, encoding = decode_text(russian.encode("cp1251"), None)
    assert encoding == "cp1251" and text == russian
    polish = "<rss><channel><title>Wiadomości</title><item><title>Zażółć gęślą jaźń</title></item></channel></rss>"
    text, encoding = decode_text(polish.encode("cp1250"), None)
    assert encoding == "cp1250" and text == polish


def test_undeclared_big5_is_detected() -> None:
    """Big5 bytes with no charset anywhere read as Big5 (feedparser alone reads windows-1252)."""
    parsed, encoding = parse("kurtmckee+feedparser/illformed/chardet/big5.xml")
    assert encoding == "big5" and parsed.feed.title.startswith("我希望")


def test_undeclared_short_cjk_news_is_detected() -> None:
    """Short GBK, Big5, Shift_JIS and EUC-KR headlines with no declaration keep their characters."""
    cases = [
        (
            "gbk",
            "<rss><channel><title>新闻</title><item><title>国务院召开常务会议，部署进一步稳定经济的措施</title></item></channel></rss>",
        ),
        (
            "big5",
            "<rss><channel><title>新聞</title><item><title>行政院召開會議，討論經濟發展與民生問題</title></item></channel></rss>",
        ),
        (
            "shift_jis",
            "<rss><channel><title>ニュース</title><item><title>東京で記録的な大雪、交通機関に大きな影響</title></item></channel></rss>",
        ),
        (
            "euc_kr",
            "<rss><channel><title>뉴스</title><item><title>서울에 기록적인 폭설, 교통에 큰 영향을 미쳐</title></item></channel></rss>",
        ),
    ]
    for codec, doc in cases:
        text, _ = decode_text(doc.encode(codec), None)
        assert text == doc, codec
