"""Scores for live windows, each frame through the network once where the model allows it.

A live window is the newest ``clip_len`` frames of a camera on a fixed lattice (a unit, one
frame or a difference model's segment of consecutive frames, every ``step`` frames). Models with
a 2D trunk (TSN, the difference models, LRCN, and a TSM
that shifts only from the past) give a window's logits by pooling per-frame outputs
(``frame_outputs`` then ``pool_frames``), so each lattice frame (for a difference model, each
segment of ``segment_len`` frames) goes through the trunk once, its output is cached per camera,
and a window costs one pooling. A past-shift TSM runs its shifts "online": each camera's last
frame is carried between calls, which gives exactly the past-shift model run once over the whole
stream. The two halves run in PyTorch (``TorchFrames``) or, from a ``resaction export --frames``
file (fp32 or int8), in ONNX Runtime (``runtime.onnx_frames.OnnxFrames``). Every other model (3D
ResNets, a bidirectional TSM, whole-clip ONNX files) recomputes whole windows every ``stride``
units. The cameras' work is batched: one forward per round, whatever
the number of cameras.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch import nn

from resaction.data.transforms import ClipTransform
from resaction.io.live import CapturedFrame
from resaction.models.resnet2d import ResNet
from resaction.models.tsm import TSM
from resaction.runtime.backends import Backend
from resaction.runtime.scores import softmax

ShiftState = list[torch.Tensor | None]
"""A past-shift TSM's per-stream state: each shift's cached last frame."""


@dataclass
class WindowScore:
    """One window's class probabilities; ``time`` and ``captured`` are its newest frame's."""

    camera: str
    probabilities: np.ndarray
    time: float
    captured: float
    seq: int


@dataclass
class _Unit:
    frames: torch.Tensor  # (C, L, H, W): one trunk input (L = segment_len)
    time: float
    captured: float
    seq: int


@dataclass
class CameraTrack:
    """What one camera contributes: its lattice, its pending trunk inputs and its cache."""

    camera: str
    step: int
    window_units: int
    unit_len: int
    stride: int
    next_seq: int = 0
    last_seq: int = -1
    partial: list[torch.Tensor] = field(default_factory=list)
    pending: deque[_Unit] = field(default_factory=deque)
    outputs: deque[torch.Tensor] = field(default_factory=deque)
    units: deque[_Unit] = field(default_factory=deque)
    since_window: int = 0
    dropped_units: int = 0
    max_pending: int | None = None
    shift_state: ShiftState | None = None

    def accept(self, seq: int) -> bool:
        """Whether frame ``seq`` lies on the lattice: a unit starts every ``step`` frames and
        takes ``unit_len`` consecutive frames (a difference model's segment). A gap (dropped
        frames) inside a unit drops that unit; the lattice restarts at the next frame."""
        if self.partial:
            if seq == self.last_seq + 1:
                self.last_seq = seq
                return True
            self.partial = []
            self.next_seq = seq
        if seq < self.next_seq:
            return False
        self.next_seq = seq + self.step
        self.last_seq = seq
        return True

    def add_frame(self, frame: torch.Tensor, time: float, captured: float, seq: int) -> None:
        """A transformed lattice frame (C, 1, H, W); every ``unit_len`` of them make a unit.

        At most ``max_pending`` units (default: a window's worth) wait for the network: when
        the model falls behind, the oldest waiting unit is dropped (``dropped_units``), so a
        score is never more than that many units late."""
        self.partial.append(frame)
        if len(self.partial) == self.unit_len:
            frames = torch.cat(self.partial, dim=1)
            self.partial = []
            if len(self.pending) >= (self.max_pending or self.window_units):
                self.pending.popleft()
                self.dropped_units += 1
            self.pending.append(_Unit(frames, time, captured, seq))

    def ready(self) -> bool:
        """Whether scoring now would give a window."""
        have = len(self.outputs) + len(self.units) + len(self.pending)
        return bool(self.pending) and have >= self.window_units


class LiveScorer:
    """Turns lattice frames of many cameras into window scores, batched across cameras.

    ``incremental`` is true when the model allows per-frame caching; ``stride`` (lattice units
    between recomputed windows) only matters otherwise. ``max_pending`` bounds the units a
    camera may have waiting (default: a window's worth; a live watcher keeps it small, so an
    overloaded CPU drops units instead of deciding late).
    """

    def __init__(
        self,
        backend: Backend,
        module: nn.Module | None,
        transform: ClipTransform,
        *,
        clip_len: int,
        segment_len: int = 1,
        stride: int = 1,
        max_batch: int = 32,
        incremental: bool | None = None,
        runner: FrameRunner | None = None,
        max_pending: int | None = None,
    ) -> None:
        self.backend = backend
        self.module = module
        self.transform = transform
        self.unit_len = max(1, segment_len)
        self.window_units = max(1, clip_len // self.unit_len)
        self.stride = max(1, stride)
        self.max_batch = max(1, max_batch)
        self.max_pending = max_pending
        self.batches: list[int] = []
        """Sizes of the forwards run since the caller last cleared it (for metrics)."""
        possible = runner is not None or supports_incremental(module)
        self.incremental = possible if incremental is None else incremental and possible
        if not self.incremental:
            runner = None
        elif runner is None:
            runner = TorchFrames(module)
        self.runner = runner
        self.stateful = runner is not None and runner.stateful

    def track(self, camera: str, step: int, stride: int | None = None) -> CameraTrack:
        """A camera's lattice: a unit (one frame, or a difference model's ``segment_len``
        consecutive frames) every ``step`` frames; windows recomputed every ``stride`` units
        (the scorer's default when not given) unless the model is incremental."""
        stride = self.stride if stride is None else max(1, stride)
        step = max(step, self.unit_len)
        track = CameraTrack(camera, step, self.window_units, self.unit_len, stride)
        track.max_pending = self.max_pending
        return track

    def add(self, track: CameraTrack, frame: CapturedFrame) -> bool:
        """Offer a read frame; true when it lies on the lattice and was kept. Only kept frames
        are converted (``frame.image``)."""
        if not track.accept(frame.seq):
            return False
        clip = torch.from_numpy(np.ascontiguousarray(frame.image)).unsqueeze(0)
        track.add_frame(self.transform(clip), frame.time, frame.captured, frame.seq)
        return True

    def score(self, tracks: Sequence[CameraTrack]) -> list[WindowScore]:
        """Run every pending unit of ``tracks``; the windows that became ready, in order."""
        if self.incremental:
            return self._score_incremental(tracks)
        return self._score_windows(tracks)

    def pending_units(self, tracks: Sequence[CameraTrack]) -> int:
        return sum(len(track.pending) for track in tracks)

    def _score_incremental(self, tracks: Sequence[CameraTrack]) -> list[WindowScore]:
        scores: list[WindowScore] = []
        while True:
            # One unit per camera per round: an online shift must see a camera's frames in order.
            round_ = [t for t in tracks if t.pending][: self.max_batch]
            if not round_:
                return scores
            units = [track.pending.popleft() for track in round_]
            outputs = self._frame_outputs(round_, units)
            ready: list[tuple[CameraTrack, _Unit]] = []
            for track, unit, output in zip(round_, units, outputs, strict=True):
                track.outputs.append(output)
                while len(track.outputs) > track.window_units:
                    track.outputs.popleft()
                if len(track.outputs) == track.window_units:
                    ready.append((track, unit))
            if ready:
                scores.extend(self._pool(ready))

    def _frame_outputs(self, tracks: list[CameraTrack], units: list[_Unit]) -> torch.Tensor:
        batch = torch.stack([unit.frames for unit in units])
        self.batches.append(len(units))
        states = [track.shift_state for track in tracks] if self.runner.stateful else None
        outputs, states = self.runner.frames(batch, states)
        if states is not None:
            for track, state in zip(tracks, states, strict=True):
                track.shift_state = state
        return outputs

    def _pool(self, ready: list[tuple[CameraTrack, _Unit]]) -> list[WindowScore]:
        stacked = torch.stack([torch.stack(list(track.outputs)) for track, _ in ready])
        return _window_scores(ready, self.runner.pool(stacked))

    def _score_windows(self, tracks: Sequence[CameraTrack]) -> list[WindowScore]:
        ready: list[tuple[CameraTrack, _Unit]] = []
        clips: list[torch.Tensor] = []
        for track in tracks:
            while track.pending:
                unit = track.pending.popleft()
                track.units.append(unit)
                while len(track.units) > track.window_units:
                    track.units.popleft()
                track.since_window += 1
                full = len(track.units) == track.window_units
                if full and track.since_window >= track.stride:
                    track.since_window = 0
                    ready.append((track, unit))
                    clips.append(torch.cat([u.frames for u in track.units], dim=1))
        scores: list[WindowScore] = []
        for start in range(0, len(clips), self.max_batch):
            batch = torch.stack(clips[start : start + self.max_batch])
            self.batches.append(len(batch))
            logits = np.asarray(self.backend(batch), dtype=np.float32)
            scores.extend(_window_scores(ready[start : start + self.max_batch], logits))
        return scores


class FrameRunner(Protocol):
    """The two halves of a model that pools per-frame outputs: ``frames`` runs trunk inputs
    (B, C, L, H, W) to outputs (B, D), carrying each stream's state when ``stateful``; ``pool``
    turns windows of outputs (N, T, D) into logits (N, K). ``TorchFrames`` runs a PyTorch
    module; an ONNX Runtime runner (fp32 or int8) can take its place."""

    stateful: bool

    def frames(
        self, batch: torch.Tensor, states: list[ShiftState | None] | None = None
    ) -> tuple[torch.Tensor, list[ShiftState] | None]: ...

    def pool(self, outputs: torch.Tensor) -> np.ndarray: ...


class TorchFrames:
    """Runs a 2D-trunk model's two halves: ``frames`` (trunk inputs -> per-frame outputs, with
    each stream's online shift state for a past-shift TSM) and ``pool`` (a window of per-frame
    outputs -> logits)."""

    def __init__(self, module: nn.Module) -> None:
        if not supports_incremental(module):
            raise ValueError(f"{type(module).__name__} cannot score windows from per-frame outputs")
        self.module = module.eval()
        self.stateful = isinstance(module, TSM) and any(
            shift.mode != "bidirectional" for shift in module.shifts()
        )
        if self.stateful:
            module.set_shift_mode("online")

    def frames(
        self, batch: torch.Tensor, states: list[ShiftState | None] | None = None
    ) -> tuple[torch.Tensor, list[ShiftState] | None]:
        """Units (B, C, L, H, W) -> outputs (B, D); ``states`` are the streams' shift caches
        (``None`` for a stream's first unit), returned updated."""
        model = self.module
        with torch.inference_mode():
            if self.stateful:
                model.set_online_state(_stack_states(states or [None] * len(batch), model))
            frames, _ = model.clip_frames(batch)
            outputs = model.frame_outputs(frames)
            if not self.stateful:
                return outputs, None
            return outputs, _split_states(model.online_state(), len(batch))

    def pool(self, outputs: torch.Tensor) -> np.ndarray:
        """Per-frame outputs of windows (N, T, D) -> logits (N, K)."""
        with torch.inference_mode():
            return self.module.pool_frames(outputs).float().numpy()


class WindowCache:
    """Overlapping windows of one video scored from per-unit outputs: each unit (one frame, or
    a difference model's ``unit_len`` consecutive frames) goes through the trunk once, however
    many windows share it. Stateless models only (a past-shift TSM's window would see the frames
    before it)."""

    def __init__(self, runner: TorchFrames, unit_len: int) -> None:
        if runner.stateful:
            raise ValueError("a stateful model cannot share units between separate windows")
        self.runner = runner
        self.unit_len = max(1, unit_len)
        self._outputs: dict[tuple[int, ...], torch.Tensor] = {}
        self.units_run = 0

    def logits(self, windows: list[tuple[np.ndarray, torch.Tensor]]) -> np.ndarray:
        """``windows``: (frame indices (T,), clip (C, T, H, W)) each; their logits (N, K)."""
        keyed: list[list[tuple[int, ...]]] = []
        todo: dict[tuple[int, ...], torch.Tensor] = {}
        for indices, clip in windows:
            keys = []
            for start in range(0, len(indices), self.unit_len):
                key = tuple(int(i) for i in indices[start : start + self.unit_len])
                keys.append(key)
                if key not in self._outputs and key not in todo:
                    todo[key] = clip[:, start : start + self.unit_len]
            keyed.append(keys)
        if todo:
            outputs, _ = self.runner.frames(torch.stack(list(todo.values())))
            self._outputs.update(zip(todo, outputs, strict=True))
            self.units_run += len(todo)
        stacked = torch.stack([torch.stack([self._outputs[k] for k in keys]) for keys in keyed])
        return self.runner.pool(stacked)

    def release_before(self, index: int) -> None:
        """Forget units that start before frame ``index`` (no later window needs them)."""
        for key in [key for key in self._outputs if key[0] < index]:
            del self._outputs[key]


def supports_incremental(module: nn.Module | None) -> bool:
    """True for a PyTorch model whose clip output pools per-frame outputs of a causal trunk."""
    if not isinstance(module, ResNet):
        return False
    if isinstance(module, TSM):
        return all(shift.mode in ("past", "online") for shift in module.shifts())
    return True


def _window_scores(ready: list[tuple[CameraTrack, _Unit]], logits: np.ndarray) -> list[WindowScore]:
    probabilities = softmax(logits)
    return [
        WindowScore(track.camera, probs, unit.time, unit.captured, unit.seq)
        for (track, unit), probs in zip(ready, probabilities, strict=True)
    ]


def _stack_states(states: list[ShiftState | None], model: TSM) -> ShiftState:
    """Per-stream shift caches -> one batch's; a stream without a past gets zeros (as the
    first frame of a stream does)."""
    known = next((s for s in states if s is not None), None)
    if known is None:
        return [None] * len(model.shifts())
    stacked: ShiftState = []
    for index, reference in enumerate(known):
        parts = [s[index] if s is not None else torch.zeros_like(reference) for s in states]
        stacked.append(torch.cat(parts))
    return stacked


def _split_states(state: ShiftState, count: int) -> list[ShiftState]:
    per_stream: list[ShiftState] = [[] for _ in range(count)]
    for cache in state:
        parts = cache.split(1) if cache is not None else [None] * count
        for stream, part in zip(per_stream, parts, strict=True):
            stream.append(part)
    return per_stream
