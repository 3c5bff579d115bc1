"""Datasets, manifest readers, honest splits, clip samplers, transforms and loaders.

``synthetic`` (generated datasets) and ``stress`` (robustness corruptions) are imported from
their modules, not from here.
"""

from resaction.data.dataset import SkippedVideo, SkipReport, VideoClipDataset
from resaction.data.loader import (
    ClipBatch,
    ClipLoader,
    EpochSampler,
    collate_skip_bad,
    default_num_workers,
    make_loader,
)
from resaction.data.manifests import Manifest, VideoEntry, read_manifest
from resaction.data.sampling import (
    RandomClipSampler,
    SegmentSampler,
    SlidingWindowSampler,
    UniformClipSampler,
    Window,
    build_sampler,
)
from resaction.data.splits import entry_groups, kfold, shared_groups, train_test_split
from resaction.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    KINETICS_MEAN,
    KINETICS_STD,
    CenterCrop,
    ClipTransform,
    MultiScaleCrop,
    RandomCrop,
    RandomHorizontalFlip,
    Resize,
    ThreeCrop,
    build_transform,
    imagenet_preprocess,
    imagenet_preset,
    kinetics_preprocess,
    kinetics_preset,
)
from resaction.io.video_files import VIDEO_EXTENSIONS

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "KINETICS_MEAN",
    "KINETICS_STD",
    "VIDEO_EXTENSIONS",
    "CenterCrop",
    "ClipBatch",
    "ClipLoader",
    "ClipTransform",
    "EpochSampler",
    "Manifest",
    "MultiScaleCrop",
    "RandomClipSampler",
    "RandomCrop",
    "RandomHorizontalFlip",
    "Resize",
    "SegmentSampler",
    "SkipReport",
    "SkippedVideo",
    "SlidingWindowSampler",
    "ThreeCrop",
    "UniformClipSampler",
    "VideoClipDataset",
    "VideoEntry",
    "Window",
    "build_sampler",
    "build_transform",
    "collate_skip_bad",
    "default_num_workers",
    "entry_groups",
    "imagenet_preprocess",
    "imagenet_preset",
    "kfold",
    "kinetics_preprocess",
    "kinetics_preset",
    "make_loader",
    "read_manifest",
    "shared_groups",
    "train_test_split",
]
