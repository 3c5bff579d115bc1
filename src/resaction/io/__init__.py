"""Video decoding: frame-accurate readers with one interface over PyAV, OpenCV and torchcodec;
clips cut from files by remuxing."""

from resaction.io.backends import BACKENDS, OpenCVReader, TorchCodecReader, open_video
from resaction.io.base import FrameReader
from resaction.io.clips import cut_clip, cut_clips
from resaction.io.index_build import clear_index_cache
from resaction.io.metadata import VideoMetadata
from resaction.io.video_reader import VideoReader
from resaction.io.writer import VideoWriter

__all__ = [
    "BACKENDS",
    "FrameReader",
    "OpenCVReader",
    "TorchCodecReader",
    "VideoMetadata",
    "VideoReader",
    "VideoWriter",
    "clear_index_cache",
    "cut_clip",
    "cut_clips",
    "open_video",
]
