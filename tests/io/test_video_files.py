"""The one walk every folder-taking command uses: symlinked folders followed, each once."""

from __future__ import annotations

from pathlib import Path

from resaction.data.manifests import read_manifest
from resaction.data.video_lists import list_videos
from resaction.io.video_files import videos_under


def test_symlinked_folders_are_searched_once_and_hidden_files_skipped(tmp_path: Path) -> None:
    other_disk = tmp_path / "disk2" / "footage"
    other_disk.mkdir(parents=True)
    for name in ("b.mp4", "a.avi", ".partial.mp4", "notes.txt"):
        (other_disk / name).write_bytes(b"")
    archive = tmp_path / "archive"
    (archive / "cam1").mkdir(parents=True)
    (archive / "cam1" / "z.mkv").write_bytes(b"")
    (archive / "cam2").symlink_to(other_disk, target_is_directory=True)
    (archive / "cam1" / "loop").symlink_to(archive, target_is_directory=True)  # a cycle

    found = videos_under(archive)
    assert [p.relative_to(archive).as_posix() for p in found] == [
        "cam1/z.mkv",
        "cam2/a.avi",
        "cam2/b.mp4",
    ]
    assert list_videos(archive) == found  # batch and pretrain
    classes = tmp_path / "classes"
    classes.mkdir()
    (classes / "fight").symlink_to(other_disk, target_is_directory=True)
    (classes / "walk").mkdir()
    (classes / "walk" / "w.mp4").write_bytes(b"")
    manifest = read_manifest(classes)  # training's class folders
    assert sorted(Path(e.path).name for e in manifest) == ["a.avi", "b.mp4", "w.mp4"]
