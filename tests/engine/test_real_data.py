"""One fold of leave-one-person-out on a real dataset, end to end, with tiny settings.

It checks that the files are written and consistent, not an accuracy: one epoch on 18 clips
learns little, and a threshold would flake.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from resaction.engine.config import TrainConfig
from resaction.engine.crossval import run_crossval


@pytest.mark.slow
def test_ps7_leave_one_person_out_fold(videos_dir: Path, tmp_path: Path) -> None:
    data = videos_dir / "gt_cs4495_ps7"
    out = tmp_path / "ps7"
    config = TrainConfig(
        data=str(data),
        model="tsn_resnet18",
        out=str(out),
        epochs=1,
        batch_size=6,
        preprocess={"clip_len": 2, "resize": 40, "crop": 32},
        protocol={"num_clips": 1, "num_crops": 1},
        num_workers=0,
        progress=False,
    )
    result = run_crossval(config, 3, r"P(\d)", out, only_folds=[1])

    fold = result.folds[0]
    assert fold.train_videos == 18 and fold.test_videos == 9
    assert len(fold.test_groups) == 1
    person = fold.test_groups[0]
    tested = [Path(path).name for path in fold.paths]
    assert all(re.search(r"P(\d)", name).group(1) == person for name in tested)
    with (out / "fold_1" / "train.csv").open() as handle:
        trained = [Path(row["path"]).name for row in csv.DictReader(handle)]
    assert not any(re.search(r"P(\d)", name).group(1) == person for name in trained)

    assert np.allclose(fold.video_probs.sum(axis=1), 1.0, atol=1e-5)
    saved = json.loads((out / "crossval.json").read_text())
    assert saved["classes"] == sorted(path.name for path in data.iterdir() if path.is_dir())
    assert np.asarray(saved["pooled"]["confusion"]).sum() == 9
    assert 0.0 <= saved["summary"]["top1"]["mean"] <= 1.0
    assert saved["protocol"]["group_by"] == r"P(\d)"
    report = json.loads((out / "fold_1" / "eval" / "results.json").read_text())
    assert report["protocol"]["num_evaluated"] == 9 and report["skipped"] == []
    assert (out / "folds.png").read_bytes()[:4] == b"\x89PNG"
