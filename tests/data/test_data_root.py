"""`resolve_data_root`: explicit root, then $ORCHESTRA_DATA, then the project and shared folders."""

import os

import pytest

from orchestra.data import paths
from orchestra.data.errors import DataError


def _data_folder(path):
    path.mkdir(parents=True)
    for name in paths.REQUIRED_FILES:
        (path / name).write_text("", encoding="utf-8")
    return path


def test_env_var_names_the_folder(monkeypatch, tmp_path):
    folder = _data_folder(tmp_path / "mine")
    monkeypatch.setenv("ORCHESTRA_DATA", str(folder))
    assert paths.resolve_data_root() == str(folder)


def test_explicit_root_wins_over_env_var(monkeypatch, tmp_path):
    monkeypatch.setenv("ORCHESTRA_DATA", str(_data_folder(tmp_path / "env")))
    explicit = _data_folder(tmp_path / "explicit")
    assert paths.resolve_data_root(str(explicit)) == str(explicit)


def test_explicit_root_without_the_files_is_an_error_naming_it(monkeypatch, tmp_path):
    monkeypatch.setenv("ORCHESTRA_DATA", str(_data_folder(tmp_path / "env")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="tools.jsonl, tasks.jsonl") as e:
        paths.resolve_data_root(str(tmp_path / "empty"))
    assert str(tmp_path / "empty") in str(e.value)


def test_falls_back_to_shared_folder_beside_project(monkeypatch, tmp_path):
    monkeypatch.setenv("ORCHESTRA_DATA", str(tmp_path / "does-not-exist"))
    monkeypatch.setattr(paths, "PROJECT_ROOT", str(tmp_path / "project"))
    shared = _data_folder(tmp_path / "shared" / "data" / "booking")
    assert paths.resolve_data_root() == str(shared)


def test_no_folder_anywhere_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("ORCHESTRA_DATA", raising=False)
    monkeypatch.setattr(paths, "PROJECT_ROOT", str(tmp_path / "project"))
    with pytest.raises(DataError) as e:
        paths.resolve_data_root()
    message = str(e.value)
    assert "$ORCHESTRA_DATA" in message and "data.root" in message
    assert os.path.join(str(tmp_path), "project", "data", "booking") in message
