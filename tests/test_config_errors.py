"""Config mistakes an operator makes in the first hour: each one a clear line, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.cli import parser as cli
from aggregator.config import loading as config
from aggregator.errors import ConfigError

FEED = '[[sources]]\nid = "hn"\nurl = "https://hnrss.org/frontpage"\n'


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config.parse(text)
    return info.value.problems


def test_strings_are_not_numbers_or_booleans() -> None:
    """``port = "8080"`` and ``enabled = "yes"`` are rejected, not converted."""
    found = problems('[server]\nport = "8080"\n' + FEED + 'enabled = "yes"\n')
    assert any(p.startswith("server.port:") for p in found), found
    assert any(p.startswith("sources[0] (id=hn).enabled:") for p in found), found
    assert len(found) == 2


def test_urls_with_spaces_or_bad_hosts_are_rejected() -> None:
    """``http://exa mple.com/feed`` is not a URL."""
    found = problems('[[sources]]\nid = "x"\nurl = "http://exa mple.com/feed"\n')
    assert found[0].startswith("sources[0] (id=x).url: not an http(s) URL"), found


def test_a_number_as_category_is_an_error_not_a_traceback() -> None:
    """``category = 5`` says what a category is."""
    found = problems(FEED + "category = 5\n")
    assert found == [
        "sources[0] (id=hn).category: a category path is a string 'a / b' or a list of strings"
    ]


def test_single_bracket_sources_says_to_use_double_brackets() -> None:
    """``[sources]`` instead of ``[[sources]]`` names the fix."""
    found = problems('[sources]\nid = "hn"\nurl = "https://hnrss.org/frontpage"\n')
    assert found == [
        "sources: write each source as a [[sources]] table (double brackets), not [sources]"
    ]


def test_unknown_keys_suggest_the_near_one() -> None:
    """A misspelt key gets "did you mean"."""
    found = problems("[server]\nprot = 8080\n" + FEED + 'intervall = "1h"\n')
    assert "server.prot: unknown key (did you mean 'port'?)" in found
    assert "sources[0] (id=hn): intervall: unknown key (did you mean 'interval'?)" in found


def test_duplicate_ids_come_with_the_other_errors() -> None:
    """A repeated source id is reported in the same pass as a field error."""
    found = problems(FEED + FEED + '[[sources]]\nid = "b"\nurl = "ftp://x"\n')
    assert "sources[1] (id=hn): duplicate source id 'hn'" in found
    assert any(p.startswith("sources[2] (id=b).url:") for p in found), found


def test_problems_carry_their_line_numbers() -> None:
    """Each problem knows the line of the key (or table) it is about."""
    text = '[server]\nport = "x"\n\n' + FEED + FEED.replace('"hn"', '"b"') + 'enabled = "no"\n'
    with pytest.raises(ConfigError) as info:
        config.parse(text)
    lines = dict(zip(info.value.problems, info.value.lines))
    assert lines["server.port: Input should be a valid integer"] == 2
    assert [n for p, n in lines.items() if p.startswith("sources[1] (id=b).enabled")] == [10]


def test_qutoutiao_cid_must_be_positive() -> None:
    """``cid = 0`` or ``-5`` is out of range."""
    for cid in (0, -5):
        found = problems(f'[[sources]]\nid = "q"\nkind = "qutoutiao"\ncid = {cid}\n')
        assert found[0].startswith(
            "sources[0] (id=q): cid: Input should be greater than or equal to 1"
        ), found


def test_check_prints_file_line_and_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``aggregator check`` names the file and the line of each problem, exit 2, no traceback."""
    path = tmp_path / "bad.toml"
    path.write_text(FEED + "category = 5\n", encoding="utf-8")
    assert cli.main(["check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:4: sources[0] (id=hn).category:" in err
    assert "Traceback" not in err


def test_wrong_shapes_are_worded_in_toml_terms() -> None:
    """A string where a list goes, or a list of numbers where tables go, says what to write."""
    assert problems('[server]\nprivate = "status"\n') == [
        'server.private: expected a list, such as ["a", "b"]'
    ]
    assert problems('sources = "x"\n') == [
        "sources: write each source as a [[sources]] table (double brackets)"
    ]
    assert problems("sources = [1]\n") == [
        "sources[0]: expected a table ([name], [[name]] or { key = value })"
    ]
