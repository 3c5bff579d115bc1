from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from resaction.data.manifests import Manifest, VideoEntry, read_manifest
from resaction.data.splits import entry_groups, kfold, shared_groups, train_test_split
from resaction.errors import DatasetError

UCF_GROUP = r"_g(\d+)_"


def _ucf_like(num_classes: int = 3, groups: int = 10, clips: tuple[int, ...] = (2, 5)) -> Manifest:
    """UCF101-style names with uneven groups: class k, group g has clips[(k + g) % len] clips."""
    classes = [f"Action{k}" for k in range(num_classes)]
    entries = []
    for label, name in enumerate(classes):
        for group in range(1, groups + 1):
            for clip in range(clips[(label + group) % len(clips)]):
                path = Path(f"/data/{name}/v_{name}_g{group:02d}_c{clip:02d}.avi")
                entries.append(VideoEntry(path, label))
    return Manifest(entries, classes)


def _paths(manifest: Manifest) -> set[Path]:
    return {entry.path for entry in manifest}


def test_group_regex_keeps_groups_on_one_side() -> None:
    manifest = _ucf_like()
    train, test = train_test_split(manifest, test_size=0.3, group_by=UCF_GROUP, seed=1)
    assert len(train) + len(test) == len(manifest)
    assert not _paths(train) & _paths(test)
    assert shared_groups(train, test, UCF_GROUP) == set()
    assert 0.15 < len(test) / len(manifest) < 0.45


def test_folds_partition_the_data_and_keep_groups_whole() -> None:
    manifest = _ucf_like(groups=12)
    folds = kfold(manifest, k=4, group_by=UCF_GROUP, seed=3)
    tests = [_paths(test) for _, test in folds]
    assert set().union(*tests) == _paths(manifest)
    assert sum(len(t) for t in tests) == len(manifest)
    for train, test in folds:
        assert not _paths(train) & _paths(test)
        assert len(train) + len(test) == len(manifest)
        assert shared_groups(train, test, UCF_GROUP) == set()


def test_stratification_holds_roughly() -> None:
    manifest = _ucf_like(num_classes=4, groups=20)
    totals = manifest.class_counts()
    _, test = train_test_split(manifest, test_size=0.25, group_by=UCF_GROUP)
    for name, count in test.class_counts().items():
        assert abs(count / totals[name] - 0.25) < 0.1
    for _, fold_test in kfold(manifest, k=5, group_by=UCF_GROUP):
        for name, count in fold_test.class_counts().items():
            assert abs(count / totals[name] - 0.2) < 0.1


def test_plain_stratified_split_and_folds_without_groups() -> None:
    labels = [0] * 30 + [1] * 10
    manifest = Manifest(
        [VideoEntry(Path(f"/d/clip{i}.mp4"), label) for i, label in enumerate(labels)], ["a", "b"]
    )
    _, test = train_test_split(manifest, test_size=0.2)
    assert test.class_counts() == {"a": 6, "b": 2}
    folds = kfold(manifest, k=5)
    assert [f[1].class_counts() for f in folds] == [{"a": 6, "b": 2}] * 5
    assert set().union(*(_paths(t) for _, t in folds)) == _paths(manifest)


def test_seed_reproduces_and_changes_the_split() -> None:
    manifest = _ucf_like(groups=15)
    first = train_test_split(manifest, 0.3, group_by=UCF_GROUP, seed=7)[1]
    again = train_test_split(manifest, 0.3, group_by=UCF_GROUP, seed=7)[1]
    others = [train_test_split(manifest, 0.3, group_by=UCF_GROUP, seed=s)[1] for s in range(5)]
    assert first.entries == again.entries
    assert len({frozenset(_paths(o)) for o in others}) > 1


def test_entry_groups_are_used_when_present() -> None:
    entries = [VideoEntry(Path(f"/d/{i}.mp4"), i % 2, f"scene{i // 4}") for i in range(24)]
    manifest = Manifest(entries, ["a", "b"])
    for train, test in kfold(manifest, k=3):
        assert not {e.group for e in train} & {e.group for e in test}


def test_callable_group_by() -> None:
    manifest = _ucf_like(groups=6)
    groups = entry_groups(manifest, lambda entry: entry.path.stem[-3:])
    assert groups is not None and len(set(groups)) == 5
    for train, test in kfold(manifest, 5, group_by=lambda entry: entry.path.stem[-3:]):
        assert not {e.path.stem[-3:] for e in train} & {e.path.stem[-3:] for e in test}


def test_warns_when_grouped_names_are_split_without_groups() -> None:
    manifest = _ucf_like(num_classes=2, groups=4)
    with pytest.warns(UserWarning, match=re.escape(f'group_by=r"{UCF_GROUP}"')):
        train_test_split(manifest, 0.25, seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train_test_split(manifest, 0.25, group_by=UCF_GROUP, seed=11)
        train_test_split(_plain_names(), 0.25, seed=11)


def _plain_names() -> Manifest:
    entries = [VideoEntry(Path(f"/d/clip_{i:03d}.mp4"), i % 2) for i in range(12)]
    return Manifest(entries, ["a", "b"])


def test_pattern_that_misses_a_file() -> None:
    manifest = _plain_names()
    with pytest.raises(DatasetError) as error:
        kfold(manifest, 3, group_by=UCF_GROUP)
    assert "clip_000.mp4" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda m: kfold(m, k=20, group_by=r"P(\d)"), "groups"),
        (lambda m: kfold(m, k=1), "k >= 2"),
        (lambda m: train_test_split(m, test_size=1.5), "test_size"),
    ],
)
def test_impossible_splits(call, expected: str) -> None:
    entries = [VideoEntry(Path(f"/d/A{i % 2}P{i % 3}T{i}.avi"), i % 2) for i in range(12)]
    with pytest.raises(DatasetError, match=expected):
        call(Manifest(entries, ["a", "b"]))


def test_real_dataset_leave_one_person_out(videos_dir: Path) -> None:
    manifest = read_manifest(videos_dir / "gt_cs4495_ps7")
    folds = kfold(manifest, k=3, group_by=r"P(\d)")
    persons = [sorted(set(entry_groups(test, r"P(\d)"))) for _, test in folds]
    assert sorted(p for group in persons for p in group) == ["1", "2", "3"]
    for _, test in folds:
        assert set(test.class_counts().values()) == {3}


def test_real_dataset_groups_csv_folds(videos_dir: Path) -> None:
    manifest = read_manifest(videos_dir / "surveillance_camera_fight")
    folds = kfold(manifest, k=5, seed=0)
    seen: list[str] = []
    for train, test in folds:
        assert shared_groups(train, test) == set()
        seen += sorted({entry.group for entry in test})
        fight_share = np.mean([entry.label == 0 for entry in test])
        assert 0.35 < fight_share < 0.65
    assert len(seen) == len(set(seen)) == 45


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (r"_g(\d+", "is not a valid regex"),
        (r"_x(\d+)_", "gives no group for file v_Action0_g01_c00.avi"),
        (r"_g(9)?\d+_", "gives no group for file v_Action0_g01_c00.avi"),  # optional capture
    ],
)
def test_group_pattern_without_a_group_is_a_one_line_error(pattern: str, message: str) -> None:
    with pytest.raises(DatasetError, match=re.escape(message)) as caught:
        entry_groups(_ucf_like(), pattern)
    assert "\n" not in str(caught.value)
