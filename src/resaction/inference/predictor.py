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

from resaction.data.spec import DEFAULT_VIEWS, ClipSpec, ViewProtocol
from resaction.data.transforms import ClipTransform
from resaction.errors import CheckpointError, ConfigError, ResactionError, describe_error
from resaction.models import compile as model_compile
from resaction.models import create_model
from resaction.models.weights import weights_preprocess
from resaction.runtime.backends import Backend, TorchBackend
from resaction.runtime.loading import DECISION_EXTRAS, LoadedModel, load_model
from resaction.runtime.scores import softmax, top_k, video_probabilities


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

    @classmethod
    def from_logits(
        cls, path: str, logits: np.ndarray, classes: list[str], topk: int, seconds: float = 0.0
    ) -> Prediction:
        """The prediction of a video from the logits of its views (V, K)."""
        probs = video_probabilities(logits)
        top = top_k(probs, topk)
        return cls(
            path=path,
            labels=[classes[i] for i in top],
            probs=[float(probs[i]) for i in top],
            indices=[int(i) for i in top],
            probabilities=probs,
            num_views=len(logits),
            seconds=seconds,
        )

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
    """A backend plus what it needs: class names, clip specification, test views."""

    def __init__(
        self,
        backend: Backend,
        classes: list[str],
        preprocess: dict[str, Any] | ClipSpec,
        protocol: dict[str, Any] | ViewProtocol | None = None,
        *,
        model_name: str | None = None,
        decisions: dict[str, Any] | None = None,
    ) -> None:
        self.backend = backend
        self.classes = list(classes)
        self.spec = ClipSpec.from_dict(preprocess)
        views = protocol if isinstance(protocol, ViewProtocol) else DEFAULT_VIEWS.updated(protocol)
        self.views = views
        self.preprocess = self.spec.to_dict()
        self.protocol = self.views.to_dict()
        self.model_name = model_name
        self.num_crops = self.views.num_crops
        self.decisions = dict(decisions or {})  # calibration: thresholds, operating point

    @classmethod
    def from_loaded(cls, loaded: LoadedModel, protocol: dict[str, Any] | None = None) -> Predictor:
        """The predictor of a loaded model file; ``protocol`` overrides its stored views."""
        return cls(
            loaded.backend,
            loaded.classes,
            loaded.spec,
            loaded.views.updated(protocol),
            model_name=loaded.model_name,
            decisions={k: loaded.extra[k] for k in DECISION_EXTRAS if k in loaded.extra},
        )

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
        loaded = load_model(path, device=device, expect_model=expect_model, classes=classes)
        return cls.from_loaded(loaded, protocol)

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

        if not isinstance(self.backend, TorchBackend):
            raise ConfigError(
                f"--compile compiles PyTorch models; {self.model_name or 'this model'} runs on "
                f"{getattr(self.backend, 'name', 'another backend')} (use a .pt checkpoint)"
            )
        if not isinstance(self.backend.model, model_compile.CompiledModel):
            self.backend = TorchBackend(
                model_compile.compile_model(self.backend.model), self.backend.device
            )
        return self

    def clip_transform(self) -> ClipTransform:
        """The single-view evaluation transform (resize, centre crop, normalise)."""
        return self.spec.transform(train=False, views=ViewProtocol(num_crops=1))

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
        return softmax(self.logits(batch))

    def load_views(self, video: str | Path) -> torch.Tensor:
        """The protocol's views of a video, (V, C, T, H, W) float: clips x crops, clip-major."""
        return self.spec.read_views(video, self.views)

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
        return Prediction.from_logits(path, logits, self.classes, topk, seconds)

    def __repr__(self) -> str:
        return (
            f"Predictor({self.model_name or '?'}, {len(self.classes)} classes, "
            f"backend={self.backend!r}, protocol={self.protocol})"
        )


def _one_line(error: BaseException) -> str:
    """A failure as one line: a user error's own message, else what the library said."""
    if isinstance(error, ResactionError):
        return str(error)
    return f"cannot decode ({describe_error(error)})"
