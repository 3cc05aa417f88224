"""Categories as data: aliases, ordered rules, include/exclude filters and their explanations."""

from __future__ import annotations

import pytest

from aggregator.categorize import (
    AliasTable,
    Categorizer,
    Fields,
    Filter,
    Rule,
    categorize,
)
from aggregator.config import loading as config
from aggregator.errors import ConfigError

ALIASES = AliasTable({"科技": ["Tech", "technology"], "World": ["国际"]})
PATH = ("新媒体", "趣头条", "分类")


def decide(fields: Fields, rules: list[Rule], feed: tuple[str, ...] = (), **kw: object):  # type: ignore[no-untyped-def]
    return categorize(fields, PATH, feed, rules, ALIASES, **kw)  # type: ignore[arg-type]


# --- aliases ------------------------------------------------------------------------------------


def test_alias_variants_map_to_one_name_whatever_their_case() -> None:
    """`Tech`, `TECHNOLOGY`, ` technology ` and `科技` are all the canonical 科技."""
    for name in ("Tech", "TECHNOLOGY", " technology ", "科技", "tech"):
        assert ALIASES.canonical(name) == "科技"


def test_unknown_categories_pass_through_stripped() -> None:
    """A name no alias knows is kept as the feed spelled it, without surrounding spaces."""
    assert ALIASES.canonical("  Sports ") == "Sports"


def test_category_paths_have_one_spelling() -> None:
    """A rule's `科技 / 中文` is the path 科技/中文, spelled as path tags are; no other name changes."""
    rule = Rule("title", keywords=("x",), add=(" 科技 / 中文 ", "科技/英文", "AI"))
    assert decide(Fields(title="x"), [rule]).categories == ("科技/中文", "科技/英文", "AI")
    assert ALIASES.canonical("a /b/ c") == "a/b/c" and ALIASES.canonical("TCP/IP") == "TCP/IP"


def test_canonicalize_keeps_order_and_each_name_once() -> None:
    """Several variants of one category collapse into one, in first-seen order; blanks go."""
    assert ALIASES.canonicalize(["国际", "Tech", "World", " ", "technology", "Sports"]) == (
        "World",
        "科技",
        "Sports",
    )


def test_a_variant_of_two_categories_is_refused() -> None:
    """An alias table where one variant points at two names is a configuration error."""
    with pytest.raises(ValueError, match="variant"):
        AliasTable({"A": ["x"], "B": ["X"]})


# --- the decision -------------------------------------------------------------------------------


def test_feed_categories_are_kept_through_aliases_with_the_source_path() -> None:
    """The entry keeps its feed categories under canonical names and the source's path."""
    decision = decide(Fields(title="x"), [], ("technology", "国际"))
    assert decision.categories == ("科技", "World")
    assert decision.category_path == PATH
    assert not decision.dropped
    assert "科技 (as 'technology')" in str(decision.explanation[0])


def test_keyword_rule_adds_categories_and_says_why() -> None:
    """A title keyword adds its categories; the explanation names the rule and the keyword."""
    rule = Rule("title", keywords=("GPT", "人工智能"), add=("AI",), name="ai")
    decision = decide(Fields(title="发布新一代人工智能模型"), [rule])
    assert decision.categories == ("AI",)
    assert str(decision.explanation[-1]) == "rule 'ai': title has keyword '人工智能': added AI"


def test_latin_keywords_match_whole_words_case_insensitively() -> None:
    """Keyword AI matches "ai" and "AI!" but not "said" or "Thai"; punctuation is literal."""
    rule = Rule("title", keywords=("AI", "C++"), add=("Dev",))
    assert decide(Fields(title="Why ai matters!"), [rule]).categories == ("Dev",)
    assert decide(Fields(title="Learning C++ in 2024"), [rule]).categories == ("Dev",)
    assert decide(Fields(title="He said no"), [rule]).categories == ()
    assert decide(Fields(title="Thai curry"), [rule]).categories == ()


def test_rules_run_in_order_and_see_earlier_additions() -> None:
    """A later rule matching on categories sees what an earlier rule added."""
    rules = [
        Rule("title", keywords=("GPT",), add=("AI",)),
        Rule("categories", keywords=("AI",), add=("technology",)),
    ]
    assert decide(Fields(title="GPT news"), rules).categories == ("AI", "科技")
    assert decide(Fields(title="GPT news"), rules[::-1]).categories == ("AI",)


def test_content_rules_match_the_text_not_the_markup() -> None:
    """Keywords in tags or attributes of the content do not count; its text does."""
    rule = Rule("content", keywords=("href", "football"), add=("Sport",))
    assert decide(Fields(content='<a href="/x">link</a>'), [rule]).categories == ()
    assert decide(Fields(content="<p>Football &amp; more</p>"), [rule]).categories == ("Sport",)


def test_author_and_link_fields_can_be_matched() -> None:
    """Rules can look at the author and at the link."""
    rules = [
        Rule("author", keywords=("新华社",), add=("通讯社",)),
        Rule("link", regex=r"^https://video\.", add=("Video",)),
    ]
    fields = Fields(author="新华社记者", link="https://video.example/1")
    assert decide(fields, rules).categories == ("通讯社", "Video")


def test_a_dropping_rule_ends_the_chain_and_is_named() -> None:
    """After a rule drops the entry no later rule runs, and the decision says which dropped it."""
    rules = [
        Rule("link", regex=r"/sponsored/", drop=True, name="ads"),
        Rule("title", keywords=("x",), add=("Never",)),
    ]
    decision = decide(Fields(title="x", link="https://a.example/sponsored/1"), rules)
    assert decision.dropped and decision.categories == ()
    assert decision.dropped_by is not None
    assert (
        str(decision.dropped_by)
        == "rule 'ads': link matches regex '/sponsored/' ('/sponsored/'): dropped"
    )


def test_rules_limited_to_sources_skip_other_sources() -> None:
    """A rule listing sources applies only to entries of those sources."""
    rule = Rule("title", keywords=("x",), add=("Y",), sources=("a",))
    assert decide(Fields(title="x"), [rule], source_id="a").categories == ("Y",)
    assert decide(Fields(title="x"), [rule], source_id="b").categories == ()


def test_regex_rules_run_in_linear_time() -> None:
    """A pattern that makes backtracking engines explode is answered at once by RE2."""
    rule = Rule("title", regex=r"(a+)+$", add=("Z",))
    assert decide(Fields(title="a" * 5000 + "b"), [rule]).categories == ()


def test_exclude_filter_drops_and_names_its_scope() -> None:
    """An exclude filter that matches drops the entry, naming the filter and where it comes from."""
    exclude = [Filter("title", keywords=("广告",), name="ads", scope="qtt")]
    decision = decide(Fields(title="【广告】限时优惠"), [], exclude=exclude)
    assert decision.dropped
    assert str(decision.dropped_by) == "exclude 'ads' (qtt): title has keyword '广告': dropped"


def test_include_filters_must_match_in_every_scope() -> None:
    """With global and per-source include filters, an entry must match one of each."""
    include = [
        Filter("categories", keywords=("科技",), scope="global"),
        Filter("title", keywords=("chip",), scope="blog"),
    ]
    kept = decide(Fields(title="New chip"), [], ("Tech",), include=include)
    assert not kept.dropped
    wrong_title = decide(Fields(title="New phone"), [], ("Tech",), include=include)
    assert wrong_title.dropped and str(wrong_title.dropped_by) == (
        "include (blog): no include filter matched: dropped"
    )
    assert decide(Fields(title="New chip"), [], ("Sports",), include=include).dropped


# --- from the config ----------------------------------------------------------------------------

TOML = """
[[sources]]
id = "blog"
url = "https://blog.example/feed"

[[sources]]
id = "news"
url = "https://news.example/rss"

[categorize.aliases]
"科技" = ["Tech", "technology"]

[[categorize.rules]]
name = "ai"
field = "title"
keywords = ["GPT", "人工智能"]
add = ["AI"]

[[categorize.rules]]
name = "sponsored"
field = "link"
regex = "(?i)/sponsored/"
drop = true
sources = ["news"]

[[categorize.exclude]]
name = "ads"
keywords = ["广告"]

[[categorize.filters]]
source = "blog"
include = [{ name = "tech only", field = "categories", keywords = ["科技"] }]
"""


def test_categorizer_from_config_applies_global_and_per_source_filters() -> None:
    """Rules, aliases and filters from TOML: blog entries must be 科技, news entries need not."""
    cat = Categorizer.from_settings(config.parse(TOML).categorize)
    blog = cat.decide("blog", Fields(title="GPT-5 arrives"), ("Blogs",), ("technology",))
    assert (blog.categories, blog.category_path, blog.dropped) == (
        ("科技", "AI"),
        ("Blogs",),
        False,
    )
    assert cat.decide("blog", Fields(title="Gardening"), (), ("Home",)).dropped
    assert not cat.decide("news", Fields(title="Gardening"), (), ("Home",)).dropped
    assert cat.decide("news", Fields(title="广告", link="https://n.example/a"), (), ()).dropped
    sponsored = Fields(title="x", link="https://n.example/Sponsored/1")
    assert cat.decide("news", sponsored, (), ()).dropped
    assert not cat.decide("blog", sponsored, (), ("Tech",)).dropped


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ('[[categorize.rules]]\nkeywords = ["x"]\n', "either adds categories"),
        (
            '[[categorize.rules]]\nkeywords = ["x"]\nregex = "y"\nadd = ["A"]\n',
            "either keywords or regex",
        ),
        ('[[categorize.rules]]\nregex = "(a)\\\\1"\ndrop = true\n', "invalid regular expression"),
        ('[[categorize.rules]]\nkeywords = [" "]\ndrop = true\n', "at least one keyword"),
        (
            '[[categorize.rules]]\nfield = "body"\nkeywords = ["x"]\ndrop = true\n',
            "categorize.rules.0.field",
        ),
        (
            '[[categorize.filters]]\nsource = "nope"\n',
            "categorize.filters[0].source: unknown source 'nope'",
        ),
        ('[categorize.aliases]\nA = ["x"]\nB = ["X"]\n', "variant of both"),
    ],
)
def test_config_mistakes_in_categorize_are_reported(snippet: str, message: str) -> None:
    """Every mistake in [categorize] is a ConfigError that says what is wrong and where."""
    with pytest.raises(ConfigError) as info:
        config.parse(snippet, "test.toml")
    assert message in str(info.value)


def test_default_settings_have_an_empty_categorize_section() -> None:
    """Without [categorize] nothing is added or dropped."""
    cat = Categorizer.from_settings(config.Settings().categorize)
    decision = cat.decide("any", Fields(title="x"), PATH, ("Tech",))
    assert (decision.categories, decision.dropped) == (("Tech",), False)
