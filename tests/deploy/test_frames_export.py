"""Frames files (``export --frames``): a 2D-trunk model's per-frame half and pooling on ONNX
Runtime give the live scorer the same windows as PyTorch, in fp32 and (close to it) in int8,
and ``resaction watch`` runs one."""

from __future__ import annotations

import copy
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from resaction.cli import run_app
from resaction.data.spec import ClipSpec
from resaction.deploy.frames_export import export_frames
from resaction.deploy.frames_quantize import quantize_frames
from resaction.errors import DeployError
from resaction.inference.incremental import LiveScorer, WindowScore
from resaction.io.live import CapturedFrame
from resaction.models import create_model
from resaction.monitor.config import load_watch_config
from resaction.monitor.watcher import Watcher, WatchOptions
from resaction.runtime.backends import TorchBackend
from resaction.runtime.loading import load_model
from resaction.runtime.onnx_frames import FramesBackend, OnnxFrames

from ..monitor.tiny_model import CLASSES, save_tiny_tsn

CLIP_LEN = 4
CROP = 32
SPEC = ClipSpec(resize=CROP, crop=CROP, mean=[0.45] * 3, std=[0.225] * 3)
MODELS = {
    "tsn_resnet18": ({"num_segments": 4}, 1),
    "tsn_diff_resnet18": ({"num_segments": 2, "segment_len": 2}, 2),
    "lrcn_resnet18": ({"hidden_size": 32}, 1),
    "tsm_online_resnet18": ({"num_segments": 4}, 1),
}


def make_model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, num_classes=5, **MODELS[name][0]).eval()


def export(name: str, model: torch.nn.Module, folder: Path) -> Path:
    segment_len = MODELS[name][1]
    preprocess = {**SPEC.to_dict(), "clip_len": CLIP_LEN, "segment_len": segment_len}
    classes = [f"c{i}" for i in range(5)]
    result = export_frames(
        model, folder / f"{name}.frames.onnx", model_name=name, classes=classes,
        preprocess=preprocess, protocol={},
    )  # fmt: skip
    assert result.metadata["frames"] and result.max_abs_diff < 1e-4
    return result.path


@pytest.fixture(scope="module", params=list(MODELS))
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    name = request.param
    model = make_model(name)
    return name, model, export(name, model, tmp_path_factory.mktemp("frames"))


def scorer(name: str, model: torch.nn.Module | None, runner: OnnxFrames | None) -> LiveScorer:
    backend = TorchBackend(model) if model is not None else FramesBackend(runner)
    return LiveScorer(
        backend,
        model,
        SPEC.transform(train=False),
        clip_len=CLIP_LEN,
        segment_len=MODELS[name][1],
        max_batch=4,
        runner=runner,
    )


def run_cameras(scorer: LiveScorer, videos: list[np.ndarray]) -> list[WindowScore]:
    """Every camera's frames a few at a time, interleaved, scored after each round."""
    tracks = [scorer.track(f"cam{i}", 1) for i in range(len(videos))]
    scores = []
    for start in range(0, len(videos[0]), 3):
        for track, video in zip(tracks, videos, strict=True):
            for seq in range(start, min(start + 3, len(video))):
                scorer.add(track, CapturedFrame(seq, seq / 25, 0.0, video[seq]))
        scores.extend(scorer.score(tracks))
    return scores


def random_videos(count: int = 2, frames: int = 14) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (frames, 40, 48, 3), dtype=np.uint8) for _ in range(count)]


def real_videos(videos_dir: Path, frames: int = 40) -> list[np.ndarray]:
    """The first ``frames`` frames of two real clips (two people waving and raising arms)."""
    folder = videos_dir / "gt_cs4495_ps7"
    paths = [folder / "A2_one_hand_wave" / "PS7A2P2T1.avi", folder / "A1_arms_up_sideways"]
    paths[1] = sorted(paths[1].glob("*.avi"))[-1]
    out = []
    for path in paths:
        with av.open(str(path)) as container:
            decoded = []
            for frame in container.decode(video=0):
                decoded.append(frame.to_ndarray(format="rgb24"))
                if len(decoded) == frames:
                    break
        out.append(np.stack(decoded))
    return out


def test_fp32_frames_give_the_torch_windows(exported) -> None:
    name, model, path = exported
    runner = OnnxFrames(path)
    assert runner.stateful == (name == "tsm_online_resnet18")
    videos = random_videos()
    onnx_scorer = scorer(name, None, runner)
    assert onnx_scorer.incremental and onnx_scorer.runner is runner
    expected = run_cameras(scorer(name, model, None), videos)
    got = run_cameras(onnx_scorer, videos)
    units = 14 // MODELS[name][1]
    assert len(got) == len(expected) == 2 * (units - CLIP_LEN // MODELS[name][1] + 1)
    for want, have in zip(expected, got, strict=True):
        assert (have.camera, have.seq) == (want.camera, want.seq)
        np.testing.assert_allclose(have.probabilities, want.probabilities, atol=1e-4)


def test_a_frames_file_scores_whole_clips(exported) -> None:
    """The loader's backend for a frames file: a clip's units in order (a past-shift TSM's
    caches chained from zeros), then the pooling: the PyTorch model's logits."""
    name, _, path = exported
    model = make_model(name)  # a fresh one: TorchFrames switched the other's shifts to online
    loaded = load_model(path)
    assert loaded.is_onnx and isinstance(loaded.extra["frame_runner"], OnnxFrames)
    assert loaded.spec.clip_len == CLIP_LEN and loaded.spec.segment_len == MODELS[name][1]
    clips = torch.randn((3, 3, CLIP_LEN, CROP, CROP), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        expected = model(clips).numpy()
    np.testing.assert_allclose(loaded.backend(clips), expected, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tsn_resnet18", "tsm_online_resnet18"])
def test_int8_frames_follow_fp32(
    name: str, gt_videos: Path, videos_dir: Path, tmp_path: Path
) -> None:
    videos = real_videos(videos_dir)
    model = make_model(name)
    spread_classes(name, model, videos)
    fp32 = export(name, model, tmp_path)
    result = quantize_frames(
        fp32, gt_videos, tmp_path / "int8.onnx", calib_videos=8, num_workers=0, progress=False
    )
    assert result.calibration_clips == 16
    int8 = OnnxFrames(result.path)
    assert int8.metadata["quantization"]["calibration"]["units"] == 16 * CLIP_LEN
    assert result.path.stat().st_size < fp32.stat().st_size / 3
    reference = run_cameras(scorer(name, None, OnnxFrames(fp32)), videos)
    got = run_cameras(scorer(name, None, int8), videos)
    assert len(got) == len(reference) == 2 * (40 - CLIP_LEN + 1)
    pairs = zip(reference, got, strict=True)
    agreement = float(
        np.mean([a.probabilities.argmax() == b.probabilities.argmax() for a, b in pairs])
    )
    assert len({score.probabilities.argmax() for score in reference}) >= 3
    print(f"{name}: int8 top class = fp32's on {agreement:.0%} of {len(got)} windows")
    # Measured 68% for both (5 classes): a random trunk's features barely vary with the input,
    # so int8's rounding competes with the whole signal; trained models keep wider margins.
    assert agreement >= 0.55


def spread_classes(name: str, model: torch.nn.Module, videos: list[np.ndarray]) -> None:
    """Rescale a random model's classifier so its top class changes with the input: each
    class's window logit (less the mean over classes) standardised over ``videos``. (A random
    head favours one class everywhere, which would make any agreement trivially perfect.)"""
    scores = run_cameras(scorer(name, copy.deepcopy(model), None), videos)
    logits = np.log(np.stack([score.probabilities for score in scores]))
    logits -= logits.mean(1, keepdims=True)  # the logits less their mean over classes
    mean, std = torch.from_numpy(logits.mean(0)), torch.from_numpy(logits.std(0))
    fc = model.fc
    with torch.no_grad():  # window logits are the mean of frame logits: linear in fc
        fc.weight.copy_((fc.weight - fc.weight.mean(0)) / std[:, None])
        fc.bias.copy_((fc.bias - fc.bias.mean() - mean) / std)


def test_a_model_without_a_frame_half_is_refused(tmp_path: Path) -> None:
    for name in ("r3d_10", "tsm_resnet18"):  # 3D; TSM shifting from the future
        with pytest.raises(DeployError, match="has no frames model"):
            export_frames(
                create_model(name, num_classes=2), tmp_path / "x.onnx", model_name=name,
                classes=["a", "b"], preprocess=SPEC.to_dict(), protocol={},
            )  # fmt: skip
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.slow
def test_watch_runs_an_int8_frames_file(
    tmp_path: Path, gt_videos: Path, videos_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = save_tiny_tsn(tmp_path / "tiny.pt")
    assert run_app(["export", str(checkpoint), "--frames"]) == 0
    frames = tmp_path / "tiny.frames.onnx"
    assert frames.is_file()
    argv = ["quantize", str(frames), "--calibrate", str(gt_videos), "--calib-videos", "8"]
    assert run_app([*argv, "--workers", "0", "--no-progress"]) == 0
    int8 = tmp_path / "tiny.frames.int8.onnx"
    loaded = load_model(int8)
    assert loaded.classes == CLASSES and loaded.backend.name == "onnx-int8-frames"
    url = videos_dir / "surveillance_camera_fight" / "noFight" / "nofi148.mp4"
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(f"defaults:\n  classes: [fight]\ncameras:\n  - name: hall\n    url: {url}\n")
    out = tmp_path / "watch"
    watcher = Watcher(load_watch_config(cameras), loaded, WatchOptions(out=tmp_path / "api"))
    assert watcher.scorer.incremental and watcher.scorer.runner is loaded.extra["frame_runner"]
    capsys.readouterr()
    argv = ["watch", str(cameras), "-c", str(int8), "--out", str(out), "--duration", "6"]
    assert run_app(argv) == 0
    captured = capsys.readouterr()
    assert "hall: live" in captured.err
    rows = {line.split("│")[1].strip(): line for line in captured.out.splitlines() if "│" in line}
    hall = [cell.strip() for cell in rows["hall"].split("│")[1:-1]]
    assert int(hall[2]) > 30
    assert (out / "events.db").exists()
