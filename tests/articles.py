"""Saved article pages (written for these tests, like real blog, news and Chinese pages) and what
a full-text extractor must get from each: phrases of the article (from its first paragraph to its
last) and phrases of the page's junk (navigation, ads, comments, sidebars, footers) it must not keep.

Used by tests/test_fulltext.py and bench/fulltext_extractors.py (the extractor comparison).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ARTICLES = Path(__file__).parent / "data" / "articles"


@dataclass(frozen=True)
class Article:
    name: str  # file under tests/data/articles
    content_type: str  # what the test origin sends
    article: tuple[str, ...]  # phrases of the article text, in order
    junk: tuple[str, ...]  # phrases of the page around it

    def body(self) -> bytes:
        return (ARTICLES / self.name).read_bytes()


PAGES = (
    Article(
        "blog_en.html",
        "text/html; charset=utf-8",
        article=(
            "For three weeks our continuous integration runs took twenty-two minutes",
            "The first suspect was the cache key.",
            "which is far too fast for four gigabytes of compiled dependencies",
            "The files were restored faithfully",
            "The fix itself was a single line",
            "A cache that silently restores to the wrong place",
            "It has fired twice since then",
            "I hope this post saves you some of them.",
        ),
        junk=(
            "Subscribe via RSS",
            "Share this post",
            "Three kinds of flaky tests",
            "Leave a comment",
            "cheap sunglasses",
            "Thanks for writing it up",
            "Get new posts by email",
            "Built with a static site generator",
            "In defence of lock files",
        ),
    ),
    Article(
        "news_en.html",
        "text/html",
        article=(
            "The regional river authority has approved a movable flood barrier",
            "a pair of steel gates that stay open in normal conditions",
            "Construction is due to start next spring",
            "This is the single most important decision we have taken in a generation",
            "Residents upstream have criticised the plan.",
            "promised a separate study of the Millbrook embankments",
            "A final design will be published in the autumn",
        ),
        junk=(
            "We use cookies",
            "Advertisement",
            "Switch your energy supplier",
            "mortgage rates",
            "Road closures on the A41",
            "School roof repairs",
            "Get the morning briefing",
            "About time. My street flooded",
            "Man rescued from quarry",
            "All rights reserved",
            "Share on Facebook",
        ),
    ),
    Article(
        "zh_gbk_meta.html",
        "text/html",  # <meta charset=gbk> only
        article=(
            "今年城东区将为四十六个老旧小区加装电梯一百二十台",
            "每天爬六楼买菜，膝盖实在受不了。",
            "每台电梯财政补贴二十万元",
            "审批时间压缩到三十个工作日以内",
            "目前已有八个楼栋通过协商达成一致",
            "确保电梯“装得上、用得好”",
        ),
        junk=(
            "下载客户端",
            "装修就找江城家装",
            "江城地铁五号线全线贯通",
            "一楼的住户怎么办",
            "江城今年首场马拉松",
            "未经授权禁止转载",
            "当前位置",
        ),
    ),
    Article(
        "zh_gb18030_nocharset.html",
        "text/html",  # GB18030 bytes, no charset anywhere
        article=(
            "海拔八百米的茶园终于迎来了今年第一批春茶",
            "茶芽比往年晚发了将近一周",
            "采茶讲究“一芽一叶”或“一芽二叶”",
            "杀青的火候最难掌握",
            "今年的茶，成了。",
        ),
        junk=(
            "记录一个茶农家庭的四季",
            "冬季茶园管理的几点心得",
            "能网购吗",
            "沙发",
            "返乡第五年",
            "竹林小筑",
            "备案号",
        ),
    ),
)
