"""Hexo markdown posts: one file per entry, in the exact format of the seed post.

Owns: the post format (front matter and the ``<div>`` around the cleaned HTML, byte for byte), who
a post's ``author`` is, making the HTML inert to Hexo (no Nunjucks syntax, no fenced code blocks,
no tabs, no blank lines, which end Markdown's HTML block and turn the indented lines after them
into a code block: each is rewritten with character references that mean the same HTML), the
file-name rule for titles, and writing a directory of posts so that a second run writes nothing:
unchanged posts are skipped, and a small manifest (``.aggregator-hexo.json``, a hidden file Hexo
ignores) remembers which file belongs to which entry, so a changed entry rewrites its own file and
two entries with the same title get ``<title>.md`` and ``<title>-2.md`` on every run.

Does not own: selecting the entries (publish selection), cleaning their HTML (content cleaning ran
before the entry was stored) or the sources' names and options (the caller gives a ``PostSource``
per source id).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from ..content.text import first_image
from ..content.urls import public_link
from ..models import Entry

MANIFEST = ".aggregator-hexo.json"
_FORBIDDEN = re.compile(r'[\\/:*?"<>|]')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_STEM_BYTES = 200  # file systems allow 255 bytes; leave room for a suffix and ".md"
# A YAML plain scalar is safe when it starts with an ordinary character and holds no ": " or " #".
_PLAIN = re.compile(r"^[^\s\-?:,\[\]{}#&*!|>'\"%@`](?:(?!: | #)[^\n])*(?<!\s)(?<!:)$")
_YAML_WORDS = re.compile(
    r"^(?:true|false|yes|no|on|off|null|~|[-+.\d][\d._:eE+-]*)$", re.IGNORECASE
)


_CR = re.compile(r"\r\n?")
_BLANK_LINE = re.compile(r"(?<=\n)([ \t]*)\n")  # a line Markdown reads as blank, and its newline
_TEMPLATE_OPEN = re.compile(r"\{(?=[{%#])")  # what starts a Nunjucks variable, tag or comment
_COMMENT_CLOSE = re.compile(r"#(?=\})")  # Nunjucks fails on a comment end outside a comment
_FENCE = re.compile(r"(?m)^([ \t>]*)([`~])(?=\2\2)")  # a line Hexo would take for a code fence


@dataclass(frozen=True)
class PostSource:
    """What a post needs from its source's configuration and store record."""

    site_name: str | None = None  # when set, the author of every post (the Qutoutiao default)
    title: str | None = None  # the configured title, else the feed's own
    placeholder_image: bool = False  # a picsum image for posts without an image of their own


@dataclass(frozen=True)
class ExportStats:
    written: int = 0  # new or changed posts
    unchanged: int = 0  # posts whose file already held the same bytes


def post_filename_title(title: str) -> str:
    """The title with each of ``\\ / : * ? " < > |`` replaced by ``_`` (Hexo's file-name rule)."""
    return _FORBIDDEN.sub("_", title)


def post_author(entry: Entry, source: PostSource, site_title: str) -> str:
    """The source's ``site_name`` when set, else the entry's author, else the source's title,
    else the site's title."""
    return source.site_name or (entry.author or "").strip() or source.title or site_title


def render_post(entry: Entry, author: str, placeholder: bool = False) -> str:
    """The Hexo post for an entry, exactly in the seed's format; ``tags`` only when the entry has
    categories, ``headimg``/``thumbnail`` only with an image (a placeholder when asked for)."""
    image = public_link(first_image(entry.content)) or (
        placeholder_image(entry) if placeholder else None
    )
    tags = list(dict.fromkeys(c for c in entry.categories if c.strip()))
    lines = [
        "",
        "---",
        f"title: {_quoted(post_filename_title(_one_line(entry.title)))}",
        "categories: ",
        *(f" - {_scalar(category)}" for category in entry.category_path),
        *(["tags: ", *(f" - {_scalar(tag)}" for tag in tags)] if tags else []),
        *([f"headimg: {_quoted(image)}"] if image else []),
        f"author: {_scalar(author)}",
        "comments: false",
        *_date_line(entry.published or entry.first_seen),
        *([f"thumbnail: {_quoted(image)}"] if image else []),
        "---",
        "",
        _inert(f"<div>   \n{entry.content or entry.summary or ''}  \n</div>"),
        "            ",
    ]
    return "\n".join(lines)


def _inert(html: str) -> str:
    """``html`` as the same HTML that Hexo passes through untouched: ``{`` before ``{``, ``%`` or
    ``#`` as ``&#123;`` and ``#`` before ``}`` as ``&#35;`` (Nunjucks would run, drop or reject
    them), tabs as ``&#9;`` (Markdown turns them into spaces, even in ``<pre>``), the first of a
    line-leading ``` or ~~~ as ``&#96;``/``&#126;`` (Hexo's code-fence filter), and each blank
    line's newline as ``&#10;`` (a blank line ends Markdown's HTML block). The cleaned HTML has
    these characters only in text and attribute values, where a character reference means its
    character, so what a browser shows, ``<pre>`` included, is unchanged."""
    html = _CR.sub("\n", html)  # HTML reads CR and CR LF as LF; Markdown sees them as line ends
    html = _TEMPLATE_OPEN.sub("&#123;", html)
    html = _COMMENT_CLOSE.sub("&#35;", html).replace("\t", "&#9;")
    html = _FENCE.sub(lambda m: m.group(1) + ("&#96;" if m.group(2) == "`" else "&#126;"), html)
    return _BLANK_LINE.sub(r"\1&#10;", html)


def placeholder_image(entry: Entry) -> str:
    """A picsum image whose number (0..9999) is derived from the entry's identity, so stable."""
    digest = hashlib.sha256(_entry_id(entry).encode("utf-8")).digest()
    return f"https://picsum.photos/400/300?random={int.from_bytes(digest[:8], 'big') % 10000}"


def export_posts(
    entries: Iterable[Entry],
    sources: Mapping[str, PostSource],
    out_dir: Path,
    site_title: str = "aggregator",
) -> ExportStats:
    """Write one post per entry into ``out_dir``; files that already hold the post are left alone."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(out_dir)
    claimed = set(manifest.values())
    written = unchanged = 0
    for entry in entries:
        source = sources.get(entry.source_id) or PostSource()
        author = post_author(entry, source, site_title)
        post = render_post(entry, author, source.placeholder_image)
        name = _file_for(entry, post, out_dir, manifest, claimed)
        if _write_if_changed(out_dir / name, post):
            written += 1
        else:
            unchanged += 1
    _write_manifest(out_dir, manifest)
    return ExportStats(written=written, unchanged=unchanged)


def _one_line(text: str) -> str:
    return _CONTROL.sub(" ", text)


def _quoted(text: str) -> str:
    return "'" + _one_line(text).replace("'", "''") + "'"


def _scalar(text: str) -> str:
    """``text`` as a plain YAML scalar when that reads back the same, else single-quoted."""
    text = _one_line(text)
    return text if _PLAIN.match(text) and not _YAML_WORDS.match(text) else _quoted(text)


def _date_line(when: datetime | None) -> list[str]:
    if when is None:
        return []  # Hexo then uses the file's time; inventing one would change on every run
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)
    return [f"date: {format_datetime(aware.astimezone(UTC), usegmt=True)}"]


def _entry_id(entry: Entry) -> str:
    return f"{entry.source_id}:{entry.key}"  # source ids never contain ":"


def _file_for(
    entry: Entry, post: str, out_dir: Path, manifest: dict[str, str], claimed: set[str]
) -> str:
    """The file of this entry: the one the manifest remembers, else the first free name."""
    known = manifest.get(_entry_id(entry))
    if known is not None:
        return known
    stem = _file_stem(entry.title)
    names = (f"{stem}.md" if n == 1 else f"{stem}-{n}.md" for n in itertools.count(1))
    name = next(n for n in names if n not in claimed and _free_or_same(out_dir / n, post))
    claimed.add(name)
    manifest[_entry_id(entry)] = name
    return name


def _free_or_same(path: Path, post: str) -> bool:
    """A file name can be taken when nothing is there or it already holds exactly this post."""
    try:
        return path.read_bytes() == post.encode("utf-8")
    except FileNotFoundError:
        return True


def _file_stem(title: str) -> str:
    """The title rule plus what a file name needs: one line, no leading dot, a bounded length."""
    stem = post_filename_title(_one_line(title)).strip().lstrip(".").rstrip(". ")
    encoded = stem.encode("utf-8")[:_MAX_STEM_BYTES]
    stem = encoded.decode("utf-8", errors="ignore").rstrip(". ")
    return stem or "untitled"


def _write_if_changed(path: Path, text: str) -> bool:
    data = text.encode("utf-8")
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # a reader (hexo server) never sees half a post
    return True


def _read_manifest(out_dir: Path) -> dict[str, str]:
    try:
        data = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items() if isinstance(v, str)}


def _write_manifest(out_dir: Path, manifest: dict[str, str]) -> None:
    text = json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    _write_if_changed(out_dir / MANIFEST, text)
