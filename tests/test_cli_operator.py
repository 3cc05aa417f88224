"""The command line as a new operator meets it: init, global options anywhere, --version, --json,
full-width piped output and the documented exit codes (0 ok, 1 some sources failed, 2 usage or
config error)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from aggregator.cli import parser as cli
from aggregator.config import loading as config

from .ops_stack import make_config
from .origin import Origin, Reply
from .test_reload import atom

LONG = "https://example.org/" + "a-very-long-path-segment/" * 6 + "feed.xml"


def test_init_writes_a_valid_commented_starter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`aggregator init PATH` writes the packaged starter config, which `check` accepts; a second
    init refuses to overwrite it."""
    path = tmp_path / "etc" / "aggregator.toml"
    assert cli.main(["init", str(path)]) == 0
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# aggregator") and "[[sources]]" in text
    assert config.parse(text).sources
    assert cli.main(["check", "--config", str(path)]) == 0
    assert cli.main(["init", str(path)]) == 1
    assert "--force" in capsys.readouterr().err


def test_a_missing_config_says_how_to_get_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config file that does not exist: exit 2 and a pointer to `aggregator init`."""
    missing = tmp_path / "nope.toml"
    assert cli.main(["check", "--config", str(missing)]) == 2
    assert f"aggregator init {missing}" in capsys.readouterr().err


def test_global_options_before_or_after_the_subcommand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--config` and `--json` work on either side of the subcommand, nested ones included."""
    path = tmp_path / "a.toml"
    assert cli.main(["init", str(path)]) == 0
    capsys.readouterr()
    assert cli.main(["check", "--config", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"config": str(path), "ok": True, "sources": 1}
    assert cli.main(["--json", "--config", str(path), "check"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert cli.main(["export", "opml", "--config", str(path)]) == 0
    assert "blog.python.org" in capsys.readouterr().out


def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    """`aggregator --version` prints the package version."""
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"aggregator {cli._version()}"


def test_check_json_lists_problems_with_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`check --json` on a bad config: exit 2 and each problem with file and line as JSON."""
    path = tmp_path / "bad.toml"
    path.write_text('[server]\nport = "8080"\n', encoding="utf-8")
    assert cli.main(["check", "--json", "--config", str(path)]) == 2
    found = json.loads(capsys.readouterr().out)
    assert found["ok"] is False
    assert found["problems"] == [
        {"file": str(path), "line": 2, "problem": "server.port: Input should be a valid integer"}
    ]


def test_fetch_exits_1_when_some_sources_fail_and_json_says_which(
    tmp_path: Path, origin: Origin, capsys: pytest.CaptureFixture[str]
) -> None:
    """One failing source of two: exit 1; `--json` gives every outcome; an unknown --source is a
    usage error (2)."""
    path, _ = make_config(tmp_path, origin, {"alpha": atom("alpha", ["A1"]), "beta": b""})
    origin.route("/beta", Reply(b"nope", status=404, content_type="text/plain"))
    assert cli.main(["fetch", "--config", str(path), "--json"]) == 1
    found = json.loads(capsys.readouterr().out)
    assert (found["sources"], found["added"], found["failed"]) == (2, 1, 1)
    assert [(o["source"], o["outcome"]) for o in found["outcomes"]] == [
        ("alpha", "ok"),
        ("beta", "error"),
    ]
    assert cli.main(["fetch", "--config", str(path), "--source", "alpha"]) == 0
    assert cli.main(["fetch", "--config", str(path), "--source", "nope"]) == 2


def test_sources_json_and_full_width_when_piped(
    tmp_path: Path, origin: Origin, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sources --json` gives each row with absolute times; piped, the table keeps long URLs whole."""
    path, _ = make_config(tmp_path, origin, {"alpha": atom("alpha", ["A1"])})
    url = origin.route(
        "/" + LONG.split("/", 3)[3], Reply(atom("x", ["X"]), content_type="application/atom+xml")
    )
    path.write_text(
        path.read_text() + f'\n[[sources]]\nid = "long"\nurl = "{url}"\n', encoding="utf-8"
    )
    assert cli.main(["fetch", "--config", str(path)]) == 0
    capsys.readouterr()
    assert cli.main(["sources", "--config", str(path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["status"], r["entries"]) for r in rows] == [
        ("alpha", "ok", 1),
        ("long", "ok", 1),
    ]
    assert rows[0]["last_success"].startswith("20")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from aggregator.cli.main import main; sys.exit(main())",
            "sources",
            "--config",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
        env=_env_without_columns(),
    )
    assert done.returncode == 0, done.stderr
    assert url in done.stdout


def _env_without_columns() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}


def test_check_source_shows_entries_already_stored(
    tmp_path: Path, origin: Origin, capsys: pytest.CaptureFixture[str]
) -> None:
    """`check --source` after a fetch still lists every entry, marked as already stored."""
    path, _ = make_config(tmp_path, origin, {"alpha": atom("alpha", ["First title", "Second"])})
    assert cli.main(["fetch", "--config", str(path)]) == 0
    capsys.readouterr()
    assert cli.main(["check", "--source", "alpha", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "First title" in out and "Second" in out
    assert "would store: 0 new, 0 changed, 0 dropped (nothing was stored); 2 already stored" in out
    assert cli.main(["check", "--source", "alpha", "--config", str(path), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["dry_run"]
    assert (found["new"], found["stored"]) == (0, 2)
    assert sorted(e["title"] for e in found["entries"]) == ["First title", "Second"]


def test_explain_json(tmp_path: Path, origin: Origin, capsys: pytest.CaptureFixture[str]) -> None:
    """`explain --json` gives the entry's categories and reasons; no match: exit 1."""
    path, _ = make_config(tmp_path, origin, {"alpha": atom("alpha", ["First title"])})
    assert cli.main(["fetch", "--config", str(path)]) == 0
    capsys.readouterr()
    assert cli.main(["explain", "1", "--config", str(path), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [(e["id"], e["title"], e["source"]) for e in found["entries"]] == [
        (1, "First title", "alpha")
    ]
    assert cli.main(["explain", "nothing-like-this", "--json", "--config", str(path)]) == 1


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    return {
        name
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for name in action.choices
    }


def test_every_command_has_a_handler() -> None:
    """Each subcommand of the argument tree names a handler that its group's module defines."""
    commands = _commands(cli.build_parser())
    assert commands == set(cli.HANDLERS)
    assert all(callable(cli.handler(command)) for command in commands)


def test_help_loads_no_command_group() -> None:
    """`aggregator --help` builds the argument tree without importing a command group, the
    database layer or rich: each group's module is imported only when one of its commands runs."""
    probe = (
        "import sys; from aggregator.cli.parser import build_parser; build_parser(); "
        "print(sorted(m for m in sys.modules if m.startswith(('aggregator.cli.', 'sqlalchemy', "
        "'rich', 'aggregator.config', 'aggregator.store'))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['aggregator.cli.parser']"
