"""A 2D-trunk model's two halves on ONNX Runtime: the frame runner of live incremental scoring.

``resaction export --frames`` writes one ``.onnx`` file holding two unconnected graphs:

- the per-frame half: ``units`` (B, C, L, H, W) float32 (L = the model's ``segment_len``) ->
  ``outputs`` (B, D), dynamic batch. A past-shift TSM also takes each shift's cache
  ``shift_in_<i>`` (B, 1, fold, h, w) (zeros for a stream's first frame) and returns the next
  one, ``shift_out_<i>``: the online TSM of the paper's demo, run one frame per stream per call.
- the pooling half: ``pool/window`` (N, T, D) -> ``pool/logits`` (N, K) (the consensus, or
  LRCN's RNN and classifier).

One file, so a frames model is copied and quantised as one thing; the two halves are cut out
of it when it is opened (ONNX Runtime wants every graph input fed, and the halves run at
different times). ``resaction quantize`` turns the per-frame half to int8 and keeps the tiny
pooling half float. The metadata says ``frames: true`` with ``unit_len``, ``window_units`` and
``shifts`` (each cache's shape without the batch), besides the usual classes and preprocessing.

``OnnxFrames`` fits ``inference.incremental.FrameRunner`` (a stream's state is its list of
caches); ``FramesBackend`` scores whole clips with it, so predict, evaluate and a watcher with
``--no-incremental`` run a frames file too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from resaction.errors import ModelError
from resaction.runtime.onnx_backend import _open_session, decode_metadata, read_metadata

UNITS = "units"
OUTPUTS = "outputs"
WINDOW = "pool/window"
LOGITS = "pool/logits"
POOL_PREFIX = "pool/"

FrameState = list[np.ndarray]
"""One stream's shift caches, (1, 1, fold, h, w) each."""


def shift_input(index: int) -> str:
    return f"shift_in_{index}"


def shift_output(index: int) -> str:
    return f"shift_out_{index}"


def frame_names(shifts: int) -> tuple[list[str], list[str]]:
    """Input and output names of the per-frame half of a model with ``shifts`` shift caches."""
    inputs = [UNITS] + [shift_input(i) for i in range(shifts)]
    outputs = [OUTPUTS] + [shift_output(i) for i in range(shifts)]
    return inputs, outputs


def split_frames_model(model: Any, shifts: int) -> tuple[Any, Any]:
    """The per-frame and the pooling half of a frames file's ``onnx.ModelProto``."""
    from onnx.utils import Extractor

    extractor = Extractor(model)
    inputs, outputs = frame_names(shifts)
    frames = extractor.extract_model(inputs, outputs)
    pool = extractor.extract_model([WINDOW], [LOGITS])
    return frames, pool


def is_frames_file(path: str | Path) -> bool:
    """Whether ``path`` is a frames file; a file that cannot be read is not (``OnnxBackend``
    then says why in one line)."""
    try:
        return bool(read_metadata(path).get("frames"))
    except Exception:  # missing, not a protobuf, no onnx package
        return False


class OnnxFrames:
    """Runs a frames file (fp32 or int8): ``frames`` for trunk units with each stream's shift
    caches, ``pool`` for windows of per-frame outputs (see the module doc)."""

    def __init__(
        self, path: str | Path, providers: list[str] | None = None, threads: int | None = None
    ) -> None:
        import onnx

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"ONNX model {self.path} does not exist")
        model = onnx.load(str(self.path))
        self.metadata = decode_metadata({p.key: p.value for p in model.metadata_props})
        if not self.metadata.get("frames"):
            raise ModelError(
                f"{self.path} is not a frames model; write one with `resaction export --frames`"
            )
        self.shift_shapes = [tuple(int(d) for d in shape) for shape in self.metadata["shifts"]]
        self.stateful = bool(self.shift_shapes)
        self.unit_len = int(self.metadata.get("unit_len", 1))
        frames, pool = split_frames_model(model, len(self.shift_shapes))
        graphs = frames.SerializeToString(), pool.SerializeToString()
        self.session = _open_session(self.path, providers, threads, graphs[0], spin=False)
        self.pool_session = _open_session(self.path, providers, threads, graphs[1], spin=False)
        self.input_names, self.output_names = frame_names(len(self.shift_shapes))
        self.providers = self.session.get_providers()

    def frames(
        self, batch: torch.Tensor | np.ndarray, states: list[FrameState | None] | None = None
    ) -> tuple[torch.Tensor, list[FrameState] | None]:
        """Units (B, C, L, H, W) -> outputs (B, D); ``states`` are the streams' shift caches
        (``None`` for a stream's first unit), returned updated."""
        feed = self.feed(batch, states)
        results = self.session.run(self.output_names, feed)
        outputs = torch.from_numpy(np.asarray(results[0], dtype=np.float32))
        if not self.stateful:
            return outputs, None
        caches = results[1:]
        return outputs, [[c[b : b + 1] for c in caches] for b in range(len(outputs))]

    def feed(
        self, batch: torch.Tensor | np.ndarray, states: list[FrameState | None] | None = None
    ) -> dict[str, np.ndarray]:
        """The per-frame graph's inputs for ``batch`` and the streams' ``states``."""
        if isinstance(batch, torch.Tensor):
            batch = batch.detach().cpu().numpy()
        units = np.ascontiguousarray(batch, dtype=np.float32)
        feed = {UNITS: units}
        if self.stateful:
            streams = states or [None] * len(units)
            for index, shape in enumerate(self.shift_shapes):
                parts = [
                    s[index] if s is not None else np.zeros((1, *shape), np.float32)
                    for s in streams
                ]
                feed[shift_input(index)] = np.concatenate(parts)
        return feed

    def pool(self, outputs: torch.Tensor | np.ndarray) -> np.ndarray:
        """Per-frame outputs of windows (N, T, D) -> logits (N, K)."""
        if isinstance(outputs, torch.Tensor):
            outputs = outputs.detach().cpu().numpy()
        window = np.ascontiguousarray(outputs, dtype=np.float32)
        (logits,) = self.pool_session.run([LOGITS], {WINDOW: window})
        return np.asarray(logits, dtype=np.float32)

    def __repr__(self) -> str:
        return f"OnnxFrames({self.path.name}, providers={self.providers})"


class FramesBackend:
    """Whole clips (N, C, T, H, W) -> logits through a frames file: each clip's units in order
    (a past-shift TSM's caches chained from zeros), then the pooling half. It carries the
    attributes of ``OnnxBackend`` that the loader reads."""

    def __init__(self, runner: OnnxFrames) -> None:
        self.runner = runner
        self.metadata = runner.metadata
        self.model_name: str | None = self.metadata.get("model_name")
        self.classes = list(self.metadata.get("classes") or [])
        self.preprocess = dict(self.metadata.get("preprocess") or {})
        self.protocol = dict(self.metadata.get("protocol") or {})
        units = int(self.metadata.get("window_units", 1)) * runner.unit_len
        crop = self.preprocess.get("crop") or 112
        size = [crop, crop] if isinstance(crop, int) else [int(side) for side in crop]
        self.input_shape: list[Any] = ["N", 3, units, *size]
        quantized = bool(self.metadata.get("quantization"))
        self.name = "onnx-int8-frames" if quantized else "onnx-frames"
        self.providers = runner.providers

    def __call__(self, batch: np.ndarray | torch.Tensor) -> np.ndarray:
        if isinstance(batch, torch.Tensor):
            batch = batch.detach().cpu().numpy()
        clips = np.asarray(batch, dtype=np.float32)
        length = self.runner.unit_len
        if clips.ndim != 5 or clips.shape[2] % length:
            raise ModelError(
                f"{self.runner.path.name} takes clips (N, C, T, H, W) with T a multiple of "
                f"{length}, got {tuple(clips.shape)}"
            )
        states: list[FrameState] | None = None
        outputs = []
        for start in range(0, clips.shape[2], length):
            output, states = self.runner.frames(clips[:, :, start : start + length], states)
            outputs.append(output)
        return self.runner.pool(torch.stack(outputs, dim=1))

    def __repr__(self) -> str:
        return f"FramesBackend({self.runner.path.name}, providers={self.providers})"
