"""A new user's mistakes with paths and database URLs: one line that says what is wrong and a
non-zero exit, never a traceback (found trying the README's commands as a new user)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.cli import parser as cli


def _config(tmp_path: Path, url: str) -> Path:
    """The starter config with its store at ``url``."""
    path = tmp_path / "aggregator.toml"
    assert cli.main(["init", str(path)]) == 0
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace('url = "sqlite:///data/aggregator.db"', f'url = "{url}"'), encoding="utf-8"
    )
    return path


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_a_sqlite_file_whose_directory_cannot_be_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The SQLite file's directory would be under a regular file: the store cannot be opened."""
    (tmp_path / "afile").write_text("x")
    path = _config(tmp_path, f"sqlite:///{tmp_path}/afile/data/aggregator.db")
    capsys.readouterr()
    assert cli.main(["sources", "--config", str(path)]) == 1
    assert "afile" in _one_error_line(capsys.readouterr().err)


def test_a_database_url_that_is_neither_sqlite_nor_postgresql(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``db upgrade --url mysql://…``: named as unsupported, not a missing driver's traceback."""
    path = _config(tmp_path, f"sqlite:///{tmp_path}/data.db")
    capsys.readouterr()
    assert cli.main(["db", "upgrade", "--url", "mysql://user@host/db", "--config", str(path)]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "mysql" in line and "sqlite" in line and "postgresql" in line


@pytest.mark.parametrize(
    "command", [["build", "--out"], ["export", "hexo", "--out"], ["export", "opml", "--out"]]
)
def test_an_output_path_that_cannot_be_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """``--out`` under a regular file: the command says it cannot write there."""
    (tmp_path / "afile").write_text("x")
    path = _config(tmp_path, f"sqlite:///{tmp_path}/data.db")
    capsys.readouterr()
    assert cli.main([*command, str(tmp_path / "afile" / "out"), "--config", str(path)]) == 1
    assert "afile" in _one_error_line(capsys.readouterr().err)


def test_init_into_a_path_that_cannot_be_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "afile").write_text("x")
    assert cli.main(["init", str(tmp_path / "afile" / "etc" / "aggregator.toml")]) == 1
    assert "afile" in _one_error_line(capsys.readouterr().err)


def test_check_names_a_storage_url_of_another_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``[storage] url = "mysql://…"`` is a config error that ``check`` reports with its line,
    not a traceback when the daemon first opens the store."""
    path = _config(tmp_path, "mysql://user:pw@host/db")
    capsys.readouterr()
    assert cli.main(["check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "storage.url" in err and "postgresql://" in err and "pw" not in err


def test_export_hexo_of_an_unknown_source_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A misspelt ``--source`` exits 2 and names it, as ``fetch --source`` does, instead of
    "0 written" and success."""
    path = _config(tmp_path, f"sqlite:///{tmp_path}/data.db")
    capsys.readouterr()
    out = tmp_path / "posts"
    assert (
        cli.main(
            [
                "export",
                "hexo",
                "--out",
                str(out),
                "--source",
                "pyton-insider",
                "--config",
                str(path),
            ]
        )
        == 2
    )
    assert "pyton-insider" in _one_error_line(capsys.readouterr().err)
    assert (
        cli.main(
            [
                "export",
                "hexo",
                "--out",
                str(out),
                "--source",
                "python-insider",
                "--config",
                str(path),
            ]
        )
        == 0
    )
