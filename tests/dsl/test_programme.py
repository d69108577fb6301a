"""A programme on disk: its root, its files' names, and the one bad-encoding diagnostic."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsl.errors import PolicyError
from dsl.programme import digest_names, display_path, programme_root, read_sources, sources_for


def _programme(tmp_path: Path) -> Path:
    (tmp_path / "schema.toml").write_text("", encoding="utf-8")
    (tmp_path / "retail").mkdir()
    (tmp_path / "retail" / "earn.policy").write_text("policy p\n  on purchase\n", encoding="utf-8")
    (tmp_path / "..data").mkdir()
    (tmp_path / "..data" / "copy.policy").write_text("policy q\n  on purchase\n", encoding="utf-8")
    return tmp_path


def test_programme_root_is_the_nearest_directory_with_a_schema(tmp_path: Path) -> None:
    """A file or directory below a schema.toml belongs to that directory's programme."""
    root = _programme(tmp_path)
    assert programme_root(root / "retail" / "earn.policy").resolve() == root.resolve()
    assert programme_root(root) == root


def test_digest_names_are_relative_with_forward_slashes_and_skip_hidden_folders(
        tmp_path: Path) -> None:
    """The revision digest names a directory's policies the same wherever it lies; a
    ConfigMap's hidden copies are not policies; one file has no digest names."""
    root = _programme(tmp_path)
    assert digest_names(root) == ["retail/earn.policy"]
    assert digest_names(root / "retail" / "earn.policy") is None


def test_display_path_is_relative_to_the_working_directory_when_below_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file below the working directory is named relative to it, else as given."""
    root = _programme(tmp_path)
    monkeypatch.chdir(root)
    assert display_path(root / "retail" / "earn.policy") == "retail/earn.policy"
    assert display_path(Path("/elsewhere/x.policy")) == "/elsewhere/x.policy"


@pytest.mark.parametrize("read", [read_sources, sources_for], ids=["directory", "cli_sources"])
def test_a_file_that_is_not_utf8_is_one_bad_encoding_diagnostic(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read: object) -> None:
    """Every reader of policy files reports a non-UTF-8 file with the same diagnostic."""
    root = _programme(tmp_path)
    monkeypatch.chdir(root)
    (root / "retail" / "earn.policy").write_bytes(b"policy p\n  on purchase \xff\n")
    with pytest.raises(PolicyError) as caught:
        read(Path("retail/earn.policy") if read is sources_for else Path("retail"))  # type: ignore[operator]
    assert caught.value.render() == (
        "retail/earn.policy:1:1: bad_encoding: the file is not UTF-8 text (byte 23)\n"
        "    = hint: save the file as UTF-8")
