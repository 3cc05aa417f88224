"""Encodings: real third-party feeds with wrong, missing and legacy charsets come out as clean UTF-8."""

from __future__ import annotations

import re

import feedparser
import pytest

from aggregator.sources.encoding import decode_feed, decode_text, utf8_content_type

from .conftest import CORPUS

FP = CORPUS / "kurtmckee+feedparser"
MF = CORPUS / "miniflux+v2"


def parse(name: str, content_type: str | None = None) -> tuple[feedparser.FeedParserDict, str]:
    """Decode a corpus file as the pipeline will, then parse it with feedparser."""
    raw = (CORPUS / name).read_bytes()
    header = content_type or simulated_header(raw)
    utf8, encoding = decode_feed(raw, header)
    parsed = feedparser.parse(utf8, response_headers={"content-type": utf8_content_type(header)})
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
    parsed = feedparser.parse(utf8, response_headers={"content-type": utf8_content_type(None)})
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


def test_utf8_content_type_keeps_the_media_type() -> None:
    """The header handed to feedparser keeps the media type and says charset=utf-8."""
    assert (
        utf8_content_type("application/atom+xml; charset=gbk")
        == "application/atom+xml; charset=utf-8"
    )
    assert utf8_content_type(None) == "application/xml; charset=utf-8"
