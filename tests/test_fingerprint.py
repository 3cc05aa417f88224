"""Near-duplicate fingerprints (dedupe/fingerprint.py): normalized text, MinHash windows,
similarity and band keys."""

from __future__ import annotations

from aggregator.dedupe import fingerprint as fingerprints
from aggregator.store.schema import fingerprint_columns, fingerprint_of
from bench import dedupe_reference as reference

from .test_dedupe import OTHER_EN, OTHER_ZH, STORY_EN, STORY_ZH, fp


def test_normalize_text_keeps_only_letters_and_digits() -> None:
    """Tags, scripts, comments, entities, punctuation and spaces go; case folds; width unifies."""
    html = "<p>Hello,&nbsp;<b>World</b>!</p><script>var x=1;</script><!-- c --> ＡＢＣ１２ 中文，测试。"
    assert fingerprints.normalize_text(html) == "helloworldabc12中文测试"


def test_document_text_drops_the_title_of_a_long_body() -> None:
    """A long body is fingerprinted alone (headlines get rewritten); a teaser keeps its title."""
    assert fingerprints.document_text("Headline", STORY_EN) == fingerprints.normalize_text(STORY_EN)
    assert fingerprints.document_text("Headline", "<p>Short teaser.</p>") == "headline\nshortteaser"


def test_fingerprint_is_stable_and_stored_as_two_signed_64_bit_values() -> None:
    """Stored fingerprints stay valid: the value for a text never changes, each window has 64
    bits of its own, and the two columns (each fits a BIGINT) give the fingerprint back."""
    value = reference.fingerprint("thequickbrownfoxjumpsoverthelazydog")
    assert value == reference.fingerprint("thequickbrownfoxjumpsoverthelazydog")
    assert 0 <= value < 2**128 and value >> 64 != 0
    assert value == 162116018906489364556255184247571093149
    columns = fingerprint_columns(value)
    assert all(-(2**63) <= v < 2**63 for v in columns.values() if v is not None)
    assert fingerprint_of(columns["fingerprint"], columns["body_fingerprint"]) == value
    assert fingerprint_of(*fingerprint_columns(None).values()) is None
    assert reference.fingerprint("") == 0


def test_similarity_counts_equal_bits() -> None:
    """Similarity is the share of equal bits of both 64-bit windows (signed or unsigned)."""
    assert fingerprints.similarity(5, 5) == 1.0
    assert fingerprints.similarity(-1, 2**128 - 1) == 1.0
    assert fingerprints.similarity(0, -1) == 0.0
    assert fingerprints.similarity(0, 0b1111) == 1 - 4 / 128


def test_chinese_copy_with_byline_and_trimmed_ending_matches() -> None:
    """A Chinese wire copy with a byline and a cut ending scores above the threshold."""
    copy = "（记者 张伟）" + STORY_ZH[: int(len(STORY_ZH) * 0.7)] + "责任编辑：王五"
    assert fingerprints.similarity(fp(STORY_ZH), fp(copy)) >= 0.8


def test_chinese_story_on_the_same_topic_does_not_match() -> None:
    """Two different earthquake reports in Chinese stay well below the threshold."""
    assert fingerprints.similarity(fp(STORY_ZH), fp(OTHER_ZH)) < 0.75


def test_english_copy_with_new_byline_and_footer_matches_but_other_story_does_not() -> None:
    """A republished English copy matches its original; another quake story does not."""
    copy = "By Anna Weber, Global Press. " + STORY_EN + " Copyright 2024. All rights reserved."
    assert fingerprints.similarity(fp(STORY_EN), fp(copy)) >= 0.8
    assert fingerprints.similarity(fp(STORY_EN), fp(OTHER_EN)) < 0.75


def test_text_past_the_window_does_not_move_the_fingerprint() -> None:
    """Only the lede is fingerprinted: trimming or extending the end changes nothing."""
    text = fingerprints.normalize_text(STORY_EN + OTHER_EN)
    assert fingerprints.text_weight(text) > fingerprints.WINDOW
    assert reference.fingerprint(text) == reference.fingerprint(
        text[: fingerprints.WINDOW] + "anythingelse"
    )


def test_text_weight_counts_cjk_characters_triple() -> None:
    """A CJK character weighs three letters, so Chinese and English ledes are comparable."""
    assert fingerprints.text_weight("abc中文") == 3 + 6


def test_shingles_cover_mixed_script_text() -> None:
    """Shingles span 15 letters or 5 CJK characters, and short texts give one shingle."""
    assert fingerprints.shingles("abcdefghijklmnopq") == {
        "abcdefghijklmno",
        "bcdefghijklmnop",
        "cdefghijklmnopq",
    }
    assert fingerprints.shingles("一二三四五六") == {"一二三四五", "二三四五六"}
    assert fingerprints.shingles("short") == {"short"}
    assert fingerprints.shingles("") == set()


def test_similar_texts_share_a_band_key_and_the_index_finds_them() -> None:
    """The band index returns a near-duplicate and not an unrelated story."""
    index = reference.BandIndex()
    index.add(1, reference.band_keys(fingerprints.normalize_text(STORY_EN)))
    index.add(2, reference.band_keys(fingerprints.normalize_text(OTHER_EN)))
    copy = fingerprints.normalize_text("By Ruth Adler. " + STORY_EN)
    assert index.candidates(reference.band_keys(copy)) == {1}
    index.discard(1)
    assert index.candidates(reference.band_keys(copy)) == set()
    assert len(index) == 1
    assert len(reference.band_keys(copy)) == fingerprints.BANDS
    assert reference.band_keys("") == ()
