from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from resaction.cli import run_app
from resaction.data.manifests import Manifest, VideoEntry, read_manifest
from resaction.data.synthetic import generate_dataset
from resaction.engine.evaluate import EvalResult, evaluate
from resaction.engine.metrics import classification_metrics
from resaction.engine.report import write_report
from resaction.errors import DatasetError, ModelError
from resaction.models import create_model
from resaction.models.checkpoint import save_checkpoint
from resaction.runtime.scores import softmax

CLASSES = ["move_left", "move_right", "still"]
PREPROCESS = {
    "clip_len": 4,
    "sampling": "dense",
    "frame_interval": 1,
    "resize": 32,
    "crop": 28,
    "mean": [0.5, 0.5, 0.5],
    "std": [0.25, 0.25, 0.25],
}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    out = tmp_path_factory.mktemp("synthetic")
    path = generate_dataset(
        out / "data", 2, size=40, num_frames=12, classes=CLASSES, progress=False, seed=3
    )
    return read_manifest(path)


class RecordingModel(nn.Module):
    """Logits from each clip's mean colour; remembers the batch sizes it saw."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.head = nn.Linear(3, num_classes)
        self.batch_sizes: list[int] = []

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        self.batch_sizes.append(clips.shape[0])
        return self.head(clips.mean(dim=(2, 3, 4)))


def run(model: nn.Module, entries: list[VideoEntry], **kwargs):
    options = {
        "preprocess": PREPROCESS,
        "protocol": {"num_clips": 2, "num_crops": 3},
        "batch_size": 16,
        "num_workers": 0,
        "progress": False,
    }
    options.update(kwargs)
    return evaluate(model, entries, CLASSES, **options)


def test_multi_view_scores_are_averaged_softmax_per_video(synthetic: Manifest) -> None:
    torch.manual_seed(0)
    model = RecordingModel()
    result = run(model, synthetic.entries)

    videos = len(synthetic)
    assert result.clip_logits.shape == (videos * 6, 3)
    assert np.bincount(result.clip_video_index).tolist() == [6] * videos
    for row in range(videos):
        views = softmax(result.clip_logits[result.clip_video_index == row])
        assert np.allclose(result.video_probs[row], views.mean(axis=0))
    assert result.labels.tolist() == [e.label for e in synthetic.entries]
    assert result.paths == [str(e.path) for e in synthetic.entries]
    assert result.metrics["num_samples"] == videos
    assert result.clip_metrics["num_samples"] == videos * 6
    expected_top1 = np.mean(result.video_probs.argmax(1) == result.labels)
    assert result.metrics["top1"] == pytest.approx(expected_top1)


def test_clips_of_several_videos_share_a_forward_pass(synthetic: Manifest) -> None:
    model = RecordingModel()
    run(model, synthetic.entries, protocol={"num_clips": 2, "num_crops": 1}, batch_size=8)
    assert max(model.batch_sizes) >= 8
    assert sum(model.batch_sizes) == 2 * len(synthetic)


def test_protocol_says_how_numbers_were_measured(synthetic: Manifest) -> None:
    result = run(RecordingModel(), synthetic.entries, protocol={"num_clips": 3, "num_crops": 1})
    protocol = result.protocol
    assert protocol["num_clips"] == 3 and protocol["num_crops"] == 1
    assert protocol["clip_len"] == PREPROCESS["clip_len"]
    assert protocol["input_size"] == PREPROCESS["crop"]
    assert protocol["num_videos"] == protocol["num_evaluated"] == len(synthetic)
    assert protocol["num_skipped"] == 0 and protocol["stress"] is None


def test_undecodable_video_is_skipped_and_listed(synthetic: Manifest, tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00not a video" * 50)
    entries = [*synthetic.entries, VideoEntry(broken, 0, None)]
    result = run(RecordingModel(), entries, protocol={"num_clips": 1, "num_crops": 1})
    assert [row["path"] for row in result.skipped] == [str(broken)]
    assert result.skipped[0]["reason"]
    assert result.protocol["num_skipped"] == 1
    assert len(result.labels) == len(synthetic)
    assert str(broken) not in result.paths


def test_all_videos_broken_is_a_dataset_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"junk")
    with pytest.raises(DatasetError, match="could be decoded"):
        run(RecordingModel(), [VideoEntry(broken, 0, None)])


def test_empty_entries_are_a_dataset_error() -> None:
    with pytest.raises(DatasetError):
        run(RecordingModel(), [])


def test_model_with_other_class_count_is_rejected(synthetic: Manifest) -> None:
    with pytest.raises(ModelError, match="5 classes"):
        run(RecordingModel(num_classes=5), synthetic.entries)


def test_train_mode_is_restored(synthetic: Manifest) -> None:
    model = RecordingModel().train()
    run(model, synthetic.entries[:2], protocol={"num_clips": 1, "num_crops": 1})
    assert model.training
    model.eval()
    run(model, synthetic.entries[:2], protocol={"num_clips": 1, "num_crops": 1})
    assert not model.training


def test_stress_changes_scores_reproducibly(synthetic: Manifest) -> None:
    torch.manual_seed(1)
    model = RecordingModel()
    protocol = {"num_clips": 1, "num_crops": 1}
    clean = run(model, synthetic.entries, protocol=protocol)
    first = run(model, synthetic.entries, protocol=protocol, stress="occlusion")
    again = run(model, synthetic.entries, protocol=protocol, stress="occlusion", num_workers=2)
    assert not np.allclose(first.clip_logits, clean.clip_logits)
    assert np.allclose(first.clip_logits, again.clip_logits)
    assert first.protocol["stress"] == "occlusion"


def test_a_backend_is_accepted(synthetic: Manifest) -> None:
    """A ``runtime`` backend (ONNX Runtime, PyTorch): clips in, logits out."""

    class Uniform:
        name = "uniform"

        def __call__(self, batch: torch.Tensor) -> np.ndarray:
            return np.zeros((batch.shape[0], 3), dtype=np.float32)

    result = run(Uniform(), synthetic.entries, protocol={"num_clips": 1, "num_crops": 1})
    assert np.allclose(result.video_probs, 1 / 3)


def test_report_files_agree_with_the_result(synthetic: Manifest, tmp_path: Path) -> None:
    result = run(RecordingModel(), synthetic.entries, protocol={"num_clips": 1, "num_crops": 1})
    files = write_report(result, tmp_path / "report", extra={"data": "synthetic"})

    saved = json.loads(files.results.read_text())
    assert saved["data"] == "synthetic"
    assert saved["protocol"]["num_clips"] == 1
    assert saved["metrics"]["video"]["top1"] == pytest.approx(result.top1)
    assert len(saved["predictions"]) == len(synthetic)
    with files.confusion_csv.open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0][1:] == CLASSES
    assert sum(int(cell) for row in rows[1:] for cell in row[1:]) == len(synthetic)
    assert files.confusion_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with files.per_class.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["class"] for row in rows] == CLASSES
    assert "average_precision" in rows[0]
    video = saved["metrics"]["video"]
    assert video["balanced_accuracy"] == video["mean_class_accuracy"]
    assert len(video["average_precision"]) == len(CLASSES)
    assert files.pr_curves_png == tmp_path / "report" / "pr_curves.png"
    assert files.pr_curves_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert files.roc_png is None and "roc_auc" not in video


def test_a_two_class_report_has_roc_auc_and_roc_png(tmp_path: Path) -> None:
    positive = np.array([0.9, 0.8, 0.7, 0.6, 0.2])
    probs = np.stack([1 - positive, positive], axis=1)
    labels = np.array([1, 0, 1, 0, 0])
    metrics = classification_metrics(probs, labels)
    result = EvalResult(
        clip_logits=np.log(probs),
        clip_video_index=np.arange(5),
        video_probs=probs,
        labels=labels,
        metrics=metrics,
        clip_metrics=metrics,
        protocol={"num_clips": 1, "num_crops": 1},
        classes=["calm", "fight"],
        paths=[f"v{i}.mp4" for i in range(5)],
    )
    files = write_report(result, tmp_path)
    saved = json.loads(files.results.read_text())["metrics"]["video"]
    assert saved["roc_auc"] == pytest.approx(5 / 6) and saved["roc_auc_positive"] == 1
    assert files.roc_png == tmp_path / "roc.png" and files.roc_png.stat().st_size > 1000
    assert files.pr_curves_png.is_file()


# --------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = create_model("tsm_resnet18", num_classes=len(CLASSES))
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(
        path,
        model,
        model_name="tsm_resnet18",
        classes=CLASSES,
        preprocess={**PREPROCESS, "sampling": "segments"},
        protocol={"num_clips": 1, "num_crops": 1},
    )
    return path


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = run_app([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.err


def test_cli_writes_report_and_robustness(
    checkpoint: Path, synthetic: Manifest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    args = ["evaluate", "--checkpoint", checkpoint, "--data", synthetic.source, "--out", out]
    options = ["--stress", "occlusion", "--order-test", "--no-progress", "--workers", "0"]
    code, err = cli([*args, *options], capsys)
    assert code == 0, err
    saved = json.loads((out / "results.json").read_text())
    assert saved["protocol"]["checkpoint"] == str(checkpoint.resolve())
    assert saved["protocol"]["num_evaluated"] == len(synthetic)
    robustness = json.loads((out / "robustness.json").read_text())
    conditions = [row["condition"] for row in robustness["table"]]
    assert conditions == ["clean", "occlusion", "time-reversed", "frame-shuffled"]
    assert robustness["table"][0]["top1"] == pytest.approx(saved["metrics"]["video"]["top1"])
    assert (out / "robustness.png").is_file() and (out / "confusion.png").is_file()


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 1
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err


def test_cli_corrupt_checkpoint(
    synthetic: Manifest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    code, err = cli(["evaluate", "-c", bad, "-d", synthetic.source, "-o", tmp_path / "o"], capsys)
    assert_one_line_error(code, err, "bad.pt")


def test_cli_checkpoint_of_other_classes(
    synthetic: Manifest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "two.pt"
    save_checkpoint(
        path,
        create_model("tsm_resnet18", num_classes=2),
        model_name="tsm_resnet18",
        classes=["move_left", "move_right"],
        preprocess=PREPROCESS,
    )
    code, err = cli(["evaluate", "-c", path, "-d", synthetic.source, "-o", tmp_path / "o"], capsys)
    assert_one_line_error(code, err, "still")


def test_cli_checkpoint_of_other_model(
    synthetic: Manifest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mislabelled.pt"
    save_checkpoint(
        path,
        create_model("tsn_resnet18", num_classes=3),
        model_name="r3d_10",
        classes=CLASSES,
        preprocess=PREPROCESS,
    )
    code, err = cli(["evaluate", "-c", path, "-d", synthetic.source, "-o", tmp_path / "o"], capsys)
    assert_one_line_error(code, err, "r3d_10")


def test_cli_empty_dataset(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, err = cli(["evaluate", "-c", checkpoint, "-d", empty, "-o", tmp_path / "o"], capsys)
    assert_one_line_error(code, err, "empty")


def test_cli_unwritable_output(
    checkpoint: Path, synthetic: Manifest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code, err = cli(
        ["evaluate", "-c", checkpoint, "-d", synthetic.source, "-o", blocker / "out"], capsys
    )
    assert_one_line_error(code, err, "a_file")


def test_cli_unknown_stress_kind(
    checkpoint: Path, synthetic: Manifest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = cli(
        ["evaluate", "-c", checkpoint, "-d", synthetic.source, "--stress", "fog"], capsys
    )
    assert_one_line_error(code, err, "fog")
