from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from resaction.engine.evaluate import entries_from_paths, evaluate
from resaction.errors import CheckpointError, WeightsError
from resaction.inference import Prediction, Predictor, TorchBackend, VideoFailure
from resaction.models import create_model
from resaction.models.checkpoint import save_checkpoint
from resaction.runtime.backends import Backend

from .conftest import CLASSES, make_checkpoint, tiny_preprocess

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def real_videos(videos_dir: Path) -> list[Path]:
    return [
        videos_dir / "ucf101_subset/Diving/v_Diving_g01_c01.avi",
        videos_dir / "kth_samples/boxing/boxing_sample.avi",
        videos_dir / "kinetics400_samples/abseiling/abseiling_k400.mp4",
    ]


def evaluated_probs(predictor: Predictor, videos: list[Path], model: torch.nn.Module) -> np.ndarray:
    result = evaluate(
        model,
        entries_from_paths(videos),
        CLASSES,
        preprocess=predictor.preprocess,
        protocol=predictor.protocol,
        batch_size=4,
        num_workers=0,
        progress=False,
    )
    return result.video_probs


def test_backend_satisfies_the_protocol(tiny_checkpoint: Path) -> None:
    predictor = Predictor.from_checkpoint(tiny_checkpoint)
    assert isinstance(predictor.backend, Backend)
    batch = np.zeros((2, 3, 4, 32, 32), dtype=np.float32)
    logits = predictor.backend(batch)
    assert isinstance(logits, np.ndarray) and logits.shape == (2, len(CLASSES))


def test_predict_equals_evaluate_on_real_videos(
    tiny_checkpoint: Path, real_videos: list[Path]
) -> None:
    predictor = Predictor.from_checkpoint(tiny_checkpoint)
    assert predictor.protocol["num_clips"] == 3
    expected = evaluated_probs(predictor, real_videos, predictor.backend.model)
    for video, probs in zip(real_videos, expected, strict=True):
        prediction = predictor.predict(video, topk=2)
        assert prediction.num_views == 3
        np.testing.assert_allclose(prediction.probabilities, probs, atol=1e-5)
        assert prediction.label == CLASSES[int(np.argmax(probs))]
        assert prediction.labels == [CLASSES[i] for i in prediction.indices]
        assert prediction.probs == sorted(prediction.probs, reverse=True)
        assert len(prediction.labels) == 2


def test_three_crop_protocol_matches_evaluate(
    tiny_checkpoint: Path, real_videos: list[Path]
) -> None:
    predictor = Predictor.from_checkpoint(tiny_checkpoint, protocol={"num_crops": 3})
    expected = evaluated_probs(predictor, real_videos[:1], predictor.backend.model)
    prediction = predictor.predict(real_videos[0])
    assert prediction.num_views == 9
    np.testing.assert_allclose(prediction.probabilities, expected[0], atol=1e-5)


def test_predict_many_batches_across_files_and_keeps_order(
    tiny_checkpoint: Path, real_videos: list[Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    missing = tmp_path / "missing.mp4"
    videos = [real_videos[0], broken, real_videos[1], missing, real_videos[2]]
    predictor = Predictor.from_checkpoint(tiny_checkpoint)
    # 3 views per video in batches of 4: forward passes mix views of different files.
    outcomes = list(predictor.predict_many(videos, topk=3, batch_size=4, num_workers=2))
    assert [o.path for o in outcomes] == [str(v) for v in videos]
    assert [type(o) for o in outcomes] == [
        Prediction,
        VideoFailure,
        Prediction,
        VideoFailure,
        Prediction,
    ]
    assert "broken.mp4" in outcomes[1].reason and "\n" not in outcomes[1].reason
    assert "not found" in outcomes[3].reason
    for outcome in outcomes:
        if isinstance(outcome, Prediction):
            single = predictor.predict(outcome.path, topk=3)
            np.testing.assert_allclose(outcome.probabilities, single.probabilities, atol=1e-5)
            assert outcome.probabilities.sum() == pytest.approx(1.0)


def test_a_backend_is_all_the_predictor_needs(real_videos: list[Path]) -> None:
    class Recording:
        name = "recording"

        def __init__(self) -> None:
            self.shapes: list[tuple[int, ...]] = []

        def __call__(self, batch: np.ndarray | torch.Tensor) -> np.ndarray:
            self.shapes.append(tuple(batch.shape))
            return np.tile(np.array([[0.0, 1.0, 0.0]], dtype=np.float32), (len(batch), 1))

    backend = Recording()
    predictor = Predictor(backend, CLASSES, tiny_preprocess(), {"num_clips": 2})
    prediction = predictor.predict(real_videos[0])
    assert backend.shapes == [(2, 3, 4, 32, 32)]
    assert prediction.label == "mid"
    assert prediction.confidence == pytest.approx(np.exp(1) / (np.exp(1) + 2))


def test_checkpoint_of_another_model_is_refused(tmp_path: Path, tiny_checkpoint: Path) -> None:
    with pytest.raises(CheckpointError, match="holds a r3d_10 model, not tsn_resnet18"):
        Predictor.from_checkpoint(tiny_checkpoint, expect_model="tsn_resnet18")
    mislabelled = tmp_path / "mislabelled.pt"
    save_checkpoint(
        mislabelled,
        create_model("tsn_resnet18", num_classes=3),
        model_name="r3d_10",
        classes=CLASSES,
        preprocess=tiny_preprocess(),
    )
    with pytest.raises(CheckpointError, match="does not match model r3d_10") as caught:
        Predictor.from_checkpoint(mislabelled)
    assert "\n" not in str(caught.value)


def test_tsn_checkpoint_uses_its_segment_protocol(tmp_path: Path, real_videos: list[Path]) -> None:
    checkpoint = make_checkpoint(tmp_path / "tsn.pt", "tsn_resnet18", sampling="segments")
    predictor = Predictor.from_checkpoint(checkpoint)
    expected = evaluated_probs(predictor, real_videos[:1], predictor.backend.model)
    np.testing.assert_allclose(
        predictor.predict(real_videos[0]).probabilities, expected[0], atol=1e-5
    )


def test_from_pretrained_without_weights_and_with_unknown_ones(tiny_checkpoint: Path) -> None:
    predictor = Predictor.from_pretrained("r3d_10", weights="none")
    assert len(predictor.classes) == 400 and predictor.preprocess["clip_len"] == 16
    assert isinstance(predictor.backend, TorchBackend)
    with pytest.raises(WeightsError, match="no weights named 'imagenet21k'"):
        Predictor.from_pretrained("r3d_10", weights="imagenet21k")
    assert Predictor.from_pretrained("r3d_10", str(tiny_checkpoint)).classes == CLASSES
    with pytest.raises(CheckpointError, match="not r3d_18"):
        Predictor.from_pretrained("r3d_18", str(tiny_checkpoint))
