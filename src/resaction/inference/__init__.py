"""Inference: score videos (``Predictor``), whole-video timelines and live streams.

``Predictor`` holds a model behind a backend (``TorchBackend``; an ONNX Runtime backend plugs in
the same way) with its class names, preprocessing and evaluation protocol.
"""

from resaction.inference.predictor import Prediction, Predictor, VideoFailure
from resaction.runtime.backends import Backend, TorchBackend

__all__ = ["Backend", "Prediction", "Predictor", "TorchBackend", "VideoFailure"]
