from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from resaction.errors import CheckpointError, ConfigError, ModelError
from resaction.inference import Predictor, TorchBackend
from resaction.models import create_model
from resaction.models.checkpoint import load_checkpoint, save_checkpoint
from resaction.runtime.onnx_backend import OnnxBackend, read_classes_file

CLASSES = ["first", "second", "third"]
PREPROCESS = {
    "clip_len": 4,
    "sampling": "dense",
    "frame_interval": 2,
    "target_fps": None,
    "resize": 40,
    "crop": 32,
    "mean": [0.45, 0.45, 0.45],
    "std": [0.225, 0.225, 0.225],
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny-input r3d_10 checkpoint and its ONNX export."""
    from resaction.deploy.export import export_checkpoint

    folder = tmp_path_factory.mktemp("onnx_backend")
    torch.manual_seed(1)
    model = create_model("r3d_10", num_classes=len(CLASSES))
    with torch.no_grad():
        model.get_classifier().weight.mul_(100.0)  # sharp outputs: no near-ties between classes
    checkpoint = save_checkpoint(
        folder / "r3d_10.pt",
        model,
        model_name="r3d_10",
        classes=CLASSES,
        preprocess=PREPROCESS,
        protocol={"num_clips": 2, "num_crops": 1},
    )
    return checkpoint, export_checkpoint(checkpoint, folder / "r3d_10.onnx").path


def foreign_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv3d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(4, 5)
    ).eval()


def export_foreign(path: Path, dynamic: bool, batch: int = 1) -> Path:
    """An ONNX clip classifier made without resaction: no metadata, 5 outputs; a batch axis of
    any size, or fixed at ``batch`` as a plain ``torch.onnx.export`` leaves it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            foreign_model(),
            (torch.zeros(batch, 3, 6, 48, 48),),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "n"}, "y": {0: "n"}} if dynamic else None,
        )
    return path


@pytest.fixture(scope="module")
def foreign_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_foreign(tmp_path_factory.mktemp("foreign") / "foreign.onnx", dynamic=True)


@pytest.mark.parametrize("batch", [1, 2])
def test_a_file_with_a_fixed_batch_runs_any_number_of_clips(tmp_path: Path, batch: int) -> None:
    """Most ONNX files made elsewhere fix the batch (at 1): a video's 3 clips used to be
    refused as if the preprocessing did not match."""
    with pytest.warns(UserWarning, match="no resaction metadata"):
        backend = OnnxBackend(export_foreign(tmp_path / "fixed.onnx", dynamic=False, batch=batch))
    assert backend.input_shape[0] == batch
    clips = np.random.default_rng(0).standard_normal((3, 3, 6, 48, 48)).astype(np.float32)
    with torch.no_grad():
        expected = foreign_model()(torch.from_numpy(clips)).numpy()
    np.testing.assert_allclose(backend(clips), expected, rtol=1e-4, atol=1e-5)


def test_backend_reads_what_export_stored(exported: tuple[Path, Path]) -> None:
    checkpoint, onnx_path = exported
    backend = OnnxBackend(onnx_path, threads=1)
    bundle = load_checkpoint(checkpoint)
    assert backend.has_metadata and backend.name == "onnx"
    assert backend.classes == CLASSES
    assert backend.model_name == "r3d_10"
    assert backend.preprocess["clip_len"] == 4 and backend.preprocess["crop"] == 32
    assert backend.protocol["num_clips"] == bundle.protocol["num_clips"]
    assert backend.providers == ["CPUExecutionProvider"]


@pytest.mark.slow
def test_same_top1_as_pytorch_on_real_videos(
    exported: tuple[Path, Path], all_shared_videos: list[Path], videos_dir: Path, tmp_path: Path
) -> None:
    from resaction.deploy.export import export_model

    bundle = load_checkpoint(exported[0])
    by_dataset: dict[str, list[Path]] = {}
    for video in all_shared_videos:
        by_dataset.setdefault(video.relative_to(videos_dir).parts[0], []).append(video)
    sample = [videos[len(videos) // 2] for videos in by_dataset.values()]
    assert len(sample) >= 5, "the sample should span the real datasets"
    torch_predictor = Predictor(
        TorchBackend(bundle.model), bundle.classes, bundle.preprocess, bundle.protocol
    )
    views = [torch_predictor.load_views(video) for video in sample]
    # Centre the random head on these videos, so that their top-1 labels differ: a model that
    # gives every video the same label would make "same top-1" prove nothing.
    mean_logits = np.mean([torch_predictor.logits(v).mean(axis=0) for v in views], axis=0)
    with torch.no_grad():
        bundle.model.get_classifier().bias -= torch.from_numpy(mean_logits)
    onnx_path = export_model(
        bundle.model,
        tmp_path / "centred.onnx",
        model_name=bundle.model_name,
        classes=bundle.classes,
        preprocess=bundle.preprocess,
        protocol=bundle.protocol,
    ).path
    backend = OnnxBackend(onnx_path)
    onnx_predictor = Predictor(backend, backend.classes, backend.preprocess, backend.protocol)
    labels = set()
    for video in sample:
        expected = torch_predictor.predict(video)
        got = onnx_predictor.predict(video)
        assert got.label == expected.label, video
        np.testing.assert_allclose(got.probabilities, expected.probabilities, atol=1e-4)
        labels.add(got.label)
    assert len(labels) > 1


def test_onnx_file_is_accepted_wherever_a_checkpoint_is(
    exported: tuple[Path, Path], videos_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from resaction.cli import run_app

    checkpoint, onnx_path = exported
    video = next((videos_dir / "kth_samples" / "boxing").iterdir())
    from_torch = Predictor.from_checkpoint(checkpoint).predict(video)
    predictor = Predictor.from_checkpoint(onnx_path, protocol={"num_clips": 2})
    assert isinstance(predictor.backend, OnnxBackend) and predictor.model_name == "r3d_10"
    from_onnx = predictor.predict(video)
    assert from_onnx.label == from_torch.label
    np.testing.assert_allclose(from_onnx.probabilities, from_torch.probabilities, atol=1e-4)
    assert run_app(["predict", "--checkpoint", str(onnx_path), str(video)]) == 0
    assert from_onnx.label in capsys.readouterr().out


def test_model_without_metadata_runs_with_a_warning(
    foreign_onnx: Path, videos_dir: Path, tmp_path: Path
) -> None:
    with pytest.warns(UserWarning, match="no resaction metadata.*--classes"):
        backend = OnnxBackend(foreign_onnx)
    assert backend.classes == [f"class_{i}" for i in range(5)]
    assert backend.preprocess["clip_len"] == 6 and backend.preprocess["crop"] == 48
    assert backend(np.zeros((2, 3, 6, 48, 48), np.float32)).shape == (2, 5)

    names = tmp_path / "classes.txt"
    names.write_text("run\n\njump\nsit\nstand\nwave\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        named = OnnxBackend(foreign_onnx, classes=read_classes_file(names))
    assert named.classes == ["run", "jump", "sit", "stand", "wave"]
    predictor = Predictor(named, named.classes, named.preprocess, {"num_clips": 1})
    video = next((videos_dir / "kth_samples" / "walking").iterdir())
    assert predictor.predict(video).label in named.classes


def test_wrong_number_of_class_names_is_refused(foreign_onnx: Path) -> None:
    with pytest.raises(ConfigError, match=r"3 class names given but .* has 5 outputs"):
        OnnxBackend(foreign_onnx, classes=["a", "b", "c"])


@pytest.mark.parametrize("content", [b"not a model at all", b""])
def test_a_file_that_is_not_onnx_gives_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="is not a usable ONNX model") as error:
        OnnxBackend(path)
    assert "\n" not in str(error.value)


def test_missing_file_and_provider(exported: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        OnnxBackend(tmp_path / "absent.onnx")
    with pytest.raises(ConfigError, match="provider NoSuchProvider is not available"):
        OnnxBackend(exported[1], providers=["NoSuchProvider"])


def test_clips_of_another_shape_are_refused(exported: tuple[Path, Path]) -> None:
    backend = OnnxBackend(exported[1], threads=1)
    with pytest.raises(ModelError, match=r"takes clips shaped \('N', 3, 4, 32, 32\)"):
        backend(np.zeros((1, 3, 8, 32, 32), np.float32))


def test_classes_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_classes_file(tmp_path / "none.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(ConfigError, match="is empty"):
        read_classes_file(empty)


def test_predict_names_the_outputs_of_a_foreign_model_with_classes_file(
    foreign_onnx: Path, videos_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from resaction.cli import run_app

    names = tmp_path / "classes.txt"
    names.write_text("run\njump\nsit\nstand\nwave\n")
    video = next((videos_dir / "kth_samples" / "walking").iterdir())
    out = tmp_path / "out.jsonl"
    args = ["predict", str(video), "--checkpoint", str(foreign_onnx), "--classes", str(names)]
    assert run_app([*args, "--json", str(out), "--no-progress"]) == 0, capsys.readouterr().err
    record = json.loads(out.read_text().splitlines()[0])
    assert record["label"] in {"run", "jump", "sit", "stand", "wave"}
    assert sorted(row["label"] for row in record["topk"]) == ["jump", "run", "sit", "stand", "wave"]

    pt_file = ["--checkpoint", str(tmp_path / "x.pt"), "--classes", str(names)]
    code = run_app(["predict", str(video), *pt_file])
    assert code == 1 and "--classes names the outputs of an .onnx file" in capsys.readouterr().err


def test_compile_is_refused_for_an_onnx_file_in_one_line(
    exported: tuple[Path, Path], videos_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from resaction.cli import run_app

    _, onnx_path = exported
    video = next((videos_dir / "kth_samples" / "boxing").iterdir())
    assert run_app(["predict", "--checkpoint", str(onnx_path), str(video), "--compile"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "--compile compiles PyTorch models; r3d_10 runs on onnx" in err
    data = videos_dir / "kth_samples"
    assert run_app(["evaluate", "-c", str(onnx_path), "--data", str(data), "--compile"]) == 1
    assert f"{onnx_path} runs on ONNX Runtime" in " ".join(capsys.readouterr().err.split())
