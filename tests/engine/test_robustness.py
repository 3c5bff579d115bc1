from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from resaction.data.manifests import Manifest, read_manifest
from resaction.data.synthetic import generate_dataset
from resaction.engine.evaluate import evaluate
from resaction.engine.robustness import run_robustness, write_robustness_report
from resaction.errors import ConfigError

CLASSES = ["grow", "shrink", "still"]
PREPROCESS = {"clip_len": 4, "resize": 32, "crop": 28, "mean": [0.5] * 3, "std": [0.25] * 3}
PROTOCOL = {"num_clips": 1, "num_crops": 1}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    out = tmp_path_factory.mktemp("robust") / "data"
    return read_manifest(
        generate_dataset(out, 2, size=40, num_frames=10, classes=CLASSES, progress=False, seed=5)
    )


class ColourModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.head = nn.Linear(3, len(CLASSES))

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.head(clips.std(dim=(2, 3, 4)))


def robustness(model: nn.Module, manifest: Manifest, kinds: list[str], **kwargs):
    return run_robustness(
        model,
        manifest.entries,
        CLASSES,
        preprocess=PREPROCESS,
        protocol=PROTOCOL,
        kinds=kinds,
        num_workers=0,
        progress=False,
        **kwargs,
    )


def test_one_row_per_condition_with_drops_from_clean(synthetic: Manifest) -> None:
    model = ColourModel()
    result = robustness(model, synthetic, ["clutter", "occlusion"], severity=0.8)
    rows = result.rows()
    assert [row["condition"] for row in rows] == ["clean", "clutter", "occlusion"]
    clean = rows[0]["top1"]
    for row, kind in zip(rows[1:], ["clutter", "occlusion"], strict=True):
        alone = evaluate(
            model,
            synthetic.entries,
            CLASSES,
            preprocess=PREPROCESS,
            protocol=PROTOCOL,
            stress=kind,
            stress_severity=0.8,
            num_workers=0,
            progress=False,
        )
        assert row["top1"] == pytest.approx(alone.top1)
        assert np.allclose(result.stressed[kind].video_probs, alone.video_probs)
        assert row["top1_drop"] == pytest.approx(clean - alone.top1)
        assert result.stressed[kind].protocol["stress_severity"] == 0.8
    assert not np.allclose(result.baseline.video_probs, result.stressed["clutter"].video_probs)


def test_a_given_baseline_is_reused(synthetic: Manifest) -> None:
    model = ColourModel()
    first = robustness(model, synthetic, ["camera-motion"])
    again = robustness(model, synthetic, ["camera-motion"], baseline=first.baseline)
    assert again.baseline is first.baseline
    assert np.allclose(
        again.stressed["camera-motion"].video_probs, first.stressed["camera-motion"].video_probs
    )


def test_unknown_kind_is_a_config_error(synthetic: Manifest) -> None:
    with pytest.raises(ConfigError, match="fog"):
        robustness(ColourModel(), synthetic, ["fog"])


def test_report_files(synthetic: Manifest, tmp_path: Path) -> None:
    result = robustness(ColourModel(), synthetic, ["occlusion"])
    paths = write_robustness_report(result, tmp_path, extra={"checkpoint": "x.pt"})
    saved = json.loads(paths["json"].read_text())
    assert saved["checkpoint"] == "x.pt"
    assert set(saved["conditions"]) == {"clean", "occlusion"}
    assert saved["table"][1]["top1_drop"] == pytest.approx(result.rows()[1]["top1_drop"])
    with paths["csv"].open() as handle:
        assert [row["condition"] for row in csv.DictReader(handle)] == ["clean", "occlusion"]
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"


class GrowthModel(nn.Module):
    """Reads motion only: "grow" when the picture's contrast rises from the first frame to the
    last, "shrink" when it falls, so playing a clip backwards swaps the two."""

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        change = clips[:, :, -1].std(dim=(1, 2, 3)) - clips[:, :, 0].std(dim=(1, 2, 3))
        return torch.stack([change, -change, torch.zeros_like(change)], dim=1) * 50


def test_the_order_test_moves_a_motion_model_and_leaves_an_order_blind_one(
    synthetic: Manifest,
) -> None:
    from resaction.data.stress import ORDER_KINDS
    from resaction.engine.robustness import order_table
    from resaction.models import create_model

    common = {"protocol": PROTOCOL, "kinds": list(ORDER_KINDS), "progress": False}
    motion = run_robustness(
        GrowthModel(), synthetic.entries, CLASSES, preprocess=PREPROCESS, **common
    )
    recall = {kind: r.metrics["recall"] for kind, r in motion.stressed.items()}
    assert motion.baseline.metrics["recall"][:2] == [1.0, 1.0]
    assert recall["time-reversed"][:2] == [0.0, 0.0]  # grow and shrink trade places
    torch.manual_seed(0)
    tsn = create_model("tsn_resnet18", num_classes=3, num_segments=4).eval()
    segments = {**PREPROCESS, "sampling": "segments"}
    blind = run_robustness(tsn, synthetic.entries, CLASSES, preprocess=segments, **common)
    for result in blind.stressed.values():  # an average over frames has no order to lose
        np.testing.assert_allclose(result.video_probs, blind.baseline.video_probs, atol=1e-5)
    assert [column.header for column in order_table(motion).columns] == [
        "class",
        "as is",
        "time-reversed",
        "frame-shuffled",
    ]
