"""LRCN (Long-term Recurrent Convolutional Networks): per-frame ResNet features into an LSTM or GRU.

The trunk keeps the 2D ResNet's keys, so ImageNet weights load directly; ``rnn`` and ``fc`` are
the head. The classifier reads the mean of the RNN outputs over time ("mean") or the final hidden
state of the last layer, both directions concatenated ("last").
"""

from __future__ import annotations

import torch
from torch import nn

from resaction.errors import ModelError
from resaction.models.catalog import register_on_trunks
from resaction.models.resnet2d import DEPTHS, ResNet, convert_state_dict

RNN_TYPES = {"lstm": nn.LSTM, "gru": nn.GRU}
POOLING = ("mean", "last")


class LRCN(ResNet):
    def __init__(
        self,
        depth: int,
        num_classes: int,
        *,
        rnn: str = "lstm",
        hidden_size: int = 512,
        num_layers: int = 1,
        bidirectional: bool = False,
        pool: str = "mean",
        dropout: float = 0.5,
        modality: str = "rgb",
        segment_len: int = 1,
    ) -> None:
        if rnn not in RNN_TYPES:
            raise ModelError(f"rnn {rnn!r} is not one of {', '.join(RNN_TYPES)}")
        if pool not in POOLING:
            raise ModelError(f"pool {pool!r} is not one of {', '.join(POOLING)}")
        block, layers = DEPTHS[depth]
        super().__init__(block, layers, num_classes, modality=modality, segment_len=segment_len)
        self.pool = pool
        self.dropout = nn.Dropout(dropout)
        self.rnn = RNN_TYPES[rnn](
            self.num_features,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.fc = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)

    def head_modules(self) -> list[nn.Module]:
        return [self.rnn, self.fc]

    def frame_outputs(self, frames: torch.Tensor) -> torch.Tensor:
        """Per-frame trunk features (B, num_features): the recurrent head pools them."""
        return self.dropout(self.forward_features(frames))

    def pool_frames(self, features: torch.Tensor) -> torch.Tensor:
        """Features (N, T, F) -> logits (N, K) through the RNN and the classifier."""
        outputs, state = self.rnn(features)
        if self.pool == "mean":
            pooled = outputs.mean(dim=1)
        else:
            hidden = state[0] if isinstance(state, tuple) else state
            directions = 2 if self.rnn.bidirectional else 1
            last_layer = hidden.unflatten(0, (self.rnn.num_layers, directions))[-1]
            pooled = last_layer.transpose(0, 1).flatten(1)
        return self.fc(self.dropout(pooled))


_LRCN = {
    "family": "lrcn",
    "clip_len": 16,
    "input_size": 112,
    "resize": 128,
    "frame_interval": 2,
    "convert": convert_state_dict,
}


register_on_trunks(
    LRCN,
    _LRCN,
    (18, 34, 50),
    "LRCN on ResNet-{depth}: 16 frames (every 2nd) at 112 px into a 1-layer LSTM, mean of states.",
    name="lrcn_resnet{depth}",
)
