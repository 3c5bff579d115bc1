"""TSM (Temporal Shift Module): a 2D ResNet whose blocks shift some channels along time.

The shift has no parameters, so a TSM model has exactly the 2D ResNet's keys and a 2D checkpoint
loads into it unchanged. Each block shifts ``1/fold_div`` of its channels from the next frame and
``1/fold_div`` from the previous one ("bidirectional", the paper's offline model), or only from
the previous one ("past"), which is what a streaming model runs: in "online" mode each shift keeps
the last frame's channels between calls, so feeding a clip one frame at a time gives the "past"
model's per-frame outputs.
"""

from __future__ import annotations

import torch
from torch import nn

from resaction.errors import ModelError
from resaction.models.catalog import register_on_trunks
from resaction.models.layers import ResidualBlock
from resaction.models.resnet2d import BasicBlock, Bottleneck, convert_state_dict
from resaction.models.tsn import DIFFERENCE_INPUT, TSN

SHIFT_MODES = ("bidirectional", "past", "online")
PLACEMENTS = ("residual", "inplace")


class TemporalShift(nn.Module):
    """Shift channels along time on frames stacked as (N*T, C, H, W), T in ``num_frames``.

    The model sets ``num_frames`` before each forward. In "online" mode the input may be any
    number of new frames per sample (usually one); ``reset()`` forgets the cached frame, as at the
    start of a new stream.
    """

    def __init__(self, fold_div: int = 8, mode: str = "bidirectional") -> None:
        super().__init__()
        if mode not in SHIFT_MODES:
            raise ModelError(f"shift mode {mode!r} is not one of {', '.join(SHIFT_MODES)}")
        if fold_div < 2:
            raise ModelError(f"fold_div must be at least 2 (got {fold_div})")
        self.fold_div = fold_div
        self.mode = mode
        self.num_frames = 1
        self._cache: torch.Tensor | None = None

    def reset(self) -> None:
        self._cache = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fold = x.shape[1] // self.fold_div
        clip = x.unflatten(0, (-1, self.num_frames))
        zeros = clip.new_zeros(clip[:, :1, :fold].shape)
        previous = zeros
        if self.mode == "online":
            if self._cache is not None and self._cache.shape != zeros.shape:
                raise ModelError(
                    "online temporal shift got a batch of another shape than the last call; "
                    "call reset() when a new stream starts"
                )
            previous = zeros if self._cache is None else self._cache
            self._cache = clip[:, -1:, :fold].detach().clone()
        from_past = torch.cat([previous, clip[:, :-1, :fold]], dim=1)
        if self.mode != "bidirectional":
            out = torch.cat([from_past, clip[:, :, fold:]], dim=2)
        else:
            from_future = torch.cat([clip[:, 1:, fold : 2 * fold], zeros], dim=1)
            out = torch.cat([from_past, from_future, clip[:, :, 2 * fold :]], dim=2)
        return out.flatten(0, 1)

    def extra_repr(self) -> str:
        return f"fold_div={self.fold_div}, mode={self.mode!r}"


class _ShiftedBlock(ResidualBlock):
    """A residual block that shifts its input in time: for the residual branch only ("residual")
    or for the shortcut too ("inplace")."""

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        fold_div: int = 8,
        shift_mode: str = "bidirectional",
        placement: str = "residual",
    ) -> None:
        super().__init__(inplanes, planes, stride, downsample)  # the 2D block's own layers
        if placement not in PLACEMENTS:
            raise ModelError(f"shift placement {placement!r} is not one of {', '.join(PLACEMENTS)}")
        self.shift = TemporalShift(fold_div, shift_mode)
        self.placement = placement

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shifted = self.shift(x)
        shortcut = self.shortcut(shifted if self.placement == "inplace" else x)
        return self.relu(self.residual(shifted) + shortcut)


class ShiftedBasicBlock(_ShiftedBlock, BasicBlock):
    pass


class ShiftedBottleneck(_ShiftedBlock, Bottleneck):
    pass


_SHIFTED: dict[type[ResidualBlock], type[ResidualBlock]] = {
    BasicBlock: ShiftedBasicBlock,
    Bottleneck: ShiftedBottleneck,
}


class TSM(TSN):
    """A TSN with a temporal shift in every block: ResNet with shifts -> dropout -> fc ->
    consensus over frames.

    Besides TSN's options, every block takes ``fold_div`` (8: 1/8 of the channels shift each way),
    ``shift_mode`` (one of ``SHIFT_MODES``) and ``placement`` (one of ``PLACEMENTS``).
    """

    @staticmethod
    def residual_block(block: type[ResidualBlock]) -> type[ResidualBlock]:
        return _SHIFTED[block]

    def shifts(self) -> list[TemporalShift]:
        return [m for m in self.modules() if isinstance(m, TemporalShift)]

    def set_shift_mode(self, mode: str) -> None:
        """Switch every shift, e.g. a model trained with "past" to "online" for streaming."""
        if mode not in SHIFT_MODES:
            raise ModelError(f"shift mode {mode!r} is not one of {', '.join(SHIFT_MODES)}")
        for shift in self.shifts():
            shift.mode = mode
            shift.reset()

    def reset(self) -> None:
        """Forget the cached frames of an online model (call at the start of every stream)."""
        for shift in self.shifts():
            shift.reset()

    def online_state(self) -> list[torch.Tensor | None]:
        """Each shift's cached last frame: what an online model carries from one call to the
        next for the streams of its batch."""
        return [shift._cache for shift in self.shifts()]

    def set_online_state(self, state: list[torch.Tensor | None]) -> None:
        """Restore what ``online_state`` returned (or states of several streams, concatenated
        along the batch in the order of the next call's batch)."""
        for shift, cache in zip(self.shifts(), state, strict=True):
            shift._cache = cache

    def clip_frames(self, clip: torch.Tensor) -> tuple[torch.Tensor, int]:
        """The trunk's frames, with every shift told how many frames a clip has."""
        frames, t = super().clip_frames(clip)
        for shift in self.shifts():
            shift.num_frames = t
        return frames, t


_TSM = {
    "family": "tsm",
    "clip_len": 8,
    "input_size": 160,
    "sampling": "segments",
    "convert": convert_state_dict,
}


_TSM_DIFF = {**_TSM, **DIFFERENCE_INPUT}
register_on_trunks(
    TSM,
    _TSM,
    (18, 50),
    "TSM on ResNet-{depth}: 8 segments, 1/8 + 1/8 channels shifted in every residual branch.",
    name="tsm_resnet{depth}",
)
register_on_trunks(
    TSM,
    _TSM,
    (18,),
    "TSM on ResNet-{depth} shifting only from the past: a live stream runs it one frame at a "
    'time ("online" shift), each frame through the network once.',
    name="tsm_online_resnet{depth}",
    shift_mode="past",
)
register_on_trunks(
    TSM,
    _TSM_DIFF,
    (18, 50),
    "TSM on RGB differences, ResNet-{depth}: 8 segments of 3 frames, shifts between segments.",
    name="tsm_diff_resnet{depth}",
)
