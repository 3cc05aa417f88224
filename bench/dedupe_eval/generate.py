"""Build the labelled dedupe evaluation set, deterministically.

Pairs of entries labelled "same story" or "different story", in English and Chinese:

- hand-written base articles (articles_en.txt, articles_zh.txt: two different stories per topic);
- formulaic articles from templates (quarterly results in English and Chinese: different stories
  that share much of their wording, the hardest honest negatives);
- short teasers (live-blog and alert blurbs, under the length where a text can be judged);
- real entries of the third-party feeds in ../../../shared/corpus, read in place at run time and
  never written out (English, German, Russian).

Every base is republished as copies with realistic variations: a rewritten headline, an added
byline or dateline, a trimmed ending, a site footer with related links, tracking parameters,
copy edits, other markup, and wire copies that combine them. Same-story pairs are a base and its
copies (and two copies of each other); different-story pairs are other stories of the same
topic, template or feed, including copies from the same site (same byline and footer).

``python bench/dedupe_eval/generate.py`` rewrites set.jsonl (the synthetic part; the corpus part
is only ever built in memory). The same code always gives the same file.
"""

from __future__ import annotations

import html
import itertools
import json
import random
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SET_FILE = HERE / "set.jsonl"
CORPUS = HERE.parents[2] / "shared" / "corpus"
CORPUS_FEEDS = (  # feeds whose entries carry real article text
    "feedjira+feedjira/TechCrunch.xml",
    "feedjira+feedjira/FeedBurnerXHTML.xml",
    "feedjira+feedjira/TypePadNews.xml",
    "feedjira+feedjira/SamRuby.xml",
    "feedjira+feedjira/CRE.xml",
    "miniflux+v2/large_atom.xml",
    "miniflux+v2/encoding_WINDOWS-1251.xml",
)
MIN_CORPUS_TEXT = 400  # letters and digits: shorter real entries are teasers, not articles


@dataclass(frozen=True)
class Article:
    """A base story before anyone republishes it."""

    id: str
    lang: str
    group: str  # topic, template or feed: different stories in one group are hard negatives
    title: str
    alt_title: str
    paragraphs: tuple[str, ...]
    html: str = ""  # the original markup when it is not just the paragraphs (corpus entries)


@dataclass(frozen=True)
class Copy:
    """One published copy of an article."""

    id: str
    article: str
    variant: str
    site: str
    title: str
    content: str
    link: str


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    same: bool
    kind: str
    lang: str


@dataclass
class EvalSet:
    copies: dict[str, Copy] = field(default_factory=dict)
    pairs: list[Pair] = field(default_factory=list)

    def extend(self, other: EvalSet) -> None:
        self.copies.update(other.copies)
        self.pairs.extend(other.pairs)


# --- base articles ---------------------------------------------------------------------------------


def read_articles(path: Path, lang: str) -> list[Article]:
    """Articles from the hand-written text format described at the top of articles_en.txt."""
    articles = []
    text = path.read_text(encoding="utf-8")
    for block in text.split("\n=== ")[1:]:
        header, _, body = block.partition("\n")
        ident, _, group = (s.strip() for s in header.partition("|"))
        lines = body.strip().split("\n")
        title, alt = lines[0].strip(), lines[1].removeprefix("alt:").strip()
        paragraphs = tuple(p.strip() for p in "\n".join(lines[2:]).split("\n\n") if p.strip())
        articles.append(Article(ident, lang, group, title, alt, paragraphs))
    return articles


COMPANIES_EN = (
    "Harlow Logistics",
    "Brightwater Foods",
    "Kessler Motors",
    "Orbis Pharma",
    "Tallis Energy",
    "Pemberton Retail",
    "Arcadia Software",
    "Northgate Bank",
    "Solent Chemicals",
    "Marlow Media",
    "Crestline Airways",
    "Vantor Steel",
)
SECTORS_EN = (
    "logistics",
    "food",
    "carmaker",
    "drugmaker",
    "energy",
    "retail",
    "software",
    "banking",
    "chemicals",
    "media",
    "airline",
    "steel",
)
CEOS_EN = (
    "Laura Benning",
    "Marcus Hale",
    "Priya Natarajan",
    "Tomas Eriksen",
    "Grace Whitfield",
    "Daniel Mbeki",
    "Hannah Koenig",
    "Rafael Ortega",
    "Sarah Lindgren",
    "Owen Gallagher",
    "Mei Tanaka",
    "Victor Novak",
)
DRIVERS_EN = (
    "demand from business customers held up better than expected",
    "lower raw material costs lifted margins",
    "a weak holiday season hurt sales in its largest markets",
    "price increases offset a drop in volumes",
    "currency swings cut the value of overseas earnings",
    "cost cuts announced last year began to pay off",
)
QUOTES_EN = (
    "We are managing the business for the long term and will not chase short-term volume",
    "Customers are cautious, but our order book is the strongest it has been in three years",
    "The second half will be tougher, and we are planning for that",
    "Our investment in automation is now showing up in the numbers",
    "We were too slow to react to the change in demand, and we have fixed that",
    "Every region grew, which tells me the strategy is working",
)
EXTRAS_EN = (
    (
        "The company said it would cut about {n} jobs, mostly in administration, as part of a plan to "
        "save {m} million dollars a year by 2027."
    ),
    (
        "It also announced the purchase of a smaller rival for {m} million dollars, its largest deal "
        "in a decade, subject to approval by competition authorities."
    ),
    (
        "Separately, the company said it had settled a long-running patent dispute with a competitor "
        "and would pay {m} million dollars over five years."
    ),
    (
        "The group plans to open a new plant employing {n} people next year and will spend {m} million "
        "dollars on research, up from last year."
    ),
    (
        "Its chief financial officer will retire at the end of the year after {k} years with the group, "
        "and a search for a successor is under way."
    ),
)


def template_en(rng: random.Random, index: int) -> Article:
    """Quarterly results in the formulaic style of business wires: the same skeleton, other facts."""
    company, sector = COMPANIES_EN[index % 12], SECTORS_EN[index % 12]
    quarter = rng.choice(("first-quarter", "second-quarter", "third-quarter", "fourth-quarter"))
    up = rng.random() < 0.5
    profit, before = rng.randint(40, 900), rng.randint(40, 900)
    revenue, pct = rng.randint(12, 95) / 10, rng.randint(2, 18)
    direction, verb = ("higher", "rose") if up else ("lower", "fell")
    paragraphs = [
        (
            f"{company}, the {sector} group, reported {direction} {quarter} profit on "
            f"{rng.choice(('Monday', 'Tuesday', 'Wednesday', 'Thursday'))} as "
            f"{rng.choice(DRIVERS_EN)}, sending its shares {'up' if up else 'down'} "
            f"{rng.randint(2, 11)}% in {rng.choice(('early', 'afternoon', 'late'))} trading."
        ),
        (
            f"Net income {verb} to {profit} million dollars, or {rng.randint(10, 240)} cents a share, "
            f"from {before} million dollars a year earlier. Revenue {verb} {pct}% to {revenue} billion "
            f"dollars, {rng.choice(('ahead of', 'below', 'in line with'))} analyst forecasts."
        ),
        (
            f'"{rng.choice(QUOTES_EN)}," chief executive {CEOS_EN[index % 12]} said on a call with '
            f"analysts."
        ),
        (
            f"The company {rng.choice(('raised', 'cut', 'kept'))} its forecast for full-year revenue "
            f"growth at {rng.randint(1, 9)}% to {rng.randint(10, 15)}%, citing "
            f"{rng.choice(('steady orders', 'uncertain demand', 'higher energy costs', 'new contracts'))}."
        ),
        rng.choice(EXTRAS_EN).format(
            n=rng.randint(200, 3000), m=rng.randint(20, 600), k=rng.randint(8, 30)
        ),
    ]
    title = f"{company} {quarter} profit {verb} {abs(profit - before) * 100 // max(before, 1)}%"
    alt = f"{company} shares {'jump' if up else 'slide'} after {quarter} results"
    return Article(f"en-results-{index:02d}", "en", "results-en", title, alt, tuple(paragraphs))


COMPANIES_ZH = (
    "华岳科技",
    "东泰食品",
    "盛远物流",
    "青禾医药",
    "远航电子",
    "恒川能源",
    "金桥银行",
    "润丰农业",
    "博雅传媒",
    "天宁化工",
    "星河地产",
    "嘉信保险",
)
REASONS_ZH = (
    "海外订单持续增长",
    "原材料价格回落带动毛利率提升",
    "主要产品降价导致收入下滑",
    "新产线投产后产能明显释放",
    "销售费用大幅增加拖累利润",
    "汇率波动带来汇兑损失",
)
QUOTES_ZH = (
    "公司将坚持长期主义，不会为了短期规模牺牲利润",
    "下半年行业竞争将更加激烈，公司已做好充分准备",
    "研发投入正在转化为实实在在的订单",
    "我们对全年业绩目标保持信心",
    "公司将进一步压缩非核心业务，聚焦主业",
    "海外市场已经成为公司新的增长引擎",
)
EXTRAS_ZH = (
    "同日，公司公告称拟以{m}亿元收购一家同行业企业，交易尚需经过监管部门审批。",
    "公司同时披露，计划投资{m}亿元新建生产基地，预计可新增就业岗位{n}个。",
    "此外，公司宣布向全体股东每10股派发现金红利{k}元，分红总额约{m}亿元。",
    "公告还显示，公司财务总监因个人原因辞职，董事会将尽快聘任新的财务负责人。",
)


def template_zh(rng: random.Random, index: int) -> Article:
    """中文季度财报快讯：骨架相同，公司和数字不同。"""
    company = COMPANIES_ZH[index % 12]
    quarter = rng.choice(("一季度", "上半年", "前三季度", "全年"))
    up = rng.random() < 0.5
    revenue, pct, profit = rng.randint(12, 950) / 10, rng.randint(2, 45), rng.randint(5, 300) / 10
    trend = "增长" if up else "下降"
    paragraphs = [
        (
            f"{company}{rng.choice(('日前', '昨晚', '今日'))}发布{quarter}业绩报告。报告期内，公司实现营业收入"
            f"{revenue}亿元，同比{trend}{pct}%；归属于上市公司股东的净利润{profit}亿元，同比"
            f"{'增长' if rng.random() < 0.5 else '下降'}{rng.randint(1, 60)}%。"
        ),
        (
            f"对于业绩变动的原因，公司表示主要是由于{rng.choice(REASONS_ZH)}。分业务看，"
            f"{rng.choice(('国内业务', '海外业务', '核心产品', '新业务'))}收入占比达到{rng.randint(20, 80)}%，"
            f"毛利率为{rng.randint(10, 45)}.{rng.randint(0, 9)}%。"
        ),
        f"公司董事长在业绩说明会上表示，“{rng.choice(QUOTES_ZH)}”。",
        (
            f"受业绩消息影响，{company}股价{rng.choice(('高开', '低开', '震荡'))}，截至收盘"
            f"{'上涨' if up else '下跌'}{rng.randint(1, 10)}.{rng.randint(0, 9)}%，总市值约"
            f"{rng.randint(50, 900)}亿元。"
        ),
        rng.choice(EXTRAS_ZH).format(
            m=rng.randint(2, 90), n=rng.randint(200, 3000), k=rng.randint(1, 9)
        ),
    ]
    title = f"{company}{quarter}营收{revenue}亿元 同比{trend}{pct}%"
    alt = f"{company}发布{quarter}财报：净利润{profit}亿元"
    return Article(f"zh-results-{index:02d}", "zh", "results-zh", title, alt, tuple(paragraphs))


TEAMS = (
    "Redport",
    "Milford",
    "Eastbridge",
    "Kingsholm",
    "Larkfield",
    "Oxley",
    "Ponteland",
    "Westmoor",
    "Ashby",
    "Brackley",
)
CITIES_ZH = ("江城", "青河", "南江", "安平", "东港", "北川", "云岭", "石门", "临川", "海宁")


def teasers(lang: str) -> list[Article]:
    """Short blurbs (live blogs, weather alerts) that differ in a name or two."""
    out = []
    for i, (x, y) in enumerate(itertools.islice(itertools.combinations(range(10), 2), 0, 45, 4)):
        if lang == "en":
            a, b = TEAMS[x], TEAMS[y]
            title = f"Live: {a} v {b} - score and updates"
            body = f"Follow live coverage of {a} against {b} in the league, with goals, team news and reaction."
        else:
            a, b = CITIES_ZH[x], CITIES_ZH[y]
            title = f"【快讯】{a}发布暴雨橙色预警"
            body = f"{a}市气象台发布暴雨橙色预警，预计未来6小时{a}、{b}等地将出现50毫米以上降水，请注意防范。"
        out.append(Article(f"{lang}-teaser-{i:02d}", lang, f"teaser-{lang}", title, title, (body,)))
    return out


# --- corpus entries (read in place, never written out) ----------------------------------------------

_BLOCK_END = re.compile(
    r"</(p|div|li|h[1-6]|blockquote|pre|tr|table|ul|ol)\s*>|<br\s*/?>", re.IGNORECASE
)
_TAGS = re.compile(r"<[^>]*>")
_SENTENCE = re.compile(r"(?<=[.!?。！？])\s+")


def paragraphs_of(markup: str) -> tuple[str, ...]:
    text = html.unescape(_TAGS.sub(" ", _BLOCK_END.sub("\n\n", markup)))
    paras = (re.sub(r"[ \t\r\f\v]+", " ", p).strip() for p in re.split(r"\n\s*\n", text))
    return tuple(p for p in paras if len(p) > 1)


def corpus_articles(root: Path = CORPUS) -> list[Article]:
    """Long real entries of a few corpus feeds; an empty list when the corpus is not there."""
    import feedparser  # only the corpus part needs it

    out: list[Article] = []
    for name in CORPUS_FEEDS:
        path = root / name
        if not path.is_file():
            continue
        parsed = feedparser.parse(path.read_bytes())
        for n, entry in enumerate(parsed.entries):
            markup = (entry.get("content") or [{}])[0].get("value") or entry.get("summary") or ""
            paras = paragraphs_of(markup)
            letters = sum(ch.isalnum() for p in paras for ch in p)
            title = html.unescape(entry.get("title") or "")
            if letters >= MIN_CORPUS_TEXT and title:
                ident = f"corpus-{path.stem}-{n:02d}"
                alt = f"UPDATE 1-{title}" if n % 2 else f"{title} | {path.stem} reprint"
                out.append(Article(ident, "corpus", path.stem, title, alt, paras, markup))
    return out


# --- copies ------------------------------------------------------------------------------------------

SITES = {  # [0] publishes the originals, [3] is the site of same_site_copy
    "en": ("dailyherald.example", "wirenews.example", "metropost.example", "newsdesk.example"),
    "zh": (
        "jiangcheng-daily.example",
        "xinwen-portal.example",
        "caijing-wang.example",
        "kuaibao.example",
    ),
}
REPUBLISHERS = {  # each variation is one site's way of republishing, so one site per variation
    "en": {
        "retitle": "metropost.example",
        "byline": "wirenews.example",
        "trim": "citybeat.example",
        "footer": "morningledger.example",
        "copyedit": "eveningstar.example",
        "markup": "feedhub.example",
        "wire": "globalwire.example",
    },
    "zh": {
        "retitle": "xinwen-portal.example",
        "byline": "caijing-wang.example",
        "trim": "zaobao-wang.example",
        "footer": "dushi-kuaixun.example",
        "copyedit": "wanbao.example",
        "markup": "zixun-hub.example",
        "wire": "tongxun-she.example",
    },
}
NAMES = {
    "en": ("Anna Weber", "James Okoro", "Lucia Fernandes", "Mark Ellison", "Ruth Adler"),
    "zh": ("张伟", "李娜", "王磊", "刘洋", "陈静"),
}
AGENCIES = {
    "en": ("Reuters-like Wire", "Global Press", "City Desk"),
    "zh": ("新华网", "中新网", "央广网"),
}
STYLE = {
    "en": (
        ("centre", "center"),
        ("kilometres", "kilometers"),
        ("programme", "program"),
        ("neighbours", "neighbors"),
        ("%", " percent"),
        ("dollars", "USD"),
    ),
    "zh": (("，", ", "), ("“", '"'), ("亿元", "亿人民币"), ("。", ". ")),
}
EDITS = {
    "en": (
        ("said", "says"),
        ("on Tuesday", "on Tuesday morning"),
        ("told", "said to"),
        ("more than", "over"),
        ("about", "around"),
        ("people", "residents"),
        ("would", "will"),
        ("expected", "forecast"),
        (" the company", " the firm"),
    ),
    "zh": (
        ("表示", "称"),
        ("日前", "近日"),
        ("目前", "当前"),
        ("进行", "开展"),
        ("介绍", "说"),
        ("同比增长", "比去年同期增长"),
        ("已经", "已"),
        ("提醒", "提示"),
        ("记者", "本报记者"),
    ),
}


def site_byline(lang: str, site: str, rng: random.Random) -> str:
    name, agency = rng.choice(NAMES[lang]), rng.choice(AGENCIES[lang])
    if lang == "zh":
        return rng.choice(
            (
                f"（记者 {name}）",
                f"本报讯（记者 {name} 通讯员 {rng.choice(NAMES['zh'])}）",
                f"来源：{agency}",
                f"{agency}{site.split('.')[0]}讯",
            )
        )
    return rng.choice(
        (
            f"By {name}, {agency}",
            f"{name} | {site.split('.')[0]} staff",
            f"LONDON ({agency}) -",
            f"By {name} and {rng.choice(NAMES['en'])}",
        )
    )


def site_footer(lang: str, site: str, related: Sequence[str]) -> list[str]:
    """The boilerplate one site puts under every story (the same for all its stories)."""
    links = [
        f'<a href="https://{site}/related/{i}">{html.escape(t)}</a>' for i, t in enumerate(related)
    ]
    if lang == "zh":
        return [
            "（完）",
            "责任编辑：编辑部",
            "【免责声明】本文仅代表作者本人观点，与本网无关。",
            "相关阅读：" + "；".join(links),
        ]
    return [
        f"Copyright 2024 {site}. All rights reserved.",
        "Sign up for our newsletter to get the day's top stories in your inbox.",
        "Read more: " + " | ".join(links),
    ]


def lang_of(article: Article) -> str:
    return "zh" if article.lang == "zh" else "en"


def render(paragraphs: Sequence[str], style: int) -> str:
    """The same paragraphs in one of four markup styles (block, div wrapper, br, entities)."""
    escaped = [html.escape(p, quote=False) if "<a " not in p else p for p in paragraphs]
    if style == 0:
        return "\n".join(f"<p>{p}</p>" for p in escaped)
    if style == 1:
        inner = "\n    ".join(f"<p>{p}</p>" for p in escaped)
        return f'<div class="article-body">\n    {inner}\n</div>'
    if style == 2:
        return "<br/><br/>\n".join(escaped)
    return "".join(
        f"<p>{p.replace('. ', '.&nbsp; ').replace(chr(39), '&#8217;')}</p>" for p in escaped
    )


def trim(paragraphs: Sequence[str], rng: random.Random, most: float = 0.35) -> list[str]:
    """Drop the ending: whole sentences from the end, 10% to ``most`` of the text."""
    units = [(i, s) for i, p in enumerate(paragraphs) for s in _SENTENCE.split(p) if s]
    total, goal = sum(len(s) for _, s in units), rng.uniform(0.1, most)
    removed = 0
    while len(units) > 2 and removed + len(units[-1][1]) <= goal * total:
        removed += len(units.pop()[1])
    kept: dict[int, list[str]] = {}
    for i, sentence in units:
        kept.setdefault(i, []).append(sentence)
    joiner = "" if re.search(r"[\u4e00-\u9fff]", "".join(paragraphs)) else " "
    return [joiner.join(sentences) for sentences in kept.values()]


def copy_edit(paragraphs: Sequence[str], lang: str, rng: random.Random) -> list[str]:
    """A desk's edits: one house-style spelling applied throughout, three one-off word changes."""
    style = rng.choice(STYLE[lang])
    text = "\n".join(paragraphs).replace(*style)
    for old, new in rng.sample(EDITS[lang], 3):
        text = text.replace(old, new, 1)
    return text.split("\n")


def tracked(link: str, rng: random.Random) -> str:
    medium = rng.choice(("rss", "social", "email"))
    return f"{link}?utm_source={medium}&utm_medium=feed&utm_campaign=n{rng.randint(1, 99)}&fbclid=x{rng.randint(1000, 9999)}"


VARIANTS = ("retitle", "byline", "trim", "footer", "tracking", "copyedit", "markup", "wire")


def make_copy(article: Article, variant: str, rng: random.Random, related: Sequence[str]) -> Copy:
    """One republished copy of ``article`` with the named variation."""
    lang = lang_of(article)
    home = SITES[lang][0]
    site = REPUBLISHERS[lang].get(variant, home)
    link = f"https://{home}/news/{article.id}.html"
    title, paras, style = article.title, list(article.paragraphs), rng.randrange(4)
    if variant in ("retitle", "wire"):
        title = article.alt_title
    if variant in ("byline", "wire"):
        paras.insert(0, site_byline(lang, site, rng))
    if variant in ("trim", "wire"):
        paras = trim(paras, rng)
    if variant in ("copyedit", "wire"):
        paras = copy_edit(paras, lang, rng)
    if variant in ("footer", "wire"):
        paras += site_footer(lang, site, related)
    copy_link = f"https://{site}/{rng.randint(2019, 2024)}/{rng.randint(10000, 99999)}.html"
    if variant == "tracking":  # the home site's own copy through a tracked link: only noise differs
        site, copy_link = home, tracked(link, rng)
        more = _more_link(article, tracked(_topic_url(article), rng))
        content = article.html or render([*paras, more], 0).replace("</p>\n", "</p>\n\n  ")
        return Copy(f"{article.id}~{variant}", article.id, variant, site, title, content, copy_link)
    content = render(paras, style)
    return Copy(f"{article.id}~{variant}", article.id, variant, site, title, content, copy_link)


def _topic_url(article: Article) -> str:
    return f"https://{SITES[lang_of(article)][0]}/topic/{article.group}"


def _more_link(article: Article, url: str) -> str:
    label = "更多相关报道" if lang_of(article) == "zh" else f"More on {article.group}"
    return f'<a href="{html.escape(url)}">{label}</a>'


def original(article: Article) -> Copy:
    lang = lang_of(article)
    home = SITES[lang][0]
    more = _more_link(article, _topic_url(article))
    content = article.html or render([*article.paragraphs, more], 0)
    link = f"https://{home}/news/{article.id}.html"
    return Copy(
        f"{article.id}~original", article.id, "original", home, article.title, content, link
    )


def same_site_copy(article: Article, site: str, rng: random.Random, related: Sequence[str]) -> Copy:
    """A story as one particular site runs every story: its byline style and its footer."""
    lang = lang_of(article)
    paras = [site_byline(lang, site, random.Random(site)), *article.paragraphs]
    paras += site_footer(lang, site, related)
    link = f"https://{site}/story/{article.id}"
    return Copy(
        f"{article.id}~at-{site}",
        article.id,
        "same-site",
        site,
        article.title,
        render(paras, 1),
        link,
    )


# --- pairs -------------------------------------------------------------------------------------------


def build_group(articles: Sequence[Article], seed: str, variants: Sequence[str]) -> EvalSet:
    """Copies and pairs for articles of one kind: positives within an article, negatives across."""
    rng = random.Random(seed)
    out = EvalSet()
    titles = [a.title for a in articles]
    by_article: dict[str, list[Copy]] = {}
    for i, article in enumerate(articles):
        related = [titles[(i + k) % len(titles)] for k in (1, 2, 3)]
        copies = [original(article)] + [make_copy(article, v, rng, related) for v in variants]
        same_site = SITES[lang_of(article)][3]
        copies.append(same_site_copy(article, same_site, rng, related))
        by_article[article.id] = copies
        for c in copies:
            out.copies[c.id] = c
        out.pairs += _positives(article, copies)
    out.pairs += _negatives(articles, by_article, rng)
    return out


def _positives(article: Article, copies: Sequence[Copy]) -> Iterator[Pair]:
    first, rest = copies[0], copies[1:]
    for c in rest:
        yield Pair(first.id, c.id, True, c.variant, article.lang)
    by_variant = {c.variant: c for c in copies}
    for x, y in (
        ("wire", "trim"),
        ("retitle", "footer"),
        ("byline", "copyedit"),
        ("wire", "same-site"),
    ):
        if x in by_variant and y in by_variant:
            yield Pair(by_variant[x].id, by_variant[y].id, True, f"{x}+{y}", article.lang)


def _negatives(
    articles: Sequence[Article], by_article: dict[str, list[Copy]], rng: random.Random
) -> Iterator[Pair]:
    """Every pair of different stories in a group: originals, a copy against the other's original,
    the two stories as run by the same site, and a sample of other copy combinations."""
    for a, b in itertools.combinations(articles, 2):
        kind = "same-group" if a.group == b.group else "other-group"
        ca, cb = by_article[a.id], by_article[b.id]
        yield Pair(ca[0].id, cb[0].id, False, kind, a.lang)
        if kind == "other-group":
            continue
        yield Pair(ca[-1].id, cb[-1].id, False, "same-site-other-story", a.lang)
        combos = list(itertools.product(ca[1:-1], cb[1:-1]))
        for x, y in rng.sample(combos, min(6, len(combos))):
            yield Pair(x.id, y.id, False, "same-group-copies", a.lang)


def synthetic_set() -> EvalSet:
    """The part of the set that is ours to publish: hand-written, template and teaser stories."""
    out = EvalSet()
    for lang in ("en", "zh"):
        hand = read_articles(HERE / f"articles_{lang}.txt", lang)
        out.extend(build_group(hand, f"hand-{lang}", VARIANTS))
        maker = template_en if lang == "en" else template_zh
        rng = random.Random(f"template-{lang}")
        templated = [maker(rng, i) for i in range(24)]
        out.extend(build_group(templated, f"template-{lang}", ("retitle", "wire", "trim")))
        out.extend(build_group(teasers(lang), f"teaser-{lang}", ("tracking",)))
    out.extend(issue18_set())
    return out


def corpus_set(root: Path = CORPUS) -> EvalSet:
    """Pairs built from real feed entries, in memory only."""
    out = EvalSet()
    articles = corpus_articles(root)
    groups: dict[str, list[Article]] = {}
    for a in articles:
        groups.setdefault(a.group, []).append(a)
    for name, members in sorted(groups.items()):
        out.extend(
            build_group(
                members,
                f"corpus-{name}",
                ("retitle", "byline", "trim", "wire", "markup", "tracking"),
            )
        )
    return out


def full_set(root: Path = CORPUS) -> EvalSet:
    out = load_set()
    out.extend(corpus_set(root))
    return out


def dump(es: EvalSet) -> str:
    lines = [
        json.dumps({"copy": asdict(c)}, ensure_ascii=False, sort_keys=True)
        for c in es.copies.values()
    ]
    lines += [json.dumps({"pair": asdict(p)}, ensure_ascii=False, sort_keys=True) for p in es.pairs]
    return "\n".join(lines) + "\n"


def load_set(path: Path = SET_FILE) -> EvalSet:
    out = EvalSet()
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if "copy" in record:
            c = Copy(**record["copy"])
            out.copies[c.id] = c
        else:
            out.pairs.append(Pair(**record["pair"]))
    return out


def main(argv: Sequence[str]) -> int:
    text = dump(synthetic_set())
    if "--check" in argv:
        same = SET_FILE.is_file() and SET_FILE.read_text(encoding="utf-8") == text
        print("set.jsonl is up to date" if same else "set.jsonl differs from the generator")
        return 0 if same else 1
    SET_FILE.write_text(text, encoding="utf-8")
    print(f"wrote {SET_FILE} ({len(text.encode()) // 1024} KiB)")
    return 0


# --- the kinds of issue 18: another script, rewritten leads, tiny posts, https moves ------------

LEADS_FILE = HERE / "leads.txt"
ENDINGS = {  # the last sentence another outlet puts instead of the original's
    "en": (
        "Officials said more details would be released in the coming days.",
        "The story is developing and will be updated.",
        "None of those involved responded to requests for comment by the time of publication.",
    ),
    "zh": (
        "截至发稿时，相关部门尚未作出进一步回应。",
        "本报将持续关注事件进展。",
        "更多详情仍在进一步核实中。",
    ),
}
TINY = {  # short link-blog posts: (title, text under 60 characters), and a near copy as a negative
    "en": (
        ("The Talk Show: Episode 401", "Special guest: Maya Lin. Sponsored by Squarespace."),
        ("Quoting Ruth Adler", "“Defaults are destiny, even when nobody reads them.”"),
        ("Lumaro Port Webcam", "Still the best view of the harbour at dawn."),
        ("Kessler’s Keyboard Update", "Finally, a proper escape key again. Took them long enough."),
        ("Orbis Pharma Recalls Batch 7", "Not the first time this year, sadly."),
        ("Marlow Media’s New Reader App", "Worth a look, if only for the typography."),
        ("Selene-2 Photo", "The first picture from the lunar south pole. Wow."),
        ("Tallis Energy Outage Map", "Live map, updated every five minutes."),
        ("Quote of the Day", "“Ship it, then fix it” is not a plan, it is a wish."),
        ("Redport United, Champions", "22 years. Worth the wait, says my brother."),
    ),
    "zh": (
        ("今日推荐：江城老街", "值得一去，早上人少。"),
        ("星驰E7实拍图", "比发布会上看起来更好看。"),
        ("一句话新闻", "南江地铁5号线今天开通试运营。"),
        ("周末书单", "三本小说，一本历史，都不长。"),
        ("东港海星保级成功", "最后一轮才确定，太惊险了。"),
        ("云岭天气", "明天起连续三天小雨，出门带伞。"),
    ),
}
NEAR_TINY = {  # the same shape with one fact changed: different posts
    "en": (
        ("The Talk Show: Episode 402", "Special guest: Mark Ellison. Sponsored by Squarespace."),
        ("Quote of the Day", "“Ship it, then measure it” is a plan, not a wish."),
        ("Tallis Energy Outage Map", "Live map, updated every fifteen minutes."),
        ("Orbis Pharma Recalls Batch 9", "Not the first time this year, sadly."),
        ("Selene-3 Photo", "The first picture from the lunar north pole. Wow."),
    ),
    "zh": (
        ("今日推荐：青河老街", "值得一去，晚上人少。"),
        ("一句话新闻", "南江地铁6号线今天开通试运营。"),
        ("云岭天气", "明天起连续五天大雨，出门带伞。"),
    ),
}


def read_leads(path: Path = LEADS_FILE) -> dict[str, str]:
    out = {}
    for block in path.read_text(encoding="utf-8").split("\n=== ")[1:]:
        ident, _, lead = block.partition("\n")
        out[ident.strip()] = lead.strip()
    return out


def _converter(config: str) -> Any:
    import opencc  # the same library dedupe folds with; here it writes the other script

    return opencc.OpenCC(config)


def traditional_copy(article: Article, n: int) -> Copy:
    """The story as a Taiwan or Hong Kong outlet runs it: Traditional characters with regional
    vocabulary (OpenCC s2twp / s2hk), corner-bracket quotes, its own site and markup."""
    config, site = (
        ("s2twp.json", "taiwan-news.example") if n % 2 else ("s2hk.json", "hk-daily.example")
    )
    cc = _converter(config)
    quote = str.maketrans({"“": "「", "”": "」", "‘": "『", "’": "』"})
    paras = [cc.convert(p).translate(quote) for p in article.paragraphs]
    title = cc.convert(article.title if n % 3 else article.alt_title).translate(quote)
    link = f"https://{site}/article/{article.id}"
    return Copy(
        f"{article.id}~script", article.id, "script", site, title, render(paras, n % 4), link
    )


def lead_copy(article: Article, lead: str, rng: random.Random, end: bool) -> Copy:
    """The story with its first paragraph rewritten (and, with ``end``, its last sentence)."""
    lang = lang_of(article)
    paras = [lead, *article.paragraphs[1:]]
    if end:
        splitter = re.compile(r"(?<=[。！？])") if lang == "zh" else _SENTENCE  # no space after 。
        sentences = [s for s in splitter.split(paras[-1]) if s]
        joiner = "" if lang == "zh" else " "
        paras[-1] = joiner.join([*sentences[:-1], rng.choice(ENDINGS[lang])])
    variant = "lead+end" if end else "lead"
    site = "rewrite-desk.example" if lang == "en" else "gaixie-wang.example"
    link = f"https://{site}/{variant.replace('+', '-')}/{article.id}"
    title = article.alt_title if end else article.title
    return Copy(
        f"{article.id}~{variant}",
        article.id,
        variant,
        site,
        title,
        render(paras, rng.randrange(4)),
        link,
    )


def template_lead(article: Article, rng: random.Random) -> str:
    """A rewritten lead for a template story, from its own facts (the second paragraph's)."""
    if article.lang == "zh":
        return f"{article.alt_title}。{rng.choice(('据公司公告', '记者获悉', '公告显示'))}，{article.title}。"
    return (
        f"{article.alt_title}: {rng.choice(('investors reacted', 'the market weighed', 'traders digested'))} "
        f"the {article.title.split(' profit ')[0].split(' ', 2)[-1]} numbers on the day."
    )


def https_copy(article: Article, rng: random.Random) -> tuple[Copy, Copy]:
    """The home site before and after a move to https with a new CMS: same path, other markup."""
    home = SITES[lang_of(article)][0]
    path = f"{home}/news/{article.id}.html"
    before = Copy(
        f"{article.id}~http",
        article.id,
        "original",
        home,
        article.title,
        render(article.paragraphs, 2),
        f"http://{path}",
    )
    cms = "".join(
        f'<p class="body-text">{html.escape(p, quote=False).replace(" ", "&nbsp;", 1)}</p>'
        for p in article.paragraphs
    )
    after = Copy(
        f"{article.id}~https",
        article.id,
        "https",
        home,
        article.title,
        f'<div class="entry-content" data-cms="v2">{cms}</div>',
        f"https://{path}",
    )
    return before, after


def title_only(article: Article, scheme: str) -> Copy:
    home = SITES[lang_of(article)][0]
    title = article.title if scheme == "http" else html.escape(article.title).replace(" ", "  ", 1)
    return Copy(
        f"{article.id}~title-{scheme}",
        article.id,
        "https-title",
        home,
        title,
        "",
        f"{scheme}://{home}/brief/{article.id}",
    )


def followup(earlier: Article, later: Article) -> Copy:
    """A later story that quotes the earlier one's lead as background: a different story."""
    paras = [later.paragraphs[0], earlier.paragraphs[0], *later.paragraphs[1:]]
    site = SITES[lang_of(later)][2]
    return Copy(
        f"{later.id}~follows-{earlier.id}",
        later.id,
        "followup",
        site,
        later.title,
        render(paras, 0),
        f"https://{site}/followup/{earlier.id}/{later.id}",
    )


def tiny_posts(lang: str) -> EvalSet:
    """Tiny posts in a site's Atom and JSON feeds (other markup, other links): same story;
    other tiny posts and near copies with one fact changed: different stories."""
    out = EvalSet()
    site = "linkblog.example" if lang == "en" else "duanxun.example"
    atoms = []
    for n, (title, text) in enumerate(TINY[lang]):
        ident = f"{lang}-tiny-{n:02d}"
        atom = Copy(
            f"{ident}~atom",
            ident,
            "original",
            site,
            title,
            f"<p>{html.escape(text)}</p>",
            f"https://elsewhere{n}.example/story/{n}",
        )
        entity = (
            html.escape(text)
            .replace("’", "&#8217;")
            .replace("“", "&#8220;")
            .replace("”", "&#8221;")
        )
        json_copy = Copy(
            f"{ident}~json",
            ident,
            "tiny",
            site,
            title.replace("’", "&rsquo;"),
            entity + "\n",
            f"https://{site}/{2024 + n % 2}/{n:02d}/post-{n}",
        )
        atoms.append(atom)
        out.copies[atom.id] = atom
        out.copies[json_copy.id] = json_copy
        out.pairs.append(Pair(atom.id, json_copy.id, True, "tiny", lang))
    for a, b in itertools.combinations(atoms, 2):
        out.pairs.append(Pair(a.id, b.id, False, "tiny-other", lang))
    for n, (title, text) in enumerate(NEAR_TINY[lang]):
        near = Copy(
            f"{lang}-tiny-near-{n:02d}",
            f"{lang}-tiny-near-{n:02d}",
            "tiny-near",
            site,
            title,
            f"<p>{html.escape(text)}</p>",
            f"https://{site}/near/{n}",
        )
        out.copies[near.id] = near
        match = next(
            a for a in atoms if a.title.split()[:2] == title.split()[:2] or a.title[:4] == title[:4]
        )
        out.pairs.append(Pair(match.id, near.id, False, "tiny-near", lang))
    return out


def issue18_set() -> EvalSet:
    """Pairs for the kinds of issue 18, with hard negatives of each."""
    out = EvalSet()
    leads = read_leads()
    for lang in ("en", "zh"):
        rng = random.Random(f"issue18-{lang}")
        hand = read_articles(HERE / f"articles_{lang}.txt", lang)
        templated_rng = random.Random(f"template-{lang}")
        maker = template_en if lang == "en" else template_zh
        templated = [maker(templated_rng, i) for i in range(24)]
        made: dict[str, list[Copy]] = {}
        for n, article in enumerate(hand):
            first = original(article)
            copies = [
                lead_copy(article, leads[article.id], rng, False),
                lead_copy(article, leads[article.id], rng, True),
            ]
            if lang == "zh":
                copies.append(traditional_copy(article, n))
            before, after = https_copy(article, rng)
            t_http, t_https = title_only(article, "http"), title_only(article, "https")
            for c in (first, *copies, before, after, t_http, t_https):
                out.copies[c.id] = c
            out.pairs += [Pair(first.id, c.id, True, c.variant, lang) for c in copies]
            out.pairs += [
                Pair(before.id, after.id, True, "https", lang),
                Pair(t_http.id, t_https.id, True, "https-title", lang),
            ]
            made[article.id] = [first, *copies, before, after, t_http, t_https]
        for a, b in itertools.permutations(hand, 2):
            if a.group != b.group:
                continue
            fa, fb = made[a.id], made[b.id]
            follow = followup(a, b)
            out.copies[follow.id] = follow
            out.pairs.append(Pair(fa[0].id, follow.id, False, "followup", lang))
            out.pairs.append(Pair(fa[1].id, follow.id, False, "followup", lang))
            for x, y in zip(fa[1:], fb[1:]):  # the same kind of copy of two stories of a topic
                out.pairs.append(Pair(x.id, y.id, False, f"{y.variant}-other-story", lang))
        for i, article in enumerate(templated):
            copy = lead_copy(article, template_lead(article, rng), rng, False)
            first = original(article)
            out.copies[first.id], out.copies[copy.id] = first, copy
            out.pairs.append(Pair(first.id, copy.id, True, "lead-template", lang))
            other = original(templated[(i + 1) % len(templated)])
            out.copies[other.id] = other
            out.pairs.append(Pair(other.id, copy.id, False, "lead-template-other", lang))
        out.extend(tiny_posts(lang))
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

__all__ = [
    "Article",
    "Copy",
    "EvalSet",
    "Pair",
    "corpus_set",
    "full_set",
    "issue18_set",
    "load_set",
    "replace",
    "synthetic_set",
]
