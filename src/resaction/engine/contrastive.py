"""Contrastive pretraining: two clips of one video should look alike to the network, clips of
other videos should not (the NT-Xent loss of SimCLR, applied to video clips as CVRL does).

Each item is two clips drawn independently from one video (other moments, other crops, other
colours: ``ClipColourJitter``), the positive pair; the other clips of the batch are the
negatives. The network's classifier becomes a 128-wide embedding, compared by cosine similarity
at temperature 0.1. Unlike the speed pretext (``engine.pretext``) it does not need the model to
see motion, so it also pretrains RGB models, which the speed task cannot; its weakness on a
CPU is the batch: 8 videos give 14 negatives a clip where CVRL used thousands
(``docs/pretraining.md`` has the measured rows).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from resaction.data.dataset import VideoClipDataset
from resaction.data.entries import VideoEntry
from resaction.data.sampling import Sampler
from resaction.data.spec import ClipSpec

EMBEDDING_DIM = 128
TEMPERATURE = 0.1
COLOUR_JITTER = 1.0


def embedding_classes(dim: int = EMBEDDING_DIM) -> list[str]:
    """The "classes" of a contrastive run: the embedding's dimensions."""
    return [f"embedding {index}" for index in range(dim)]


@dataclasses.dataclass(frozen=True)
class TwoClips:
    """Two independent draws of ``base`` from one video: a positive pair."""

    base: Sampler

    @property
    def num_clips(self) -> int:
        return 2 * self.base.num_clips

    def __call__(
        self, num_frames: int, fps: float | None, rng: np.random.Generator
    ) -> list[np.ndarray]:
        return [*self.base(num_frames, fps, rng), *self.base(num_frames, fps, rng)]


def pair_dataset(spec: ClipSpec, entries: list[VideoEntry], seed: int) -> VideoClipDataset:
    """Items ``(2 clips, 0, index)``: each clip sampled and augmented on its own."""
    spec = spec.with_options(colour_jitter=spec.options.get("colour_jitter", COLOUR_JITTER))
    sampler = TwoClips(spec.sampler(train=True))
    return VideoClipDataset(
        entries, sampler, spec.transform(train=True), seed=seed, multi_view=True
    )


def contrastive_loss(
    forward: Callable[[Tensor], Tensor], clips: Tensor, labels: Tensor, criterion: Any
) -> tuple[Tensor, float]:
    """NT-Xent over the batch's ``2B`` clips, and how many of ``B`` videos had each clip's
    nearest other clip be its partner (half a video for each clip that did). A batch of one
    video teaches nothing and scores no hit (it would be a free one)."""
    del labels, criterion
    pairs = clips.flatten(0, 1)  # a video's two clips side by side: partners are 2i and 2i+1
    embeddings = F.normalize(forward(pairs).float(), dim=1)
    similarity = embeddings @ embeddings.T / TEMPERATURE
    itself = torch.eye(len(pairs), dtype=torch.bool, device=similarity.device)
    similarity = similarity.masked_fill(itself, float("-inf"))
    partner = torch.arange(len(pairs), device=similarity.device) ^ 1
    loss = F.cross_entropy(similarity, partner)
    if len(pairs) == 2:  # one video (an epoch's last batch): nothing to tell its partner from
        return loss * 0.0, 0.0
    found = (similarity.detach().argmax(dim=1) == partner).sum()
    return loss, float(found) / 2
