"""Categories as data: the source's category path, the feed's own categories through an alias
table, ordered rules that add categories or drop the entry, and include/exclude filters.

Owns the decision for one entry and its explanation (what ``aggregator explain`` prints): which
feed categories were kept and under what name, which rule added what, which rule or filter
dropped the entry. Does not own: where categories are stored or published (store/, publish/),
reading the config (config/settings.py builds ``CategorizeSettings``; ``Categorizer.from_settings``
turns it into these records). Regular expressions from the config are compiled with RE2, so a rule
runs in time linear in the text whatever its pattern.

Order of one decision: feed categories (aliased, de-duplicated) -> rules in config order (each
sees the categories so far; the first rule that drops ends the chain) -> exclude filters (any
match drops) -> include filters (for each scope, global or the source's, that has include
filters, at least one must match).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import re2

from .config.settings import CategorizeSettings, ConditionSettings, MatchField
from .content.text import html_text

StepKind = Literal["feed", "rule", "exclude", "include"]


@dataclass(frozen=True)
class Rule:
    """If ``match_field`` matches ``keywords`` (any) or ``regex``: add categories, or drop."""

    match_field: MatchField
    keywords: tuple[str, ...] | None = None
    regex: str | None = None
    add: tuple[str, ...] = ()
    drop: bool = False
    name: str = ""
    sources: tuple[str, ...] = ()  # only entries of these sources; empty: every source

    def applies_to(self, source_id: str | None) -> bool:
        return not self.sources or source_id in self.sources


@dataclass(frozen=True)
class Filter:
    """An include or exclude condition; ``scope`` is "global" or the source id it belongs to."""

    match_field: MatchField
    keywords: tuple[str, ...] | None = None
    regex: str | None = None
    name: str = ""
    scope: str = "global"


@dataclass(frozen=True)
class Fields:
    """The text of an entry that rules look at (content may be HTML; it is matched as text)."""

    title: str | None = None
    content: str | None = None
    author: str | None = None
    link: str | None = None


@dataclass(frozen=True)
class Step:
    """One line of an explanation."""

    kind: StepKind
    name: str
    detail: str

    def __str__(self) -> str:
        return (
            f"{self.kind} {self.name}: {self.detail}"
            if self.name
            else f"{self.kind}: {self.detail}"
        )


@dataclass(frozen=True)
class Decision:
    categories: tuple[str, ...]
    category_path: tuple[str, ...]
    dropped: bool
    explanation: tuple[Step, ...]

    @property
    def dropped_by(self) -> Step | None:
        return self.explanation[-1] if self.dropped and self.explanation else None


class AliasTable:
    """Variants of a category name (case-insensitive, surrounding spaces ignored) -> one name."""

    def __init__(self, mapping: Mapping[str, Iterable[str]] | None = None) -> None:
        self._canonical: dict[str, str] = {}
        for canonical, variants in (mapping or {}).items():
            for name in (canonical, *variants):
                key = _fold(name)
                if self._canonical.setdefault(key, canonical) != canonical:
                    raise ValueError(
                        f"{name!r} is a variant of {self._canonical[key]!r} and {canonical!r}"
                    )

    def canonical(self, name: str) -> str:
        """The canonical name of ``name``, or ``name`` stripped when no alias knows it; a name
        with ``/`` is a category path and spelled as one (``科技 / 中文`` is ``科技/中文``)."""
        return spell_category(self._canonical.get(_fold(name), name.strip()))

    def canonicalize(self, names: Iterable[str]) -> tuple[str, ...]:
        """Canonical names in first-seen order, each once, blanks dropped."""
        out: dict[str, None] = {}
        for name in names:
            if name.strip():
                out.setdefault(self.canonical(name), None)
        return tuple(out)


def spell_category(name: str) -> str:
    """The one spelling of a category name that is a path: parts stripped, joined by ``/`` (as
    category paths are published and addressed: ``/feeds/category/a/b``)."""
    if "/" not in name:
        return name.strip()
    return "/".join(p.strip() for p in name.split("/") if p.strip())


def category_paths(names: Iterable[str]) -> list[tuple[str, ...]]:
    """Category names as paths (``a/b`` is ("a", "b")); blanks dropped."""
    return [tuple(spell_category(n).split("/")) for n in names if spell_category(n)]


def _fold(name: str) -> str:
    return " ".join(name.split()).casefold()


# --- matching -------------------------------------------------------------------------------------


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False
    return options


@lru_cache(maxsize=1024)
def _pattern(regex: str | None, keywords: tuple[str, ...] | None) -> Any:  # an RE2 program
    """One RE2 program for a condition: the regex as written, or the keywords as alternatives,
    case-insensitive, with a word boundary at each end that is an ASCII letter or digit (so "AI"
    does not match "said", while Chinese keywords, having no spaces to find words by, match
    anywhere)."""
    if regex is not None:
        return re2.compile(regex, _options())
    parts = [_keyword(k.strip()) for k in keywords or () if k.strip()]
    return re2.compile("(?i)(?:" + "|".join(parts or ["$^"]) + ")", _options())


def _keyword(word: str) -> str:
    head = r"\b" if word[0].isascii() and word[0].isalnum() else ""
    tail = r"\b" if word[-1].isascii() and word[-1].isalnum() else ""
    escaped: str = re2.escape(word)
    return head + escaped + tail


def _text_of(fields: Fields, match_field: MatchField, categories: Sequence[str]) -> list[str]:
    if match_field == "categories":
        return list(categories)
    if match_field == "content":
        return [html_text(fields.content)]
    value = getattr(fields, match_field)
    return [value] if value else []


def match(cond: Rule | Filter, fields: Fields, categories: Sequence[str]) -> str | None:
    """Why ``cond`` matches (``title has keyword 'GPT'``), or None when it does not."""
    program = _pattern(cond.regex, cond.keywords)
    for text in _text_of(fields, cond.match_field, categories):
        found = program.search(text)
        if found is None:
            continue
        if cond.regex is not None:
            return f"{cond.match_field} matches regex {cond.regex!r} ({found.group(0)!r})"
        return f"{cond.match_field} has keyword {found.group(0)!r}"
    return None


# --- the decision ---------------------------------------------------------------------------------


@dataclass
class _Run:
    fields: Fields
    categories: list[str]
    steps: list[Step] = field(default_factory=list)
    dropped: bool = False


def categorize(
    entry_fields: Fields,
    source_category_path: Sequence[str],
    feed_categories: Sequence[str],
    rules: Sequence[Rule],
    aliases: AliasTable,
    include: Sequence[Filter] = (),
    exclude: Sequence[Filter] = (),
    *,
    source_id: str | None = None,
) -> Decision:
    """Categories, category path and the drop decision for one entry, with the reasons.

    ``rules`` run in order and only those that apply to ``source_id``; ``include`` and
    ``exclude`` are the filters for this entry (global ones and its source's, told apart by
    ``Filter.scope``)."""
    run = _Run(entry_fields, list(aliases.canonicalize(feed_categories)))
    _explain_feed(run, feed_categories, aliases)
    for number, rule in enumerate(rules, 1):
        if not run.dropped and rule.applies_to(source_id):
            _apply_rule(run, rule, number, aliases)
    if not run.dropped:
        _apply_exclude(run, exclude)
    if not run.dropped:
        _apply_include(run, include)
    return Decision(
        tuple(run.categories), tuple(source_category_path), run.dropped, tuple(run.steps)
    )


def _explain_feed(run: _Run, feed_categories: Sequence[str], aliases: AliasTable) -> None:
    shown = []
    for name in feed_categories:
        canonical = aliases.canonical(name)
        if name.strip():
            shown.append(
                canonical if canonical == name.strip() else f"{canonical} (as {name.strip()!r})"
            )
    if shown:
        run.steps.append(Step("feed", "", "kept the feed's categories " + ", ".join(shown)))


def _label(cond: Rule | Filter, number: int) -> str:
    return repr(cond.name) if cond.name else f"#{number}"


def _apply_rule(run: _Run, rule: Rule, number: int, aliases: AliasTable) -> None:
    why = match(rule, run.fields, run.categories)
    if why is None:
        return
    if rule.drop:
        run.dropped = True
        run.steps.append(Step("rule", _label(rule, number), f"{why}: dropped"))
        return
    added = [name for name in aliases.canonicalize(rule.add) if name not in run.categories]
    run.categories += added
    result = "added " + ", ".join(added) if added else "nothing new to add"
    run.steps.append(Step("rule", _label(rule, number), f"{why}: {result}"))


def _apply_exclude(run: _Run, exclude: Sequence[Filter]) -> None:
    for number, filt in enumerate(exclude, 1):
        why = match(filt, run.fields, run.categories)
        if why is not None:
            run.dropped = True
            run.steps.append(
                Step("exclude", f"{_label(filt, number)} ({filt.scope})", f"{why}: dropped")
            )
            return


def _apply_include(run: _Run, include: Sequence[Filter]) -> None:
    scopes: dict[str, list[Filter]] = {}
    for filt in include:
        scopes.setdefault(filt.scope, []).append(filt)
    for scope, filters in scopes.items():
        reasons = [why for f in filters if (why := match(f, run.fields, run.categories))]
        if not reasons:
            run.dropped = True
            run.steps.append(Step("include", f"({scope})", "no include filter matched: dropped"))
            return
        run.steps.append(Step("include", f"({scope})", f"kept: {reasons[0]}"))


# --- from the config ------------------------------------------------------------------------------


def _filter(cond: ConditionSettings, scope: str) -> Filter:
    return Filter(cond.field, cond.keywords, cond.regex, cond.name or "", scope)


@dataclass(frozen=True)
class Categorizer:
    """The ``[categorize]`` section as records, ready to decide for any source's entries."""

    rules: tuple[Rule, ...] = ()
    aliases: AliasTable = field(default_factory=AliasTable)
    include: tuple[Filter, ...] = ()
    exclude: tuple[Filter, ...] = ()
    per_source: Mapping[str, tuple[tuple[Filter, ...], tuple[Filter, ...]]] = field(
        default_factory=dict
    )

    @classmethod
    def from_settings(cls, settings: CategorizeSettings) -> Categorizer:
        rules = tuple(
            Rule(r.field, r.keywords, r.regex, r.add, r.drop, r.name or "", r.sources)
            for r in settings.rules
        )
        per_source = {
            f.source: (
                tuple(_filter(c, f.source) for c in f.include),
                tuple(_filter(c, f.source) for c in f.exclude),
            )
            for f in settings.filters
        }
        return cls(
            rules,
            AliasTable(settings.aliases),
            tuple(_filter(c, "global") for c in settings.include),
            tuple(_filter(c, "global") for c in settings.exclude),
            per_source,
        )

    def decide(
        self,
        source_id: str,
        fields: Fields,
        source_category_path: Sequence[str],
        feed_categories: Sequence[str],
    ) -> Decision:
        """``categorize`` with this config's rules and the global and ``source_id``'s filters."""
        include, exclude = self.per_source.get(source_id, ((), ()))
        return categorize(
            fields,
            source_category_path,
            feed_categories,
            self.rules,
            self.aliases,
            self.include + include,
            self.exclude + exclude,
            source_id=source_id,
        )
