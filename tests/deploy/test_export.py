from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from resaction.deploy.export import DEFAULT_OPSET, export_checkpoint, export_model
from resaction.errors import CheckpointError, DeployError
from resaction.models import create_model
from resaction.models.checkpoint import load_checkpoint
from resaction.runtime.loading import load_model
from resaction.runtime.onnx_backend import OnnxBackend, read_metadata

from .conftest import GT_CLASSES, make_checkpoint, tiny_preprocess

# One model of every family (and of every conv builder of the 3D ResNets): a clip of few, small
# frames keeps each export to a few seconds.
FAMILIES = [
    ("r3d_10", {}),
    ("mc3_18", {}),
    ("r2plus1d_18", {}),
    ("i3d_resnet18", {}),
    ("resnet18", {"sampling": "segments"}),
    ("tsn_resnet18", {"sampling": "segments"}),
    ("tsm_resnet18", {"sampling": "segments"}),
    ("lrcn_resnet18", {}),
]


def test_export_writes_metadata_and_matches_torch(r3d_checkpoint: Path, r3d_onnx: Path) -> None:
    metadata = read_metadata(r3d_onnx)
    bundle = load_checkpoint(r3d_checkpoint)
    assert metadata["model_name"] == "r3d_10"
    assert metadata["classes"] == GT_CLASSES
    assert metadata["preprocess"]["clip_len"] == bundle.preprocess["clip_len"]
    assert metadata["preprocess"]["crop"] == bundle.preprocess["crop"]
    assert metadata["protocol"]["num_clips"] == bundle.protocol["num_clips"]
    assert metadata["opset"] == DEFAULT_OPSET
    graph = onnx.load(str(r3d_onnx), load_external_data=False).graph
    batch_dim = graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.HasField("dim_value")

    backend = OnnxBackend(r3d_onnx)
    for batch in (1, 5):
        clips = torch.randn(batch, 3, 4, 32, 32)
        with torch.no_grad():
            expected = bundle.model(clips).numpy()
        np.testing.assert_allclose(backend(clips), expected, rtol=1e-4, atol=1e-4)
    assert load_model(r3d_onnx, expect_model="r3d_10").model_name == "r3d_10"
    with pytest.raises(CheckpointError, match="holds a r3d_10 model, not tsn_resnet18"):
        load_model(r3d_onnx, expect_model="tsn_resnet18")  # --model NAME with an .onnx


def test_export_reports_the_difference_it_measured(tmp_path: Path) -> None:
    model = create_model("resnet18", num_classes=2).eval()
    result = export_model(
        model,
        tmp_path / "resnet18.onnx",
        model_name="resnet18",
        classes=["a", "b"],
        preprocess=tiny_preprocess(clip_len=2, sampling="segments"),
        protocol={"num_clips": 1},
    )
    assert result.max_abs_diff is not None and 0 <= result.max_abs_diff < 1e-3
    assert result.input_shape == ("N", 3, 2, 32, 32)
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file was left behind"


@pytest.mark.slow
@pytest.mark.parametrize(("name", "preprocess"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_every_family_exports(name: str, preprocess: dict, tmp_path: Path) -> None:
    checkpoint = make_checkpoint(tmp_path / f"{name}.pt", name, **preprocess)
    result = export_checkpoint(checkpoint, tmp_path / f"{name}.onnx", check=False)
    bundle = load_checkpoint(checkpoint)
    clips = torch.randn(3, 3, 4, 32, 32)
    with torch.no_grad():
        expected = bundle.model(clips).numpy()
    got = OnnxBackend(result.path)(clips)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)
    assert (got.argmax(1) == expected.argmax(1)).all()


@pytest.mark.parametrize("name", ["tsn_diff_resnet18", "tsm_diff_resnet18"])
def test_difference_models_export_with_a_dynamic_batch(name: str, tmp_path: Path) -> None:
    checkpoint = make_checkpoint(
        tmp_path / f"{name}.pt",
        name,
        model_kwargs={"segment_len": 2},
        sampling="segments",
        segment_len=2,
    )
    result = export_checkpoint(checkpoint, tmp_path / f"{name}.onnx")
    bundle = load_checkpoint(checkpoint)
    assert read_metadata(result.path)["preprocess"]["segment_len"] == 2
    for batch in (1, 3):
        clips = torch.randn(batch, 3, 4, 32, 32)
        with torch.no_grad():
            expected = bundle.model(clips).numpy()
        np.testing.assert_allclose(OnnxBackend(result.path)(clips), expected, rtol=1e-3, atol=1e-3)


def test_online_tsm_cannot_export_and_says_why(tmp_path: Path) -> None:
    checkpoint = make_checkpoint(
        tmp_path / "tsm.pt",
        "tsm_resnet18",
        model_kwargs={"shift_mode": "online"},
        sampling="segments",
    )
    with pytest.raises(DeployError, match=r"online shift mode.*'past'"):
        export_checkpoint(checkpoint, tmp_path / "tsm.onnx")
    assert not (tmp_path / "tsm.onnx").exists()


def test_export_refuses_onnx_and_missing_files(r3d_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="already an ONNX model"):
        export_checkpoint(r3d_onnx, tmp_path / "again.onnx")
    with pytest.raises(CheckpointError, match="does not exist"):
        export_checkpoint(tmp_path / "missing.pt", tmp_path / "out.onnx")


def test_an_export_that_disagrees_with_pytorch_writes_nothing(
    r3d_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resaction.deploy import export

    monkeypatch.setattr(export, "compare_with_torch", lambda model, path, clips: 1e6)
    out = tmp_path / "model.onnx"
    with pytest.raises(DeployError, match=r"disagrees with PyTorch.*was not written"):
        export.export_checkpoint(r3d_checkpoint, out)
    assert list(tmp_path.iterdir()) == []


def test_a_calibrated_checkpoint_exports_its_thresholds(
    r3d_checkpoint: Path, tmp_path: Path
) -> None:
    from resaction.inference import Predictor
    from resaction.models.checkpoint import update_checkpoint

    calibrated = tmp_path / "calibrated.pt"
    calibrated.write_bytes(r3d_checkpoint.read_bytes())
    calibration = {"decision": {"min_duration": 2.0}, "target": {"false_alarms_per_hour": 1.0}}
    values = {"thresholds": {GT_CLASSES[1]: 0.8}, "calibration": calibration}
    update_checkpoint(calibrated, {**values, "background": GT_CLASSES[0]})
    exported = export_checkpoint(calibrated, tmp_path / "calibrated.onnx", check=False).path
    for path in (calibrated, exported):
        decisions = Predictor.from_checkpoint(path).decisions
        assert decisions["thresholds"] == {GT_CLASSES[1]: 0.8}
        assert decisions["calibration"]["decision"] == {"min_duration": 2.0}
        assert decisions["background"] == GT_CLASSES[0]
    assert load_checkpoint(calibrated).model_name == "r3d_10"  # the weights are untouched
