from __future__ import annotations

from pathlib import Path

import pytest

from resaction.data.manifests import Manifest, read_manifest
from resaction.errors import DatasetError

UCF_CLASSES = ["ApplyEyeMakeup", "BenchPress", "Diving"]


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def _link(target: Path, link: Path) -> Path:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return link


@pytest.fixture()
def ucf101(tmp_path: Path, videos_dir: Path) -> Path:
    """UCF101 layout: UCF-101/<class>/v_<class>_gGG_c01.avi and ucfTrainTestlist/ split files.

    Groups 1-2 are test and 3-5 train (the official lists put groups 1-7 in test).
    """
    split_dir = tmp_path / "ucfTrainTestlist"
    split_dir.mkdir()
    train, test = [], []
    for number, name in enumerate(UCF_CLASSES, start=1):
        sources = sorted((videos_dir / "ucf101_subset" / name).glob("*.avi"))
        for group, source in enumerate(sources, start=1):
            relative = f"{name}/v_{name}_g{group:02d}_c01.avi"
            _link(source, tmp_path / "UCF-101" / relative)
            (test if group <= 2 else train).append((relative, number))
    (split_dir / "classInd.txt").write_text(
        "".join(f"{i} {name}\n" for i, name in enumerate(UCF_CLASSES, start=1))
    )
    (split_dir / "trainlist01.txt").write_text("".join(f"{p} {n}\n" for p, n in train))
    (split_dir / "testlist01.txt").write_text("".join(f"{p}\n" for p, _ in test))
    return split_dir


@pytest.fixture()
def hmdb51(tmp_path: Path, videos_dir: Path) -> Path:
    """HMDB51 layout: hmdb51/<class>/<video>.avi and splits/<class>_test_split1.txt."""
    split_dir = tmp_path / "splits"
    split_dir.mkdir()
    for name in ("fight", "noFight"):
        sources = sorted((videos_dir / "hockey_fight" / name).glob("*.avi"))[:6]
        lines = []
        for i, source in enumerate(sources):
            _link(source, tmp_path / "hmdb51" / name / source.name)
            lines.append(f"{source.name} {(1, 1, 2, 2, 0, 1)[i]} \n")
        (split_dir / f"{name}_test_split1.txt").write_text("".join(lines))
    return split_dir


def test_class_folder_tree_of_real_dataset(videos_dir: Path) -> None:
    manifest = read_manifest(videos_dir / "gt_cs4495_ps7")
    assert manifest.classes == sorted(manifest.classes)
    assert len(manifest) == 27
    assert manifest.class_counts() == dict.fromkeys(manifest.classes, 9)
    for entry in manifest:
        assert entry.path.is_file()
        assert entry.path.parent.name == manifest.classes[entry.label]
        assert entry.group is None


def test_every_shared_dataset_reads_as_it_is(videos_dir: Path, all_shared_videos) -> None:
    folders = sorted(p for p in videos_dir.iterdir() if p.is_dir())
    assert len(folders) >= 8
    for folder in folders:
        manifest = read_manifest(folder)
        assert sorted(e.path for e in manifest) == [
            p for p in all_shared_videos if folder in p.parents
        ]
        assert manifest.classes == sorted(d.name for d in folder.iterdir() if d.is_dir())
        assert manifest.root == folder


def test_groups_csv_beside_class_folders_gives_groups(videos_dir: Path) -> None:
    manifest = read_manifest(videos_dir / "surveillance_camera_fight")
    assert manifest.classes == ["fight", "noFight"]
    assert len(manifest) == 300
    assert all(entry.group is not None for entry in manifest)
    assert len({entry.group for entry in manifest}) == 45
    by_name = {entry.path.name: entry.group for entry in manifest}
    assert by_name["fi001.mp4"] == by_name["fi004.mp4"] != by_name["fi005.mp4"]


def test_other_csv_files_beside_class_folders_are_not_group_files(videos_dir: Path) -> None:
    manifest = read_manifest(videos_dir / "gmdcsa24")
    assert manifest.classes == ["ADL", "Fall"]
    assert manifest.class_counts() == {"ADL": 9, "Fall": 14}
    assert all(entry.group is None for entry in manifest)


def test_train_and_test_folders_need_a_split(tmp_path: Path, videos_dir: Path) -> None:
    source = next((videos_dir / "kth_samples" / "boxing").glob("*.avi"))
    for split in ("train", "test"):
        for name in ("a", "b"):
            _link(source, tmp_path / split / name / f"{split}_{name}.avi")
    with pytest.raises(DatasetError, match="split"):
        read_manifest(tmp_path)
    test = read_manifest(tmp_path, split="test")
    assert [entry.path.name for entry in test] == ["test_a.avi", "test_b.avi"]


def test_ucf101_split_files(ucf101: Path) -> None:
    train = read_manifest(ucf101, split="train")
    test = read_manifest(ucf101 / "testlist01.txt")
    assert train.classes == test.classes == UCF_CLASSES
    assert len(train) == 9 and len(test) == 6
    assert {entry.group for entry in train} == {"03", "04", "05"}
    assert {entry.group for entry in test} == {"01", "02"}
    for entry in [*train, *test]:
        assert entry.path.is_file()
        assert entry.path.parent.name == UCF_CLASSES[entry.label]
    everything = read_manifest(ucf101 / "classInd.txt")
    assert len(everything) == 15


def test_ucf101_label_that_contradicts_the_folder(ucf101: Path) -> None:
    lines = (ucf101 / "trainlist01.txt").read_text().splitlines()
    lines[1] = lines[1].rsplit(" ", 1)[0] + " 3"
    (ucf101 / "trainlist01.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as error:
        read_manifest(ucf101, split="train")
    assert "trainlist01.txt:2" in _one_line(error)


def test_ucf101_videos_elsewhere_need_video_root(ucf101: Path, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere" / "videos"
    moved.parent.mkdir()
    (tmp_path / "UCF-101").rename(moved)
    with pytest.raises(DatasetError, match="video_root"):
        read_manifest(ucf101, split="test")
    assert len(read_manifest(ucf101, split="test", video_root=moved)) == 6


def test_hmdb51_split_files(hmdb51: Path) -> None:
    train = read_manifest(hmdb51, split="train")
    test = read_manifest(hmdb51 / "fight_test_split1.txt", split="test")
    everything = read_manifest(hmdb51)
    assert train.classes == test.classes == ["fight", "noFight"]
    assert len(train) == 6 and len(test) == 4 and len(everything) == 12
    assert not {e.path for e in train} & {e.path for e in test}
    assert all(entry.path.parent.name == train.classes[entry.label] for entry in train)


def test_csv_with_header_relative_paths_and_groups(tmp_path: Path, videos_dir: Path) -> None:
    sources = sorted((videos_dir / "hockey_fight" / "fight").glob("*.avi"))[:2]
    sources += sorted((videos_dir / "hockey_fight" / "noFight").glob("*.avi"))[:2]
    for source in sources:
        _link(source, tmp_path / "clips" / source.name)
    rows = ["path,label,group"]
    rows += [f"clips/{s.name},{s.parent.name},g{i % 2}" for i, s in enumerate(sources)]
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    manifest = read_manifest(tmp_path / "data.csv")
    assert manifest.classes == ["fight", "noFight"]
    assert [entry.label for entry in manifest] == [0, 0, 1, 1]
    assert [entry.group for entry in manifest] == ["g0", "g1", "g0", "g1"]
    assert manifest.entries[0].path == tmp_path / "clips" / sources[0].name


def test_csv_without_header_and_list_file_agree(tmp_path: Path, videos_dir: Path) -> None:
    sources = sorted((videos_dir / "kth_samples").rglob("*.avi"))
    (tmp_path / "data.csv").write_text("".join(f"{s},{s.parent.name}\n" for s in sources))
    (tmp_path / "data.txt").write_text("".join(f"{s} {s.parent.name}\n" for s in sources))
    from_csv = read_manifest(tmp_path / "data.csv")
    from_list = read_manifest(tmp_path / "data.txt")
    assert from_csv.entries == from_list.entries
    assert from_csv.classes == ["boxing", "walking"]


def test_integer_labels_stay_as_given(tmp_path: Path, videos_dir: Path) -> None:
    sources = sorted((videos_dir / "kth_samples").rglob("*.avi"))
    (tmp_path / "data.txt").write_text(f"{sources[0]} 1\n{sources[1]} 0\n")
    manifest = read_manifest(tmp_path / "data.txt")
    assert [entry.label for entry in manifest] == [1, 0]
    assert manifest.classes == ["0", "1"]


def test_given_classes_fix_the_label_order(videos_dir: Path) -> None:
    manifest = read_manifest(videos_dir / "kth_samples", classes=["walking", "boxing", "running"])
    assert manifest.classes == ["walking", "boxing", "running"]
    assert {entry.path.parent.name: entry.label for entry in manifest} == {
        "walking": 0,
        "boxing": 1,
    }
    with pytest.raises(DatasetError, match="boxing"):
        read_manifest(videos_dir / "kth_samples", classes=["walking"])


def test_manifest_round_trips_through_csv(tmp_path: Path, videos_dir: Path) -> None:
    manifest = read_manifest(videos_dir / "surveillance_camera_fight")
    part = manifest.subset(range(0, 300, 50))
    again = read_manifest(part.to_csv(tmp_path / "out" / "part.csv"))
    assert [e.path.resolve() for e in again] == [e.path.resolve() for e in part]
    assert [(e.label, e.group) for e in again] == [(e.label, e.group) for e in part]
    assert isinstance(again, Manifest)


def test_row_naming_a_missing_file(tmp_path: Path, videos_dir: Path) -> None:
    real = next((videos_dir / "kth_samples").rglob("*.avi"))
    (tmp_path / "data.csv").write_text(f"{real},a\ngone.mp4,b\nalso_gone.mp4,b\n")
    with pytest.raises(DatasetError) as error:
        read_manifest(tmp_path / "data.csv")
    message = _one_line(error)
    assert "data.csv:2" in message and "gone.mp4" in message and "1 more" in message


def test_class_folder_without_videos(tmp_path: Path, videos_dir: Path) -> None:
    _link(next((videos_dir / "kth_samples").rglob("*.avi")), tmp_path / "walk" / "a.avi")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("no videos here")
    with pytest.raises(DatasetError) as error:
        read_manifest(tmp_path)
    assert "run" in _one_line(error)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.csv", "", "empty"),
        ("header_only.csv", "path,label\n", "no videos"),
        ("data.json", "{}", "unknown dataset format"),
        ("bad.txt", "just_a_path_without_label\n", "expected 'path label'"),
    ],
)
def test_unusable_manifests(tmp_path: Path, name: str, content: str, expected: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(DatasetError) as error:
        read_manifest(tmp_path / name)
    assert expected in _one_line(error)


def test_empty_or_missing_dataset_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no videos"):
        read_manifest(tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        read_manifest(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="unknown split"):
        read_manifest(tmp_path, split="validation")
