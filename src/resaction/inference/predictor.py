"""``Predictor``: a model with its class names and preprocessing: "what is in this video?".

A video is scored with the evaluation protocol it was trained for: ``num_clips`` uniform clips
times ``num_crops`` crops, softmax averaged. Clips are decoded and transformed exactly as
``engine.evaluate`` does (same sampler, same transform, same decoder-side resize), so a
prediction equals the evaluation of the same video. The network itself is behind a backend
object (``backends.TorchBackend``, later an ONNX Runtime one), which the predictor never looks
inside.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from resaction.data.sampling import build_sampler
from resaction.data.transforms import ClipTransform, build_transform
from resaction.errors import CheckpointError, ConfigError, ResactionError
from resaction.inference.backends import Backend, TorchBackend
from resaction.io import VideoReader

DEFAULT_PROTOCOL: dict[str, Any] = {"num_clips": 5, "num_crops": 1, "aggregate": "mean_softmax"}


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


@dataclass
class Prediction:
    """The top-k labels of one video and the full averaged probability vector."""

    path: str
    labels: list[str]
    probs: list[float]
    indices: list[int]
    probabilities: np.ndarray = field(repr=False)
    num_views: int = 0
    seconds: float = 0.0

    @property
    def label(self) -> str:
        return self.labels[0]

    @property
    def confidence(self) -> float:
        return self.probs[0]

    def to_record(self) -> dict[str, Any]:
        """A flat, JSON-ready row: path, label, confidence, top-k pairs, views, seconds."""
        return {
            "path": self.path,
            "label": self.label,
            "confidence": round(self.confidence, 6),
            "topk": [
                {"label": label, "prob": round(prob, 6)}
                for label, prob in zip(self.labels, self.probs, strict=True)
            ],
            "num_views": self.num_views,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class VideoFailure:
    """A video that could not be scored, and why (one line)."""

    path: str
    reason: str


@dataclass
class _Pending:
    path: str
    expected: int = 0
    logits: list[np.ndarray] = field(default_factory=list)
    failure: VideoFailure | None = None
    started: float = field(default_factory=time.perf_counter)

    @property
    def done(self) -> bool:
        return self.failure is not None or len(self.logits) == self.expected


class Predictor:
    """A backend plus what it needs: class names, preprocessing dict, evaluation protocol."""

    def __init__(
        self,
        backend: Backend,
        classes: list[str],
        preprocess: dict[str, Any],
        protocol: dict[str, Any] | None = None,
        *,
        model_name: str | None = None,
    ) -> None:
        self.backend = backend
        self.classes = list(classes)
        self.preprocess = dict(preprocess)
        self.protocol = {**DEFAULT_PROTOCOL, **(protocol or {})}
        self.model_name = model_name
        if self.protocol.get("aggregate", "mean_softmax") != "mean_softmax":
            raise ConfigError(
                f"unsupported aggregate {self.protocol['aggregate']!r}; use 'mean_softmax'"
            )
        self.num_crops = int(self.protocol.get("num_crops", 1))
        self._sampler = build_sampler(self.preprocess, self.protocol, train=False)
        self._transform = build_transform(self.preprocess, train=False, num_crops=self.num_crops)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        *,
        expect_model: str | None = None,
        device: str = "cpu",
        protocol: dict[str, Any] | None = None,
        classes: list[str] | None = None,
    ) -> Predictor:
        """The model, classes, preprocessing and protocol stored in a resaction checkpoint.

        ``expect_model`` refuses a checkpoint of another model with one line; ``protocol``
        overrides keys of the stored one (``num_clips``, ``num_crops``). An ``.onnx`` file runs
        on ONNX Runtime (``OnnxBackend``); ``classes`` names the outputs of one without
        resaction metadata.
        """
        from resaction.models.checkpoint import load_checkpoint
        from resaction.models.registry import default_preprocess

        if Path(path).suffix.lower() == ".onnx":
            from resaction.inference.onnx_backend import OnnxBackend

            onnx = OnnxBackend(path, classes=classes)
            stored = {**onnx.protocol, **(protocol or {})}
            return cls(onnx, onnx.classes, onnx.preprocess, stored, model_name=onnx.model_name)

        bundle = load_checkpoint(path)
        if expect_model is not None and bundle.model_name != expect_model:
            raise CheckpointError(
                f"checkpoint {path} holds a {bundle.model_name} model, not {expect_model}; "
                "pass the checkpoint of that model or drop --model"
            )
        preprocess = {**default_preprocess(bundle.model_name), **bundle.preprocess}
        return cls(
            TorchBackend(bundle.model, device),
            bundle.classes,
            preprocess,
            {**bundle.protocol, **(protocol or {})},
            model_name=bundle.model_name,
        )

    @classmethod
    def from_pretrained(
        cls,
        model_name: str,
        weights: str = "kinetics400",
        *,
        device: str = "cpu",
        protocol: dict[str, Any] | None = None,
    ) -> Predictor:
        """A registered model with named weights (``"kinetics400"``) and their preprocessing.

        ``weights="none"`` gives random weights (for timing); a checkpoint file is read with
        ``from_checkpoint``, refusing one of another model.
        """
        from resaction.models.registry import create_model
        from resaction.models.weights import weights_preprocess

        if weights and Path(weights).expanduser().is_file():
            return cls.from_checkpoint(
                Path(weights).expanduser(),
                expect_model=model_name,
                device=device,
                protocol=protocol,
            )

        model = create_model(model_name, weights=weights)
        report = getattr(model, "load_report", None)
        classes = getattr(report, "classes", None)
        num_classes = model.get_classifier().out_features
        if not classes or len(classes) != num_classes:
            classes = [f"class_{index}" for index in range(num_classes)]
        return cls(
            TorchBackend(model, device),
            list(classes),
            weights_preprocess(model_name, weights),
            protocol,
            model_name=model_name,
        )

    @property
    def clip_len(self) -> int:
        return int(self.preprocess["clip_len"])

    def compile(self) -> Predictor:
        """Run the PyTorch model through ``torch.compile`` with freezing (eager if that fails).

        The first batch of each shape pays the compilation; ONNX backends are refused.
        """
        from resaction.inference.backends import TorchBackend
        from resaction.models.compile import CompiledModel, compile_model

        if not isinstance(self.backend, TorchBackend):
            raise ConfigError(
                f"--compile compiles PyTorch models; {self.model_name or 'this model'} runs on "
                f"{getattr(self.backend, 'name', 'another backend')} (use a .pt checkpoint)"
            )
        if not isinstance(self.backend.model, CompiledModel):
            self.backend = TorchBackend(compile_model(self.backend.model), self.backend.device)
        return self

    def clip_transform(self) -> ClipTransform:
        """The single-view evaluation transform (resize, centre crop, normalise)."""
        return build_transform(self.preprocess, train=False, num_crops=1)

    def logits(self, batch: np.ndarray | torch.Tensor) -> np.ndarray:
        """Raw (N, K) logits of a batch of clips (N, C, T, H, W)."""
        logits = np.asarray(self.backend(batch), dtype=np.float32)
        if logits.ndim != 2 or logits.shape[1] != len(self.classes):
            raise CheckpointError(
                f"the model gives {logits.shape[-1]} outputs for {len(self.classes)} class names; "
                "the checkpoint's classes do not match its model"
            )
        return logits

    def predict_clips(self, batch: np.ndarray | torch.Tensor) -> np.ndarray:
        """Class probabilities (N, K) of a batch of clips (N, C, T, H, W)."""
        return softmax(self.logits(batch).astype(np.float64))

    def load_views(self, video: str | Path) -> torch.Tensor:
        """The protocol's views of a video, (V, C, T, H, W) float: clips x crops, clip-major."""
        reader_options = self._transform.decode_hint()
        rng = np.random.default_rng(0)
        with VideoReader(video, **reader_options) as reader:
            clips = self._sampler(reader.num_frames, reader.fps, rng)
            wanted, where = np.unique(np.concatenate(clips), return_inverse=True)
            frames = reader.get_frames(wanted.tolist())
        picked = frames[torch.from_numpy(where.astype(np.int64))]
        views = []
        for clip in picked.split([len(c) for c in clips]):
            out = self._transform(clip, rng)
            views.extend(out if self._transform.num_views > 1 else [out])
        return torch.stack(views)

    def predict(self, video: str | Path, topk: int = 5) -> Prediction:
        """Top-k labels of one video; a video that cannot be decoded raises a ``VideoError``."""
        started = time.perf_counter()
        views = self.load_views(video)
        logits = np.concatenate([self.logits(views[i : i + 8]) for i in range(0, len(views), 8)])
        return self._prediction(str(video), logits, topk, time.perf_counter() - started)

    def predict_many(
        self,
        videos: Iterable[str | Path],
        *,
        topk: int = 5,
        batch_size: int = 8,
        num_workers: int = 2,
    ) -> Iterator[Prediction | VideoFailure]:
        """Predictions in input order; views of several videos share a forward pass.

        ``num_workers`` threads decode the next videos while the model runs (PyAV and torch
        release the GIL). A video that cannot be decoded yields a ``VideoFailure`` and the
        others carry on.
        """
        if batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {batch_size}")
        order: deque[_Pending] = deque()
        clips: list[torch.Tensor] = []
        owners: list[_Pending] = []
        for pending, views in self._decode_ahead(videos, max(1, num_workers)):
            order.append(pending)
            if views is not None:
                pending.expected = len(views)
                clips.extend(views)
                owners.extend([pending] * len(views))
            while len(clips) >= batch_size:
                self._run_batch(clips[:batch_size], owners[:batch_size])
                del clips[:batch_size], owners[:batch_size]
            yield from self._finished(order, topk)
        if clips:
            self._run_batch(clips, owners)
        yield from self._finished(order, topk)

    def _decode_ahead(
        self, videos: Iterable[str | Path], workers: int
    ) -> Iterator[tuple[_Pending, torch.Tensor | None]]:
        in_flight: deque[tuple[_Pending, Future[torch.Tensor]]] = deque()
        with ThreadPoolExecutor(workers, thread_name_prefix="resaction-decode") as pool:
            for video in videos:
                in_flight.append((_Pending(str(video)), pool.submit(self.load_views, video)))
                if len(in_flight) > 2 * workers:
                    yield self._resolve(*in_flight.popleft())
            while in_flight:
                yield self._resolve(*in_flight.popleft())

    @staticmethod
    def _resolve(
        pending: _Pending, future: Future[torch.Tensor]
    ) -> tuple[_Pending, torch.Tensor | None]:
        try:
            return pending, future.result()
        except Exception as error:  # a broken file must not stop the others
            pending.failure = VideoFailure(pending.path, _one_line(error))
            return pending, None

    def _run_batch(self, clips: list[torch.Tensor], owners: list[_Pending]) -> None:
        logits = self.logits(torch.stack(clips))
        for owner, row in zip(owners, logits, strict=True):
            owner.logits.append(row)

    def _finished(self, order: deque[_Pending], topk: int) -> Iterator[Prediction | VideoFailure]:
        while order and order[0].done:
            pending = order.popleft()
            if pending.failure is not None:
                yield pending.failure
            else:
                seconds = time.perf_counter() - pending.started
                yield self._prediction(pending.path, np.stack(pending.logits), topk, seconds)

    def _prediction(self, path: str, logits: np.ndarray, topk: int, seconds: float) -> Prediction:
        probs = softmax(logits.astype(np.float64)).mean(axis=0)
        k = max(1, min(topk, len(self.classes)))
        top = np.argsort(-probs, kind="stable")[:k]
        return Prediction(
            path=path,
            labels=[self.classes[i] for i in top],
            probs=[float(probs[i]) for i in top],
            indices=[int(i) for i in top],
            probabilities=probs,
            num_views=len(logits),
            seconds=seconds,
        )

    def __repr__(self) -> str:
        return (
            f"Predictor({self.model_name or '?'}, {len(self.classes)} classes, "
            f"backend={self.backend!r}, protocol={self.protocol})"
        )


def _one_line(error: BaseException) -> str:
    """A failure as one line: a user error's own message, else its type and first line."""
    if isinstance(error, ResactionError):
        return str(error)
    text = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
    return f"cannot decode ({type(error).__name__}{': ' + text if text else ''})"
