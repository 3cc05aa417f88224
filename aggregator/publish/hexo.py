"""Hexo markdown posts: one file per entry, in the exact format of the seed post.

Owns: the post format (front matter and the ``<div>`` around the cleaned HTML, byte for byte), the
file-name rule for titles, and writing a directory of posts so that a second run writes nothing:
unchanged posts are skipped, and a small manifest (``.aggregator-hexo.json``, a hidden file Hexo
ignores) remembers which file belongs to which entry, so a changed entry rewrites its own file and
two entries with the same title get ``<title>.md`` and ``<title>-2.md`` on every run.

Does not own: selecting the entries (publish selection), cleaning their HTML (content cleaning ran
before the entry was stored) or the site names (the caller maps source ids to them).
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

from bs4 import BeautifulSoup, Tag

from ..models import Entry
from ..urls import public_link

MANIFEST = ".aggregator-hexo.json"
_FORBIDDEN = re.compile(r'[\\/:*?"<>|]')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_STEM_BYTES = 200  # file systems allow 255 bytes; leave room for a suffix and ".md"
# A YAML plain scalar is safe when it starts with an ordinary character and holds no ": " or " #".
_PLAIN = re.compile(r"^[^\s\-?:,\[\]{}#&*!|>'\"%@`](?:(?!: | #)[^\n])*(?<!\s)(?<!:)$")
_YAML_WORDS = re.compile(
    r"^(?:true|false|yes|no|on|off|null|~|[-+.\d][\d._:eE+-]*)$", re.IGNORECASE
)


@dataclass(frozen=True)
class ExportStats:
    written: int = 0  # new or changed posts
    unchanged: int = 0  # posts whose file already held the same bytes


def post_filename_title(title: str) -> str:
    """The title with each of ``\\ / : * ? " < > |`` replaced by ``_`` (Hexo's file-name rule)."""
    return _FORBIDDEN.sub("_", title)


def render_post(entry: Entry, site_name: str) -> str:
    """The Hexo post for an entry, exactly in the seed's format."""
    image = public_link(_first_image(entry.content)) or placeholder_image(entry)
    lines = [
        "",
        "---",
        f"title: {_quoted(post_filename_title(_one_line(entry.title)))}",
        "categories: ",
        *(f" - {_scalar(category)}" for category in entry.category_path),
        f"headimg: {_quoted(image)}",
        f"author: {_scalar(site_name)}",
        "comments: false",
        *_date_line(entry.published or entry.first_seen),
        f"thumbnail: {_quoted(image)}",
        "---",
        "",
        "<div>   ",
        f"{entry.content or entry.summary or ''}  ",
        "</div>",
        "            ",
    ]
    return "\n".join(lines)


def placeholder_image(entry: Entry) -> str:
    """A picsum image whose number (0..9999) is derived from the entry's identity, so stable."""
    digest = hashlib.sha256(_entry_id(entry).encode("utf-8")).digest()
    return f"https://picsum.photos/400/300?random={int.from_bytes(digest[:8], 'big') % 10000}"


def export_posts(
    entries: Iterable[Entry], site_names: Mapping[str, str], out_dir: Path
) -> ExportStats:
    """Write one post per entry into ``out_dir``; files that already hold the post are left alone."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(out_dir)
    claimed = set(manifest.values())
    written = unchanged = 0
    for entry in entries:
        post = render_post(entry, site_names.get(entry.source_id) or entry.source_id)
        name = _file_for(entry, post, out_dir, manifest, claimed)
        if _write_if_changed(out_dir / name, post):
            written += 1
        else:
            unchanged += 1
    _write_manifest(out_dir, manifest)
    return ExportStats(written=written, unchanged=unchanged)


def _first_image(html: str | None) -> str | None:
    if not html:
        return None
    img = BeautifulSoup(html, "html.parser").find("img", src=True)
    src = img.get("src") if isinstance(img, Tag) else None
    return src if isinstance(src, str) and src else None


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
