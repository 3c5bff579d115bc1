"""Files written whole or not at all, readable as a plain ``open`` would make them."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from resaction.errors import CheckpointError, ConfigError
from resaction.outputs import check_output_dir, replaced_atomically


def test_a_replaced_file_is_whole_or_untouched_and_has_the_usual_permissions(
    tmp_path: Path,
) -> None:
    path = tmp_path / "model.onnx"
    path.write_text("old")
    with pytest.raises(RuntimeError), replaced_atomically(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["model.onnx"]

    with replaced_atomically(tmp_path / "new" / "model.onnx") as tmp:
        tmp.write_text("new")
    written, plain = tmp_path / "new" / "model.onnx", tmp_path / "plain"
    plain.write_text("")
    assert written.read_text() == "new"
    mode = stat.S_IMODE(written.stat().st_mode)
    assert mode == stat.S_IMODE(plain.stat().st_mode) and mode & stat.S_IROTH, "mkstemp's 0600"

    folder = pytest.raises(CheckpointError, match="is a folder; give a file name")
    with folder, replaced_atomically(tmp_path / "new", CheckpointError):
        pass


def test_an_output_folder_under_a_file_is_refused_without_making_anything(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"cannot be made: .*file is a file"):
        check_output_dir(tmp_path / "file" / "run")
    assert check_output_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()
