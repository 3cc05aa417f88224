"""Exported posts build with a real Hexo 7 (from npm) and render as the HTML we meant.

Hexo and its Markdown renderer are installed once into a cache directory (``$XDG_CACHE_HOME`` or
``~/.cache``, ``aggregator-tests/hexo-7``) and reused by later runs; without npm, or when the
registry cannot be reached, the test is skipped with the reason.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from aggregator.models import Entry
from aggregator.publish.hexo import PostSource, export_posts

from .test_hexo import _seed_entry

pytestmark = pytest.mark.slow

PACKAGES = ("hexo@7", "hexo-renderer-marked@6")
CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aggregator-tests" / "hexo-7"
)
# Loads the site, generates it, and prints what Hexo read from each post's front matter.
DRIVER = """
const Hexo = require(process.argv[2]);
const hexo = new Hexo(process.cwd(), {silent: true});
hexo.init()
  .then(() => hexo.call('generate', {}))
  .then(() => {
    const posts = hexo.locals.get('posts').map(p => ({
      title: p.title, author: p.author, path: p.path,
      tags: p.tags.map(t => t.name), categories: p.categories.map(c => c.name),
      headimg: p.headimg || null, thumbnail: p.thumbnail || null,
    }));
    console.log(JSON.stringify(posts));
    return hexo.exit();
  })
  .catch(err => { console.error(err && err.stack || err); process.exit(1); });
"""
HOSTILE_HTML = (
    "<p>Template {{ site.title }} and {% if x %}tag{% endif %}, a {# comment #} and {{{ three }}}; #}.</p>\n"
    "\n"
    "<p>after a blank line</p>\n"
    "    <p>indented by four after the blank line</p>\n"
    "\t\n"
    "<pre>code line 1\n\n    code line 3, indented\n\tcode line 4, tabbed\n```js\nfenced()\n```\n</pre>\r\n"
    "<blockquote>\n\n<p>quoted</p>\n\n</blockquote>\n"
    '<p><a href="https://a.test/?q={{x}}">a {% raw %} link</a></p>'
)


@pytest.fixture(scope="module")
def hexo_module() -> Path:
    """The path of an installed Hexo 7 package (installed once, then cached)."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("Node and npm are not installed: cannot build a real Hexo site")
    module = CACHE / "node_modules" / "hexo"
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    with open(CACHE.parent / "hexo-7.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs at once install it once
        if not (module / "package.json").exists():
            _install(npm)
    return module


def _install(npm: str) -> None:
    staging = CACHE.with_name(f"{CACHE.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    (staging / "package.json").write_text('{"private": true}\n', encoding="utf-8")
    try:
        ping = subprocess.run(
            [npm, "ping", "--fetch-retries=0", "--fetch-timeout=20000"],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if ping.returncode != 0:
            pytest.skip("the npm registry is unreachable: cannot install Hexo")
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", *PACKAGES],
            check=False,
            cwd=staging,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("npm did not answer in time (registry unreachable?): cannot install Hexo")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"could not install Hexo from npm (registry unreachable?): {last}")
    shutil.rmtree(CACHE, ignore_errors=True)
    staging.rename(CACHE)


def _site(root: Path) -> Path:
    """A minimal Hexo site using the cached packages, with a one-line Nunjucks theme: each post's
    page is its rendered HTML between two markers."""
    site = root / "site"
    (site / "source" / "_posts").mkdir(parents=True)
    layout = site / "themes" / "bare" / "layout"
    layout.mkdir(parents=True)
    (layout / "post.njk").write_text("<main>{{ page.content | safe }}</main>\n", encoding="utf-8")
    (layout / "index.njk").write_text("index\n", encoding="utf-8")
    (site / "node_modules").symlink_to(CACHE / "node_modules")
    deps = {"hexo": "^7.0.0", "hexo-renderer-marked": "^6.0.0"}
    (site / "package.json").write_text(
        json.dumps(
            {"name": "site", "private": True, "hexo": {"version": "7.0.0"}, "dependencies": deps}
        ),
        encoding="utf-8",
    )
    (site / "_config.yml").write_text(
        "title: Test site\nurl: http://example.test\nlanguage: en\n"
        "permalink: :year/:month/:day/:title/\ntheme: bare\n",
        encoding="utf-8",
    )
    return site


def _generate(site: Path, module: Path) -> list[dict[str, object]]:
    driver = site / "driver.js"
    driver.write_text(DRIVER, encoding="utf-8")
    done = subprocess.run(
        ["node", str(driver), str(module)],
        check=False,
        cwd=site,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    posts: list[dict[str, object]] = json.loads(done.stdout.strip().splitlines()[-1])
    return posts


def _entry(key: str, title: str, html: str, **kw: object) -> Entry:
    base = Entry(
        source_id="feed",
        key=key,
        title=title,
        link=f"https://a.test/{key}",
        content=html,
        summary=None,
        author=None,
        published=datetime(2024, 3, 1, 12, 0, tzinfo=UTC),
        updated=None,
        category_path=("Tech", "News"),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def _shown(html: str) -> tuple[str, list[str]]:
    """What a browser shows of ``html``: its whitespace-collapsed text, and its <pre> texts exact."""
    soup = BeautifulSoup(html, "html.parser")
    return " ".join(soup.get_text().split()), [pre.get_text() for pre in soup.find_all("pre")]


@pytest.fixture(scope="module")
def built(
    hexo_module: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, list[dict[str, object]]]]:
    """A site built from an export with hostile content, tags, authors and the seed post."""
    site = _site(tmp_path_factory.mktemp("hexo"))
    entries = [
        _entry(
            "hostile",
            "Hostile {{ title }} {% x %}",
            HOSTILE_HTML,
            author="Ann Author",
            categories=("AI", "科技 / 中文"),
        ),
        _entry("plain", "Plain", "<p>no image here</p>"),
        _seed_entry(),
    ]
    sources = {
        "feed": PostSource(title="Feed Title"),
        "qtt": PostSource(site_name="趣头条", placeholder_image=True),
    }
    export_posts(entries, sources, site / "source" / "_posts", "Test site")
    yield site, _generate(site, hexo_module)


def _page(site: Path, posts: list[dict[str, object]], title: str) -> str:
    """The HTML Hexo generated for a post's content (inside the theme's <main>)."""
    post = next(p for p in posts if p["title"] == title)
    page = (site / "public" / str(post["path"]) / "index.html").read_text(encoding="utf-8")
    return page.split("<main>", 1)[1].rsplit("</main>", 1)[0]


def test_hostile_post_builds_and_renders_the_html_we_meant(
    built: tuple[Path, list[dict[str, object]]],
) -> None:
    """`hexo generate` succeeds; the page shows exactly our text and <pre> blocks: template syntax
    kept as text, blank lines and indentation not turned into Markdown code blocks."""
    site, posts = built
    page = _page(site, posts, "Hostile {{ title }} {% x %}")
    assert _shown(page) == _shown(HOSTILE_HTML.replace("\r\n", "\n"))
    soup = BeautifulSoup(page, "html.parser")
    assert soup.find("code") is None  # no Markdown code block was made of our HTML
    assert soup.find("a", href="https://a.test/?q={{x}}") is not None


def test_front_matter_reaches_hexo(built: tuple[Path, list[dict[str, object]]]) -> None:
    """Hexo reads tags from the entry's categories, the author rule, and a placeholder image only
    for the source that asks for one (the Qutoutiao seed keeps its own image)."""
    _, posts = built
    by_title = {p["title"]: p for p in posts}
    hostile = by_title["Hostile {{ title }} {% x %}"]
    assert hostile["tags"] == ["AI", "科技 / 中文"] and hostile["author"] == "Ann Author"
    assert hostile["categories"] == ["Tech", "News"]
    plain = by_title["Plain"]
    assert plain["author"] == "Feed Title" and plain["headimg"] is None and plain["tags"] == []
    seed = by_title["山东潍坊市残联：主动当好残疾人的_小棉袄__店小二__小保姆_"]
    assert seed["author"] == "趣头条" and str(seed["thumbnail"]).startswith("https://cors.zfour")
